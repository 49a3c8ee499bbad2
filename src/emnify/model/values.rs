//! The lenient visitors for one field's value: the id (kept as its text when invalid), numbers,
//! flags and strings in any JSON form, and the `{id, name}` and `sim` sub-objects.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::key::Key;
use crate::emnify::fields::{id_from_f64, id_from_i64, id_from_str, id_from_u64, parse_iccid, IdField};

pub(super) fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// An event's `id` ([`IdField`] has the rule). Taken as raw JSON text first, so that an invalid id can
/// be shown as it appeared (serde_json hands `18446744073709551616` to a visitor as the float
/// 18446744073709552000), then read from that text as a value. A raw value must be UTF-8 as a
/// whole, so an id with invalid UTF-8 even in a part that is not read (`{"a": "\xff"}`) makes the
/// record `malformed_value`; the scanner checks the same.
pub(super) struct EventId<'a>(pub(super) IdField<'a>);

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

/// What the value of an `id` reads as, by the rules in [`crate::emnify::fields`].
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
pub(super) struct AnyBool(pub(super) bool);

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
pub(super) struct AnyStr<'a>(pub(super) Option<Cow<'a, str>>);

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
pub(super) struct RefValue<'a> {
    pub(super) id: Option<u64>,
    pub(super) name: Option<Cow<'a, str>>,
}

/// A sub-object read for its id, and for its name only when `NAMED` (the organisation): names that
/// are not used are skipped unparsed, which is most of a page's strings.
pub(super) struct Ref<'a, const NAMED: bool>(pub(super) Option<RefValue<'a>>);

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
pub(super) struct SimRef(pub(super) Option<u64>);

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
