//! The serde decoder's entry points: an event list, one event object or either, each element read on
//! its own; and how a decode failure is described.

use serde::de::IgnoredAny;

use super::event::{EventList, Item, OneOrMany};
use crate::emnify::fields::{malformed_value, DecodedEvent};

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
