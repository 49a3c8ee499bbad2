//! One page of the event list, decoded and counted (off the async workers): what the planner learns
//! from it.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};

use super::plan::PageSeen;
use crate::emnify::{decode_event_list, DecodeError};
use crate::metrics::EventMetrics;
use crate::tally::{BatchCounts, NotSaved, Origin, SharedTally};

type IdSet = HashSet<u64, foldhash::fast::RandomState>;

/// Records seen in one poll's walk: to tell what a page adds to it, and a page served again.
#[derive(Default)]
pub(super) struct WalkSeen {
    ids: IdSet,
    unreadable: IdSet,
    last_fingerprint: Option<u64>,
}

/// What became of a page.
pub(super) enum Page {
    Counted(PageSeen, BatchCounts),
    /// Not counted: it has an event of this type, which has no name yet.
    UnknownEventType(u32),
}

/// Decodes one page and counts what is new on it; the tally checkpoints here when one is due, right
/// after counting, so a page's counts are saved and published without waiting for the next fetch.
pub(super) fn decode_and_count(
    body: &[u8],
    tally: &SharedTally,
    origin: Origin,
    walk: &mut WalkSeen,
    stop_on_unknown_type: Option<&EventMetrics>,
) -> Result<Page, DecodeError> {
    let events = decode_event_list(body)?;
    if let Some(names) = stop_on_unknown_type {
        let types = events.iter().filter_map(|e| e.as_ref().ok()).map(|e| e.event_type_id);
        if let Some(id) = names.first_unknown_event_type(types) {
            return Ok(Page::UnknownEventType(id));
        }
    }
    let mut fingerprint = foldhash::quality::FixedState::with_seed(0x656d_6e69_6679).build_hasher();
    let (mut first_id, mut last_id, mut new_in_walk) = (None, None, 0u64);
    for decoded in &events {
        match decoded {
            Ok(event) => {
                first_id = first_id.or(Some(event.id));
                last_id = Some(event.id);
                new_in_walk += u64::from(walk.ids.insert(event.id));
                fingerprint.write_u64(event.id);
            }
            Err(bad) => {
                // Records that are not objects cannot be told apart: never "new", so never taken for
                // records a count is waiting for.
                if bad.fingerprint != 0 {
                    new_in_walk += u64::from(walk.unreadable.insert(bad.fingerprint));
                }
                fingerprint.write_u64(bad.fingerprint);
            }
        }
    }
    fingerprint.write_usize(events.len());
    fingerprint.write_usize(body.len());
    let fingerprint = fingerprint.finish();
    let repeated = walk.last_fingerprint.replace(fingerprint) == Some(fingerprint);
    let len = u32::try_from(events.len()).unwrap_or(u32::MAX);
    // A save that fails here is retried by the poll's closing checkpoint.
    let (counts, first_seen) = tally.ingest_noting(events, origin).unwrap_or_else(NotSaved::into_inner);
    let seen = PageSeen {
        len,
        new_in_walk,
        new_to_polling: first_seen.new_to_polling(),
        descending: match (first_id, last_id) {
            (Some(first), Some(last)) if first != last => Some(first > last),
            _ => None,
        },
        repeated,
    };
    Ok(Page::Counted(seen, counts))
}
