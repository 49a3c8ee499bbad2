//! The count-once core every event passes through, polled or pushed: dedup memory, cursor, checkpoints.
//!
//! One [`Tally`] is shared (as [`SharedTally`]) by the poller and the Data Streamer receiver, so an
//! event that arrives both ways is counted once. It also owns the progress a restart needs, and
//! its [`Tally::checkpoint`] saves that progress before publishing the counts to scrapes.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::config::RETENTION;
use crate::dedup::RecentIds;
use crate::emnify::DecodedEvent;
use crate::metrics::Metrics;
use crate::state::{SavedState, StateStore};
use crate::timefmt::now_millis;

/// Unreadable-record fingerprints remembered at most.
const MAX_UNREADABLE: usize = 10_000;

/// What counting one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub received: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub unreadable: u64,
    pub skipped: u64,
}

impl BatchCounts {
    pub fn add(&mut self, other: BatchCounts) {
        self.received += other.received;
        self.counted += other.counted;
        self.duplicates += other.duplicates;
        self.unreadable += other.unreadable;
        self.skipped += other.skipped;
    }
}

/// Where a batch came from; it decides how event times are treated.
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A page of the poll window ending at `until_millis`: events before the start of counting are
    /// history, and events older than the dedup memory are skipped rather than risk a double count.
    Poll { until_millis: i64 },
    /// A Data Streamer push: every new id counts; it is remembered at least as long as a poll window
    /// could return it, and at least `--emnify.overlap` after it arrived.
    Push,
}

pub struct Tally {
    metrics: Arc<Metrics>,
    /// Events before this (Unix ms) are history the user did not ask for.
    floor_millis: i64,
    /// End of the last successful poll window, Unix seconds.
    cursor: Option<i64>,
    seen: RecentIds,
    /// Fingerprints of unreadable records, so each is reported once.
    seen_unreadable: RecentIds,
    max_ids: usize,
    state: Option<StateStore>,
    last_checkpoint: Instant,
    /// Counted since the last checkpoint.
    dirty: bool,
}

/// The tally as the poller and the receiver share it.
pub type SharedTally = Arc<Mutex<Tally>>;

/// Checkpoints on a blocking thread: with a state file that means writes and fsyncs, which must not
/// stall the runtime's workers (scrapes and pushes are answered there). Returns false if the save failed.
pub async fn checkpoint_blocking(tally: &SharedTally) -> bool {
    let tally = tally.clone();
    tokio::task::spawn_blocking(move || lock(&tally).checkpoint()).await.unwrap_or(false)
}

