//! Seeds and swarm parameters: one `u64` expands into per-subsystem sub-seeds and into the faults of a history.
//!
//! [`Seed::params`] draws a [`Params`] ("swarm testing": each history turns on its own subset of faults, at its
//! own rates). A `Params` can also be written by hand for a named regression case: start from
//! [`Params::calm`] (no faults at all) and switch on what the case needs.

use emnify_exporter::rng::SplitMix64;

/// 2026-01-05T00:00:00Z, the default start of a history (Unix ms).
pub const DEFAULT_START_MS: i64 = 1_767_571_200_000;
pub const SECOND: i64 = 1_000;
pub const MINUTE: i64 = 60 * SECOND;
pub const HOUR: i64 = 60 * MINUTE;
pub const DAY: i64 = 24 * HOUR;

/// What a sub-seed is for. Each subsystem draws from its own stream, so turning a fault on in one
/// subsystem does not shift the random choices of another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Subsystem {
    /// The swarm parameters themselves.
    Params,
    /// Event arrivals, ids, timestamps, kinds.
    Arrivals,
    /// How events are rendered (timestamp formats, spelling quirks).
    Render,
    /// Faults of API answers (5xx, lying counts, `Date` outliers, token expiry).
    Answers,
    /// The Data Streamer's delays, batching and re-deliveries.
    Streamer,
    /// Crash points, for the driver.
    Crashes,
    /// Anything else the driver wants (its own jitter).
    Driver,
}

/// The seed of one history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Seed(pub u64);

impl Seed {
    /// The sub-seed of `subsystem`: SplitMix64 output of the seed mixed with the subsystem's tag.
    pub fn sub(self, subsystem: Subsystem) -> u64 {
        let tag = (subsystem as u64 + 1).wrapping_mul(0xA076_1D64_78BD_642F);
        let mut mix = SplitMix64::new(self.0 ^ tag);
        mix.next_u64();
        mix.next_u64()
    }

    /// A generator for `subsystem`.
    pub fn rng(self, subsystem: Subsystem) -> SplitMix64 {
        SplitMix64::new(self.sub(subsystem))
    }

    /// The swarm parameters of this history.
    pub fn params(self) -> Params {
        Params::draw(&mut self.rng(Subsystem::Params))
    }
}

/// How wrong emnify's `Date` header is.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFaults {
    /// Fixed offset of every `Date` reading (−2 h..+2 h): a proxy or CDN edge with a bad clock.
    pub skew_ms: i64,
    /// The skew applies only in `[start, end)` (Unix ms); `None`: always.
    pub skew_window: Option<(i64, i64)>,
    /// Share of answers with one outlying reading (1970, far future, or off by up to `outlier_max_ms`).
    pub outlier_share: f64,
    pub outlier_max_ms: i64,
    /// Share of answers without a `Date`.
    pub absent_share: f64,
}

/// A span of time the Data Streamer is paused (keeps a backlog; "historic data first" on resume).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pause {
    pub start_ms: i64,
    pub end_ms: i64,
}

/// A re-delivery, at `at_ms`, of every event that arrived in `[span_start_ms, span_end_ms)`.
/// `at_ms - span_start_ms` is at most 7 days (what a paused stream keeps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Replay {
    pub at_ms: i64,
    pub span_start_ms: i64,
    pub span_end_ms: i64,
}

