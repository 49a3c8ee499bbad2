//! The visitors for an event list and an event object: each element read as an event or as an
//! unreadable record in its place.

use std::fmt;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::key::Key;
use super::values::{drain_seq, AnyBool, AnyStr, EventId, Ref, RefValue, SimRef};
use crate::emnify::fields::{decoded_event, not_an_object, DecodedEvent, EventFields};
use crate::timefmt::parse_timestamp_millis;

pub(super) struct EventList<'a>(pub(super) Vec<DecodedEvent<'a>>);

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

pub(super) struct OneOrMany<'a>(pub(super) Vec<DecodedEvent<'a>>);

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
pub(super) struct Item<'a>(pub(super) DecodedEvent<'a>);

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
