//! Waits the server asks for: `Retry-After` read from an answer, the hold it puts on every request,
//! the caps on both, and the pacing state the hold lives in.

use std::time::{Duration, Instant};

use crate::emnify::budget::RequestBudget;
use crate::rng::SplitMix64;
use crate::timefmt::parse_http_date;

/// Longest wait for one retry within a request. A `Retry-After` asking for more ends the request
/// instead (the poll fails, and the poll loop waits it out), so the wait is never cut short.
pub(super) const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Longest wait honoured from one `Retry-After` (the hold on every request, and the poll loop's wait):
/// a larger one, such as a misconfigured proxy's `Retry-After: 99999999`, is cut to this so it cannot
/// stop polling for good.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(600);

/// When requests may go out.
pub(super) struct Pacing {
    /// When the latest request reserved so far goes out.
    pub(super) last_request: Option<Instant>,
    /// No request before this: a `Retry-After` on any refused answer (4xx or 5xx) holds every request,
    /// logins included, not only the refused one's retry.
    pub(super) not_before: Option<Instant>,
    /// emnify's rate limits, a share of each (none without a budget).
    pub(super) budget: Option<RequestBudget>,
    pub(super) jitter: SplitMix64,
}

/// The wait a `Retry-After` header asks for, not yet capped: delta-seconds, or an HTTP-date. A date is
/// measured from the same answer's `Date` (the server's clock, which may differ from the host's by
/// minutes); without a readable `Date` it is ignored, as is anything else.
pub(super) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Too many digits for a u64 still means "a very long time" (capped later), not "no wait".
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let until = parse_http_date(value)?;
    let date = parse_http_date(headers.get(reqwest::header::DATE)?.to_str().ok()?)?;
    // A date in the past (by the server's own clock) asks for no wait.
    Some(Duration::from_millis(u64::try_from(until.saturating_sub(date)).unwrap_or(0)))
}

/// Holds every request until `asked` (at most [`MAX_SERVER_WAIT`]) from `now`, and returns the wait held.
/// Logged once per hold, so it cannot flood: only an answer that starts a hold or moves it more than a
/// second later logs at info (warning when capped); answers to requests that were in flight together
/// find the hold already there and log at debug level.
pub(super) fn hold(
    pacing: &mut Pacing,
    endpoint: &'static str,
    status: u16,
    asked: Duration,
    now: Instant,
) -> Duration {
    let wait = asked.min(MAX_SERVER_WAIT);
    let until = now + wait;
    let moved = pacing.not_before.is_none_or(|t| t + Duration::from_secs(1) < until);
    pacing.not_before = Some(pacing.not_before.map_or(until, |t| t.max(until)));
    let wait_s = wait.as_secs_f64();
    if !moved {
        tracing::debug!(
            endpoint,
            status,
            wait_s,
            "emnify asked to wait (Retry-After) while requests were held already"
        );
    } else if asked > wait {
        tracing::warn!(
            endpoint,
            status,
            asked_s = asked.as_secs(),
            cap_s = MAX_SERVER_WAIT.as_secs(),
            "emnify asked to wait longer than the exporter ever waits (Retry-After); holding every request for the cap"
        );
    } else {
        tracing::info!(
            endpoint,
            status,
            wait_s,
            "emnify asked to wait (Retry-After); holding every request until then"
        );
    }
    wait
}
