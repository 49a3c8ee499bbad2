//! The handle sources share the tally through: one call locks, counts, unlocks and checkpoints.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::batch::{BatchCounts, FirstSeen, Ingested, Origin};
use super::checkpoint::Saver;
use super::count::Tally;
use crate::emnify::DecodedEvent;
use crate::state::{StateError, StateStore};

/// The tally as the poller and the receiver share it: one count lock, one checkpoint writer. Cloning
/// it shares the same tally.
#[derive(Clone)]
pub struct SharedTally(Arc<Shared>);

struct Shared {
    tally: Mutex<Tally>,
    /// Writes checkpoints, one at a time, outside the count lock (so it is not behind it either).
    saver: Saver,
}

/// A batch that was counted (its ids are remembered) but whose save failed, so it must not be
/// acknowledged: the sender sends it again, and nothing of it is counted twice. Only a push with a
/// state file can end so; it holds what the ingest would have returned.
#[derive(Debug)]
pub struct NotSaved<T = BatchCounts>(pub T);

impl<T> NotSaved<T> {
    /// What was counted, though not saved.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Display for NotSaved<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the batch was counted, but the state could not be saved")
    }
}

impl<T: fmt::Debug> std::error::Error for NotSaved<T> {}

impl Tally {
    /// The handle to share this tally by.
    pub fn shared(self) -> SharedTally {
        SharedTally(Arc::new(Shared { tally: Mutex::new(self), saver: Saver::default() }))
    }
}

impl SharedTally {
    /// Counts a batch: locks, counts what is new, unlocks, then runs the checkpoint the batch asks for
    /// (the rules in the module docs). Blocking (with a state file a checkpoint writes and fsyncs): call
    /// it off the async workers. Fails only for a push with a state file whose save failed; a poll's
    /// failed save is logged by the checkpoint, and the poll's closing checkpoint tries again.
    pub fn ingest(&self, events: Vec<DecodedEvent<'_>>, origin: Origin) -> Result<BatchCounts, NotSaved> {
        let ingested = self.lock().ingest(events, origin, Instant::now());
        if self.settle(ingested) {
            Ok(ingested.counts)
        } else {
            Err(NotSaved(ingested.counts))
        }
    }

    /// [`SharedTally::ingest`], also returning the records received for the first time (the poller
    /// tells from them whether a page brought anything new).
    pub fn ingest_noting(
        &self,
        events: Vec<DecodedEvent<'_>>,
        origin: Origin,
    ) -> Result<(BatchCounts, FirstSeen), NotSaved<(BatchCounts, FirstSeen)>> {
        let mut first_seen = FirstSeen::default();
        let ingested = self.lock().ingest_noting(events, origin, Some(&mut first_seen), Instant::now());
        if self.settle(ingested) {
            Ok((ingested.counts, first_seen))
        } else {
            Err(NotSaved((ingested.counts, first_seen)))
        }
    }

    /// [`SharedTally::ingest`] for a push arriving now (emnify's time as this tally knows it, read under
    /// the count lock). `counted` runs under the count lock right after counting, before the checkpoint:
    /// what it records (the receiver's own metrics) is published with the push's counts, never apart.
    pub fn ingest_push(
        &self,
        events: Vec<DecodedEvent<'_>>,
        counted: impl FnOnce(&BatchCounts),
    ) -> Result<BatchCounts, NotSaved> {
        let ingested = {
            let mut tally = self.lock();
            let arrival_millis = tally.emnify_now_millis();
            let ingested = tally.ingest(events, Origin::Push { arrival_millis }, Instant::now());
            counted(&ingested.counts);
            ingested
        };
        if self.settle(ingested) {
            Ok(ingested.counts)
        } else {
            Err(NotSaved(ingested.counts))
        }
    }

    /// Runs the checkpoint a counted batch asks for (without the count lock); returns whether the
    /// batch may be acknowledged.
    fn settle(&self, ingested: Ingested) -> bool {
        if !ingested.checkpoint_due {
            return true;
        }
        // A failed save during a poll is logged by the checkpoint; the poll's own checkpoint at its
        // end tries again.
        self.checkpoint() || !ingested.must_save
    }

