//! emnify's clock as its answers tell it: the `Date` header, advanced by local monotonic time.
//!
//! emnify filters `q=from:…,until:…` by its own event timestamps on its own clock, so windows and
//! the start of counting are taken from it, never from the host's wall clock (which can be wrong by
//! minutes: a resumed VM, an edge box without NTP). `Date` has one-second resolution and is stamped
//! before the answer travels, so each reading is up to a second (plus the latency) behind emnify's
//! real time; of the readings that agree, the one that puts emnify's time furthest ahead is the
//! tightest, and is kept.
//!
//! A `Date` can also be plain wrong: a proxy or CDN edge with a bad clock, a gateway that sends the
//! epoch. So one reading never moves the estimate far: a reading that disagrees with it by more than
//! [`JUMP`] is an outlier, ignored, until readings that agree with each other (and with monotonic
//! time) have said the same for [`ADOPT_AFTER`] — then emnify's clock really was stepped, and it is
//! followed. Readings outside [`PLAUSIBLE_FROM`, `PLAUSIBLE_UNTIL`) are never used at all.
//!
//! [`ClockEstimate`] is the deciding core: plain data fed readings with the monotonic and wall time
//! they arrived at, no clock of its own. [`EmnifyClock`] is the shell shared by the client (which
//! feeds it) and everyone who needs emnify's time.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::timefmt::{duration_millis, now_millis};

/// A change of emnify's clock, against what the readings so far say, beyond which a reading is not
/// "the same clock" (truncation to whole seconds and latency stay well below it).
pub const JUMP: Duration = Duration::from_secs(3);

/// How long (monotonic time) readings that disagree with the estimate but agree with each other must
/// keep coming before the estimate follows them: longer than a misbehaving edge is likely to answer
/// for, short next to the overlap (late events are still read after a real step).
pub const ADOPT_AFTER: Duration = Duration::from_secs(60);

/// How far apart the first and last of the agreeing readings an estimate rests on must be to confirm it.
pub const CONFIRMED_AFTER: Duration = Duration::from_secs(10);

/// Agreeing readings needed, besides [`ADOPT_AFTER`], to follow a step.
pub const ADOPT_READINGS: u32 = 3;

/// 2020-01-01T00:00:00Z: no answer of emnify's event API is older (Unix ms).
pub const PLAUSIBLE_FROM: i64 = 1_577_836_800_000;
/// 2100-01-01T00:00:00Z (Unix ms).
pub const PLAUSIBLE_UNTIL: i64 = 4_102_444_800_000;

/// What became of one reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The first reading, or one that agrees with the estimate (perhaps tightening it).
    Agrees,
    /// Disagreed, and ended a run of agreeing readings long enough to be followed: the estimate moved.
    Stepped,
    /// Disagrees with the estimate; ignored (for now).
    Outlier,
    /// Outside any time emnify's API can answer at; never used.
    Implausible,
}

/// Readings not followed, by why, since the start (for `emnify_clock_readings_ignored_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ignored {
    pub outlier: u64,
    pub implausible: u64,
}

/// emnify's time (Unix ms) at monotonic time zero, as a run of agreeing readings says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    at_zero_millis: i64,
    /// Monotonic time of the run's first and last reading, and how many it has had.
    since_mono_millis: i64,
    last_mono_millis: i64,
    readings: u32,
}

impl Run {
    fn new(at_zero_millis: i64, mono_millis: i64) -> Self {
        Run { at_zero_millis, since_mono_millis: mono_millis, last_mono_millis: mono_millis, readings: 1 }
    }

    fn agrees(&self, at_zero_millis: i64) -> bool {
        (at_zero_millis - self.at_zero_millis).abs() <= duration_millis(JUMP)
    }

    /// Takes an agreeing reading: the tightest one (furthest ahead) is kept.
    fn add(&mut self, at_zero_millis: i64, mono_millis: i64) {
        self.at_zero_millis = self.at_zero_millis.max(at_zero_millis);
        self.last_mono_millis = self.last_mono_millis.max(mono_millis);
        self.readings = self.readings.saturating_add(1);
    }
}

/// The deciding core: emnify's time from `Date` readings, each given with the monotonic time (any
/// fixed origin, ms) and the host's wall time (Unix ms) it arrived at.
#[derive(Debug, Clone, Default)]
pub struct ClockEstimate {
    current: Option<Run>,
    /// Readings that disagree with `current` but agree with each other.
    candidate: Option<Run>,
    /// emnify's clock minus the host's at the last reading that was used.
    offset_millis: Option<i64>,
    ignored: Ignored,
}