/// Locks a shared tally; a panic elsewhere never makes the counts unreachable.
pub fn lock(tally: &SharedTally) -> MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Tally {
    /// Counts events from `start_millis - lookback_millis` on (whole seconds: some emnify
    /// timestamps carry no milliseconds).
    pub fn new(metrics: Arc<Metrics>, start_millis: i64, lookback_millis: i64, max_ids: usize) -> Self {
        let floor_millis = start_millis.saturating_sub(lookback_millis).div_euclid(1000) * 1000;
        Tally {
            metrics,
            floor_millis,
            cursor: None,
            seen: RecentIds::new(floor_millis, max_ids),
            seen_unreadable: RecentIds::new(floor_millis, MAX_UNREADABLE),
            max_ids,
            state: None,
            last_checkpoint: Instant::now(),
            dirty: false,
        }
    }

    pub fn shared(self) -> SharedTally {
        Arc::new(Mutex::new(self))
    }

    pub fn floor_millis(&self) -> i64 {
        self.floor_millis
    }

    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    pub fn set_cursor(&mut self, until: i64) {
        self.cursor = Some(until);
    }

    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Saves progress to `store` at every checkpoint, after resuming from what it holds (if anything).
    pub fn use_state(&mut self, store: StateStore) {
        let resumed = match store.load() {
            Some(saved) => {
                self.resume(saved);
                true
            }
            None => false,
        };
        self.state = Some(store);
        if !resumed {
            // Saved at once, so a crash before the first poll still remembers when counting began.
            self.checkpoint();
        }
    }

    fn resume(&mut self, saved: SavedState) {
        let oldest = now_millis() - i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX);
        if saved.cursor.is_some_and(|c| c * 1000 < oldest) {
            tracing::warn!("the saved cursor is older than emnify's 30-day retention; events in between are lost");
        }
        self.cursor = saved.cursor.map(|c| c.max(oldest / 1000));
        self.floor_millis = saved.floor_millis;
        self.seen = RecentIds::from_entries(saved.horizon_millis, self.max_ids, &saved.ids);
        self.seen_unreadable = RecentIds::from_entries(saved.horizon_millis, MAX_UNREADABLE, &saved.unreadable);
        let restored = self.metrics.restore_counters(&saved.counters);
        self.metrics.events.set_remembered_ids(self.seen.len());
        tracing::info!(
            cursor = saved.cursor,
            remembered_ids = self.seen.len(),
            counters = restored,
            saved_ms_ago = now_millis() - saved.saved_at_millis,
            "resumed from the state file"
        );
    }

    /// Everything [`StateStore`] saves.
    pub fn snapshot(&self, api_url: &str) -> SavedState {
        SavedState {
            cursor: self.cursor,
            floor_millis: self.floor_millis,
            horizon_millis: self.seen.horizon_millis(),
            ids: self.seen.entries(),
            unreadable: self.seen_unreadable.entries(),
            counters: self.metrics.counter_values(),
            ..SavedState::new(api_url)
        }
    }

    /// Saves the state (if there is a state file), then publishes the counts: scrapes never see a value
    /// that a restart would take back. Returns false if the save failed.
    pub fn checkpoint(&mut self) -> bool {
        self.last_checkpoint = Instant::now();
        self.dirty = false;
        self.metrics.events.set_remembered_ids(self.seen.len());
        if let Some(store) = &self.state {
            if let Err(err) = store.save(&self.snapshot(&store.api_url)) {
                tracing::error!(error = %err, "saving the state failed; counts stay unpublished until a save works");
                return false;
            }
        }
        self.metrics.publish();
        true
    }

    /// Time since the last checkpoint.
    pub fn since_checkpoint(&self) -> std::time::Duration {
        self.last_checkpoint.elapsed()
    }

    /// Asks for a checkpoint soon, e.g. after metrics outside the counts changed.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// Whether anything was counted since the last checkpoint.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    pub fn has_state_file(&self) -> bool {
        self.state.is_some()
    }

    /// Forgets what no later poll window or re-delivery can bring back.
    pub fn forget_before(&mut self, millis: i64) {
        self.seen.forget_before(millis);
        self.seen_unreadable.forget_before(millis);
    }

    /// Counts what is new in a batch.
    pub fn count(&mut self, events: Vec<DecodedEvent<'_>>, origin: Origin) -> BatchCounts {
        let mut counts = BatchCounts::default();
        let now = now_millis();
        self.dirty = true;
        let mut recorder = self.metrics.events.recorder();
        for decoded in events {
            counts.received += 1;
            let event = match decoded {
                Ok(e) => e,
                Err(bad) => {
                    let time = match origin {
                        Origin::Poll { until_millis } => until_millis,
                        Origin::Push => now,
                    };
                    // Non-objects leave no fingerprint; each of those is counted every time it is received.
                    if bad.fingerprint == 0 || self.seen_unreadable.insert(bad.fingerprint, time) {
                        counts.unreadable += 1;
                        self.metrics.events.record_unreadable(bad.reason);
                        tracing::warn!(id = bad.id, reason = bad.reason, "skipping an event that cannot be read");
                    }
                    continue;
                }
            };
            let time = match origin {
                Origin::Poll { until_millis } => {
                    let time = event.timestamp_millis.unwrap_or(until_millis);
                    if time < self.floor_millis {
                        counts.skipped += 1;
                        self.metrics.events.record_skipped("before_start");
                        continue;
                    }
                    if time < self.seen.horizon_millis() && !self.seen.contains(event.id) {
                        counts.skipped += 1;
                        self.metrics.events.record_skipped("beyond_dedup_horizon");
                        tracing::warn!(
                            id = event.id,
                            "skipping an event older than the dedup memory; it may have been counted"
                        );
                        continue;
                    }
                    time
                }
                Origin::Push => event.timestamp_millis.unwrap_or(now).max(now),
            };
            if self.seen.insert(event.id, time) {
                counts.counted += 1;
                recorder.record(&event);
            } else {
                counts.duplicates += 1;
                self.metrics.events.record_duplicate();
            }
        }
        counts
    }
}
