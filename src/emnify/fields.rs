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
    /// The start of an `id` that is present but not a valid id (reason `invalid_id`) as it appeared
    /// in the JSON text, for the log line: such a record has no `id` to show.
    pub invalid_id: Option<IdText>,
    /// A hash of what could be read, so the same bad record received twice is recognised.
    pub fingerprint: u64,
    /// One of [`UNREADABLE_REASONS`].
    pub reason: &'static str,
}

/// Why an element of an event list could not be counted; values of `emnify_events_unreadable_total{reason}`.
/// `missing_id`: no `id` key, or `null`; `invalid_id`: an `id` that is present but not an integer
/// in `0..=i64::MAX` (emnify's ids are signed 64-bit; [`MAX_EVENT_ID`]).
/// `malformed_value`: well-formed JSON, but a value the exporter reads cannot be decoded (a lone
/// surrogate escape or invalid UTF-8 in a string, a number out of range such as `1E400`).
pub const UNREADABLE_REASONS: [&str; 5] =
    ["not_an_object", "missing_id", "invalid_id", "missing_event_type", "malformed_value"];

/// The largest valid event id. emnify documents event ids as signed 64-bit ("a 64 bit long value
/// should be expected"); the exporter keeps them as u64 (the dedup memory and the state file do)
/// but never produces one above this.
pub const MAX_EVENT_ID: u64 = i64::MAX as u64;

/// An event's `id` as read; one rule for both decoders.
///
/// Valid: an integer in `0..=i64::MAX` (emnify's ids are signed 64-bit), given as
/// * a JSON integer (`-0` included, which is 0);
/// * a number with a fraction or exponent that serde_json reads as a whole f64 below 2^63 (`5.0`,
///   `1e2`, `9.2e18`; above 2^53 such a float may already be rounded, but it is accepted as before);
/// * a string of decimal digits, optionally with a `+` and surrounding white space (`"5"`,
///   `" 42 "`, `"+7"`): some JSON encoders (protobuf's JSON mapping, for one) quote 64-bit integers.
///
/// `null` counts as absent ([`IdField::Missing`], reason `missing_id`): some serialisers write
/// every field, set or not. Anything else that is present is [`IdField::Invalid`] (reason
/// `invalid_id`) rather than read some other way: negative, 2^63 or more (2^64 and more too),
/// fractional, a string that is not such an integer, `true`, an array or an object. Counting such
/// an id under another number (say, 2^64 - 1 or a truncation of it) could merge or split events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdField<'a> {
    #[default]
    Missing,
    Valid(u64),
    /// The value's JSON text as it appeared (borrowed from the body: nothing is copied unless the
    /// record is reported).
    Invalid(&'a str),
}

impl IdField<'_> {
    #[inline(always)]
    pub(crate) fn valid(self) -> Option<u64> {
        match self {
            IdField::Valid(id) => Some(id),
            IdField::Missing | IdField::Invalid(_) => None,
        }
    }
}

/// An id given as a JSON integer that fits a u64 (serde_json's `visit_u64`); `None`: invalid.
#[inline(always)]
pub(crate) fn id_from_u64(v: u64) -> Option<u64> {
    (v <= MAX_EVENT_ID).then_some(v)
}

/// An id given as a negative JSON integer (serde_json's `visit_i64`): never valid.
#[inline]
pub(crate) fn id_from_i64(v: i64) -> Option<u64> {
    u64::try_from(v).ok()
}

/// An id given as a number serde_json reads as f64: valid if whole and in `0..2^63` (`-0.0` is 0).
#[inline]
pub(crate) fn id_from_f64(v: f64) -> Option<u64> {
    // 2^63 exactly: every whole float below it is at most i64::MAX (the largest is 2^63 - 1024).
    let whole = v.fract() == 0.0 && (0.0..9_223_372_036_854_775_808.0).contains(&v);
    whole.then_some(v as u64)
}

/// An id given as a string: decimal digits (a `+` allowed, as `u64::from_str` takes it), white
/// space around them ignored.
#[inline]
pub(crate) fn id_from_str(v: &str) -> Option<u64> {
    v.trim().parse().ok().and_then(id_from_u64)
}

