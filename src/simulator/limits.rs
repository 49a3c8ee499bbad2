//! emnify's documented rate limits, enforced as its API gateway does (`../shared/docs/emnify-api.md`,
//! "Rate limits"): `GET /api/v1/event` 10 requests a second with a burst of 5, every client 2,000
//! requests per 5 minutes, logins 100 per 5 minutes; beyond them, 429 without `Retry-After` (emnify
//! documents none). Written apart from the exporter's own budget, so the one checks the other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

const EVENTS_PER_SECOND: f64 = 10.0;
const EVENTS_BURST: f64 = 5.0;
const WINDOW: Duration = Duration::from_secs(300);
const PER_CLIENT: usize = 2000;
const LOGINS: usize = 100;

/// Which limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    EventList,
    Login,
    Other,
}

/// The limiter's state: the event list's bucket, and the requests and logins of the last 5 minutes.
#[derive(Debug)]
pub struct Limits {
    event_tokens: f64,
    event_at: Option<Instant>,
    requests: VecDeque<Instant>,
    logins: VecDeque<Instant>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { event_tokens: EVENTS_BURST, event_at: None, requests: VecDeque::new(), logins: VecDeque::new() }
    }
}

impl Limits {
    /// Whether a request arriving `now` is answered (true) or refused with 429 (false). Refused
    /// requests count against the 5-minute windows too, as the average emnify measures includes them.
    pub fn admit(&mut self, kind: Limit, now: Instant) -> bool {
        for log in [&mut self.requests, &mut self.logins] {
            while log.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
                log.pop_front();
            }
        }
        self.requests.push_back(now);
        let mut admitted = self.requests.len() <= PER_CLIENT;
        match kind {
            Limit::Login => {
                self.logins.push_back(now);
                admitted &= self.logins.len() <= LOGINS;
            }
            Limit::EventList => {
                let elapsed = self.event_at.map_or(0.0, |at| now.duration_since(at).as_secs_f64());
                self.event_at = Some(now);
                self.event_tokens = (self.event_tokens + elapsed * EVENTS_PER_SECOND).min(EVENTS_BURST);
                if admitted && self.event_tokens >= 1.0 {
                    self.event_tokens -= 1.0;
                } else {
                    admitted = false;
                }
            }
            Limit::Other => {}
        }
        admitted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_list_takes_a_burst_of_5_then_10_a_second() {
        let mut limits = Limits::default();
        let start = Instant::now();
        let burst = (0..8).filter(|_| limits.admit(Limit::EventList, start)).count();
        assert_eq!(burst, 5);
        // Then one every 100 ms: a request each 50 ms is answered every other time.
        let answered =
            (1..=20).filter(|i| limits.admit(Limit::EventList, start + Duration::from_millis(50 * i))).count();
        assert_eq!(answered, 10);
    }

    #[test]
    fn clients_get_2000_requests_and_100_logins_per_5_minutes() {
        let mut limits = Limits::default();
        let start = Instant::now();
        let answered = (0..2100).filter(|i| limits.admit(Limit::Other, start + Duration::from_millis(*i))).count();
        assert_eq!(answered, 2000);
        let later = start + WINDOW + Duration::from_secs(3);
        let logins = (0..150).filter(|_| limits.admit(Limit::Login, later)).count();
        assert_eq!(logins, 100);
    }
}
