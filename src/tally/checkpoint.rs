//! Saving and publishing: what a checkpoint copies under the count lock, how it is written outside it
//! (one at a time, group commit), and resuming from what an earlier run saved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::count::{Tally, MAX_UNREADABLE};
use crate::dedup::RecentIds;
use crate::loglimit::{LineGate, MINUTE};
use crate::metrics::{Metrics, Publication};
use crate::state::{SavedState, StateError, StateStore};
use crate::timefmt::now_millis;

/// Writes checkpoints, one at a time; see [`checkpoint`](super::checkpoint).
#[derive(Default)]
pub(super) struct Saver {
    /// Checkpoints asked for so far.
    requested: AtomicU64,
    writer: Mutex<Writer>,
}

impl Saver {
    /// Runs one checkpoint: `prepare` copies what it saves under the count lock; the save and the
    /// publication follow outside it. Returns false if the save failed.
    ///
    /// Everything counted before the call is saved by the time it returns true: by this call's own save,
    /// or by one that began after it was made (so one save answers every push that waited for it).
    pub(super) fn checkpoint(&self, prepare: impl FnOnce() -> PreparedCheckpoint) -> bool {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        if writer.covered >= ticket {
            return true;
        }
        // Read before the snapshot is taken: every request counted here changed the tally before it asked,
        // so the snapshot holds its changes.
        let covers = self.requested.load(Ordering::SeqCst);
        let prepared = prepare();
        let saved = writer.save(&prepared);
        if saved {
            prepared.metrics.install_publication(prepared.publication);
            writer.covered = covers;
        }
        saved
    }
}

#[derive(Default)]
struct Writer {
    /// Requests up to this one are saved and published.
    covered: u64,
    /// Since when saves fail, if they do.
    failing_since: Option<Instant>,
    /// Failing saves logged at most once a minute.
    failure_logged: LineGate,
}

/// What one checkpoint saves and publishes, copied under the count lock.
pub(super) struct PreparedCheckpoint {
    save: Option<(StateStore, SavedState)>,
    publication: Publication,
    metrics: Arc<Metrics>,
}

impl Writer {
    /// Saves a prepared checkpoint (if there is a state file); returns false if that failed.
    fn save(&mut self, prepared: &PreparedCheckpoint) -> bool {
        let Some((store, snapshot)) = &prepared.save else { return true };
        let state = &prepared.metrics.state;
        match store.save(snapshot) {
            Ok(()) => {
                state.record_save_success(now_millis() as f64 / 1000.0);
                if let Some(since) = self.failing_since.take() {
                    tracing::info!(failed_for_s = since.elapsed().as_secs(), "saving the state works again");
                }
                true
            }
            Err(err) => {
                state.record_save_failure(&err.to_string());
                let since = *self.failing_since.get_or_insert_with(Instant::now);
                // Checkpoints come every second or faster: one line when it starts, then one a minute.
                if let Some(failed) = self.failure_logged.note(Instant::now(), MINUTE) {
                    tracing::error!(
                        error = %err,
                        failed_since_last_line = failed,
                        failing_for_s = since.elapsed().as_secs(),
                        "saving the state failed; published counts stay as of the last good save until a \
                         save works (nothing is lost: counting goes on in memory)"
                    );
                }
                false
            }
        }
    }
}

impl Tally {
    /// Resumes from what `store` holds (if anything) and saves to it from now on; true if it resumed.
    pub(super) fn attach_state(&mut self, store: StateStore) -> Result<bool, StateError> {
        let resumed = match store.load()? {
            crate::state::Loaded::Resume(saved) => {
                self.resume(*saved);
                true
            }
            // Counters restart from zero: that must show (metrics, landing page, alert), not only in the log.
            crate::state::Loaded::SetAside(aside) => {
                aside.record(&self.metrics.state);
                false
            }
            crate::state::Loaded::Nothing => false,
        };
        self.state = Some(store);
        self.metrics.use_state_file();
        Ok(resumed)
    }

    pub(super) fn resume(&mut self, saved: SavedState) {
        // No clock is read here (the host's can be wrong, emnify's is not known yet): a cursor older than
        // emnify's retention is noticed by the first poll, on emnify's clock.
        self.cursor = saved.cursor;
        // Polls forget ids only behind what they read completely: the saved horizon is that point.
        self.polled_until_millis = saved.cursor.map(|_| saved.horizon_millis);
        self.floor_millis = saved.floor_millis;
        self.floor_settled = saved.floor_settled;
        self.newest_polled_millis = saved.newest_polled_millis;
        self.seen = RecentIds::from_entries(saved.horizon_millis, self.settings.max_remembered_ids, &saved.ids);
        self.seen_unreadable = RecentIds::from_entries(saved.horizon_millis, MAX_UNREADABLE, &saved.unreadable);
        self.metrics.events.set_event_type_names(saved.event_types);
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
            floor_settled: self.floor_settled,
            newest_polled_millis: self.newest_polled_millis,
            horizon_millis: self.seen.horizon_millis(),
            ids: self.seen.entries(),
            unreadable: self.seen_unreadable.entries(),
            counters: self.metrics.counter_values(),
            event_types: self.metrics.events.event_type_names(),
            ..SavedState::new(api_url)
        }
    }

    /// Copies what a [`checkpoint`](super::checkpoint) saves and encodes what it then publishes.
    pub(super) fn prepare_checkpoint(&mut self, now: Instant) -> PreparedCheckpoint {
        self.last_checkpoint = Some(now);
        self.dirty = false;
        self.dirty_hint.store(false, Ordering::Relaxed);
        self.metrics.events.set_remembered_ids(self.seen.len());
        let save = self.state.as_ref().map(|store| (store.clone(), self.snapshot(&store.api_url)));
        PreparedCheckpoint { save, publication: self.metrics.prepare_publication(), metrics: self.metrics.clone() }
    }
}