impl ClockEstimate {
    /// Takes a `Date` reading (Unix ms) that arrived at `mono_millis` (monotonic) and `host_millis`.
    pub fn observe(&mut self, date_millis: i64, mono_millis: i64, host_millis: i64) -> Verdict {
        if !(PLAUSIBLE_FROM..PLAUSIBLE_UNTIL).contains(&date_millis) {
            self.ignored.implausible += 1;
            return Verdict::Implausible;
        }
        let at_zero = date_millis.saturating_sub(mono_millis);
        let verdict = match &mut self.current {
            None => {
                self.current = Some(Run::new(at_zero, mono_millis));
                Verdict::Agrees
            }
            Some(current) if current.agrees(at_zero) => {
                current.add(at_zero, mono_millis);
                // The estimate's clock is confirmed: whatever disagreed meanwhile was passing.
                self.candidate = None;
                Verdict::Agrees
            }
            Some(_) => match &mut self.candidate {
                Some(candidate) if candidate.agrees(at_zero) => {
                    candidate.add(at_zero, mono_millis);
                    let lasted = mono_millis - candidate.since_mono_millis >= duration_millis(ADOPT_AFTER);
                    if lasted && candidate.readings >= ADOPT_READINGS {
                        self.current = self.candidate.take();
                        Verdict::Stepped
                    } else {
                        self.ignored.outlier += 1;
                        Verdict::Outlier
                    }
                }
                _ => {
                    self.candidate = Some(Run::new(at_zero, mono_millis));
                    self.ignored.outlier += 1;
                    Verdict::Outlier
                }
            },
        };
        if let (Verdict::Agrees | Verdict::Stepped, Some(current)) = (verdict, self.current) {
            self.offset_millis = Some(current.at_zero_millis + mono_millis - host_millis);
        }
        verdict
    }

    /// emnify's time (Unix ms) at monotonic time `mono_millis`; `None` before a usable reading.
    pub fn now_millis(&self, mono_millis: i64) -> Option<i64> {
        self.current.map(|c| c.at_zero_millis.saturating_add(mono_millis))
    }

    /// emnify's clock minus the host's, as of the last reading used; `None` before one.
    pub fn offset_millis(&self) -> Option<i64> {
        self.offset_millis
    }

    /// Whether the estimate rests on readings that agree over time ([`ADOPT_READINGS`] of them, at least
    /// [`CONFIRMED_AFTER`] apart), not on one that may be wrong: until then, what the windows read on it
    /// does not make the tally forget (see `Tally::window_done`).
    pub fn confirmed(&self) -> bool {
        self.current.is_some_and(|c| {
            c.readings >= ADOPT_READINGS && c.last_mono_millis - c.since_mono_millis >= duration_millis(CONFIRMED_AFTER)
        })
    }

    pub fn ignored(&self) -> Ignored {
        self.ignored
    }
}

/// The shell: a [`ClockEstimate`] shared by the client that feeds it and whoever needs emnify's time,
/// measured from an [`Instant`] fixed at creation.
#[derive(Debug)]
pub struct EmnifyClock {
    origin: Instant,
    estimate: Mutex<ClockEstimate>,
}

impl Default for EmnifyClock {
    fn default() -> Self {
        EmnifyClock { origin: Instant::now(), estimate: Mutex::new(ClockEstimate::default()) }
    }
}

impl EmnifyClock {
    fn mono_millis(&self) -> i64 {
        duration_millis(self.origin.elapsed())
    }

    fn estimate(&self) -> std::sync::MutexGuard<'_, ClockEstimate> {
        self.estimate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes an answer's `Date` (Unix ms) as received now.
    pub fn observe(&self, date_millis: i64) -> Verdict {
        let mono = self.mono_millis();
        let verdict = self.estimate().observe(date_millis, mono, now_millis());
        match verdict {
            Verdict::Stepped => tracing::warn!(
                date = %crate::timefmt::format_http_date(date_millis),
                "emnify's clock moved: readings have agreed on a new time for a minute; following it"
            ),
            Verdict::Implausible => tracing::debug!(date_millis, "ignoring an implausible Date header"),
            Verdict::Agrees | Verdict::Outlier => {}
        }
        verdict
    }

    /// emnify's time now (Unix ms), or `None` before the first usable `Date`.
    pub fn now_millis(&self) -> Option<i64> {
        let mono = self.mono_millis();
        self.estimate().now_millis(mono)
    }

    /// emnify's time now where known, else the host's (push-only mode, an API without `Date`).
    pub fn now_or_host_millis(&self) -> i64 {
        self.now_millis().unwrap_or_else(now_millis)
    }

    /// emnify's clock minus the host's, as of the last reading used; `None` before one.
    pub fn offset_millis(&self) -> Option<i64> {
        self.estimate().offset_millis()
    }

    /// Readings not followed so far, by why.
    pub fn ignored(&self) -> Ignored {
        self.estimate().ignored()
    }

    /// See [`ClockEstimate::confirmed`].
    pub fn confirmed(&self) -> bool {
        self.estimate().confirmed()
    }

