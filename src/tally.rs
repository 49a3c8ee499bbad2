//! The count-once core every event passes through, polled or pushed: dedup memory, cursor, checkpoints.
//!
//! One [`Tally`] is shared (as [`SharedTally`]) by the poller and the Data Streamer receiver, so an
//! event that arrives both ways is counted once. It owns the ingest policy: [`Tally::ingest`] counts
//! a batch and decides when it is saved and published, so a source only decodes, calls it, and maps
//! the result. The rules:
//! - **save before acknowledging**: with a state file, a push is saved before it is answered 2xx;
//! - **publish at most every N**: new counts reach scrapes within [`TallySettings::publish_every`]
//!   (with a state file, within [`TallySettings::save_every`] during a long poll);
//! - **scrapes never see what a restart takes back**: [`checkpoint`] saves the progress (with a
//!   state file) before it publishes the counts;
//! - **nothing slow under the count lock**: a checkpoint copies what it saves and encodes what it
//!   publishes under the lock, then serialises, writes and fsyncs outside it. Checkpoints wanted while
//!   one is written wait for the next, which covers them all (group commit: 64 pushers with a state
//!   file share saves instead of queueing one save each behind the lock).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::dedup::RecentIds;
use crate::emnify::{DecodedEvent, EmnifyClock, RETENTION};
use crate::metrics::{Metrics, Publication};
use crate::state::{SavedState, StateError, StateStore};
use crate::timefmt::{duration_millis, now_millis};

/// How often a save that keeps failing is logged again.
const SAVE_FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// Unreadable-record fingerprints remembered at most.
const MAX_UNREADABLE: usize = 10_000;

/// How events are counted, whichever way they arrive.
#[derive(Debug, Clone)]
pub struct TallySettings {
    /// History to count at start-up; zero means only events from now on.
    pub lookback: Duration,
    /// Upper bound of the dedup memory.
    pub max_remembered_ids: usize,
    /// Longest new counts wait unpublished when nothing needs saving.
    pub publish_every: Duration,
    /// With a state file: longest new counts wait unsaved (so unpublished) during a long poll.
    pub save_every: Duration,
    /// Without a poller (push only): how long a pushed id is remembered; no poll window forgets it.
    pub remember_pushed: Duration,
    /// Without a poller (push only): `emnify_up` turns 0 when no push was accepted for this long.
    pub push_stale_after: Duration,
}

impl Default for TallySettings {
    fn default() -> Self {
        TallySettings {
            lookback: Duration::ZERO,
            max_remembered_ids: 1_000_000,
            publish_every: Duration::from_millis(100),
            save_every: Duration::from_secs(1),
            remember_pushed: Duration::from_secs(3600),
            push_stale_after: Duration::from_secs(3600),
        }
    }
}

/// What [`Tally::ingest`] did with a batch, and what the caller must do next (after letting go of
/// the count lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub counts: BatchCounts,
    /// True when the batch must be saved before it is acknowledged (a push, with a state file): if
    /// [`checkpoint`] then fails, the sender must not be told it arrived. It sends again, and the ids
    /// counted now are remembered, so nothing is counted twice.
    pub must_save: bool,
    /// True when a [`checkpoint`] is due now (always when `must_save`).
    pub checkpoint_due: bool,
}

impl Ingested {
    /// Runs the checkpoint the batch asks for (blocking: call it off the async workers, without the
    /// count lock); returns whether the batch may be acknowledged.
    pub fn finish(self, tally: &SharedTally) -> bool {
        if !self.checkpoint_due {
            return true;
        }
        // A failed save during a poll is logged by the checkpoint; the poll's own checkpoint at its
        // end tries again.
        checkpoint(tally) || !self.must_save
    }
}

/// What counting one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub received: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub unreadable: u64,
    pub skipped: u64,
    /// Records never received before: counted events and unreadable records seen for the first time
    /// (records that leave no fingerprint are not among them: they cannot be told apart).
    pub first_seen: u64,
}

impl BatchCounts {
    pub fn add(&mut self, other: BatchCounts) {
        self.received += other.received;
        self.counted += other.counted;
        self.duplicates += other.duplicates;
        self.unreadable += other.unreadable;
        self.skipped += other.skipped;
        self.first_seen += other.first_seen;
    }
}

