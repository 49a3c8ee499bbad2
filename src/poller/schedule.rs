//! How long to wait before the next poll after a failure: jittered exponential backoff, honouring what
//! emnify asked for.

use std::time::Duration;

use crate::emnify::ApiError;

/// Wait after the `failures`-th failed poll in a row; `unit` is a random number in `[0, 1)`.
///
/// Transient errors retry within the poll interval; a rejected token backs off to
/// five minutes so a revoked token never hammers emnify's login limit.
pub fn retry_delay(failures: u32, interval: Duration, error: &ApiError, unit: f64) -> Duration {
    let cap = if error.reason() == "auth" { interval.max(Duration::from_secs(300)) } else { interval };
    let exp = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let wait = exp.min(cap).mul_f64(0.75 + 0.5 * unit);
    wait.max(error.retry_after().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let err = ApiError::Status { endpoint: "event", status: 503, retry_after: None };
        let minute = Duration::from_secs(60);
        assert_eq!(retry_delay(1, minute, &err, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(3, minute, &err, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(30, minute, &err, 0.5), minute);
        let auth = ApiError::Auth { status: 401 };
        assert_eq!(retry_delay(30, minute, &auth, 0.5), Duration::from_secs(300));
        let limited = ApiError::RateLimited { endpoint: "event", retry_after: Some(Duration::from_secs(90)) };
        assert_eq!(retry_delay(1, minute, &limited, 0.0), Duration::from_secs(90));
    }
}
