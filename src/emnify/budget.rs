//! The request budget: token buckets shaped like emnify's documented rate limits, a share of each.
//!
//! emnify limits `GET /api/v1/event` to 10 requests a second with a burst of 5 (per organisation) and
//! every client IP to 2,000 requests per 5 minutes (`../shared/docs/emnify-api.md`, "Rate limits"). A
//! fixed gap between requests either wastes most of that (200 ms: 5 a second) or overruns it on a long
//! catch-up; a token bucket for the first and a sliding 5-minute window for the second use it as
//! allowed (a catch-up runs at the event limit until the window's requests are used, a steady load at
//! the window's average). The exporter takes a share of each limit (90% by default,
//! `--emnify.request-budget-share`), leaving room for the customer's other clients of the same account.
//! A 429 halves the rates at once; each answered request wins back a little, so the exporter recovers
//! within a few dozen requests once the API stops refusing. Logins have their own budget in the client.

use std::time::{Duration, Instant};

/// emnify's documented limit on `GET /api/v1/event`: requests a second, and the burst.
pub const EVENT_LIMIT_PER_SECOND: f64 = 10.0;
pub const EVENT_LIMIT_BURST: f64 = 5.0;
/// emnify's documented limit on all requests from one IP: 2,000 in 5 minutes.
pub const IP_LIMIT: f64 = 2000.0;
pub const IP_WINDOW: Duration = Duration::from_secs(300);
/// The per-IP window as kept: a little longer than emnify's, since a request reaches it some time after
/// it left (a request that left just outside 5 minutes of another may arrive just inside).
const IP_WINDOW_KEPT: Duration = Duration::from_secs(305);

/// The default share of each limit the exporter uses.
pub const DEFAULT_SHARE: f64 = 0.9;

/// Lowest the adaptive factor goes after 429s (a tenth of the share).
const SLOWEST: f64 = 0.1;
/// What one answered request wins back of the adaptive factor.
const RECOVERY_PER_REQUEST: f64 = 0.02;

/// A token bucket: `per_second` tokens added continuously up to `burst`; a request takes one.
#[derive(Debug, Clone)]
struct TokenBucket {
    per_second: f64,
    burst: f64,
    /// May go below zero: requests reserved ahead of time, each waiting its turn.
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(per_second: f64, burst: f64, now: Instant) -> Self {
        TokenBucket { per_second, burst, tokens: burst, at: now }
    }

    fn refill(&mut self, now: Instant, factor: f64) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second * factor).min(self.burst);
        self.at = self.at.max(now);
    }

    /// Takes a token; how long to wait before using it (zero if one was there).
    fn reserve(&mut self, now: Instant, factor: f64) -> Duration {
        self.refill(now, factor);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / (self.per_second * factor))
        }
    }
}

/// At most `limit` requests in any `window`: each request's time is kept until it leaves the window.
#[derive(Debug, Clone)]
struct SlidingWindow {
    limit: usize,
    /// Send times, reserved ones (in the future) included, in order.
    sent: std::collections::VecDeque<Instant>,
}

impl SlidingWindow {
    /// Reserves a send time at or after `now` that keeps every window within `limit`. (Not scaled by the
    /// factor 429s lower: the window may already hold more than a lowered limit, and the exporter would
    /// then send nothing for minutes; the event bucket's rate, which 429s do lower, paces instead.)
    fn reserve(&mut self, now: Instant) -> Duration {
        while self.sent.front().is_some_and(|&t| t + IP_WINDOW_KEPT <= now) {
            self.sent.pop_front();
        }
        let mut at = now.max(self.sent.back().copied().unwrap_or(now));
        if self.sent.len() >= self.limit {
            // The request `limit` places back must have left the window first.
            at = at.max(self.sent[self.sent.len() - self.limit] + IP_WINDOW_KEPT);
        }
        self.sent.push_back(at);
        at - now
    }
}

/// Which of emnify's limits a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /api/v1/event`: the event limit and the per-IP limit.
    Events,
    /// Anything else (logins, the event-type catalogue): the per-IP limit only.
    Other,
}

/// The exporter's share of emnify's request limits.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    events: TokenBucket,
    per_ip: SlidingWindow,
    /// 1 normally; lowered by 429s, won back by answered requests.
    factor: f64,
}

impl RequestBudget {
    /// `share` of each documented limit (clamped to (0, 1]).
    pub fn new(share: f64, now: Instant) -> Self {
        let share = if share.is_finite() { share.clamp(0.01, 1.0) } else { DEFAULT_SHARE };
        RequestBudget {
            // A burst on top of a rate at the full limit is what overruns it (a request that reaches emnify
            // a little early completes a burst of six): the bursts shrink as the share nears 1, so at
            // any share no 5 minutes hold more than the limit, nor any second a burst above emnify's.
            events: TokenBucket::new(
                EVENT_LIMIT_PER_SECOND * share,
                (EVENT_LIMIT_BURST * share).clamp(1.0, EVENT_LIMIT_BURST - 1.0),
                now,
            ),
            per_ip: SlidingWindow {
                limit: ((IP_LIMIT * share).floor() as usize).max(1),
                sent: std::collections::VecDeque::new(),
            },
            factor: 1.0,
        }
    }

    /// Reserves a request to `endpoint` at `now`; returns how long to wait before sending it.
    pub fn reserve(&mut self, endpoint: Endpoint, now: Instant) -> Duration {
        let per_ip = self.per_ip.reserve(now);
        match endpoint {
            Endpoint::Events => per_ip.max(self.events.reserve(now, self.factor)),
            Endpoint::Other => per_ip,
        }
    }

