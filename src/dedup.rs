//! The memory of recently counted event ids, bounded in time and in size.
//!
//! Poll windows overlap (late events, repeated pages), so the same event id
//! comes back; this set says whether it was counted already. Each id is kept
//! with its event time and forgotten once that time falls before every window
//! the poller can still ask for. The `horizon` is the time before which the set
//! no longer remembers everything: an event older than that cannot be told
//! apart from one already counted, so the poller skips it rather than risk
//! counting it twice.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// An event id stored as two halves: beside a 32-bit time, an entry then takes 12 bytes instead of 16
/// (1M ids: about 26 MiB instead of 34 MiB).
#[derive(Clone, Copy, PartialEq, Eq)]
struct IdKey([u32; 2]);

impl IdKey {
    fn new(id: u64) -> Self {
        IdKey([id as u32, (id >> 32) as u32])
    }

    fn id(self) -> u64 {
        u64::from(self.0[0]) | (u64::from(self.0[1]) << 32)
    }
}

impl Hash for IdKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.id());
    }
}

/// Event time in whole seconds since 1970 (clamped to what 32 bits hold); foldhash hashes ids several
/// times faster than SipHash.
type IdMap = HashMap<IdKey, u32, foldhash::fast::RandomState>;

fn to_secs(millis: i64) -> u32 {
    millis.div_euclid(1000).clamp(0, i64::from(u32::MAX)) as u32
}

#[derive(Debug)]
pub struct RecentIds {
    ids: IdMap,
    horizon_millis: i64,
    max_ids: usize,
}

impl std::fmt::Debug for IdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.id().fmt(f)
    }
}

impl RecentIds {
    /// An empty set that remembers everything from `horizon_millis` on, holding at most about `max_ids` ids.
    pub fn new(horizon_millis: i64, max_ids: usize) -> Self {
        RecentIds { ids: IdMap::default(), horizon_millis, max_ids: max_ids.max(1) }
    }

    /// A set restored from saved `(id, time)` entries.
    pub fn from_entries(horizon_millis: i64, max_ids: usize, entries: &[(u64, i64)]) -> Self {
        let mut set = RecentIds::new(horizon_millis, max_ids);
        set.ids.reserve(entries.len());
        for &(id, time) in entries {
            set.ids.insert(IdKey::new(id), to_secs(time));
        }
        set
    }

    /// Every remembered `(id, time)` (time in whole seconds, as milliseconds), for saving.
    pub fn entries(&self) -> Vec<(u64, i64)> {
        self.ids.iter().map(|(id, secs)| (id.id(), i64::from(*secs) * 1000)).collect()
    }

