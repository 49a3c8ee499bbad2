//! Repeated warnings at most once a period: a flood of the same trouble makes one log line a minute
//! (or an hour), saying how many times it happened since the line before.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The period of most repeated warnings.
pub const MINUTE: Duration = Duration::from_secs(60);

/// When a repeated line was last written and how often its trouble happened since: plain data, asked
/// at the caller's `now`, so its decisions are tested in simulated time.
#[derive(Debug, Default, Clone, Copy)]
pub struct LineGate {
    written: Option<Instant>,
    held_back: u64,
}

impl LineGate {
    /// A gate that has written nothing yet: the first occurrence is logged.
    pub const fn new() -> Self {
        LineGate { written: None, held_back: 0 }
    }

    /// Notes one occurrence at `now`. A line is due when none was written in the `every` before `now`:
    /// then it counts as written, and the answer is how many occurrences it stands for (this one and
    /// those held back since the last line). Otherwise `None`: this one is held back.
    pub fn note(&mut self, now: Instant, every: Duration) -> Option<u64> {
        if self.written.is_some_and(|at| now.saturating_duration_since(at) < every) {
            self.held_back += 1;
            return None;
        }
        self.written = Some(now);
        Some(std::mem::take(&mut self.held_back) + 1)
    }
}

/// A [`LineGate`] shared by tasks, asked at the monotonic clock's now.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    gate: Mutex<LineGate>,
}

impl LogLimiter {
    /// At most one line each `every`.
    pub const fn new(every: Duration) -> Self {
        LogLimiter { every, gate: Mutex::new(LineGate::new()) }
    }

    /// See [`LineGate::note`].
    pub fn note(&self) -> Option<u64> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner).note(Instant::now(), self.every)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_period_standing_for_the_occurrences_held_back() {
        let start = Instant::now();
        let at = |s: u64| start + Duration::from_secs(s);
        let mut gate = LineGate::new();
        assert_eq!(gate.note(at(0), MINUTE), Some(1), "the first occurrence is logged at once");
        assert_eq!(gate.note(at(1), MINUTE), None);
        assert_eq!(gate.note(at(59), MINUTE), None, "59 s after the line: held back");
        assert_eq!(gate.note(at(60), MINUTE), Some(3), "a minute after: one line for three occurrences");
        assert_eq!(gate.note(at(200), MINUTE), Some(1), "after a quiet spell the count starts again");
    }

    #[test]
    fn a_clock_reading_before_the_last_line_holds_back() {
        let start = Instant::now() + Duration::from_secs(10);
        let mut gate = LineGate::new();
        assert_eq!(gate.note(start, MINUTE), Some(1));
        assert_eq!(gate.note(start - Duration::from_secs(5), MINUTE), None);
    }

    #[test]
    fn a_shared_limiter_lets_one_line_through() {
        let limiter = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(limiter.note(), Some(1));
        assert_eq!((0..100).filter_map(|_| limiter.note()).count(), 0);
    }
}