    /// Locks the tally, for what [`SharedTally::ingest`] does not do (the poller's floor, cursor and
    /// windows; the receiver's upkeep). A panic elsewhere never makes the counts unreachable.
    pub fn lock(&self) -> MutexGuard<'_, Tally> {
        self.0.tally.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Saves the state (if there is a state file), then publishes the counts as saved: scrapes never see a
    /// value that a restart would take back. Returns false if the save failed. Blocking; takes the count
    /// lock only to copy what it saves, never while writing.
    ///
    /// Everything counted before the call is saved by the time it returns true: by this call's own save,
    /// or by one that began after it was made (so one save answers every push that waited for it).
    pub fn checkpoint(&self) -> bool {
        self.0.saver.checkpoint(|| self.lock().prepare_checkpoint(Instant::now()))
    }

    /// [`SharedTally::checkpoint`] on a blocking thread: with a state file that means writes and fsyncs,
    /// which must not stall the runtime's workers (scrapes and pushes are answered there). Returns false
    /// if the save failed.
    pub async fn checkpoint_blocking(&self) -> bool {
        let tally = self.clone();
        tokio::task::spawn_blocking(move || tally.checkpoint()).await.unwrap_or(false)
    }

    /// Publishes what no ingest checkpointed yet (refused pushes, the counts of the last push before a
    /// quiet spell, what the receiver's upkeep changed): a checkpoint, on a blocking thread, when something
    /// changed and the last one is at least [`TallySettings::publish_every`](super::TallySettings) old
    /// (with a state file [`TallySettings::save_every`](super::TallySettings): each of these is a save).
    pub async fn publish_pending(&self) {
        let due = {
            let tally = self.lock();
            let settings = tally.settings();
            let every = if tally.state.is_some() { settings.save_every } else { settings.publish_every };
            let hinted = tally.dirty_hint.load(Ordering::Relaxed);
            (tally.dirty || hinted) && tally.last_checkpoint.is_none_or(|at| at.elapsed() >= every)
        };
        if due {
            self.checkpoint_blocking().await;
        }
    }

    /// Saves progress to `store` at every checkpoint, after resuming from what it holds (if anything).
    /// Fails when the path cannot hold the state (a directory, another program's file, no directory).
    pub fn use_state(&self, store: StateStore) -> Result<(), StateError> {
        let resumed = self.lock().attach_state(store)?;
        if !resumed {
            // Saved at once, so a crash before the first poll still remembers when counting began. (Not
            // under the count lock: a checkpoint takes the writer's lock, then the count lock.)
            self.checkpoint();
        }
        Ok(())
    }
}

/// [`SharedTally::lock`]; for the poller and `tests/simulation` until they use the handle.
pub fn lock(tally: &SharedTally) -> MutexGuard<'_, Tally> {
    tally.lock()
}

/// [`SharedTally::checkpoint`]; for the poller and `tests/simulation` until they use the handle.
pub fn checkpoint(tally: &SharedTally) -> bool {
    tally.checkpoint()
}

/// [`SharedTally::use_state`]; for `tests/simulation` until it uses the handle.
pub fn use_state(tally: &SharedTally, store: StateStore) -> Result<(), StateError> {
    tally.use_state(store)
}

/// [`SharedTally::checkpoint_blocking`]; for the poller until it uses the handle.
pub async fn checkpoint_blocking(tally: &SharedTally) -> bool {
    tally.checkpoint_blocking().await
}

impl Ingested {
    /// Runs the checkpoint the batch asks for (blocking: call it off the async workers, without the
    /// count lock); returns whether the batch may be acknowledged. For the poller until it uses
    /// [`SharedTally::ingest_noting`], which does this itself.
    pub fn finish(self, tally: &SharedTally) -> bool {
        tally.settle(self)
    }
}