    /// Events older than this (Unix ms) may have been forgotten.
    pub fn horizon_millis(&self) -> i64 {
        self.horizon_millis
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn contains(&self, id: u64) -> bool {
        self.ids.contains_key(&IdKey::new(id))
    }

    /// Forgets `id`; true if it was remembered.
    pub fn remove(&mut self, id: u64) -> bool {
        self.ids.remove(&IdKey::new(id)).is_some()
    }

    /// Remembers `id` with its event time; true if it was not known yet.
    pub fn insert(&mut self, id: u64, time_millis: i64) -> bool {
        self.insert_raising(id, time_millis, false)
    }

    /// [`RecentIds::insert`], and an id known already is kept at least until `time_millis` from now on:
    /// a poll that reads an id again says which windows still reach it, whatever time it was kept with
    /// (a push on a clock that was wrong then).
    pub fn insert_or_keep(&mut self, id: u64, time_millis: i64) -> bool {
        self.insert_raising(id, time_millis, true)
    }

    fn insert_raising(&mut self, id: u64, time_millis: i64, raise: bool) -> bool {
        let key = IdKey::new(id);
        // Compact in steps of a tenth so the cost is amortised over many inserts.
        if self.ids.len() >= self.max_ids + self.max_ids / 10 && !self.ids.contains_key(&key) {
            self.shrink_to(self.max_ids - self.max_ids / 10);
        }
        match self.ids.entry(key) {
            std::collections::hash_map::Entry::Occupied(mut slot) => {
                if raise {
                    let secs = slot.get_mut();
                    *secs = (*secs).max(to_secs(time_millis));
                }
                false
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(to_secs(time_millis));
                true
            }
        }
    }

    /// Forgets ids of events before `time_millis` and moves the horizon there. Times are kept in whole
    /// seconds, so ids from the second that contains `time_millis` stay (remembering more is safe).
    pub fn forget_before(&mut self, time_millis: i64) {
        if time_millis <= self.horizon_millis {
            return;
        }
        self.horizon_millis = time_millis;
        let cut = time_millis.div_euclid(1000);
        self.ids.retain(|_, secs| i64::from(*secs) >= cut);
    }

    /// Over the size limit: forget the oldest ids so that at most about `target` remain.
    fn shrink_to(&mut self, target: usize) {
        let excess = self.ids.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut times: Vec<u32> = self.ids.values().copied().collect();
        let (_, cut, _) = times.select_nth_unstable(excess);
        let cut = *cut;
        tracing::warn!(
            remembered = self.ids.len(),
            limit = self.max_ids,
            "dedup memory is full; forgetting the oldest event ids (raise --emnify.max-remembered-ids)"
        );
        // Everything older than second `cut` goes, and of second `cut` only as many ids as the target
        // needs (many ids can share one second: a push batch, events without a time). The horizon
        // moves past that second, since it is no longer complete.
        let older = times.iter().filter(|&&t| t < cut).count();
        let mut from_cut = excess.saturating_sub(older);
        self.horizon_millis = self.horizon_millis.max((i64::from(cut) + 1) * 1000);
        self.ids.retain(|_, secs| match (*secs).cmp(&cut) {
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if from_cut > 0 => {
                from_cut -= 1;
                false
            }
            _ => true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_is_new_once() {
        let mut set = RecentIds::new(0, 100);
        assert!(set.insert(7, 1_000));
        assert!(!set.insert(7, 2_000));
        assert!(set.insert(8, 1_000));
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn forgetting_moves_the_horizon_and_keeps_newer_ids() {
        let mut set = RecentIds::new(0, 100);
        set.insert(1, 1_000);
        set.insert(2, 5_000);
        set.forget_before(3_000);
        assert_eq!(set.horizon_millis(), 3_000);
        assert!(!set.contains(1));
        assert!(set.contains(2));
        set.forget_before(1_000);
        assert_eq!(set.horizon_millis(), 3_000, "the horizon never moves back");
    }

    #[test]
    fn size_stays_bounded_when_every_id_has_the_same_time() {
        let mut set = RecentIds::new(0, 1_000);
        for id in 0..10_000u64 {
            set.insert(id, 5_000);
        }
        assert!((900..=1_100).contains(&set.len()), "bounded, and only the excess forgotten: {}", set.len());
        assert_eq!(set.horizon_millis(), 6_000);
        assert!(set.contains(9_999), "the newest id is remembered");
    }

    #[test]
    fn entries_round_trip_in_whole_seconds() {
        let mut set = RecentIds::new(0, 100);
        set.insert(u64::MAX, 1_700_000_000_999);
        set.insert(3, -5);
        let restored = RecentIds::from_entries(0, 100, &set.entries());
        assert!(restored.contains(u64::MAX) && restored.contains(3));
        let mut entries = restored.entries();
        entries.sort();
        assert_eq!(entries, vec![(3, 0), (u64::MAX, 1_700_000_000_000)]);
    }

    #[test]
    fn size_stays_bounded() {
        let mut set = RecentIds::new(0, 1_000);
        for id in 0..100_000u64 {
            set.insert(id, id as i64);
        }
        assert!(set.len() <= 1_100, "{}", set.len());
        assert!(set.horizon_millis() > 0);
        assert!(set.contains(99_999));
    }
}