/// Records a batch held that were received for the first time: event ids, and fingerprints of
/// unreadable records (see [`Tally::ingest_noting`]).
#[derive(Debug, Default)]
pub struct FirstSeen {
    pub ids: Vec<u64>,
    pub unreadable: Vec<u64>,
}

/// Where a batch came from; it decides how event times are treated.
///
/// An event's time decides how long its id is remembered and moves
/// `emnify_last_event_timestamp_seconds`; it is never the payload's timestamp alone, which can be
/// absent, garbled or absurd (1970, 2099).
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A page of the poll window `[from_millis, until_millis]` (emnify's clock). emnify put the event
    /// in that window by its own notion of time, so its time is the payload's when that lies in the
    /// window, else the window's end (the latest it can be).
    Poll { from_millis: i64, until_millis: i64 },
    /// A Data Streamer push arriving at `arrival_millis` (emnify's clock where known, else the host's):
    /// every new id counts. Its id is remembered from its payload time clamped to at least its arrival
    /// and at most [`TallySettings::remember_pushed`] after it; its time is at most its arrival.
    Push { arrival_millis: i64 },
}

pub struct Tally {
    metrics: Arc<Metrics>,
    settings: TallySettings,
    /// Events before this (Unix ms, emnify's clock) are history the user did not ask for; fixed by
    /// the first poll ([`Tally::floor_from`]) or restored from the state file.
    floor_millis: Option<i64>,
    /// End of the last successful poll window, Unix seconds.
    cursor: Option<i64>,
    /// Events stamped before this (Unix ms, emnify's clock) were read completely by polls that no later
    /// window reaches back to: a push of one not remembered was polled and forgotten, or reached emnify
    /// later than the overlap (never polled). It is not counted: never twice is the promise.
    polled_until_millis: Option<i64>,
    seen: RecentIds,
    /// Fingerprints of unreadable records, so each is reported once.
    seen_unreadable: RecentIds,
    /// Ids of events skipped, so a re-read of a skipped event is not counted as another skip.
    seen_skipped: RecentIds,
    state: Option<StateStore>,
    /// emnify's clock, shared with the client that reads it (none in push-only mode).
    clock: Option<Arc<EmnifyClock>>,
    /// When the last push was counted (or the tally was made, before any).
    last_push: Instant,
    /// Writes checkpoints, one at a time, outside the count lock.
    saver: Arc<Saver>,
    /// Skipped records not yet logged (see `BatchReport`).
    log_limit: LogLimit,
    last_checkpoint: Instant,
    /// Counted since the last checkpoint.
    dirty: bool,
    /// Set without the lock by those whose metrics changed outside the counts (refused pushes): a
    /// checkpoint is due, but taking the count lock on an async worker for it is not.
    dirty_hint: Arc<AtomicBool>,
}

/// The tally as the poller and the receiver share it.
pub type SharedTally = Arc<Mutex<Tally>>;

/// [`checkpoint`] on a blocking thread: with a state file that means writes and fsyncs, which must not
/// stall the runtime's workers (scrapes and pushes are answered there). Returns false if the save failed.
pub async fn checkpoint_blocking(tally: &SharedTally) -> bool {
    let tally = tally.clone();
    tokio::task::spawn_blocking(move || checkpoint(&tally)).await.unwrap_or(false)
}

/// Saves the state (if there is a state file), then publishes the counts as saved: scrapes never see a
/// value that a restart would take back. Returns false if the save failed. Blocking; takes the count
/// lock only to copy what it saves, never while writing.
///
/// Everything counted before the call is saved by the time it returns true: by this call's own save,
/// or by one that began after it was made (so one save answers every push that waited for it).
pub fn checkpoint(tally: &SharedTally) -> bool {
    let saver = lock(tally).saver.clone();
    let ticket = saver.requested.fetch_add(1, Ordering::SeqCst) + 1;
    let mut writer = saver.writer.lock().unwrap_or_else(PoisonError::into_inner);
    if writer.covered >= ticket {
        return true;
    }
    // Read before the snapshot is taken: every request counted here changed the tally before it asked,
    // so the snapshot holds its changes.
    let covers = saver.requested.load(Ordering::SeqCst);
    let prepared = lock(tally).prepare_checkpoint();
    let saved = writer.save(&prepared);
    if saved {
        prepared.metrics.install_publication(prepared.publication);
        writer.covered = covers;
    }
    saved
}

