//! The event model both decoders produce, the values they read from an event object, and the one
//! place those become a [`DecodedEvent`].
//!
//! The serde decoder ([`super::model`]) and the scanner ([`super::scan`]) must return identical
//! results, fingerprints of unreadable records included. Each only reads the raw values of an
//! event into an [`EventFields`] and ends with [`decoded_event!`]: deciding what can be
//! counted, narrowing ids and hashing are written once, so the two cannot drift apart.

use std::borrow::Cow;

/// One emnify event: the fields the exporter counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// emnify's 64-bit event id; the dedup key ("same id = duplicate", emnify docs).
    pub id: u64,
    /// When the event happened, Unix milliseconds; `None` if absent or unreadable.
    pub timestamp_millis: Option<i64>,
    pub alert: bool,
    pub description: Cow<'a, str>,
    pub event_type_id: u32,
    pub source_id: Option<u32>,
    pub severity_id: Option<u32>,
    pub organisation_id: Option<u64>,
    pub organisation_name: Option<Cow<'a, str>>,
    /// The device (`endpoint.id`) the event concerns, for exemplars; `None` if absent or unreadable.
    pub endpoint_id: Option<u64>,
    /// Its SIM's ICCID (`sim.iccid`, 19 digits), for exemplars; `None` if absent or unreadable.
    pub iccid: Option<u64>,
}

/// An element of an event list that is well-formed JSON but cannot be counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// The event id, when it was readable, for the log line.
    pub id: Option<u64>,
    /// A hash of what could be read, so the same bad record received twice is recognised.
    pub fingerprint: u64,
    /// One of [`UNREADABLE_REASONS`].
    pub reason: &'static str,
}

/// Why an element of an event list could not be counted; values of `emnify_events_unreadable_total{reason}`.
/// `malformed_value`: well-formed JSON, but a value the exporter reads cannot be decoded (a lone
/// surrogate escape or invalid UTF-8 in a string, a number out of range such as `1E400`).
pub const UNREADABLE_REASONS: [&str; 4] = ["not_an_object", "missing_id", "missing_event_type", "malformed_value"];

/// One element of an event list: an event, or why it could not be read.
pub type DecodedEvent<'a> = Result<Event<'a>, Unreadable>;

/// The values of one event object as read, before anything is decided about them.
///
/// Sub-object ids are kept as read (u64); [`decoded_event!`] narrows the small ones to
/// u32. A sub-object that is absent, not an object or without a readable id leaves its id `None`.
#[derive(Default)]
pub(crate) struct EventFields<'a> {
    pub(crate) id: Option<u64>,
    /// The text: an event gets it parsed, an unreadable record's fingerprint hashes it as text.
    pub(crate) timestamp: Option<Cow<'a, str>>,
    pub(crate) alert: bool,
    pub(crate) description: Option<Cow<'a, str>>,
    pub(crate) event_type_id: Option<u64>,
    pub(crate) source_id: Option<u64>,
    pub(crate) severity_id: Option<u64>,
    pub(crate) organisation_id: Option<u64>,
    pub(crate) organisation_name: Option<Cow<'a, str>>,
    pub(crate) endpoint_id: Option<u64>,
    pub(crate) iccid: Option<u64>,
}

/// `decoded_event!(fields, timestamp_millis)`: `Ok(Ok(event))` for an [`EventFields`] local that
/// has what counting needs, else it returns `Ok(Err(unreadable))` from the enclosing function,
/// which must return `Result<DecodedEvent, E>`; meant as that function's tail expression.
/// `timestamp_millis` is `fields.timestamp` parsed as [`crate::timefmt::parse_timestamp_millis`]
/// does (the scanner has a faster parser with a per-day cache); unreadable records ignore it.
///
/// A macro rather than a method: the method is too large for rustc's MIR inliner, and once LLVM
/// inlines it the scanner's event loop compiles differently; every variant tried (inlined or not,
/// hashing in or out of line) ran 1.5 to 6 % more instructions per page in `cargo bench --bench
/// ingest` (cachegrind), while this expansion compiles to the same code as the hand-written one.
macro_rules! decoded_event {
    ($fields:ident, $timestamp_millis:expr) => {{
        let small = |v: Option<u64>| v.and_then(|v| u32::try_from(v).ok());
        let (Some(id), Some(event_type_id)) = ($fields.id, small($fields.event_type_id)) else {
            use std::hash::{Hash, Hasher};
            // The tally counts each fingerprint once, so a bad record on a page fetched twice (or
            // in a retried push) is counted once.
            let mut h = std::hash::DefaultHasher::new();
            let (timestamp, description) = ($fields.timestamp.as_deref(), $fields.description.as_deref());
            ($fields.id, timestamp, description, small($fields.event_type_id)).hash(&mut h);
            (small($fields.source_id), small($fields.severity_id), $fields.organisation_id).hash(&mut h);
            let reason = if $fields.id.is_none() {
                $crate::emnify::fields::UNREADABLE_REASONS[1]
            } else {
                $crate::emnify::fields::UNREADABLE_REASONS[2]
            };
            return Ok(Err($crate::emnify::fields::Unreadable { id: $fields.id, fingerprint: h.finish(), reason }));
        };
        Ok(Ok($crate::emnify::fields::Event {
            id,
            timestamp_millis: $timestamp_millis,
            alert: $fields.alert,
            description: $fields.description.unwrap_or(std::borrow::Cow::Borrowed("")),
            event_type_id,
            source_id: small($fields.source_id),
            severity_id: small($fields.severity_id),
            organisation_id: $fields.organisation_id,
            organisation_name: $fields.organisation_name,
            endpoint_id: $fields.endpoint_id,
            iccid: $fields.iccid,
        }))
    }};
}
pub(crate) use decoded_event;