    /// emnify's time now (Unix ms) if its clock is [confirmed](ClockEstimate::confirmed), else `None`.
    pub fn confirmed_now_millis(&self) -> Option<i64> {
        let mono = self.mono_millis();
        let estimate = self.estimate();
        estimate.confirmed().then(|| estimate.now_millis(mono)).flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: i64 = 1_700_000_000_000;
    const HOUR: i64 = 3_600_000;

    #[test]
    fn follows_the_date_header_by_monotonic_time_and_keeps_the_tightest_reading() {
        let mut clock = ClockEstimate::default();
        assert_eq!(clock.now_millis(0), None);
        // emnify an hour ahead of the host; the first Date was truncated by 800 ms.
        assert_eq!(clock.observe(HOST + HOUR - 800, 10_000, HOST), Verdict::Agrees);
        assert_eq!(clock.offset_millis(), Some(HOUR - 800));
        // A tighter reading 5 s later moves the estimate up; a looser one does not move it back.
        clock.observe(HOST + HOUR + 5_000 - 100, 15_000, HOST + 5_000);
        clock.observe(HOST + HOUR + 6_000 - 900, 16_000, HOST + 6_000);
        assert_eq!(clock.now_millis(15_000), Some(HOST + HOUR + 5_000 - 100));
        assert_eq!(clock.ignored(), Ignored::default());
    }

    /// A proxy with a clock two hours ahead answers for 5 s, one request every 100 ms: none of it moves
    /// the estimate, each reading is counted as ignored.
    #[test]
    fn a_few_seconds_of_outlying_readings_never_move_the_estimate() {
        let mut clock = ClockEstimate::default();
        clock.observe(HOST, 0, HOST);
        for i in 1..=50 {
            let mono = 1_000 + i * 100;
            assert_eq!(clock.observe(HOST + mono + 2 * HOUR, mono, HOST + mono), Verdict::Outlier);
            assert_eq!(clock.now_millis(mono), Some(HOST + mono));
        }
        assert_eq!(clock.observe(HOST + 7_000, 7_000, HOST + 7_000), Verdict::Agrees);
        assert_eq!(clock.offset_millis(), Some(0));
        assert_eq!(clock.ignored().outlier, 50);
        // Even 70 s of them, when a good reading comes between, start over each time.
        for s in 8..80 {
            let mono = s * 1_000;
            let date = if s % 20 == 0 { HOST + mono } else { HOST + mono + 2 * HOUR };
            assert_ne!(clock.observe(date, mono, HOST + mono), Verdict::Stepped);
        }
        assert_eq!(clock.now_millis(80_000), Some(HOST + 80_000));
    }

    #[test]
    fn an_epoch_or_far_future_date_is_never_used_nor_shown_as_the_offset() {
        let mut clock = ClockEstimate::default();
        assert_eq!(clock.observe(0, 0, HOST), Verdict::Implausible);
        assert_eq!((clock.now_millis(0), clock.offset_millis()), (None, None));
        clock.observe(HOST, 1_000, HOST);
        assert_eq!(clock.observe(0, 2_000, HOST + 1_000), Verdict::Implausible);
        assert_eq!(clock.observe(PLAUSIBLE_UNTIL + 5, 3_000, HOST + 2_000), Verdict::Implausible);
        assert_eq!(clock.offset_millis(), Some(0));
        assert_eq!(clock.ignored(), Ignored { outlier: 0, implausible: 3 });
    }

    #[test]
    fn an_estimate_is_confirmed_by_readings_that_agree_over_time_not_by_one() {
        let mut clock = ClockEstimate::default();
        assert!(!clock.confirmed());
        clock.observe(HOST, 0, HOST);
        clock.observe(HOST + 1_000, 1_000, HOST + 1_000);
        clock.observe(HOST + 2_000, 2_000, HOST + 2_000);
        assert!(!clock.confirmed(), "three readings within two seconds");
        clock.observe(HOST + 12_000, 12_000, HOST + 12_000);
        assert!(clock.confirmed());
        // Outliers do not confirm anything, nor take the confirmation away.
        clock.observe(HOST + 13_000 + 2 * HOUR, 13_000, HOST + 13_000);
        assert!(clock.confirmed());
    }

    /// emnify's clock really stepped back a minute: after readings agreeing on it for [`ADOPT_AFTER`],
    /// it is followed.
    #[test]
    fn a_step_that_lasts_is_followed() {
        let mut clock = ClockEstimate::default();
        clock.observe(HOST, 0, HOST);
        let step = -60_000;
        let mut stepped_at = None;
        for s in 1..=120 {
            let mono = s * 1_000;
            if clock.observe(HOST + mono + step, mono, HOST + mono) == Verdict::Stepped {
                stepped_at = Some(mono);
                break;
            }
        }
        assert_eq!(stepped_at, Some(1_000 + duration_millis(ADOPT_AFTER)));
        assert_eq!(clock.now_millis(200_000), Some(HOST + 200_000 + step));
        assert_eq!(clock.offset_millis(), Some(step));
    }
}