/// Saves progress to `store` at every checkpoint, after resuming from what it holds (if anything).
/// Fails when the path cannot hold the state (a directory, another program's file, no directory).
pub fn use_state(tally: &SharedTally, store: StateStore) -> Result<(), StateError> {
    let resumed = lock(tally).attach_state(store)?;
    if !resumed {
        // Saved at once, so a crash before the first poll still remembers when counting began. (Not
        // under the count lock: a checkpoint takes the writer's lock, then the count lock.)
        checkpoint(tally);
    }
    Ok(())
}

/// Writes checkpoints, one at a time; see [`checkpoint`].
#[derive(Default)]
struct Saver {
    /// Checkpoints asked for so far.
    requested: AtomicU64,
    writer: Mutex<Writer>,
}

#[derive(Default)]
struct Writer {
    /// Requests up to this one are saved and published.
    covered: u64,
    /// Since when saves fail, if they do.
    failing_since: Option<Instant>,
    /// When a failing save was last logged.
    failure_logged: Option<Instant>,
}

/// What one checkpoint saves and publishes, copied under the count lock.
struct PreparedCheckpoint {
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
                if self.failure_logged.is_none_or(|at| at.elapsed() >= SAVE_FAILURE_LOG_EVERY) {
                    self.failure_logged = Some(Instant::now());
                    tracing::error!(
                        error = %err,
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

/// Locks a shared tally; a panic elsewhere never makes the counts unreachable.
pub fn lock(tally: &SharedTally) -> MutexGuard<'_, Tally> {
    tally.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Publishes what no [`Tally::ingest`] checkpointed yet (refused pushes, counts of the last push
/// before a quiet spell), every [`TallySettings::publish_every`]. In push-only mode (`push_only`: no
/// poller to do it) it also forgets pushed ids older than [`TallySettings::remember_pushed`], so the
/// dedup memory stays bounded, and keeps `emnify_up` at 1 only while pushes arrive (within
/// [`TallySettings::push_stale_after`] of the last one).
pub async fn maintain(tally: SharedTally, push_only: bool, shutdown: CancellationToken) {
    let (period, remember, stale_after, has_state) = {
        let tally = lock(&tally);
        let settings = &tally.settings;
        let remember = duration_millis(settings.remember_pushed);
        (settings.publish_every, remember, settings.push_stale_after, tally.state.is_some())
    };
    let mut up = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(period) => {}
            () = shutdown.cancelled() => return,
        }
        let dirty = {
            let mut tally = lock(&tally);
            if push_only {
                let (now, before) = (tally.emnify_now_millis(), tally.remembered());
                tally.forget_before(now.saturating_sub(remember));
                // `emnify_dedup_remembered_ids` is published at checkpoints: one is due when it changed.
                tally.dirty |= tally.remembered() != before;
                let fresh = tally.last_push.elapsed() < stale_after;
                if up != Some(fresh) {
                    if up.is_some() {
                        match fresh {
                            true => tracing::info!("pushes arrive again; emnify_up is 1"),
                            false => tracing::warn!(
                                stale_after = %humantime::format_duration(stale_after),
                                "no push accepted for --webhook.stale-after; emnify_up is 0 (is the data stream \
                                 running, and pointed here?)"
                            ),
                        }
                    }
                    up = Some(fresh);
                    tally.metrics.polling.set_up(fresh);
                    tally.dirty = true;
                }
            }
            // With a state file each of these checkpoints is a save: at most one per `save_every`.
            let every = if has_state { tally.settings.save_every } else { period };
            let hinted = tally.dirty_hint.load(Ordering::Relaxed);
            (tally.dirty || hinted) && tally.last_checkpoint.elapsed() >= every
        };
        if dirty {
            checkpoint_blocking(&tally).await;
        }
    }
}

impl Tally {
    /// A tally with nothing counted; the start of counting is fixed by the first poll.
    pub fn new(metrics: Arc<Metrics>, settings: TallySettings) -> Self {
        Tally {
            metrics,
            floor_millis: None,
            cursor: None,
            polled_until_millis: None,
            seen: RecentIds::new(i64::MIN, settings.max_remembered_ids),
            seen_unreadable: RecentIds::new(i64::MIN, MAX_UNREADABLE),
            seen_skipped: RecentIds::new(i64::MIN, MAX_UNREADABLE),
            settings,
            state: None,
            clock: None,
            last_push: Instant::now(),
            saver: Arc::default(),
            log_limit: LogLimit::default(),
            last_checkpoint: Instant::now(),
            dirty: false,
            dirty_hint: Arc::default(),
        }
    }

    pub fn shared(self) -> SharedTally {
        Arc::new(Mutex::new(self))
    }

    /// The start of counting (Unix ms): fixed now, at `emnify_now_millis - lookback`, unless a first
    /// poll or the state file fixed it before. Whole seconds: some emnify timestamps carry no milliseconds.
    pub fn floor_from(&mut self, emnify_now_millis: i64) -> i64 {
        if let Some(floor) = self.floor_millis {
            return floor;
        }
        let floor = emnify_now_millis.saturating_sub(duration_millis(self.settings.lookback)).div_euclid(1000) * 1000;
        self.floor_millis = Some(floor);
        self.forget_before(floor);
        floor
    }

    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// A poll window was read whole up to `until` (Unix seconds): the cursor moves there, and ids of
    /// events before `keep_from_millis`, which no later window reaches, are forgotten. The caller
    /// ends the poll with a checkpoint.
    pub fn window_done(&mut self, until: i64, keep_from_millis: i64) {
        self.cursor = Some(until);
        self.polled_until_millis = self.polled_until_millis.max(Some(keep_from_millis));
        self.forget_before(keep_from_millis);
    }

    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    /// Resumes from what `store` holds (if anything) and saves to it from now on; true if it resumed.
    fn attach_state(&mut self, store: StateStore) -> Result<bool, StateError> {
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

    fn resume(&mut self, saved: SavedState) {
        let oldest = now_millis() - duration_millis(RETENTION);
        if saved.cursor.is_some_and(|c| c * 1000 < oldest) {
            tracing::warn!("the saved cursor is older than emnify's 30-day retention; events in between are lost");
        }
        self.cursor = saved.cursor.map(|c| c.max(oldest / 1000));
        // Polls forget ids only behind what they read completely: the saved horizon is that point.
        self.polled_until_millis = saved.cursor.map(|_| saved.horizon_millis);
        self.floor_millis = saved.floor_millis;
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
            horizon_millis: self.seen.horizon_millis(),
            ids: self.seen.entries(),
            unreadable: self.seen_unreadable.entries(),
            counters: self.metrics.counter_values(),
            event_types: self.metrics.events.event_type_names(),
            ..SavedState::new(api_url)
        }
    }

    /// Copies what a [`checkpoint`] saves and encodes what it then publishes.
    fn prepare_checkpoint(&mut self) -> PreparedCheckpoint {
        self.last_checkpoint = Instant::now();
        self.dirty = false;
        self.dirty_hint.store(false, Ordering::Relaxed);
        self.metrics.events.set_remembered_ids(self.seen.len());
        let save = self.state.as_ref().map(|store| (store.clone(), self.snapshot(&store.api_url)));
        PreparedCheckpoint { save, publication: self.metrics.prepare_publication(), metrics: self.metrics.clone() }
    }

    /// Reads emnify's time from `clock` (the poller's client keeps it up to date).
    pub fn use_clock(&mut self, clock: Arc<EmnifyClock>) {
        self.clock = Some(clock);
    }

    /// emnify's time now, as well as this exporter knows it: its clock where an answer told it, else the
    /// host's (push-only mode has no answers to read it from).
    pub fn emnify_now_millis(&self) -> i64 {
        self.clock.as_ref().map_or_else(now_millis, |clock| clock.now_or_host_millis())
    }

    /// A flag that asks for a checkpoint soon when set, e.g. after metrics outside the counts changed;
    /// setting it takes no lock (see [`maintain`], which acts on it).
    pub fn dirty_hint(&self) -> Arc<AtomicBool> {
        self.dirty_hint.clone()
    }

    /// Forgets what no later poll window or re-delivery can bring back.
    fn forget_before(&mut self, millis: i64) {
        self.seen.forget_before(millis);
        self.seen_unreadable.forget_before(millis);
        self.seen_skipped.forget_before(millis);
    }

    /// Counts what is new in a batch and checkpoints as the rules say (see the module docs).
    pub fn ingest(&mut self, events: Vec<DecodedEvent<'_>>, origin: Origin) -> Ingested {
        self.ingest_noting(events, origin, None)
    }

    /// [`Tally::ingest`], also noting the records received for the first time in `first_seen`.
    pub fn ingest_noting(
        &mut self,
        events: Vec<DecodedEvent<'_>>,
        origin: Origin,
        first_seen: Option<&mut FirstSeen>,
    ) -> Ingested {
        let counts = self.count(events, origin, first_seen);
        if matches!(origin, Origin::Push { .. }) {
            self.last_push = Instant::now();
            // Before the checkpoint, so the push's own metrics are published with its counts.
            self.metrics.push.record_accepted(counts.received);
        }
        let must_save = matches!(origin, Origin::Push { .. }) && self.state.is_some();
        let every = if self.state.is_some() { self.settings.save_every } else { self.settings.publish_every };
        let checkpoint_due = must_save || self.last_checkpoint.elapsed() >= every;
        Ingested { counts, must_save, checkpoint_due }
    }

    /// Counts what is new in a batch.
    fn count(
        &mut self,
        events: Vec<DecodedEvent<'_>>,
        origin: Origin,
        mut note: Option<&mut FirstSeen>,
    ) -> BatchCounts {
        let mut counts = BatchCounts::default();
        self.dirty = true;
        let remember_pushed = duration_millis(self.settings.remember_pushed);
        let mut recorder = self.metrics.events.recorder();
        let mut report = BatchReport::default();
        for decoded in events {
            counts.received += 1;
            let event = match decoded {
                Ok(e) => e,
                Err(bad) => {
                    let time = match origin {
                        Origin::Poll { until_millis, .. } => until_millis,
                        Origin::Push { arrival_millis } => arrival_millis,
                    };
                    // Non-objects leave no fingerprint; each of those is counted every time it is received.
                    let first_seen = bad.fingerprint != 0 && self.seen_unreadable.insert(bad.fingerprint, time);
                    counts.first_seen += u64::from(first_seen);
                    if let (true, Some(note)) = (first_seen, note.as_deref_mut()) {
                        note.unreadable.push(bad.fingerprint);
                    }
                    if bad.fingerprint == 0 || first_seen {
                        counts.unreadable += 1;
                        self.metrics.events.record_unreadable(bad.reason);
                        report.unreadable(bad.reason, bad.id, bad.invalid_id);
                    }
                    continue;
                }
            };
            // `remember` decides how long the id is kept; `time` is the event's time as counted.
            let (remember, time) = match origin {
                Origin::Poll { from_millis, until_millis } => {
                    // A payload time outside the window is wrong; the event's real time is then anywhere
                    // in it, and remembering it to the window's end keeps it until no window reaches it.
                    let time = event
                        .timestamp_millis
                        .filter(|t| (from_millis..=until_millis).contains(t))
                        .unwrap_or(until_millis);
                    (time, time)
                }
                Origin::Push { arrival_millis } => {
                    let payload = event.timestamp_millis.unwrap_or(arrival_millis);
                    let remember = payload.clamp(arrival_millis, arrival_millis.saturating_add(remember_pushed));
                    (remember, payload.min(arrival_millis))
                }
            };
            let polled_already = matches!(origin, Origin::Push { .. })
                && self.polled_until_millis.zip(event.timestamp_millis).is_some_and(|(until, t)| t < until);
            if polled_already && !self.seen.contains(event.id) {
                // A paused stream's backlog, or a batch sent again days later: polling read that span.
                if self.seen_skipped.insert(event.id, remember) {
                    counts.skipped += 1;
                    self.metrics.events.record_skipped("polled_already");
                    report.skipped(event.id);
                }
                continue;
            }
            if remember < self.seen.horizon_millis() && !self.seen.contains(event.id) {
                // Only the dedup cap moves the horizon past a window's start: too old to tell whether
                // it was counted already. Each such event is reported once, however often it is re-read.
                if self.seen_skipped.insert(event.id, remember) {
                    counts.skipped += 1;
                    self.metrics.events.record_skipped("beyond_dedup_horizon");
                    report.skipped(event.id);
                }
                continue;
            }
            if self.seen.insert(event.id, remember) {
                counts.counted += 1;
                counts.first_seen += 1;
                if let Some(note) = note.as_deref_mut() {
                    note.ids.push(event.id);
                }
                recorder.record(&event, Some(time));
            } else {
                counts.duplicates += 1;
                self.metrics.events.record_duplicate();
            }
        }
        drop(recorder);
        report.log(&mut self.log_limit);
        counts
    }
}

/// What a batch skipped, for one log line per batch rather than one per record (a push of 100,000
/// bad records would otherwise write 100,000 lines, again on every resend).
#[derive(Default)]
struct BatchReport {
    unreadable: std::collections::BTreeMap<&'static str, u64>,
    skipped: u64,
    /// An id of a skipped or unreadable record, for looking it up.
    example_id: Option<u64>,
    /// The text of an id that is not a valid one (`invalid_id`), as it appeared: such records have no
    /// `example_id`. A field of its own, so `example_id` stays a number in JSON logs.
    example_invalid_id: Option<crate::emnify::IdText>,
}

impl BatchReport {
    fn unreadable(&mut self, reason: &'static str, id: Option<u64>, invalid_id: Option<crate::emnify::IdText>) {
        *self.unreadable.entry(reason).or_default() += 1;
        self.example_id = self.example_id.or(id);
        self.example_invalid_id = self.example_invalid_id.or(invalid_id);
    }

    fn skipped(&mut self, id: u64) {
        self.skipped += 1;
        self.example_id = self.example_id.or(Some(id));
    }

    /// One warning for the batch, and at most one every [`SKIP_LOG_EVERY`]: what batches in between
    /// skipped is summed into the line written by the first batch after it (with skips or without).
    fn log(self, limit: &mut LogLimit) {
        for (reason, n) in self.unreadable {
            *limit.unreadable.entry(reason).or_default() += n;
        }
        limit.skipped += self.skipped;
        limit.example_id = limit.example_id.or(self.example_id);
        limit.example_invalid_id = limit.example_invalid_id.or(self.example_invalid_id);
        let pending = !limit.unreadable.is_empty() || limit.skipped > 0;
        if !pending || limit.logged.is_some_and(|at| at.elapsed() < SKIP_LOG_EVERY) {
            return;
        }
        limit.logged = Some(Instant::now());
        let unreadable: Vec<String> = limit.unreadable.iter().map(|(reason, n)| format!("{reason}: {n}")).collect();
        tracing::warn!(
            unreadable = %unreadable.join(", "),
            beyond_dedup_horizon = limit.skipped,
            example_id = limit.example_id,
            example_invalid_id = limit.example_invalid_id.as_ref().map(tracing::field::display),
            "skipped records that cannot be read or are older than the dedup memory (see \
             emnify_events_unreadable_total and emnify_events_skipped_total)"
        );
        limit.unreadable.clear();
        limit.skipped = 0;
        limit.example_id = None;
        limit.example_invalid_id = None;
    }
}

/// Skips not yet logged, and when the last line about them was written.
#[derive(Default)]
struct LogLimit {
    unreadable: std::collections::BTreeMap<&'static str, u64>,
    skipped: u64,
    example_id: Option<u64>,
    example_invalid_id: Option<crate::emnify::IdText>,
    logged: Option<Instant>,
}

/// Least time between two log lines about skipped records.
const SKIP_LOG_EVERY: Duration = Duration::from_secs(10);

#[cfg(test)]
mod batch_report_tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, SubscriberExt};

