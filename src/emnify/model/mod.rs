//! The emnify event object, read leniently: one odd field never costs the whole page.
//!
//! Payloads seen in emnify's docs differ in small ways (`alert` as `1`,
//! `event_source.name` instead of `description`, `WARN`/`Warning`, several
//! timestamp forms, `null` or absent sub-objects, extra fields). The decoder
//! here accepts any well-formed JSON value in any field and decides per event
//! whether it has what counting needs (an id and an event type). Strings are
//! borrowed from the response body where possible, so decoding allocates little.
//!
//! The serde-based decoder here is the reference; pages are read by the hand-written scanner in
//! [`super::scan`], which returns the same results about twice as fast (`tests/decoder_parity.rs`).
//!
//! The parts, each importing only those listed after it: `decode` (the entry points), `event` (the
//! visitors for an event list and an event object), `values` (the lenient visitors for one field's
//! value), `key` (the keys that matter, shared with the scanner). This file only re-exports.

mod decode;
mod event;
mod key;
mod values;

pub use super::fields::{DecodedEvent, Event, IdText, Unreadable, MAX_EVENT_ID, UNREADABLE_REASONS};
pub use decode::{decode_event, describe_decode_error, serde_decode_event_list, serde_decode_event_object_or_list};
pub(crate) use key::Key;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::parse_timestamp_millis;

    #[test]
    fn reads_a_quirky_event() {
        let body = br#"{"id": 656817714005, "timestamp": "2021-10-06 10:42:58",
            "event_source": {"id": 1, "name": "Policy Control"},
            "event_severity": {"id": 1, "description": "WARN"},
            "event_type": {"id": 12, "description": "Organisation blocked"},
            "organisation": {"id": 6805, "name": "Test Org"},
            "user": null, "alert": 1, "description": "Blocking", "endpoint": null, "extra": [1, {"a": 2}]}"#;
        let e = decode_event(body).unwrap().unwrap();
        assert_eq!(e.id, 656_817_714_005);
        assert!(e.alert);
        assert_eq!(e.event_type_id, 12);
        assert_eq!(e.source_id, Some(1));
        assert_eq!(e.severity_id, Some(1));
        assert_eq!(e.organisation_id, Some(6805));
        assert_eq!(e.organisation_name.as_deref(), Some("Test Org"));
        assert_eq!(e.timestamp_millis, parse_timestamp_millis("2021-10-06T10:42:58Z"));
    }

    #[test]
    fn one_bad_element_does_not_spoil_the_list() {
        let body = br#"[{"id": 1, "event_type": {"id": 3}}, "junk", {"id": "x", "event_type": {"id": 3}},
                        {"id": 2, "event_type": null}, {"id": 9223372036854775807, "event_type": {"id": 0}},
                        {"event_type": {"id": 3}}]"#;
        let list = serde_decode_event_list(body).unwrap();
        assert_eq!(list.len(), 6);
        assert_eq!(list[0].as_ref().unwrap().id, 1);
        assert_eq!(list[1].as_ref().unwrap_err().reason, "not_an_object");
        assert_eq!(list[2].as_ref().unwrap_err().reason, "invalid_id");
        assert_eq!(list[3].as_ref().unwrap_err().reason, "missing_event_type");
        assert_eq!(list[3].as_ref().unwrap_err().id, Some(2));
        assert_eq!(list[4].as_ref().unwrap().id, i64::MAX as u64);
        assert_eq!(list[5].as_ref().unwrap_err().reason, "missing_id");
    }

    /// What an `id` reads as: the id, or the reason and the text the log line shows.
    fn read_id(id: &str) -> Result<u64, (&'static str, Option<String>)> {
        let body = format!(r#"{{"event_type": {{"id": 3}}, "id": {id}}}"#);
        match decode_event(body.as_bytes()).unwrap() {
            Ok(event) => Ok(event.id),
            Err(bad) => Err((bad.reason, bad.invalid_id.map(|t| t.to_string()))),
        }
    }

    #[test]
    fn ids_are_signed_64_bit_and_others_are_invalid_not_missing() {
        let valid: [(&str, u64); 10] = [
            ("0", 0),
            ("-0", 0),
            ("1", 1),
            ("9223372036854775807", i64::MAX as u64),
            ("5.0", 5),
            ("9.2e18", 9_200_000_000_000_000_000),
            (r#""5""#, 5),
            (r#"" 42 ""#, 42),
            (r#""+7""#, 7),
            (r#""9223372036854775807""#, i64::MAX as u64),
        ];
        for (text, id) in valid {
            assert_eq!(read_id(text), Ok(id), "{text}");
        }
        let invalid = [
            "-1",
            "-5",
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1e19",
            "9223372036854775807.0",
            "5.5",
            "-9223372036854775809",
            r#""-5""#,
            r#""9223372036854775808""#,
            r#""x""#,
            r#""""#,
            "true",
            "[1]",
            r#"{"id": 1}"#,
        ];
        for text in invalid {
            assert_eq!(read_id(text), Err(("invalid_id", Some(text.to_string()))), "{text}");
        }
        assert_eq!(read_id("null"), Err(("missing_id", None)));
        let long = format!("\"{}\"", "9".repeat(40));
        assert_eq!(read_id(&long), Err(("invalid_id", Some(format!("{}…", &long[..32])))));
        // Values that cannot be decoded stay `malformed_value`.
        assert_eq!(read_id("1E400"), Err(("malformed_value", None)));
        assert_eq!(read_id(r#""\ud800""#), Err(("malformed_value", None)));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for body in [&b"{"[..], b"[{\"id\": 1,", b"<html>oops</html>", b"", b"{\"id\": 1}", b"[1, 2"] {
            assert!(serde_decode_event_list(body).is_err(), "{:?}", String::from_utf8_lossy(body));
        }
        assert_eq!(serde_decode_event_object_or_list(b"{\"id\": 5, \"event_type\": {\"id\": 1}}").unwrap().len(), 1);
    }
}

#[cfg(test)]
mod sim_tests {
    // The scanner, which the exporter runs (the parity tests hold the serde decoder to it).
    use crate::emnify::decode_event_list;

    /// The SIM's ICCID is read as ids are, and a value that cannot be one costs the event nothing that
    /// an ignored field would not: the same record with the key renamed reads the same way.
    #[test]
    fn an_iccid_is_read_like_an_id_and_a_bad_one_changes_nothing() {
        let body = |sim: &str| format!(r#"[{{"id":5,"event_type":{{"id":3}},{sim}}}]"#);
        let read = |text: String| -> Vec<String> {
            decode_event_list(text.as_bytes())
                .unwrap()
                .iter()
                .map(|e| format!("{:?}", e.as_ref().map(|e| e.iccid)))
                .collect()
        };
        let good = read(body(r#""sim":{"id":1,"iccid":"8988303000000001234"}"#));
        assert_eq!(good, ["Ok(Some(8988303000000001234))"]);
        for value in [r#""\ud800""#, r#""89x""#, r#""898830300000000123456789""#, r#"{"a":1}"#, "null", "[1]"] {
            let as_iccid = read(body(&format!(r#""sim":{{"iccid":{value}}}"#)));
            let ignored = read(body(&format!(r#""sim":{{"other":{value}}}"#)));
            assert_eq!(as_iccid.len(), 1);
            assert_eq!(
                as_iccid[0].starts_with("Ok"),
                ignored[0].starts_with("Ok"),
                "{value}: {as_iccid:?} vs {ignored:?}"
            );
        }
    }
}
