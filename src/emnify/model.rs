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

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::fields::{
    decoded_event, id_from_f64, id_from_i64, id_from_str, id_from_u64, malformed_value, not_an_object, parse_iccid,
    EventFields, IdField,
};
use crate::timefmt::parse_timestamp_millis;

pub use super::fields::{DecodedEvent, Event, IdText, Unreadable, MAX_EVENT_ID, UNREADABLE_REASONS};

/// Decodes a `GET /api/v1/event` body: a bare JSON array of events.
///
/// Fails only if the body is not a well-formed JSON array; single bad
/// elements come back as `Err(Unreadable)` in their place.
///
/// An element whose grammar is sound but one of whose read values cannot be decoded (a lone
/// surrogate, invalid UTF-8, a number out of range) is one unreadable `malformed_value` record: each
/// element is read on its own, and one that fails is checked again as `IgnoredAny` would check it;
/// the body fails only if that fails too.
pub fn serde_decode_event_list(body: &[u8]) -> Result<Vec<DecodedEvent<'_>>, serde_json::Error> {
    match first_byte(body) {
        Some(b'[') => elements(body),
        // The error serde gives for the shape.
        _ => serde_json::from_slice::<EventList<'_>>(body).map(|list| list.0),
    }
}

/// Decodes a body that is either one event object or an array of them (Data Streamer pushes).
pub fn serde_decode_event_object_or_list(body: &[u8]) -> Result<Vec<DecodedEvent<'_>>, serde_json::Error> {
    match first_byte(body) {
        Some(b'[') => elements(body),
        Some(b'{') => decode_event(body).map(|item| vec![item]),
        _ => serde_json::from_slice::<OneOrMany<'_>>(body).map(|one| one.0),
    }
}

/// The first byte after JSON white space (which, unlike `trim_ascii`, has no form feed).
fn first_byte(body: &[u8]) -> Option<u8> {
    body.iter().copied().find(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
}

/// The elements of a top-level array, each decoded on its own (see [`serde_decode_event_list`]).
fn elements(body: &[u8]) -> Result<Vec<DecodedEvent<'_>>, serde_json::Error> {
    // The grammar between elements (`[`, `,`, `]`, white space) is checked here; serde_json reads
    // each element, and gives the error for anything else (by reading the whole body strictly).
    let whole = || serde_json::from_slice::<EventList<'_>>(body).map(|list| list.0);
    let json_ws = |b: &u8| matches!(b, b' ' | b'\n' | b'\t' | b'\r');
    let skip_ws = |mut i: usize| {
        while body.get(i).is_some_and(json_ws) {
            i += 1;
        }
        i
    };
    let mut out = Vec::new();
    let mut i = skip_ws(skip_ws(0) + 1);
    if body.get(i) == Some(&b']') {
        return if skip_ws(i + 1) == body.len() { Ok(out) } else { whole() };
    }
    loop {
        let rest = &body[i..];
        let mut strict = serde_json::Deserializer::from_slice(rest).into_iter::<Item<'_>>();
        let item = match strict.next() {
            Some(Ok(item)) => {
                i += strict.byte_offset();
                item.0
            }
            _ => {
                let mut lenient = serde_json::Deserializer::from_slice(rest).into_iter::<IgnoredAny>();
                match lenient.next() {
                    Some(Ok(_)) => {
                        let raw = &rest[..lenient.byte_offset()];
                        i += raw.len();
                        Err(malformed_value(raw))
                    }
                    _ => return whole(),
                }
            }
        };
        out.push(item);
        i = skip_ws(i);
        match body.get(i) {
            Some(b',') => i = skip_ws(i + 1),
            Some(b']') if skip_ws(i + 1) == body.len() => return Ok(out),
            _ => return whole(),
        }
    }
}

/// Decodes one event object.
pub fn decode_event(body: &[u8]) -> Result<DecodedEvent<'_>, serde_json::Error> {
    match serde_json::from_slice::<Item<'_>>(body) {
        Ok(item) => Ok(item.0),
        Err(strict) => {
            // Well-formed, but with a value that cannot be decoded: one unreadable record.
            serde_json::from_slice::<IgnoredAny>(body).map_err(|_| strict)?;
            Ok(Err(malformed_value(body.trim_ascii())))
        }
    }
}