/// Everything that varies between histories. Times are simulated Unix milliseconds (emnify's true clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// First instant of the history.
    pub start_ms: i64,
    /// How long the driver should run the history (a hint; the models run as long as they are driven).
    pub history_ms: i64,
    // ---- arrivals ----
    /// Mean events per minute (between bursts).
    pub events_per_minute: f64,
    /// Chance that an arrival is a burst of up to `burst_max` events at the same millisecond.
    pub burst_share: f64,
    pub burst_max: u32,
    /// Ordinary events carry a timestamp up to this much before they become visible.
    pub ingest_lag_max_ms: i64,
    /// Share of late inserts, whose timestamp is up to `late_max_ms` before their arrival.
    pub late_share: f64,
    pub late_max_ms: i64,
    /// Share of events carrying whole-second timestamps (otherwise milliseconds).
    pub whole_second_share: f64,
    /// The first id; ids then grow by 1..=`id_stride_max` per arrival.
    pub first_id: i64,
    pub id_stride_max: i64,
    /// Share of ids that step back below the highest id so far, by up to `step_back_max` (never reusing an id).
    pub step_back_share: f64,
    pub step_back_max: i64,
    /// Retention: an event disappears once its timestamp is older than now − retention. `None`: kept for good.
    pub retention_ms: Option<i64>,
    /// Share of events from the organisation whose name needs escaping.
    pub hostile_organisation_share: f64,
    // ---- answers ----
    /// `X-Total-Count`/`X-Total-Pages` missing from an answer.
    pub counts_absent_share: f64,
    /// `X-Total-Count` (and the pages derived from it) wrong in an answer.
    pub counts_lying_share: f64,
    /// `sort` honoured; otherwise answers are descending by id (newest first) whatever was asked.
    pub sort_honoured: bool,
    /// Largest page emnify serves (`per_page` above it is clamped), and the size for `per_page` < 1.
    pub per_page_max: u32,
    pub per_page_default: u32,
    /// `X-Count-Per-Page` repeats the requested `per_page` (as documented) instead of the size served.
    pub count_per_page_echoes_request: bool,
    pub date: DateFaults,
    /// Share of answers that are 429 / 500 or 503 whatever the rate, and the share of those with `Retry-After`.
    pub fail_429_share: f64,
    pub fail_5xx_share: f64,
    pub retry_after_share: f64,
    pub retry_after_max_secs: u64,
    /// Enforce emnify's documented limits (2,000 per 5 min per IP; 10/s burst 5 on the event list).
    pub rate_limits: bool,
    /// Chance, per request, that the JWT expires early (answers 401 until the next login).
    pub token_expiry_share: f64,
    // ---- Data Streamer ----
    /// Largest batch (emnify's default is 3000; small here).
    pub push_batch_max: usize,
    /// A batch leaves this long after its oldest event became ready at the latest.
    pub push_flush_ms: i64,
    /// Delay between arrival at emnify and readiness to push, up to this (varying delays reorder).
    pub push_delay_max_ms: i64,
    /// Share of batches whose order is shuffled.
    pub push_shuffle_share: f64,
    /// Share of accepted batches whose answer is lost (the streamer sends them again).
    pub push_lost_ack_share: f64,
    /// Share of accepted batches delivered again later (up to `push_duplicate_delay_max_ms`).
    pub push_duplicate_share: f64,
    pub push_duplicate_delay_max_ms: i64,
    /// First retry of a refused batch after this; doubles per attempt up to 5 minutes.
    pub push_retry_base_ms: i64,
    /// A one-event batch is a bare object instead of an array.
    pub push_bare_single: bool,
    pub pauses: Vec<Pause>,
    pub replays: Vec<Replay>,
    // ---- crashes (for the driver) ----
    /// Chance, per driver step, of a crash (restart from the state file).
    pub crash_share: f64,
}

impl Params {
    /// A fault-free history of one hour: ordinary arrivals, honest answers, no Data Streamer trouble.
    pub fn calm() -> Params {
        Params {
            start_ms: DEFAULT_START_MS,
            history_ms: HOUR,
            events_per_minute: 20.0,
            burst_share: 0.0,
            burst_max: 1,
            ingest_lag_max_ms: 2 * SECOND,
            late_share: 0.0,
            late_max_ms: 0,
            whole_second_share: 0.2,
            first_id: 1_000_000,
            id_stride_max: 1,
            step_back_share: 0.0,
            step_back_max: 0,
            retention_ms: None,
            hostile_organisation_share: 0.0,
            counts_absent_share: 0.0,
            counts_lying_share: 0.0,
            sort_honoured: true,
            per_page_max: 1000,
            per_page_default: 100,
            count_per_page_echoes_request: false,
            date: DateFaults {
                skew_ms: 0,
                skew_window: None,
                outlier_share: 0.0,
                outlier_max_ms: 0,
                absent_share: 0.0,
            },
            fail_429_share: 0.0,
            fail_5xx_share: 0.0,
            retry_after_share: 0.0,
            retry_after_max_secs: 0,
            rate_limits: false,
            token_expiry_share: 0.0,
            push_batch_max: 50,
            push_flush_ms: SECOND,
            push_delay_max_ms: 500,
            push_shuffle_share: 0.0,
            push_lost_ack_share: 0.0,
            push_duplicate_share: 0.0,
            push_duplicate_delay_max_ms: 0,
            push_retry_base_ms: SECOND,
            push_bare_single: false,
            pauses: Vec::new(),
            replays: Vec::new(),
            crash_share: 0.0,
        }
    }

