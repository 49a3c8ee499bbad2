//! emnify's clock as its responses tell it: the `Date` header, advanced by local monotonic time.
//!
//! emnify filters `q=from:…,until:…` by its own event timestamps on its own clock, so windows and
//! the start of counting are taken from it, never from the host's wall clock (which can be wrong by
//! minutes: a resumed VM, an edge box without NTP). `Date` has one-second resolution and is stamped
//! before the answer travels, so each reading is up to a second (plus the latency) behind emnify's
//! real time; the reading that puts emnify's time furthest ahead is the tightest, and is kept until
//! a later one disagrees by more than [`JUMP`] (emnify's clock itself was stepped).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::timefmt::{duration_millis, now_millis};

/// A change of emnify's clock, against what the readings so far say, that is followed rather than
/// smoothed away (truncation and latency stay well below it).
const JUMP: Duration = Duration::from_secs(3);

/// emnify's time, estimated from the `Date` headers of its responses.
#[derive(Debug)]
pub struct EmnifyClock {
    /// Fixed at creation; monotonic time is measured from here.
    origin: Instant,
    reading: Mutex<Option<Reading>>,
}

#[derive(Debug, Clone, Copy)]
struct Reading {
    /// emnify's time (Unix ms) at `origin`: a reading taken `elapsed` after `origin` said `date`,
    /// so this is `date - elapsed`.
    at_origin_millis: i64,
    /// emnify's time minus the host's wall clock, at the last reading.
    offset_millis: i64,
}

impl Default for EmnifyClock {
    fn default() -> Self {
        EmnifyClock { origin: Instant::now(), reading: Mutex::new(None) }
    }
}

impl EmnifyClock {
    /// Takes a response's `Date` (Unix ms) as received now.
    pub fn observe(&self, date_millis: i64) {
        self.observe_at(date_millis, Instant::now(), now_millis());
    }

    fn observe_at(&self, date_millis: i64, received: Instant, host_millis: i64) {
        let elapsed = duration_millis(received.saturating_duration_since(self.origin));
        let at_origin = date_millis.saturating_sub(elapsed);
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let kept = match *reading {
            Some(old) if (at_origin - old.at_origin_millis).abs() <= duration_millis(JUMP) => {
                old.at_origin_millis.max(at_origin)
            }
            _ => at_origin,
        };
        let offset = kept + elapsed - host_millis;
        *reading = Some(Reading { at_origin_millis: kept, offset_millis: offset });
    }

    /// emnify's time now (Unix ms), or `None` before the first response with a `Date`.
    pub fn now_millis(&self) -> Option<i64> {
        let reading = *self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        reading.map(|r| r.at_origin_millis + duration_millis(self.origin.elapsed()))
    }

    /// emnify's clock minus the host's, as of the last response; `None` before one.
    pub fn offset_millis(&self) -> Option<i64> {
        self.reading.lock().unwrap_or_else(PoisonError::into_inner).map(|r| r.offset_millis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_date_header_by_monotonic_time_and_keeps_the_tightest_reading() {
        let clock = EmnifyClock::default();
        assert_eq!(clock.now_millis(), None);
        let t0 = clock.origin;
        // emnify an hour ahead of the host; the first Date was truncated by 800 ms.
        let host = 1_700_000_000_000;
        clock.observe_at(host + 3_600_000 - 800, t0 + Duration::from_secs(10), host);
        assert_eq!(clock.offset_millis(), Some(3_600_000 - 800));
        // A tighter reading 5 s later moves the estimate up; a looser one does not move it back.
        clock.observe_at(host + 3_600_000 + 5_000 - 100, t0 + Duration::from_secs(15), host + 5_000);
        clock.observe_at(host + 3_600_000 + 6_000 - 900, t0 + Duration::from_secs(16), host + 6_000);
        let at_origin = clock.reading.lock().unwrap().unwrap().at_origin_millis;
        assert_eq!(at_origin, host + 3_600_000 - 10_000 - 100);
        // emnify's clock stepped back a minute: followed, not smoothed away.
        clock.observe_at(host + 3_540_000 + 7_000, t0 + Duration::from_secs(17), host + 7_000);
        assert_eq!(clock.offset_millis(), Some(3_540_000));
        let now = clock.now_millis().unwrap();
        assert!(now >= host + 3_540_000 - 17_000, "{now}");
    }
}