    use super::{BatchReport, LogLimit};
    use crate::emnify::IdText;

    /// The fields of each logged event, by name, as their `Debug` (for `%` values: `Display`) text.
    type Line = Vec<(&'static str, String)>;

    struct Lines(Arc<Mutex<Vec<Line>>>);

    struct Fields(Line);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push((field.name(), format!("{value:?}")));
        }
    }

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            self.0.lock().unwrap().push(fields.0);
        }
    }

    fn logged(report: BatchReport) -> Vec<Line> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Lines(out.clone()));
        tracing::subscriber::with_default(subscriber, || report.log(&mut LogLimit::default()));
        let lines = out.lock().unwrap().clone();
        lines
    }

    fn field<'l>(line: &'l Line, name: &str) -> Option<&'l str> {
        line.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_summary_names_an_invalid_id_as_it_appeared() {
        let mut report = BatchReport::default();
        report.unreadable("missing_id", None, None);
        report.unreadable("invalid_id", None, Some(IdText::new("18446744073709551616")));
        report.unreadable("invalid_id", None, Some(IdText::new("-5")));
        let lines = logged(report);
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(field(&lines[0], "unreadable"), Some("invalid_id: 2, missing_id: 1"));
        assert_eq!(field(&lines[0], "example_invalid_id"), Some("18446744073709551616"));
        assert_eq!(field(&lines[0], "example_id"), None);

        // A valid id stays the number in `example_id`; a long invalid one is cut, and says so.
        let mut report = BatchReport::default();
        report.unreadable("missing_event_type", Some(7), None);
        report.unreadable("invalid_id", None, Some(IdText::new(&format!("\"{}\"", "x".repeat(40)))));
        let lines = logged(report);
        assert_eq!(field(&lines[0], "example_id"), Some("7"));
        assert_eq!(field(&lines[0], "example_invalid_id"), Some(format!("\"{}…", "x".repeat(31)).as_str()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emnify::decode_event_list;

    fn exposition(metrics: &Metrics) -> String {
        String::from_utf8(metrics.encode()).unwrap()
    }

    /// Pushed events of a type the exporter has no name for are counted as `unknown`; once the name is
    /// learned (the poller reads emnify's catalogue) it is saved, and after a restart the series is
    /// named, its value kept.
    #[test]
    fn a_type_named_after_its_first_events_is_named_on_restore() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = Arc::new(Metrics::new());
        let tally = Tally::new(first.clone(), TallySettings::default()).shared();
        use_state(&tally, StateStore::new(&path, "http://api")).unwrap();
        let body = br#"[{"id": 1, "event_type": {"id": 902}}, {"id": 2, "event_type": {"id": 902}}]"#;
        let events = decode_event_list(body).unwrap();
        let ingested = lock(&tally).ingest(events, Origin::Push { arrival_millis: now_millis() });
        assert!(ingested.must_save && ingested.finish(&tally) && ingested.counts.counted == 2);
        assert!(exposition(&first).contains(r#"event_type="unknown",event_type_id="902""#));
        first.events.set_event_type_names([(902, "Added by emnify".to_string())]);
        assert!(checkpoint(&tally));

        let second = Arc::new(Metrics::new());
        let restarted = Tally::new(second.clone(), TallySettings::default()).shared();
        use_state(&restarted, StateStore::new(&path, "http://api")).unwrap();
        let text = exposition(&second);
        let named = text.lines().find(|l| l.contains(r#"event_type="Added by emnify",event_type_id="902""#));
        assert!(named.is_some_and(|l| l.ends_with(" 2")), "{text}");
        assert!(!text.contains(r#"event_type="unknown",event_type_id="902""#), "{text}");
        assert_eq!(second.events.event_type_name(902), "Added by emnify");
    }

    /// Pushes that save concurrently (group commit, writes outside the count lock) are all saved before
    /// they are acknowledged: a restart from the file has every one of them, and what scrapes saw is
    /// never more than what was saved.
    #[test]
    fn concurrent_pushes_are_all_saved_before_they_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let metrics = Arc::new(Metrics::new());
        let tally = Tally::new(metrics.clone(), TallySettings::default()).shared();
        use_state(&tally, StateStore::new(&path, "http://api")).unwrap();
        let pushers: Vec<_> = (0..8u64)
            .map(|pusher| {
                let tally = tally.clone();
                std::thread::spawn(move || {
                    for batch in 0..20u64 {
                        let id = pusher * 1000 + batch + 1;
                        let body = format!(r#"[{{"id": {id}, "event_type": {{"id": 3}}}}]"#);
                        let events = decode_event_list(body.as_bytes()).unwrap();
                        let ingested = lock(&tally).ingest(events, Origin::Push { arrival_millis: now_millis() });
                        assert!(ingested.finish(&tally), "push {id} not acknowledged");
                    }
                })
            })
            .collect();
        for pusher in pushers {
            pusher.join().unwrap();
        }
        assert_eq!(metrics.status().events_counted, 160);

        let restored = Arc::new(Metrics::new());
        let restarted = Tally::new(restored.clone(), TallySettings::default()).shared();
        use_state(&restarted, StateStore::new(&path, "http://api")).unwrap();
        assert_eq!(lock(&restarted).remembered(), 160);
        let text = exposition(&restored);
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("emnify_events_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(total, 160.0, "{text}");
    }

    fn events(ids: std::ops::Range<u64>, second: i64) -> String {
        let list: Vec<String> = ids
            .map(|id| {
                let stamp = crate::timefmt::format_event_timestamp(second * 1000);
                format!(r#"{{"id": {id}, "timestamp": "{stamp}", "event_type": {{"id": 3}}}}"#)
            })
            .collect();
        format!("[{}]", list.join(","))
    }

    fn skipped(metrics: &Metrics, reason: &str) -> f64 {
        let text = exposition(metrics);
        let line = format!(r#"emnify_events_skipped_total{{reason="{reason}"}} "#);
        text.lines().find_map(|l| l.strip_prefix(&line)?.parse().ok()).unwrap_or(-1.0)
    }

    /// `both` mode: events polled, forgotten once no window reaches them, then pushed again (a paused Data
    /// Streamer's backlog, days later): never counted twice, each skipped once as `polled_already`.
    #[test]
    fn a_push_of_what_polling_read_completely_is_never_counted_again() {
        let metrics = Arc::new(Metrics::new());
        let mut tally = Tally::new(metrics.clone(), TallySettings::default());
        let t = 1_800_000_000;
        tally.floor_from(t * 1000 - 60_000);
        let body = events(1..5_001, t - 30);
        let poll = Origin::Poll { from_millis: (t - 60) * 1000, until_millis: t * 1000 + 999 };
        assert_eq!(tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll).counts.counted, 5_000);
        // Later polls moved on: no window reaches back to these events, their ids are forgotten.
        tally.window_done(t + 600, (t + 10) * 1000);
        assert_eq!(tally.remembered(), 0);
        let push = Origin::Push { arrival_millis: (t + 720) * 1000 };
        let again = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push).counts;
        assert_eq!((again.counted, again.skipped), (0, 5_000), "{again:?}");
        let shared = tally.shared();
        assert!(checkpoint(&shared));
        assert_eq!(skipped(&metrics, "polled_already"), 5_000.0);
        let mut tally = lock(&shared);
        // Re-delivered once more: skipped events are not reported twice either.
        let third = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push).counts;
        assert_eq!((third.counted, third.skipped), (0, 0), "{third:?}");
        // A pushed event stamped after what polling read is new, and counted.
        let fresh = events(9_000..9_003, t + 700);
        assert_eq!(tally.ingest(decode_event_list(fresh.as_bytes()).unwrap(), push).counts.counted, 3);
    }

    /// `push` mode: the same batch delivered again 15 minutes later is a duplicate within
    /// `--webhook.remember`; once that has passed, [`Tally::forget_before`] (run by [`maintain`]) lets go.
    #[test]
    fn a_push_delivered_again_within_the_remember_horizon_is_a_duplicate() {
        let metrics = Arc::new(Metrics::new());
        let settings = TallySettings { remember_pushed: Duration::from_secs(3600), ..TallySettings::default() };
        let mut tally = Tally::new(metrics, settings);
        let t = 1_800_000_000;
        let body = events(1..5_001, t);
        let first =
            tally.ingest(decode_event_list(body.as_bytes()).unwrap(), Origin::Push { arrival_millis: t * 1000 });
        assert_eq!(first.counts.counted, 5_000);
        // What maintain does 15 minutes later: forget what is older than now minus the horizon.
        tally.forget_before((t + 900 - 3600) * 1000);
        let push = Origin::Push { arrival_millis: (t + 900) * 1000 };
        let again = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push).counts;
        assert_eq!((again.counted, again.duplicates), (0, 5_000), "{again:?}");
    }
}