struct EventList<'a>(Vec<DecodedEvent<'a>>);

impl<'de> Deserialize<'de> for EventList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EventList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array of emnify events")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                collect_items(seq).map(EventList)
            }
        }
        d.deserialize_seq(V)
    }
}

struct OneOrMany<'a>(Vec<DecodedEvent<'a>>);

impl<'de> Deserialize<'de> for OneOrMany<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an emnify event object or an array of them")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                collect_items(seq).map(OneOrMany)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                Ok(OneOrMany(vec![read_event(map)?]))
            }
        }
        d.deserialize_any(V)
    }
}

fn collect_items<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<DecodedEvent<'de>>, A::Error> {
    // Cap the pre-allocation: the size hint comes from the peer.
    let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
    while let Some(Item(item)) = seq.next_element()? {
        out.push(item);
    }
    Ok(out)
}

/// One list element, whatever JSON value it is.
struct Item<'a>(DecodedEvent<'a>);

impl<'de> Deserialize<'de> for Item<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an emnify event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                read_event(map).map(Item)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq)?;
                Ok(Item(Err(not_an_object())))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Item(Err(not_an_object())))
            }
        }
        d.deserialize_any(V)
    }
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

fn read_event<'de, A: MapAccess<'de>>(mut map: A) -> Result<DecodedEvent<'de>, A::Error> {
    let mut fields = EventFields::default();
    // A sub-object given as a non-object or without an id leaves no id, as in the scanner.
    let id_of = |r: Option<RefValue<'_>>| r.and_then(|r| r.id);
    while let Some(key) = map.next_key::<Key>()? {
        match key {
            Key::Id => fields.id = map.next_value::<EventId<'de>>()?.0,
            Key::Timestamp => fields.timestamp = map.next_value::<AnyStr<'de>>()?.0,
            Key::Alert => fields.alert = map.next_value::<AnyBool>()?.0,
            Key::Description => fields.description = map.next_value::<AnyStr<'de>>()?.0,
            Key::EventType => fields.event_type_id = id_of(map.next_value::<Ref<'de, false>>()?.0),
            Key::EventSource => fields.source_id = id_of(map.next_value::<Ref<'de, false>>()?.0),
            Key::EventSeverity => fields.severity_id = id_of(map.next_value::<Ref<'de, false>>()?.0),
            Key::Organisation => {
                let organisation = map.next_value::<Ref<'de, true>>()?.0;
                (fields.organisation_id, fields.organisation_name) = match organisation {
                    Some(o) => (o.id, o.name),
                    None => (None, None),
                };
            }
            Key::Endpoint => fields.endpoint_id = id_of(map.next_value::<Ref<'de, false>>()?.0),
            Key::Sim => fields.iccid = map.next_value::<SimRef>()?.0,
            Key::Name | Key::Iccid | Key::Other => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    let timestamp_millis = fields.timestamp.as_deref().and_then(parse_timestamp_millis);
    decoded_event!(fields, timestamp_millis)
}

/// The keys of an event object (and of its `{id, description|name}` sub-objects) that matter.
#[derive(Clone, Copy)]
pub(crate) enum Key {
    Id,
    Timestamp,
    Alert,
    Description,
    EventType,
    EventSource,
    EventSeverity,
    Organisation,
    Endpoint,
    Sim,
    Iccid,
    Name,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, v: &str) -> Result<Key, E> {
                Ok(Key::from_bytes(v.as_bytes()))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Key, E> {
                Ok(Key::from_bytes(v))
            }
        }
        // As bytes: the keys that matter are ASCII, so no key needs UTF-8 validation (a hot spot).
        d.deserialize_bytes(V)
    }
}

impl Key {
    #[inline(always)]
    pub(crate) fn from_bytes(v: &[u8]) -> Key {
        match v {
            b"id" => Key::Id,
            b"timestamp" => Key::Timestamp,
            b"alert" => Key::Alert,
            b"description" => Key::Description,
            b"event_type" => Key::EventType,
            b"event_source" => Key::EventSource,
            b"event_severity" => Key::EventSeverity,
            b"organisation" => Key::Organisation,
            b"endpoint" => Key::Endpoint,
            b"sim" => Key::Sim,
            b"iccid" => Key::Iccid,
            b"name" => Key::Name,
            _ => Key::Other,
        }
    }
}

/// An event's `id` ([`IdField`] has the rule). Taken as raw JSON text first, so that an invalid id can
/// be shown as it appeared (serde_json hands `18446744073709551616` to a visitor as the float
/// 18446744073709552000), then read from that text as a value. A raw value must be UTF-8 as a
/// whole, so an id with invalid UTF-8 even in a part that is not read (`{"a": "\xff"}`) makes the
/// record `malformed_value`; the scanner checks the same.
struct EventId<'a>(IdField<'a>);

impl<'de> Deserialize<'de> for EventId<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de serde_json::value::RawValue>::deserialize(d)?.get();
        // A value that cannot be decoded (`1E400`, a lone surrogate) fails the element, as it does in place.
        let read = serde_json::from_str::<IdValue>(raw).map_err(serde::de::Error::custom)?;
        Ok(EventId(match read {
            IdValue::Null => IdField::Missing,
            IdValue::Valid(id) => IdField::Valid(id),
            IdValue::Invalid => IdField::Invalid(raw),
        }))
    }
}

