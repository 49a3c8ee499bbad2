//! Every example payload from emnify's documentation is read, quirks and all.

use std::path::{Path, PathBuf};

use emnify_exporter::emnify::{decode_event, decode_event_list, Event};
use emnify_exporter::timefmt::parse_timestamp_millis;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/examples")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(body: &[u8]) -> Event<'_> {
    decode_event(body).expect("well-formed JSON").expect("a readable event")
}

#[test]
fn every_valid_example_parses_with_its_documented_type() {
    let mut checked = 0;
    for entry in std::fs::read_dir(fixtures()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".json") || name == "manifest.json" {
            continue;
        }
        let body = std::fs::read(&path).unwrap();
        let events: Vec<Event<'_>> = if name.starts_with("list-response") {
            decode_event_list(&body).unwrap().into_iter().map(|e| e.expect("readable")).collect()
        } else {
            vec![one(&body)]
        };
        let expected_type: u32 = if name.starts_with("list-response") { 4 } else { name[..2].parse().unwrap() };
        for event in events {
            assert_eq!(event.event_type_id, expected_type, "{name}");
            assert!(event.id > 0, "{name}");
            assert!(event.timestamp_millis.is_some(), "{name}: timestamp");
            assert!(event.source_id.is_some() && event.severity_id.is_some(), "{name}: source/severity");
            assert!(event.organisation_id.is_some(), "{name}: organisation");
            checked += 1;
        }
    }
    assert_eq!(checked, 54, "every JSON example in the fixtures is checked");
}

#[test]
fn organisation_blocked_quirks() {
    let body = read("12-organisation-blocked__monthly-cost-limit-exceeded.json");
    let e = one(&body);
    assert!(e.alert, "alert given as the integer 1");
    assert_eq!(e.source_id, Some(1), "event_source with `name` instead of `description`");
    assert_eq!(e.severity_id, Some(1), "severity spelled WARN");
    assert_eq!(e.timestamp_millis, parse_timestamp_millis("2021-10-06T10:42:58Z"), "no T, no zone");
    assert_eq!(e.organisation_name.as_deref(), Some("Test Org"));
}

#[test]
fn openvpn_example_with_nulls_and_extra_fields() {
    let body = read("30-openvpn-authentication.json");
    let e = one(&body);
    assert_eq!(e.id, 153_792_067_277);
    assert!(!e.alert);
    assert_eq!(e.severity_id, Some(0));
    assert_eq!(e.timestamp_millis, parse_timestamp_millis("2021-10-27T15:17:23.000Z"));
}

#[test]
fn generic_examples_name_their_cause() {
    use emnify_exporter::catalogue::generic_cause;
    let quota = read("00-generic__disconnecting-data-access-for-a-device-after-updating-the-quota.json");
    let throttle = read("00-generic__disconnecting-data-access-for-a-device-to-apply-throttling-action.json");
    assert_eq!(generic_cause(&one(&quota).description), "quota_update");
    assert_eq!(generic_cause(&one(&throttle).description), "throttling");
    assert_eq!(one(&throttle).id, 543_839_962_673_704, "64-bit id");
}

/// The two `.raw.txt` examples are not JSON (a raw line break in a string, `//` comments): they are
/// refused as malformed, without a panic; with the documentation artefacts removed they read fine.
#[test]
fn raw_documentation_examples_are_refused_cleanly_and_read_once_cleaned() {
    let location = String::from_utf8(read("01-update-location.raw.txt")).unwrap();
    assert!(decode_event(location.as_bytes()).is_err());
    let cleaned = location.replace("now\nattached", "now attached");
    assert_eq!(one(cleaned.as_bytes()).event_type_id, 1);
    assert_eq!(one(cleaned.as_bytes()).timestamp_millis, parse_timestamp_millis("2017-10-26T07:28:00Z"));

    let pdp = String::from_utf8(read("03-create-pdp-context__create-pdp-context-accepted.raw.txt")).unwrap();
    assert!(decode_event(pdp.as_bytes()).is_err());
    let cleaned: String = pdp.lines().map(|l| l.split(" //").next().unwrap_or(l)).collect::<Vec<_>>().join("\n");
    let e = one(cleaned.as_bytes());
    assert_eq!((e.event_type_id, e.source_id, e.severity_id), (3, Some(0), Some(0)));
}
