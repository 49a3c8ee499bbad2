//! The [`Client`] itself: its settings, the state its requests share, and how one answer is checked
//! (recorded, held for its `Retry-After`, read for emnify's clock) and its body read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::StatusCode;

use super::error::{transport_error, ApiError};
use super::retry::{hold, retry_after, Pacing};
use super::session::{Session, TokenSource};
use crate::emnify::budget::RequestBudget;
use crate::emnify::clock::EmnifyClock;
use crate::rng::SplitMix64;
use crate::secret::Secret;
use crate::timefmt::parse_http_date;

/// How the client talks to emnify.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Base URL, e.g. `https://cdn.emnify.net`; paths `/api/v1/...` are appended.
    pub api_url: String,
    pub token: TokenSource,
    /// Limit for one whole request, body included.
    pub request_timeout: Duration,
    /// Least time between two requests, on top of the budget (0: the budget alone paces).
    pub min_request_interval: Duration,
    /// Share of emnify's documented rate limits to use (see [`crate::emnify::budget`]); `None`: no budget, for
    /// an API without emnify's limits (the simulator in tests and benchmarks).
    pub request_budget_share: Option<f64>,
    /// Attempts per request for transient failures (429, 5xx, timeouts, connection errors).
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub retry_base: Duration,
}