    /// emnify answered 429: halve the rates (down to a tenth) and drop what is left in the bucket.
    pub fn rate_limited(&mut self) {
        self.factor = (self.factor * 0.5).max(SLOWEST);
        self.events.tokens = self.events.tokens.min(0.0);
    }

    /// emnify answered: win back a little of what 429s took.
    pub fn answered(&mut self) {
        self.factor = (self.factor + RECOVERY_PER_REQUEST).min(1.0);
    }

    /// 1 at full share; less after 429s.
    pub fn factor(&self) -> f64 {
        self.factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests sent as soon as the budget allows, from `start` for `seconds`: how many went out, and the
    /// most in any window of `window` seconds (checked at every send).
    fn send_as_allowed(budget: &mut RequestBudget, endpoint: Endpoint, seconds: f64, window: f64) -> (usize, usize) {
        let start = Instant::now();
        let mut now = start;
        let mut sent: Vec<f64> = Vec::new();
        loop {
            let wait = budget.reserve(endpoint, now);
            now += wait;
            let t = now.duration_since(start).as_secs_f64();
            if t > seconds {
                break;
            }
            sent.push(t);
            budget.answered();
        }
        let most = (0..sent.len()).map(|i| sent[i..].iter().take_while(|&&s| s < sent[i] + window).count()).max();
        (sent.len(), most.unwrap_or(0))
    }

    #[test]
    fn event_requests_stay_within_the_share_of_10_a_second_with_bursts_of_5() {
        let mut budget = RequestBudget::new(0.9, Instant::now());
        let (sent, most_in_a_second) = send_as_allowed(&mut budget, Endpoint::Events, 30.0, 1.0);
        // 9 a second after a burst of 4.5: about 274 in 30 s, and no second with more than 13 (emnify
        // allows 10 a second after a burst of 5).
        assert!((270..=276).contains(&sent), "{sent}");
        assert!(most_in_a_second <= 9 + 4, "{most_in_a_second}");
    }

    #[test]
    fn all_requests_stay_within_the_share_of_2000_per_5_minutes() {
        let mut budget = RequestBudget::new(0.9, Instant::now());
        let (sent, most_in_5_minutes) = send_as_allowed(&mut budget, Endpoint::Other, 900.0, 300.0);
        assert!(most_in_5_minutes <= 1800, "{most_in_5_minutes}");
        // 1,800 in every 305 s: 5,400 in 15 minutes.
        assert_eq!(sent, 5_400);
    }

    /// A catch-up runs at the event limit until the 5-minute window's share is used: 9 a second (after a
    /// burst of 4.5) for 200 s at the default share, then the window's average.
    #[test]
    fn a_catch_up_runs_at_the_event_limit_until_the_window_is_used() {
        let mut budget = RequestBudget::new(0.9, Instant::now());
        let (sent, _) = send_as_allowed(&mut budget, Endpoint::Events, 100.0, 1.0);
        assert!((900..=905).contains(&sent), "{sent}");
        let mut budget = RequestBudget::new(0.9, Instant::now());
        let (sent, most_in_5_minutes) = send_as_allowed(&mut budget, Endpoint::Events, 600.0, 300.0);
        assert!(most_in_5_minutes <= 1800, "{most_in_5_minutes}");
        assert!((1_800..=3_600).contains(&sent), "{sent}");
    }

    /// At the full share (`--emnify.request-budget-share 1`) the rate is emnify's limit itself, so no burst
    /// is left on top of it: no 5 minutes hold more than 2,000 requests, no second more than 10 + 4.
    #[test]
    fn the_full_share_never_exceeds_the_limits() {
        let mut budget = RequestBudget::new(1.0, Instant::now());
        let (_, most_in_5_minutes) = send_as_allowed(&mut budget, Endpoint::Other, 900.0, 300.0);
        assert!(most_in_5_minutes <= 2000, "{most_in_5_minutes}");
        let mut budget = RequestBudget::new(1.0, Instant::now());
        let (_, most_in_a_second) = send_as_allowed(&mut budget, Endpoint::Events, 30.0, 1.0);
        assert!(most_in_a_second <= 10 + 4, "{most_in_a_second}");
    }

    /// A 429 when the 5-minute window is nearly full slows the event rate, but never stops requests for
    /// minutes (a window limit lowered below what it already holds would).
    #[test]
    fn a_429_with_a_full_window_waits_only_for_the_slower_rate() {
        let start = Instant::now();
        let mut budget = RequestBudget::new(0.9, start);
        let mut now = start;
        for _ in 0..1_500 {
            now += budget.reserve(Endpoint::Events, now);
        }
        budget.rate_limited();
        let wait = budget.reserve(Endpoint::Events, now).as_secs_f64();
        assert!(wait < 1.0, "{wait} s");
    }

    #[test]
    fn a_429_halves_the_rate_and_answers_win_it_back() {
        let now = Instant::now();
        let mut budget = RequestBudget::new(1.0, now);
        budget.rate_limited();
        assert_eq!(budget.factor(), 0.5);
        // The event bucket is empty now: the next event request waits for a token at half its rate.
        let wait = budget.reserve(Endpoint::Events, now).as_secs_f64();
        assert!((wait - 1.0 / (EVENT_LIMIT_PER_SECOND * 0.5)).abs() < 1e-9, "{wait}");
        for _ in 0..10 {
            budget.rate_limited();
        }
        assert_eq!(budget.factor(), SLOWEST);
        for _ in 0..100 {
            budget.answered();
        }
        assert_eq!(budget.factor(), 1.0);
    }
}
