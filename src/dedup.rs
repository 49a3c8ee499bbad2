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

/// Event ids are 64-bit numbers from emnify; foldhash hashes them several times faster than SipHash.
type IdMap = HashMap<u64, i64, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct RecentIds {
    ids: IdMap,
    horizon_millis: i64,
    max_ids: usize,
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
            set.ids.insert(id, time);
        }
        set
    }

    /// Every remembered `(id, time)`, for saving.
    pub fn entries(&self) -> Vec<(u64, i64)> {
        self.ids.iter().map(|(id, time)| (*id, *time)).collect()
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
        self.ids.contains_key(&id)
    }

    /// Remembers `id` with its event time; true if it was not known yet.
    pub fn insert(&mut self, id: u64, time_millis: i64) -> bool {
        // Compact in steps of a tenth so the cost is amortised over many inserts.
        if self.ids.len() >= self.max_ids + self.max_ids / 10 && !self.ids.contains_key(&id) {
            self.shrink_to(self.max_ids - self.max_ids / 10);
        }
        match self.ids.entry(id) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(time_millis);
                true
            }
        }
    }

    /// Forgets ids of events before `time_millis` and moves the horizon there.
    pub fn forget_before(&mut self, time_millis: i64) {
        if time_millis <= self.horizon_millis {
            return;
        }
        self.horizon_millis = time_millis;
        self.ids.retain(|_, t| *t >= time_millis);
    }

    /// Over the size limit: forget the oldest ids so that about `target` remain.
    fn shrink_to(&mut self, target: usize) {
        let excess = self.ids.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let mut times: Vec<i64> = self.ids.values().copied().collect();
        let (_, cut, _) = times.select_nth_unstable(excess);
        let cut = *cut;
        tracing::warn!(
            remembered = self.ids.len(),
            limit = self.max_ids,
            "dedup memory is full; forgetting the oldest event ids (raise --emnify.max-remembered-ids)"
        );
        // Everything strictly older than `cut` goes; the horizon moves past it.
        self.forget_before(cut);
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
