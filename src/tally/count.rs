//! The tally itself, a plain state machine: dedup memory, cursor, counts, and when a checkpoint is due.
//!
//! No lock, no clock of its own (the time comes in with each call), no files:
//! [`SharedTally`](super::SharedTally) drives it (lock, count, unlock, checkpoint) and
//! [`checkpoint`](super::checkpoint) writes what it prepares.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use super::batch::{BatchCounts, FirstSeen, Ingested, Origin, TallySettings, PUSH_REACH_WITH_POLLING};
use super::report::{BatchReport, LogLimit};
use crate::dedup::RecentIds;
use crate::emnify::{DecodedEvent, EmnifyClock};
use crate::metrics::Metrics;
use crate::state::StateStore;
use crate::timefmt::{duration_millis, now_millis};

/// Unreadable-record fingerprints remembered at most.
pub(super) const MAX_UNREADABLE: usize = 10_000;

/// Everything one count-once core holds; shared by the poller and the receiver as a [`SharedTally`](super::SharedTally).
pub struct Tally {
    pub(super) metrics: Arc<Metrics>,
    pub(super) settings: TallySettings,
    /// Events before this (Unix ms, emnify's clock) are history the user did not ask for; fixed by
    /// the first poll ([`Tally::floor_from`]) or restored from the state file.
    pub(super) floor_millis: Option<i64>,
    /// End of the last successful poll window, Unix seconds.
    pub(super) cursor: Option<i64>,
    /// Events stamped before this (Unix ms, emnify's clock) were read completely by polls that no later
    /// window reaches back to: a push of one not remembered was polled and forgotten, or reached emnify
    /// later than the overlap (never polled). It is not counted: never twice is the promise.
    pub(super) polled_until_millis: Option<i64>,
    pub(super) seen: RecentIds,
    /// Fingerprints of unreadable records, so each is reported once.
    pub(super) seen_unreadable: RecentIds,
    /// Ids of events skipped, so a re-read of a skipped event is not counted as another skip.
    seen_skipped: RecentIds,
    /// The latest time (emnify's, as the payloads say within their windows) of an event a poll read.
    pub(super) newest_polled_millis: Option<i64>,
    /// Monotonic time (the caller's) at which this run fixed the start of counting.
    floor_fixed_mono_millis: Option<i64>,
    /// The start of counting was fixed, or checked since, on a confirmed clock: it never moves again.
    pub(super) floor_settled: bool,
    /// Whether emnify's clock was confirmed when the last poll started (readings that agree over time);
    /// until then a push's arrival, read on that clock, may be far off.
    clock_confirmed: bool,
    /// Ids counted from a push (once polling runs) that no poll has read yet: the first poll that reads
    /// one learns it is new to polling ([`FirstSeen::polled_after_push`]), so its walk can stop once it
    /// found what emnify's count says is new. Forgetting one only costs that walk a page.
    unpolled: RecentIds,
    pub(super) state: Option<StateStore>,
    /// emnify's clock, shared with the client that reads it (none in push-only mode).
    clock: Option<Arc<EmnifyClock>>,
    /// Skipped records not yet logged (see `BatchReport`).
    log_limit: LogLimit,
    /// When the last checkpoint was prepared (`None`: never, so the first batch asks for one).
    pub(super) last_checkpoint: Option<Instant>,
    /// Counted since the last checkpoint.
    pub(super) dirty: bool,
    /// Set without the lock by those whose metrics changed outside the counts (refused pushes, the
    /// receiver's upkeep): a checkpoint is due, but taking the count lock on an async worker for it is not.
    pub(super) dirty_hint: Arc<AtomicBool>,
}

impl Tally {
    /// A tally with nothing counted; the start of counting is fixed by the first poll.
    pub fn new(metrics: Arc<Metrics>, settings: TallySettings) -> Self {
        Tally {
            metrics,
            floor_millis: None,
            cursor: None,
            polled_until_millis: None,
            newest_polled_millis: None,
            floor_fixed_mono_millis: None,
            floor_settled: false,
            clock_confirmed: false,
            seen: RecentIds::new(i64::MIN, settings.max_remembered_ids),
            seen_unreadable: RecentIds::new(i64::MIN, MAX_UNREADABLE),
            seen_skipped: RecentIds::new(i64::MIN, MAX_UNREADABLE),
            unpolled: RecentIds::new(i64::MIN, settings.max_remembered_ids),
            settings,
            state: None,
            clock: None,
            log_limit: LogLimit::default(),
            last_checkpoint: None,
            dirty: false,
            dirty_hint: Arc::default(),
        }
    }

    /// How this tally counts (the receiver's upkeep reads its push settings here).
    pub fn settings(&self) -> &TallySettings {
        &self.settings
    }

    /// The start of counting (Unix ms): fixed now, at `emnify_now_millis - lookback`, unless a first
    /// poll or the state file fixed it before. Whole seconds: some emnify timestamps carry no milliseconds.
    pub fn floor_from(&mut self, emnify_now_millis: i64) -> i64 {
        if let Some(floor) = self.floor_millis {
            return floor;
        }
        let floor = emnify_now_millis.saturating_sub(duration_millis(self.settings.lookback)).div_euclid(1000) * 1000;
        self.floor_millis = Some(floor);
        // Nothing is forgotten here: what is remembered so far was pushed (counted whatever the floor),
        // and a poll may read it again.
        floor
    }