    /// Draws a history's parameters: each fault is on with some chance, and then at a drawn rate.
    pub fn draw(r: &mut SplitMix64) -> Params {
        let mut p = Params::calm();
        let on =
            |r: &mut SplitMix64, chance: f64, max_share: f64| if r.chance(chance) { r.unit() * max_share } else { 0.0 };
        p.start_ms = DEFAULT_START_MS + r.below(365) as i64 * DAY + r.below(DAY as u64) as i64;
        p.history_ms = [10 * MINUTE, HOUR, 6 * HOUR, DAY, 7 * DAY][r.below(5) as usize];
        p.burst_share = on(r, 0.4, 0.05);
        p.burst_max = 2 + r.below(100) as u32;
        // Keep every history small (50 to 1,500 events, bursts included) however long it is.
        let events = 50.0 + r.below(1450) as f64;
        let per_arrival = 1.0 + p.burst_share * f64::from(p.burst_max + 1) / 2.0;
        p.events_per_minute = events / per_arrival / (p.history_ms / MINUTE) as f64;
        p.ingest_lag_max_ms = r.below(5 * SECOND as u64) as i64;
        p.late_share = on(r, 0.5, 0.2);
        p.late_max_ms = [30 * SECOND, 5 * MINUTE, HOUR, DAY][r.below(4) as usize];
        p.whole_second_share = r.unit();
        p.first_id =
            if r.chance(0.1) { i64::MAX - 10_000_000 - r.below(1000) as i64 } else { 1 + r.below(1 << 40) as i64 };
        p.id_stride_max = 1 + r.below(5) as i64;
        p.step_back_share = on(r, 0.4, 0.2);
        p.step_back_max = 1 + r.below(100) as i64;
        if r.chance(0.25) {
            p.retention_ms = Some([5 * MINUTE, 30 * MINUTE, 2 * HOUR, 30 * DAY][r.below(4) as usize]);
        }
        p.hostile_organisation_share = on(r, 0.2, 0.1);
        p.counts_absent_share = on(r, 0.2, 0.3);
        p.counts_lying_share = on(r, 0.2, 0.3);
        p.sort_honoured = r.chance(0.7);
        p.per_page_max = [100, 250, 1000][r.below(3) as usize];
        p.per_page_default = p.per_page_max.min(100);
        p.count_per_page_echoes_request = r.chance(0.5);
        if r.chance(0.3) {
            p.date.skew_ms = r.below(4 * HOUR as u64 + 1) as i64 - 2 * HOUR;
            if r.chance(0.5) {
                let start = p.start_ms + r.below(p.history_ms as u64) as i64;
                p.date.skew_window = Some((start, start + 1 + r.below(10 * MINUTE as u64) as i64));
            }
        }
        p.date.outlier_share = on(r, 0.2, 0.05);
        p.date.outlier_max_ms = [10 * SECOND, HOUR, 400 * DAY][r.below(3) as usize];
        p.date.absent_share = on(r, 0.15, 0.5);
        p.fail_429_share = on(r, 0.3, 0.1);
        p.fail_5xx_share = on(r, 0.3, 0.1);
        p.retry_after_share = r.unit();
        p.retry_after_max_secs = [1, 20, 120][r.below(3) as usize];
        p.rate_limits = r.chance(0.8);
        p.token_expiry_share = on(r, 0.2, 0.02);
        p.push_batch_max = 1 + r.below(300) as usize;
        p.push_flush_ms = 1 + r.below(5 * SECOND as u64) as i64;
        p.push_delay_max_ms = r.below(10 * SECOND as u64) as i64;
        p.push_shuffle_share = on(r, 0.4, 0.5);
        p.push_lost_ack_share = on(r, 0.3, 0.1);
        p.push_duplicate_share = on(r, 0.3, 0.1);
        p.push_duplicate_delay_max_ms = [MINUTE, 15 * MINUTE, HOUR][r.below(3) as usize];
        p.push_retry_base_ms = 1 + r.below(10 * SECOND as u64) as i64;
        p.push_bare_single = r.chance(0.5);
        if r.chance(0.25) {
            let start = p.start_ms + r.below(p.history_ms as u64) as i64;
            let len = 1 + r.below((p.history_ms / 2).min(7 * DAY - 1) as u64) as i64;
            p.pauses.push(Pause { start_ms: start, end_ms: start + len });
        }
        if r.chance(0.2) {
            let at = p.start_ms + r.below(p.history_ms as u64) as i64;
            let back = 1 + r.below((at - p.start_ms).clamp(1, 7 * DAY) as u64) as i64;
            let span_start = at - back;
            let span_end = span_start + 1 + r.below(back as u64) as i64;
            p.replays.push(Replay { at_ms: at, span_start_ms: span_start, span_end_ms: span_end });
        }
        p.crash_share = on(r, 0.3, 0.02);
        p
    }

    /// The `Date` skew in force at `now_ms`.
    pub fn date_skew_at(&self, now_ms: i64) -> i64 {
        match self.date.skew_window {
            Some((start, end)) if now_ms < start || now_ms >= end => 0,
            _ => self.date.skew_ms,
        }
    }
}
