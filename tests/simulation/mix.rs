//! The history mix of the counting core's simulation: which faults each seed draws, on emnify's side
//! ([`Params`]) and on the exporter's ([`Drive`]), sized so that 10,000 histories take well under two
//! minutes in a release build.

use crate::core::{Drive, Mode};
use crate::seed::{Params, Pause, Replay, Seed, Subsystem, DAY, DEFAULT_START_MS, HOUR, MINUTE, SECOND};

/// A history's parameters drawn from its seed:
/// - **mode**: polls alone (35 %), polls and pushes into one tally (45 %), pushes alone (20 %);
/// - **size**: 1 in 25 large (150 events a minute for 5 minutes), 1 in 50 long (a day, 0.2 a minute, a
///   poll every 5 minutes with a 15-minute overlap: pauses and replays of up to a day), else 10 minutes
///   of 2 to 30 a minute;
/// - **emnify**: late arrivals within the overlap, ids that step back, `sort` honoured or ignored,
///   `per_page` clamped, absent counts, 5xx, token expiry (counts are honest: lying counts are the
///   shell's documented limit);
/// - **`Date`**: a constant skew of up to ±2 h (1 in 10), or 2 h ahead for 5 s (1 in 10); outliers
///   (1970, the far future, off by 10 s, 1 h or 400 days); absence; the host's clock off by up to ±15 min;
/// - **Data Streamer**: batches, delays, shuffles, lost answers, duplicates up to 15 min later, a pause
///   with its backlog, a replay of an old span;
/// - **crashes** (1 in 10): up to 3, anywhere between requests or between a count and its checkpoint,
///   down for up to a minute, restarted from the state file.
pub fn params_in(seed: u64) -> (Params, Drive) {
    let mut r = Seed(seed).rng(Subsystem::Driver);
    let mut p = Params::calm();
    p.start_ms = DEFAULT_START_MS + r.below(DAY as u64) as i64;
    let mode = match r.below(20) {
        0..=6 => Mode::Poll,
        7..=15 => Mode::Both,
        _ => Mode::Push,
    };
    let mut d = Drive::calm(mode);
    p.history_ms = 10 * MINUTE;
    p.events_per_minute = [2.0, 10.0, 30.0][r.below(3) as usize];
    match r.below(50) {
        0 | 1 => {
            p.history_ms = 5 * MINUTE;
            p.events_per_minute = 150.0;
        }
        2 => {
            p.history_ms = DAY;
            p.events_per_minute = 0.2;
            d.interval_ms = 5 * MINUTE;
            d.overlap_secs = 900;
        }
        _ => {}
    }
    p.late_share = [0.0, 0.05, 0.3][r.below(3) as usize];
    p.late_max_ms = 60 * SECOND;
    p.id_stride_max = 1 + r.below(3) as i64;
    p.step_back_share = [0.0, 0.1][r.below(2) as usize];
    p.step_back_max = 100;
    p.sort_honoured = r.below(4) != 0;
    p.per_page_max = [100, 250, 1000][r.below(3) as usize];
    p.counts_absent_share = [0.0, 0.0, 1.0][r.below(3) as usize];
    p.fail_5xx_share = [0.0, 0.05][r.below(2) as usize];
    p.token_expiry_share = [0.0, 0.0, 0.01][r.below(3) as usize];
    // emnify's `Date`.
    match r.below(10) {
        0 => {
            p.date.skew_ms = r.below(4 * HOUR as u64 + 1) as i64 - 2 * HOUR;
        }
        1 => {
            let at = p.start_ms + r.below(p.history_ms as u64) as i64;
            p.date.skew_ms = 2 * HOUR;
            p.date.skew_window = Some((at, at + 5 * SECOND));
        }
        _ => {}
    }
    if r.chance(0.15) {
        p.date.outlier_share = r.unit() * 0.1;
        p.date.outlier_max_ms = [10 * SECOND, HOUR, 400 * DAY][r.below(3) as usize];
    }
    if r.chance(0.15) {
        p.date.absent_share = r.unit() * 0.5;
    }
    d.host_skew_ms = r.below(30 * MINUTE as u64 + 1) as i64 - 15 * MINUTE;
    if r.chance(0.2) {
        d.lookback_ms = 5 * MINUTE;
        d.first_poll_after_ms = 5 * MINUTE + 10 * SECOND;
    }
    // The Data Streamer.
    p.push_batch_max = 1 + r.below(300) as usize;
    p.push_flush_ms = 1 + r.below(5 * SECOND as u64) as i64;
    p.push_delay_max_ms = r.below(10 * SECOND as u64) as i64;
    p.push_shuffle_share = [0.0, 0.5][r.below(2) as usize];
    p.push_lost_ack_share = [0.0, 0.05][r.below(2) as usize];
    p.push_duplicate_share = [0.0, 0.1][r.below(2) as usize];
    p.push_duplicate_delay_max_ms = [MINUTE, 15 * MINUTE][r.below(2) as usize];
    p.push_retry_base_ms = 1 + r.below(10 * SECOND as u64) as i64;
    p.push_bare_single = r.chance(0.5);
    if r.chance(0.25) {
        let start = p.start_ms + r.below(p.history_ms as u64) as i64;
        let len = 1 + r.below((p.history_ms / 2) as u64) as i64;
        p.pauses.push(Pause { start_ms: start, end_ms: start + len });
    }
    if r.chance(0.2) {
        let at = p.start_ms + r.below(p.history_ms as u64) as i64;
        let back = 1 + r.below((at - p.start_ms).max(1) as u64) as i64;
        let span_start = at - back;
        let span_end = span_start + 1 + r.below(back as u64) as i64;
        p.replays.push(Replay { at_ms: at, span_start_ms: span_start, span_end_ms: span_end });
    }
    // Crashes.
    if r.chance(0.1) {
        d.max_crashes = 1 + r.below(3) as u32;
        p.crash_share = 0.02 + r.unit() * 0.08;
        d.downtime_ms = r.below(MINUTE as u64) as i64;
        d.save_every_requests = 1 + r.below(5) as u32;
    }
    (p, d)
}
