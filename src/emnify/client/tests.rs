//! The client's unit tests: JWT expiry, the token file, error reasons, `Retry-After` and the hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::StatusCode;

use super::connection::Failure;
use super::retry::{retry_after, MAX_RETRY_WAIT};
use super::*;
use crate::emnify::budget::Endpoint;
use crate::secret::Secret;

#[test]
fn reads_exp_from_a_jwt() {
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000,"sub":"x"}"#);
    assert_eq!(jwt_expiry(&format!("h.{payload}.s")), Some(1_700_000_000));
    assert_eq!(jwt_expiry("not-a-jwt"), None);
    assert_eq!(jwt_expiry("a.%%%.c"), None);
}

#[test]
fn token_file_drops_only_the_trailing_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "  tok en \n").unwrap();
    assert_eq!(TokenSource::File(path.clone()).read().unwrap().expose(), "  tok en ");
    std::fs::write(&path, "\n").unwrap();
    assert!(TokenSource::File(path).read().is_err());
}

#[test]
fn errors_map_to_metric_reasons() {
    assert_eq!(ApiError::Status { endpoint: "event", status: 503, retry_after: None }.reason(), "http_5xx");
    assert_eq!(ApiError::Status { endpoint: "event", status: 422, retry_after: None }.reason(), "http_4xx");
    assert_eq!(ApiError::Auth { status: 401 }.reason(), "auth");
    assert!(ApiError::RateLimited { endpoint: "event", retry_after: None }.is_transient());
    assert!(!ApiError::Status { endpoint: "event", status: 400, retry_after: None }.is_transient());
}

struct Quiet;
impl RequestObserver for Quiet {
    fn request_done(&self, _endpoint: &'static str, _code: &str) {}
}

fn test_client() -> Client {
    let settings = ClientSettings {
        api_url: "http://127.0.0.1:9".to_string(),
        token: TokenSource::Value(Secret::new("t")),
        request_timeout: Duration::from_secs(1),
        min_request_interval: Duration::ZERO,
        request_budget_share: None,
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
    };
    Client::new(settings, Arc::new(Quiet)).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> reqwest::header::HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                name.parse::<reqwest::header::HeaderName>().unwrap(),
                reqwest::header::HeaderValue::from_str(value).unwrap(),
            )
        })
        .collect()
}

