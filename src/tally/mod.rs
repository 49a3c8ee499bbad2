//! The count-once core every event passes through, polled or pushed: dedup memory, cursor, checkpoints.
//!
//! One [`Tally`] is shared (as [`SharedTally`]) by the poller and the Data Streamer receiver, so an
//! event that arrives both ways is counted once. It owns the ingest policy: [`SharedTally::ingest`]
//! locks, counts a batch, unlocks, and saves and publishes it when the rules below say so, so a source
//! only decodes, calls it, and maps the result. The rules:
//! - **save before acknowledging**: with a state file, a push is saved before it is answered 2xx;
//! - **publish at most every N**: new counts reach scrapes within [`TallySettings::publish_every`]
//!   (with a state file, within [`TallySettings::save_every`] during a long poll);
//! - **scrapes never see what a restart takes back**: [`checkpoint`] saves the progress (with a
//!   state file) before it publishes the counts;
//! - **nothing slow under the count lock**: a checkpoint copies what it saves and encodes what it
//!   publishes under the lock, then serialises, writes and fsyncs outside it. Checkpoints wanted while
//!   one is written wait for the next, which covers them all (group commit: 64 pushers with a state
//!   file share saves instead of queueing one save each behind the lock).
//!
//! # Layout
//! Each part imports only those above it here; this file only re-exports them (a part naming
//! `super::Item` would import this module, which imports it back):
//! - `batch`: the settings, [`Origin`], [`BatchCounts`], [`FirstSeen`], [`Ingested`];
//! - `report`: the one summary log line about what batches skipped;
//! - `count`: [`Tally`], the plain state machine (no lock, no files): dedup, cursor, counting;
//! - `checkpoint`: what a checkpoint copies, how it is written (group commit), resuming from it;
//! - `handle`: [`SharedTally`], the lock and the one-call [`SharedTally::ingest`].

mod batch;
mod checkpoint;
mod count;
mod handle;
mod report;

pub use batch::{BatchCounts, FirstSeen, Ingested, Origin, TallySettings, PUSH_REACH_WITH_POLLING};
pub use count::Tally;
pub use handle::{checkpoint, checkpoint_blocking, lock, use_state, NotSaved, SharedTally};

#[cfg(test)]
mod tests;
