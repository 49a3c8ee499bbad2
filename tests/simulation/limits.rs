//! emnify's documented rate limits for the event list, in simulated time.
//!
//! Per IP: 2,000 requests in any 5 minutes ("429 until the average request rate is within the specified
//! limit"). Per path, `GET /api/v1/event/`: 10 requests per second with a burst of 5 (a token bucket).
//! Refused requests consume no budget (as an API gateway's throttle does).

use std::collections::VecDeque;

use crate::seed::SECOND;

pub const IP_LIMIT: usize = 2_000;
pub const IP_WINDOW_MS: i64 = 300 * SECOND;
pub const PATH_BURST: i64 = 5;
pub const PATH_PER_SECOND: i64 = 10;

/// Both limits for one client IP and the event list.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// When each request of the last 5 minutes was admitted.
    admitted: VecDeque<i64>,
    /// Thousandths of a request in the bucket, and when it was last refilled.
    bucket_milli: i64,
    bucket_at: i64,
}

impl RateLimiter {
    /// Full bucket at `start_ms`.
    pub fn new(start_ms: i64) -> RateLimiter {
        RateLimiter { admitted: VecDeque::new(), bucket_milli: PATH_BURST * 1000, bucket_at: start_ms }
    }

    /// A request at `now_ms`: `None` if admitted (it consumes budget), else `Some(whole seconds until a
    /// request would pass)`, at least 1.
    pub fn check(&mut self, now_ms: i64) -> Option<u64> {
        while self.admitted.front().is_some_and(|&t| t <= now_ms - IP_WINDOW_MS) {
            self.admitted.pop_front();
        }
        let elapsed = (now_ms - self.bucket_at).max(0);
        self.bucket_milli = (self.bucket_milli + elapsed * PATH_PER_SECOND).min(PATH_BURST * 1000);
        self.bucket_at = self.bucket_at.max(now_ms);
        if self.admitted.len() >= IP_LIMIT {
            let wait_ms = self.admitted[0] + IP_WINDOW_MS - now_ms;
            return Some((wait_ms as u64).div_ceil(1000).max(1));
        }
        if self.bucket_milli < 1000 {
            let wait_ms = (1000 - self.bucket_milli).div_euclid(PATH_PER_SECOND) + 1;
            return Some((wait_ms as u64).div_ceil(1000).max(1));
        }
        self.bucket_milli -= 1000;
        self.admitted.push_back(now_ms);
        None
    }
}