/// An answer as emnify might send it, run through the client's checks.
fn answer(client: &Client, status: u16, pairs: &[(&str, &str)]) -> Result<(), ApiError> {
    let mut response = hyper::Response::new(String::new());
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    *response.headers_mut() = headers(pairs);
    match client.check("event", Ok(reqwest::Response::from(response))) {
        Ok(_) => Ok(()),
        Err(Failure::Api(e)) => Err(e),
        Err(Failure::Unauthorized(_)) => Err(ApiError::Auth { status: 401 }),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn retry_after_reads_seconds_and_dates_relative_to_the_answers_date() {
    let date = ("date", "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(retry_after(&headers(&[("retry-after", "20")])), Some(secs(20)));
    assert_eq!(retry_after(&headers(&[("retry-after", " 0 ")])), Some(secs(0)));
    // Absurd, even beyond u64: a very long wait (capped where it is used), not none.
    assert_eq!(retry_after(&headers(&[("retry-after", "99999999")])), Some(secs(99_999_999)));
    assert_eq!(retry_after(&headers(&[("retry-after", "99999999999999999999999")])), Some(secs(u64::MAX)));
    for nonsense in ["-5", "1.5", "soon", "", "+3"] {
        assert_eq!(retry_after(&headers(&[("retry-after", nonsense)])), None, "{nonsense:?}");
    }
    assert_eq!(retry_after(&headers(&[date])), None);
    // The HTTP-date form counts from the answer's `Date`, whatever the host's clock says.
    let in_90s = ("retry-after", "Sun, 06 Nov 1994 08:51:07 GMT");
    assert_eq!(retry_after(&headers(&[in_90s, date])), Some(secs(90)));
    let past = ("retry-after", "Sun, 06 Nov 1994 08:40:00 GMT");
    assert_eq!(retry_after(&headers(&[past, date])), Some(secs(0)));
    // Without a `Date` to measure from (or with an unreadable one), the date form is ignored.
    assert_eq!(retry_after(&headers(&[in_90s])), None);
    assert_eq!(retry_after(&headers(&[in_90s, ("date", "yesterday")])), None);
    assert_eq!(retry_after(&headers(&[("retry-after", "Sun, 06 Nov 1994 08:51:07"), date])), None);
}

#[test]
fn a_503_with_retry_after_is_waited_out_and_holds_every_request() {
    let client = test_client();
    let err = answer(&client, 503, &[("retry-after", "20")]).unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(20)));
    assert_eq!(err.reason(), "http_5xx");
    assert_eq!(err.to_string(), "emnify answered event with HTTP 503, asked to wait 20 s (Retry-After)");
    // The retry of the refused request waits at least as asked...
    let wait = client.retry_wait(1, &err).expect("a 503 is retried");
    assert!(wait >= secs(20) && wait <= MAX_RETRY_WAIT, "{wait:?}");
    // ...and so does every other request, logins included.
    for endpoint in [Endpoint::Events, Endpoint::Other] {
        let held = client.reserve_turn(endpoint, Instant::now());
        assert!(held > secs(19) && held <= secs(20), "{held:?}");
    }
    // Without the header a 503 is retried at the ordinary backoff.
    let plain = answer(&test_client(), 503, &[]).unwrap_err();
    assert_eq!(plain.retry_after(), None);
    assert!(client.retry_wait(1, &plain).is_some_and(|w| w < secs(1)));
}

#[test]
fn every_refused_status_is_held_but_not_a_success() {
    for status in [500, 502, 504, 429, 400, 403, 404, 401] {
        let client = test_client();
        let err = answer(&client, status, &[("retry-after", "5")]).unwrap_err();
        if status != 401 {
            assert_eq!(err.retry_after(), Some(secs(5)), "{status}");
        }
        let held = client.reserve_turn(Endpoint::Other, Instant::now());
        assert!(held > secs(4), "HTTP {status}: held {held:?}");
    }
    let client = test_client();
    assert!(answer(&client, 200, &[("retry-after", "5")]).is_ok());
    assert_eq!(client.reserve_turn(Endpoint::Other, Instant::now()), Duration::ZERO);
}

#[test]
fn absurd_waits_are_capped_and_long_ones_left_to_the_poll_loop() {
    let client = test_client();
    let err = answer(&client, 503, &[("retry-after", "99999999")]).unwrap_err();
    assert_eq!(err.retry_after(), Some(MAX_SERVER_WAIT));
    let held = client.reserve_turn(Endpoint::Events, Instant::now());
    assert!(held > MAX_SERVER_WAIT - secs(1) && held <= MAX_SERVER_WAIT, "{held:?}");
    // Longer than one retry may wait: the request ends, and the poll loop waits (at most the cap).
    assert_eq!(client.retry_wait(1, &err), None);
    let limited = answer(&client, 429, &[("retry-after", "90")]).unwrap_err();
    assert_eq!((limited.retry_after(), client.retry_wait(1, &limited)), (Some(secs(90)), None));
    // Within the cap for one retry: retried after at least that long.
    let minute = answer(&client, 502, &[("retry-after", "60")]).unwrap_err();
    assert_eq!(client.retry_wait(1, &minute), Some(MAX_RETRY_WAIT));
    // The attempts still run out.
    assert_eq!(client.retry_wait(3, &minute), None);
}

#[test]
fn an_http_date_retry_after_counts_from_the_answers_date() {
    let client = test_client();
    // The host's clock is decades past this `Date`: only the difference between the two counts.
    let err = answer(
        &client,
        503,
        &[("date", "Sun, 06 Nov 1994 08:49:37 GMT"), ("retry-after", "Sun, 06 Nov 1994 08:49:57 GMT")],
    )
    .unwrap_err();
    assert_eq!(err.retry_after(), Some(secs(20)));
    assert!(client.retry_wait(1, &err).is_some_and(|w| w >= secs(20)));
}
