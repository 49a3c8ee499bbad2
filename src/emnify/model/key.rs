//! The keys of an event object that matter, read as bytes; the scanner matches the same ones.

use std::fmt;

use serde::de::{Deserializer, Visitor};
use serde::Deserialize;

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