/// What the value of an `id` reads as, by the rules in [`super::fields`].
enum IdValue {
    Null,
    Valid(u64),
    Invalid,
}

impl<'de> Deserialize<'de> for IdValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = IdValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event id")
            }
            fn visit_u64<E>(self, v: u64) -> Result<IdValue, E> {
                Ok(id_from_u64(v).map_or(IdValue::Invalid, IdValue::Valid))
            }
            fn visit_i64<E>(self, v: i64) -> Result<IdValue, E> {
                Ok(id_from_i64(v).map_or(IdValue::Invalid, IdValue::Valid))
            }
            fn visit_f64<E>(self, v: f64) -> Result<IdValue, E> {
                Ok(id_from_f64(v).map_or(IdValue::Invalid, IdValue::Valid))
            }
            fn visit_str<E>(self, v: &str) -> Result<IdValue, E> {
                Ok(id_from_str(v).map_or(IdValue::Invalid, IdValue::Valid))
            }
            fn visit_bool<E>(self, _: bool) -> Result<IdValue, E> {
                Ok(IdValue::Invalid)
            }
            fn visit_unit<E>(self) -> Result<IdValue, E> {
                Ok(IdValue::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<IdValue, A::Error> {
                drain_seq(seq).map(|_| IdValue::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<IdValue, A::Error> {
                drain_map(map).map(|_| IdValue::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// An unsigned integer given as a number or a numeric string (the ids of sub-objects: organisation,
/// endpoint, event type); anything else reads as `None`.
struct AnyU64(Option<u64>);

impl<'de> Deserialize<'de> for AnyU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyU64;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an unsigned integer")
            }
            fn visit_u64<E>(self, v: u64) -> Result<AnyU64, E> {
                Ok(AnyU64(Some(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnyU64, E> {
                Ok(AnyU64(u64::try_from(v).ok()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AnyU64, E> {
                // 2^64 exactly: every whole float below it fits in a u64.
                let whole = v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v);
                Ok(AnyU64(whole.then_some(v as u64)))
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyU64, E> {
                Ok(AnyU64(v.trim().parse().ok()))
            }
            fn visit_bool<E>(self, _: bool) -> Result<AnyU64, E> {
                Ok(AnyU64(None))
            }
            fn visit_unit<E>(self) -> Result<AnyU64, E> {
                Ok(AnyU64(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyU64, A::Error> {
                drain_seq(seq).map(|_| AnyU64(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyU64, A::Error> {
                drain_map(map).map(|_| AnyU64(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A flag given as `true`/`false`, `1`/`0` or a string of those; anything else is `false`.
struct AnyBool(bool);

impl<'de> Deserialize<'de> for AnyBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyBool;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E>(self, v: bool) -> Result<AnyBool, E> {
                Ok(AnyBool(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AnyBool, E> {
                Ok(AnyBool(v != 0))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AnyBool, E> {
                Ok(AnyBool(v != 0))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AnyBool, E> {
                Ok(AnyBool(v != 0.0))
            }
            fn visit_str<E>(self, v: &str) -> Result<AnyBool, E> {
                Ok(AnyBool(matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes")))
            }
            fn visit_unit<E>(self) -> Result<AnyBool, E> {
                Ok(AnyBool(false))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<AnyBool, A::Error> {
                drain_seq(seq).map(|_| AnyBool(false))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<AnyBool, A::Error> {
                drain_map(map).map(|_| AnyBool(false))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string, borrowed from the body when it has no escapes; numbers become text, other values `None`.
struct AnyStr<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for AnyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|_| AnyStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                drain_map(map).map(|_| AnyStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// The `{id, description}` / `{id, name}` sub-objects: `event_type`, `event_source`, `organisation`, ...
struct RefValue<'a> {
    id: Option<u64>,
    name: Option<Cow<'a, str>>,
}

/// A sub-object read for its id, and for its name only when `NAMED` (the organisation): names that
/// are not used are skipped unparsed, which is most of a page's strings.
struct Ref<'a, const NAMED: bool>(Option<RefValue<'a>>);

impl<'de, const NAMED: bool> Deserialize<'de> for Ref<'de, NAMED> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<const NAMED: bool>;
        impl<'de, const NAMED: bool> Visitor<'de> for V<NAMED> {
            type Value = Ref<'de, NAMED>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with an id")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut value = RefValue { id: None, name: None };
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        Key::Id => value.id = map.next_value::<AnyU64>()?.0,
                        Key::Name | Key::Description if !NAMED => {
                            map.next_value::<IgnoredAny>()?;
                        }
                        // `name` (organisation, some event_source payloads) wins over `description`.
                        Key::Name => value.name = map.next_value::<AnyStr<'de>>()?.0.or(value.name),
                        Key::Description => {
                            let d = map.next_value::<AnyStr<'de>>()?.0;
                            if value.name.is_none() {
                                value.name = d;
                            }
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Ref(Some(value)))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Ref(None))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                // A bare id instead of an object still identifies the thing.
                Ok(Ref(Some(RefValue { id: Some(v), name: None })))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Ref(Some(RefValue { id: u64::try_from(v).ok(), name: None })))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Ref(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Ref(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Ref(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|_| Ref(None))
            }
        }
        d.deserialize_any(V::<NAMED>)
    }
}

/// The `sim` sub-object read for its `iccid` (see [`parse_iccid`]); anything that is not an object
/// reads as none.
struct SimRef(Option<u64>);

impl<'de> Deserialize<'de> for SimRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SimRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object with an iccid")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut iccid = None;
                while let Some(key) = map.next_key::<Key>()? {
                    match key {
                        // Skipped as an ignored value is, then looked at: a value that is no ICCID costs
                        // the event nothing.
                        Key::Iccid => iccid = parse_iccid(map.next_value::<&serde_json::value::RawValue>()?.get()),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(SimRef(iccid))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(SimRef(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                drain_seq(seq).map(|_| SimRef(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reports a decode failure without echoing the body (it may be huge, or not ours to log).
pub fn describe_decode_error(err: &serde_json::Error) -> String {
    format!("{} at line {} column {}", classify(err), err.line(), err.column())
}

fn classify(err: &serde_json::Error) -> &'static str {
    match err.classify() {
        serde_json::error::Category::Io => "I/O error",
        serde_json::error::Category::Syntax => "malformed JSON",
        serde_json::error::Category::Data => "unexpected JSON shape",
        serde_json::error::Category::Eof => "truncated JSON",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