/// Told of every request the client makes and how it ended (the exporter's metrics count them),
/// so the client does not depend on the metrics it feeds.
pub trait RequestObserver: Send + Sync {
    /// `code` is the HTTP status code, or `timeout` / `error` when no answer came.
    fn request_done(&self, endpoint: &'static str, code: &str);
    /// The request budget's adaptive factor after an answer (see [`crate::emnify::budget`]).
    fn budget_factor(&self, _factor: f64) {}
}

/// A client shared by the requests a poll has in flight at once: each method takes `&self`.
pub struct Client {
    pub(super) http: reqwest::Client,
    pub(super) settings: ClientSettings,
    pub(super) observer: Arc<dyn RequestObserver>,
    pub(super) clock: Arc<EmnifyClock>,
    /// The JWT. Logins happen while this lock is held, so requests that find no valid JWT wait for one
    /// login instead of each making their own.
    /// Shared with the client's siblings (see [`Client::sibling`]), as is `pacing`.
    pub(super) session: Arc<tokio::sync::Mutex<Session>>,
    pub(super) pacing: Arc<std::sync::Mutex<Pacing>>,
    /// A page buffer handed back by [`Client::recycle`], so the next page is read into memory that is
    /// already mapped instead of a fresh allocation faulted in page by page.
    pub(super) spare_body: std::sync::Mutex<Option<bytes::BytesMut>>,
}

impl Client {
    pub fn new(settings: ClientSettings, observer: Arc<dyn RequestObserver>) -> Result<Self, ApiError> {
        crate::install_crypto_provider();
        let http = reqwest::Client::builder()
            .user_agent(concat!("emnify-exporter/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout)
            .connect_timeout(settings.request_timeout.min(Duration::from_secs(10)))
            // A connection idle longer than the server keeps it may be closed by the server just as a
            // request goes out on it ("connection closed before message completed", a retry and a
            // warning). Servers keep idle connections 5 s (Node) to 60 s (load balancers); the
            // exporter's own server 10 s. Idle connections are dropped before the shortest of those.
            .pool_idle_timeout(Duration::from_secs(4))
            .build()
            .map_err(|e| ApiError::Connection { endpoint: "client", message: e.to_string() })?;
        let mut settings = settings;
        settings.api_url = settings.api_url.trim_end_matches('/').to_string();
        let budget = settings.request_budget_share.map(|share| RequestBudget::new(share, Instant::now()));
        Ok(Client {
            http,
            settings,
            observer,
            clock: Arc::new(EmnifyClock::default()),
            session: Arc::new(tokio::sync::Mutex::new(Session::default())),
            pacing: Arc::new(std::sync::Mutex::new(Pacing {
                last_request: None,
                not_before: None,
                budget,
                jitter: SplitMix64::from_time(),
            })),
            spare_body: std::sync::Mutex::new(None),
        })
    }

    /// A client for other requests of the same exporter (the Data Streamer watchdog's) that shares this
    /// one's JWT, its request budget and pacing, and its reading of emnify's clock: the two together keep
    /// to one budget and log in once. Only the attempts per request are its own.
    pub fn sibling(&self, max_attempts: u32) -> Client {
        Client {
            http: self.http.clone(),
            settings: ClientSettings { max_attempts, ..self.settings.clone() },
            observer: self.observer.clone(),
            clock: self.clock.clone(),
            session: self.session.clone(),
            pacing: self.pacing.clone(),
            spare_body: std::sync::Mutex::new(None),
        }
    }

    /// emnify's clock, as the answers so far tell it.
    pub fn clock(&self) -> &Arc<EmnifyClock> {
        &self.clock
    }

    /// Takes back the body of a page that is done with, to read a later page into. Only ordinary page
    /// sizes are kept: one huge page must not stay resident for the life of the process.
    pub fn recycle(&self, body: Bytes) {
        if let Ok(mut buffer) = body.try_into_mut() {
            let fits = buffer.capacity() <= MAX_SPARE_BODY_BYTES;
            let mut spare = lock(&self.spare_body);
            if fits && spare.as_ref().is_none_or(|spare| spare.capacity() < buffer.capacity()) {
                buffer.clear();
                *spare = Some(buffer);
            }
        }
    }

    /// Records the request and turns its status into a result.
    pub(super) fn check(
        &self,
        endpoint: &'static str,
        sent: Result<reqwest::Response, reqwest::Error>,
    ) -> Result<reqwest::Response, Failure> {
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let err = transport_error(endpoint, &e);
                let code = if matches!(err, ApiError::Timeout { .. }) { "timeout" } else { "error" };
                self.observer.request_done(endpoint, code);
                return Err(Failure::Api(err));
            }
        };
        let status = response.status();
        self.observer.request_done(endpoint, status.as_str());
        // A server that refuses and names a time to come back means it whatever the status: 503 and
        // 429 by the standard, but proxies and WAFs send it with 403 or 502 too. On a success it
        // would mean nothing for the next request.
        let refused = status.is_client_error() || status.is_server_error();
        let asked = if refused { retry_after(response.headers()) } else { None };
        let retry_after = {
            let mut pacing = lock(&self.pacing);
            let retry_after = asked.map(|asked| hold(&mut pacing, endpoint, status.as_u16(), asked, Instant::now()));
            if let Some(budget) = &mut pacing.budget {
                match status {
                    StatusCode::TOO_MANY_REQUESTS => budget.rate_limited(),
                    _ => budget.answered(),
                }
                self.observer.budget_factor(budget.factor());
            }
            retry_after
        };
        // Every answer, errors too, tells emnify's time.
        if let Some(date) = response.headers().get(reqwest::header::DATE).and_then(|d| d.to_str().ok()) {
            if let Some(millis) = parse_http_date(date) {
                self.clock.observe(millis);
            }
        }
        if status.is_success() {
            return Ok(response);
        }
        Err(match status {
            StatusCode::UNAUTHORIZED => Failure::Unauthorized(None),
            StatusCode::TOO_MANY_REQUESTS => Failure::Api(ApiError::RateLimited { endpoint, retry_after }),
            s => Failure::Api(ApiError::Status { endpoint, status: s.as_u16(), retry_after }),
        })
    }
}

/// Why a single request failed; 401 is kept apart because it triggers a re-login (of the JWT it
/// carries, the one emnify rejected).
pub(super) enum Failure {
    Unauthorized(Option<Secret>),
    Api(ApiError),
}

/// Locks one of the client's small pieces of state; a panic elsewhere cannot leave them inconsistent.
pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) struct Body {
    pub(super) headers: reqwest::header::HeaderMap,
    pub(super) body: Bytes,
}

/// Largest page buffer kept for reuse (a page of 1,000 events is about 700 KB).
const MAX_SPARE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Largest response body read: a page of 10,000 events is about 15 MB; anything far beyond is refused
/// rather than held in memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Reads a body up to [`MAX_BODY_BYTES`] into `body` (an empty buffer, possibly with room already).
pub(super) async fn read_limited(
    endpoint: &'static str,
    mut response: reqwest::Response,
    mut body: bytes::BytesMut,
) -> Result<Bytes, ApiError> {
    let too_large =
        || ApiError::Decode { endpoint, message: format!("the body is larger than {MAX_BODY_BYTES} bytes") };
    if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    // Sized from Content-Length (already capped above), so a page is not copied while it grows.
    body.clear();
    body.reserve(response.content_length().unwrap_or(0) as usize);
    while let Some(chunk) = response.chunk().await.map_err(|e| transport_error(endpoint, &e))? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