    /// What a poll starting at emnify's time `emnify_now_millis` (monotonic time `mono_millis`, any
    /// fixed origin) needs: the start of counting and the cursor, Unix seconds. A cursor ahead of now
    /// means emnify's clock, as estimated, was stepped back after windows ran ahead (no `Date` yet and
    /// a host clock ahead, or a wrong first `Date`). If the start of counting was fixed on that clock
    /// (not yet `clock_confirmed` by readings that agree over time), it is fixed again on the corrected
    /// one, as far back as the monotonic time since then says, and the cursor is dropped so the next
    /// window reads from there: the corrected windows leave no gap. It never moves behind what the dedup
    /// memory still covers, so nothing polled is counted twice; and a start fixed on a confirmed clock
    /// (settled) never moves: then only the windows after it ran ahead, and they start from now again.
    pub fn poll_start(
        &mut self,
        emnify_now_millis: i64,
        mono_millis: i64,
        clock_confirmed: bool,
    ) -> (i64, Option<i64>) {
        let ahead = self.cursor.map_or(0, |c| c.saturating_mul(1000).saturating_sub(emnify_now_millis));
        if let (Some(floor), true, false) = (self.floor_millis, ahead > 1000, self.floor_settled) {
            let lowered = match self.floor_fixed_mono_millis {
                Some(fixed) => {
                    let since = mono_millis.saturating_sub(fixed).max(0);
                    emnify_now_millis.saturating_sub(since).saturating_sub(duration_millis(self.settings.lookback))
                }
                // Fixed before a restart: the cursor says how far the clock ran ahead, near enough.
                None => floor.saturating_sub(ahead),
            };
            // Whole seconds (the windows' `from`), and not before the dedup memory's horizon rounded up
            // to one: a window from there finds no id the memory has already let go.
            let horizon = self.horizon_whole_second();
            let lowered = (lowered.div_euclid(1000) * 1000).max(horizon);
            if lowered < floor {
                tracing::warn!(
                    ahead_s = ahead / 1000,
                    "emnify's clock was stepped back behind the last window: counting starts as much earlier"
                );
                self.floor_millis = Some(lowered);
                self.cursor = None;
                self.polled_until_millis = self.polled_until_millis.map(|until| until.min(lowered));
            }
        }
        if self.floor_millis.is_none() {
            self.floor_fixed_mono_millis = Some(mono_millis);
        }
        self.clock_confirmed = clock_confirmed;
        let floor = self.floor_from(emnify_now_millis);
        if clock_confirmed && ahead <= 1000 {
            self.floor_settled = true;
        }
        let mut read_from = floor;
        if let (Some(cursor), true) = (self.cursor, ahead > 1000) {
            // The start of counting stays (settled), but the windows that ran ahead read emnify's real
            // ground only up to when they were read, which the newest event they found marks (its
            // payload time, on emnify's own clock): the next window goes back from there, not from the
            // corrected now, so events that arrived late into that stretch are still read. Never behind
            // the dedup memory's horizon, where ids polled before are no longer known.
            if let Some(newest) = self.newest_polled_millis {
                self.cursor = Some(cursor.min(newest.div_euclid(1000)));
                let horizon = self.horizon_whole_second();
                read_from = read_from.max(horizon);
            }
        }
        (read_from.div_euclid(1000), self.cursor)
    }

    /// The dedup memory's horizon rounded up to a whole second (Unix ms): a window from there finds no
    /// id the memory has already let go.
    fn horizon_whole_second(&self) -> i64 {
        self.seen.horizon_millis().saturating_add(999).div_euclid(1000).saturating_mul(1000)
    }

    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// A poll window was read whole up to `until` (Unix seconds): the cursor moves there, and ids of
    /// events before `keep_from_millis`, which no later window reaches, are forgotten. `confirmed_now`
    /// is emnify's time now (Unix ms) if its clock is confirmed, else `None`. The caller ends the poll
    /// with a checkpoint.
    pub fn window_done(&mut self, until: i64, keep_from_millis: i64, confirmed_now: Option<i64>) {
        self.cursor = Some(until);
        // The window's times come from emnify's clock as estimated. Until readings that agree over time
        // confirm it, it can run ahead (no `Date` yet and a host clock ahead, a wrong first `Date`); and
        // a window that ends after the confirmed now was planned on a clock that has just been stepped
        // back. Then nothing is forgotten, and no span taken as read, closer to the newest polled event
        // than the window's start is to its end, so a window that ran ahead and is read again once the
        // clock is right still finds every id it counted.
        let clock_confirmed = confirmed_now.is_some_and(|now| until.saturating_mul(1000) <= now.saturating_add(1000));
        let keep_from = if clock_confirmed {
            keep_from_millis
        } else {
            let reach = (until * 1000).saturating_sub(keep_from_millis).max(0);
            match self.newest_polled_millis {
                Some(newest) => keep_from_millis.min(newest.saturating_sub(reach)),
                None => return,
            }
        };
        self.polled_until_millis = self.polled_until_millis.max(Some(keep_from));
        self.forget_before(keep_from);
    }