/// An ICCID from the raw JSON text of a `sim.iccid` value: 1 to 20 digits that fit 64 bits (ICCIDs
/// have 19 or 20), bare or in a string without escapes; anything else is none. Both decoders skip
/// the value as an ignored one first, so a value that is not an ICCID (a lone surrogate escape,
/// `1E400`) does not make the event unreadable; only bytes that are not UTF-8 do, as in any string
/// that is read.
pub(crate) fn parse_iccid(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    let digits = raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')).unwrap_or(raw);
    let valid = (1..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    valid.then(|| digits.parse().ok()).flatten()
}

/// A list element that is not an object: nothing was read, so its fingerprint is 0.
#[inline]
pub(crate) fn not_an_object() -> Unreadable {
    Unreadable { id: None, fingerprint: 0, reason: UNREADABLE_REASONS[0] }
}

/// A list element whose grammar is sound but one of whose read values cannot be decoded; its
/// fingerprint hashes its raw bytes (nothing else of it can be trusted).
#[cold]
pub(crate) fn malformed_value(raw: &[u8]) -> Unreadable {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (UNREADABLE_REASONS[3], raw).hash(&mut h);
    // 0 means "no fingerprint" to the tally.
    Unreadable { id: None, fingerprint: h.finish().max(1), reason: UNREADABLE_REASONS[3] }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::hash::{Hash, Hasher};

    use super::*;
    use crate::emnify::model::DecodedEvent;

    fn decoded(fields: EventFields<'_>, timestamp_millis: Option<i64>) -> DecodedEvent<'_> {
        let decide = || -> Result<DecodedEvent<'_>, Infallible> { decoded_event!(fields, timestamp_millis) };
        let Ok(decoded) = decide();
        decoded
    }

    #[test]
    fn a_missing_id_is_reported_before_a_missing_event_type() {
        let none = decoded(EventFields::default(), None).unwrap_err();
        assert_eq!((none.id, none.reason), (None, "missing_id"));
        let typed = EventFields { event_type_id: Some(3), ..EventFields::default() };
        assert_eq!(decoded(typed, None).unwrap_err().reason, "missing_id");
        let big_type = EventFields { id: Some(7), event_type_id: Some(1 << 32), ..EventFields::default() };
        let u = decoded(big_type, None).unwrap_err();
        assert_eq!((u.id, u.reason), (Some(7), "missing_event_type"));
    }

    #[test]
    fn the_fingerprint_hashes_what_was_read_as_read() {
        let fields = || EventFields {
            id: Some(9),
            timestamp: Some(Cow::Borrowed("x")),
            description: Some(Cow::Borrowed("no type")),
            source_id: Some(1 << 32),
            organisation_id: Some(3),
            organisation_name: Some(Cow::Borrowed("not hashed")),
            ..EventFields::default()
        };
        let mut h = std::hash::DefaultHasher::new();
        (Some(9u64), Some("x"), Some("no type"), None::<u32>).hash(&mut h);
        (None::<u32>, None::<u32>, Some(3u64)).hash(&mut h);
        assert_eq!(decoded(fields(), None).unwrap_err().fingerprint, h.finish());
        let renamed = EventFields { organisation_name: None, ..fields() };
        assert_eq!(decoded(renamed, Some(5)).unwrap_err().fingerprint, h.finish());
    }

    #[test]
    fn an_event_takes_the_parsed_timestamp_and_defaults() {
        let fields = EventFields {
            id: Some(1),
            event_type_id: Some(2),
            severity_id: Some(1 << 32),
            timestamp: Some(Cow::Borrowed("t")),
            ..EventFields::default()
        };
        let event = decoded(fields, Some(42)).unwrap();
        assert_eq!((event.id, event.event_type_id, event.timestamp_millis), (1, 2, Some(42)));
        assert_eq!((event.description.as_ref(), event.severity_id, event.alert), ("", None, false));
    }
}