/// The start of a value's JSON text, at most [`IdText::CAPACITY`] bytes cut at a character
/// boundary. A fixed-size copy: an unreadable record stays small, owns nothing on the heap and needs
/// no lifetime, and a huge value (a megabyte-long string as an id) costs the log line nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdText {
    bytes: [u8; IdText::CAPACITY],
    len: u8,
    truncated: bool,
}

impl IdText {
    /// Bytes kept: more than any number needs (2^64 has 20 digits), enough to recognise a string.
    pub const CAPACITY: usize = 32;

    /// The first [`Self::CAPACITY`] bytes of `text` or fewer (never half a character).
    ///
    /// Cold and out of line: only unreadable records get here, and inlined into the scanner's event
    /// loop (through `decoded_event!`) it cost 0.7 % more instructions per page (cachegrind,
    /// `cargo bench --bench ingest -- decode_only`); out of line, 0.3 % fewer than before ids were checked.
    #[cold]
    #[inline(never)]
    pub fn new(text: &str) -> IdText {
        let mut len = text.len().min(Self::CAPACITY);
        while !text.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(&text.as_bytes()[..len]);
        // `len` is at most CAPACITY, which fits a u8.
        IdText { bytes, len: len as u8, truncated: len < text.len() }
    }

    /// The text kept (without the mark of a cut).
    pub fn as_str(&self) -> &str {
        // Always valid: `new` copies whole characters of a `&str`; the fallback is never taken.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }

    /// True if the text was longer than what is kept.
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }
}

/// The text, followed by `…` if it was cut.
impl std::fmt::Display for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())?;
        if self.truncated {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for IdText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IdText({:?})", self.to_string())
    }
}

/// One element of an event list: an event, or why it could not be read.
pub type DecodedEvent<'a> = Result<Event<'a>, Unreadable>;

/// The values of one event object as read, before anything is decided about them.
///
/// Sub-object ids are kept as read (u64); [`decoded_event!`] narrows the small ones to
/// u32. A sub-object that is absent, not an object or without a readable id leaves its id `None`.
#[derive(Default)]
pub(crate) struct EventFields<'a> {
    pub(crate) id: IdField<'a>,
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
        let ($crate::emnify::fields::IdField::Valid(id), Some(event_type_id)) =
            ($fields.id, small($fields.event_type_id))
        else {
            use std::hash::{Hash, Hasher};
            use $crate::emnify::fields::{IdField, IdText, UNREADABLE_REASONS};
            // The tally counts each fingerprint once, so a bad record on a page fetched twice (or
            // in a retried push) is counted once.
            let mut h = std::hash::DefaultHasher::new();
            let (timestamp, description) = ($fields.timestamp.as_deref(), $fields.description.as_deref());
            ($fields.id.valid(), timestamp, description, small($fields.event_type_id)).hash(&mut h);
            (small($fields.source_id), small($fields.severity_id), $fields.organisation_id).hash(&mut h);
            // An invalid id is hashed as its whole text (so `-5` and `-6` are two records); the
            // other records hash as they always did, so remembered fingerprints stay valid.
            let (reason, invalid_id) = match $fields.id {
                IdField::Missing => (UNREADABLE_REASONS[1], None),
                IdField::Invalid(text) => {
                    text.hash(&mut h);
                    (UNREADABLE_REASONS[2], Some(IdText::new(text)))
                }
                IdField::Valid(_) => (UNREADABLE_REASONS[3], None),
            };
            let id = $fields.id.valid();
            return Ok(Err($crate::emnify::fields::Unreadable { id, invalid_id, fingerprint: h.finish(), reason }));
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
    Unreadable { id: None, invalid_id: None, fingerprint: 0, reason: UNREADABLE_REASONS[0] }
}