    pub fn remembered(&self) -> usize {
        self.seen.len()
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
    /// setting it takes no lock (see [`SharedTally::publish_pending`](super::SharedTally::publish_pending),
    /// which acts on it).
    pub fn dirty_hint(&self) -> Arc<AtomicBool> {
        self.dirty_hint.clone()
    }

    /// Forgets what no later poll window or re-delivery can bring back: ids remembered from before
    /// `millis` (Unix ms, emnify's clock). Polls do it as windows close; in push-only mode the
    /// receiver's upkeep does it for pushed ids older than [`TallySettings::remember_pushed`].
    pub fn forget_before(&mut self, millis: i64) {
        self.seen.forget_before(millis);
        self.seen_unreadable.forget_before(millis);
        self.seen_skipped.forget_before(millis);
        self.unpolled.forget_before(millis);
    }

    /// Counts what is new in a batch received at monotonic time `now` and says what must follow (the
    /// rules in the module docs): the sans-IO step. [`SharedTally::ingest`](super::SharedTally::ingest)
    /// also runs the checkpoint it asks for.
    pub fn ingest(&mut self, events: Vec<DecodedEvent<'_>>, origin: Origin, now: Instant) -> Ingested {
        self.ingest_noting(events, origin, None, now)
    }

    /// [`Tally::ingest`], also noting the records received for the first time in `first_seen`.
    pub fn ingest_noting(
        &mut self,
        events: Vec<DecodedEvent<'_>>,
        origin: Origin,
        first_seen: Option<&mut FirstSeen>,
        now: Instant,
    ) -> Ingested {
        let counts = self.count(events, origin, first_seen, now);
        let must_save = matches!(origin, Origin::Push { .. }) && self.state.is_some();
        let every = if self.state.is_some() { self.settings.save_every } else { self.settings.publish_every };
        let checkpoint_due =
            must_save || self.last_checkpoint.is_none_or(|at| now.saturating_duration_since(at) >= every);
        Ingested { counts, must_save, checkpoint_due }
    }

    /// Counts what is new in a batch.
    fn count(
        &mut self,
        events: Vec<DecodedEvent<'_>>,
        origin: Origin,
        mut note: Option<&mut FirstSeen>,
        now: Instant,
    ) -> BatchCounts {
        let mut counts = BatchCounts::default();
        self.dirty = true;
        let remember_pushed = match self.settings.polls {
            true => duration_millis(self.settings.remember_pushed.max(PUSH_REACH_WITH_POLLING)),
            false => duration_millis(self.settings.remember_pushed),
        };
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
                    self.newest_polled_millis = self.newest_polled_millis.max(Some(time));
                    (time, time)
                }
                Origin::Push { arrival_millis } => {
                    let payload = event.timestamp_millis.unwrap_or(arrival_millis);
                    let mut remember = payload.clamp(arrival_millis, arrival_millis.saturating_add(remember_pushed));
                    // An arrival behind the dedup memory's horizon is a clock gone wrong (a first `Date`
                    // far off after a restart), not an old event, when the payload says it is newer:
                    // it is remembered from its payload time (bounded), not skipped as too old.
                    let horizon = self.seen.horizon_millis();
                    if remember < horizon && payload >= horizon {
                        remember = payload.min(horizon.saturating_add(remember_pushed));
                    }
                    // With a poller and emnify's clock not yet confirmed, the arrival may be days off
                    // (a first outlying `Date`): the id is kept at least to its payload time, or it
                    // would be forgotten once the clock is corrected, before polling reads it
                    // (long-run seed 226558: a first `Date` 68 days behind).
                    if self.settings.polls && !self.clock_confirmed {
                        remember = remember.max(payload);
                    }
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
            let first = match origin {
                Origin::Poll { .. } => self.seen.insert_or_keep(event.id, remember),
                Origin::Push { .. } => self.seen.insert(event.id, remember),
            };
            if first {
                counts.counted += 1;
                counts.first_seen += 1;
                if let Some(note) = note.as_deref_mut() {
                    note.ids.push(event.id);
                }
                // With a poller, whatever it reads of this id later is new to polling (its walk counts
                // it): kept from the first push on, whether or not a window has closed yet (a first
                // window on an unconfirmed clock closes none; long-run seed 325690).
                if matches!(origin, Origin::Push { .. }) && self.settings.polls {
                    self.unpolled.insert(event.id, remember);
                }
                recorder.record(&event, Some(time));
            } else {
                if matches!(origin, Origin::Poll { .. }) && self.unpolled.remove(event.id) {
                    if let Some(note) = note.as_deref_mut() {
                        note.polled_after_push += 1;
                    }
                }
                counts.duplicates += 1;
                self.metrics.events.record_duplicate();
            }
        }
        drop(recorder);
        report.log(&mut self.log_limit, now);
        counts
    }
}