/// A list element whose grammar is sound but one of whose read values cannot be decoded; its
/// fingerprint hashes its raw bytes (nothing else of it can be trusted).
#[cold]
pub(crate) fn malformed_value(raw: &[u8]) -> Unreadable {
    use std::hash::{Hash, Hasher};
    let mut h = std::hash::DefaultHasher::new();
    (UNREADABLE_REASONS[4], raw).hash(&mut h);
    // 0 means "no fingerprint" to the tally.
    Unreadable { id: None, invalid_id: None, fingerprint: h.finish().max(1), reason: UNREADABLE_REASONS[4] }
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
        let big_type = EventFields { id: IdField::Valid(7), event_type_id: Some(1 << 32), ..EventFields::default() };
        let u = decoded(big_type, None).unwrap_err();
        assert_eq!((u.id, u.reason), (Some(7), "missing_event_type"));
    }

    #[test]
    fn the_fingerprint_hashes_what_was_read_as_read() {
        let fields = || EventFields {
            id: IdField::Valid(9),
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
            id: IdField::Valid(1),
            event_type_id: Some(2),
            severity_id: Some(1 << 32),
            timestamp: Some(Cow::Borrowed("t")),
            ..EventFields::default()
        };
        let event = decoded(fields, Some(42)).unwrap();
        assert_eq!((event.id, event.event_type_id, event.timestamp_millis), (1, 2, Some(42)));
        assert_eq!((event.description.as_ref(), event.severity_id, event.alert), ("", None, false));
    }

    #[test]
    fn an_invalid_id_is_reported_before_a_missing_event_type_with_its_text() {
        let invalid = EventFields { id: IdField::Invalid("-5"), ..EventFields::default() };
        let u = decoded(invalid, None).unwrap_err();
        assert_eq!((u.id, u.reason), (None, "invalid_id"));
        assert_eq!(u.invalid_id.map(|t| t.to_string()).as_deref(), Some("-5"));
        // Not the fingerprint of a missing id, and not that of another invalid id.
        let missing = decoded(EventFields::default(), None).unwrap_err();
        let other = decoded(EventFields { id: IdField::Invalid("-6"), ..EventFields::default() }, None).unwrap_err();
        assert_ne!(u.fingerprint, missing.fingerprint);
        assert_ne!(u.fingerprint, other.fingerprint);
        assert_eq!(missing.invalid_id, None);
    }

    #[test]
    fn ids_are_signed_64_bit() {
        assert_eq!(id_from_u64(0), Some(0));
        assert_eq!(id_from_u64(i64::MAX as u64), Some(i64::MAX as u64));
        assert_eq!(id_from_u64(1 << 63), None);
        assert_eq!(id_from_u64(u64::MAX), None);
        assert_eq!(id_from_i64(-1), None);
        assert_eq!(id_from_f64(5.0), Some(5));
        assert_eq!(id_from_f64(-0.0), Some(0));
        assert_eq!(id_from_f64(9.2e18), Some(9_200_000_000_000_000_000));
        // 2^63 - 1 has no f64: it rounds to 2^63, which is too large.
        assert_eq!(id_from_f64(9_223_372_036_854_775_807.0), None);
        assert_eq!(id_from_f64(1e19), None);
        assert_eq!(id_from_f64(5.5), None);
        assert_eq!(id_from_f64(-1.0), None);
        assert_eq!(id_from_str(" 42 "), Some(42));
        assert_eq!(id_from_str("+7"), Some(7));
        assert_eq!(id_from_str("9223372036854775807"), Some(i64::MAX as u64));
        for bad in ["9223372036854775808", "-5", "5.0", "", "x", "0x10"] {
            assert_eq!(id_from_str(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn id_text_keeps_whole_characters_up_to_its_capacity() {
        let short = IdText::new("-5");
        assert_eq!((short.as_str(), short.is_truncated(), short.to_string().as_str()), ("-5", false, "-5"));
        let exact = "1".repeat(IdText::CAPACITY);
        assert_eq!((IdText::new(&exact).as_str(), IdText::new(&exact).is_truncated()), (exact.as_str(), false));
        let long = format!("\"{}\"", "é".repeat(40));
        let cut = IdText::new(&long);
        // `"` and 15 two-byte characters: 31 bytes, as the 16th would end past 32.
        assert_eq!(cut.as_str().len(), 31);
        assert!(long.starts_with(cut.as_str()) && cut.is_truncated());
        assert_eq!(cut.to_string(), format!("{}…", cut.as_str()));
        assert_eq!(format!("{short:?}"), "IdText(\"-5\")");
    }
}
