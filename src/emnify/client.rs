//! A client for the parts of the emnify REST API the exporter needs.
//!
//! It logs in with the application token (`POST /api/v1/authenticate`), keeps
//! the JWT until shortly before its `exp` claim, logs in again once on a 401,
//! paces its requests, retries transient failures with jittered exponential
//! backoff, honours `Retry-After` on every refused answer (see [`MAX_SERVER_WAIT`]),
//! reports every request to its [`RequestObserver`], and reads emnify's
//! clock from the `Date` header of every answer (see [`EmnifyClock`]).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use reqwest::StatusCode;

use super::budget::{Endpoint, RequestBudget};
use super::clock::EmnifyClock;
use crate::rng::SplitMix64;
use crate::secret::Secret;
use crate::timefmt::{format_filter_date, parse_http_date};

/// Where the application token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Given directly (`EMNIFY_APPLICATION_TOKEN`).
    Value(Secret),
    /// Read from a file on every login, so a rotated Kubernetes Secret is picked up.
    File(PathBuf),
}

impl TokenSource {
    fn read(&self) -> Result<Secret, ApiError> {
        match self {
            TokenSource::Value(s) => Ok(s.clone()),
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ApiError::TokenFile { path: path.display().to_string(), message: e.to_string() })?;
                let token = text.strip_suffix('\n').unwrap_or(&text);
                let token = token.strip_suffix('\r').unwrap_or(token);
                if token.is_empty() {
                    return Err(ApiError::TokenFile {
                        path: path.display().to_string(),
                        message: "the file is empty".to_string(),
                    });
                }
                Ok(Secret::new(token))
            }
        }
    }
}

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
    /// Share of emnify's documented rate limits to use (see [`super::budget`]); `None`: no budget, for
    /// an API without emnify's limits (the simulator in tests and benchmarks).
    pub request_budget_share: Option<f64>,
    /// Attempts per request for transient failures (429, 5xx, timeouts, connection errors).
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with jitter.
    pub retry_base: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("emnify rejected the application token (HTTP {status}); check that it is valid and not revoked")]
    Auth { status: u16 },
    #[error("cannot read the application token file {path}: {message}")]
    TokenFile { path: String, message: String },
    #[error("the login budget (at most {limit} logins per 5 minutes) is used up; waiting before logging in again")]
    LoginBudget { limit: usize },
    #[error("emnify rate-limited {endpoint} (HTTP 429){}", wait_note(*.retry_after))]
    RateLimited { endpoint: &'static str, retry_after: Option<Duration> },
    /// `retry_after`: the wait its `Retry-After` asked for, already cut to [`MAX_SERVER_WAIT`].
    #[error("emnify answered {endpoint} with HTTP {status}{}", wait_note(*.retry_after))]
    Status { endpoint: &'static str, status: u16, retry_after: Option<Duration> },
    #[error("request to {endpoint} timed out")]
    Timeout { endpoint: &'static str },
    #[error("connection to emnify failed on {endpoint}: {message}")]
    Connection { endpoint: &'static str, message: String },
    #[error("response from {endpoint} could not be read: {message}")]
    Decode { endpoint: &'static str, message: String },
}

impl ApiError {
    /// The `reason` label of `emnify_poll_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Auth { .. } | ApiError::TokenFile { .. } => "auth",
            ApiError::LoginBudget { .. } | ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Status { status, .. } if *status >= 500 => "http_5xx",
            ApiError::Status { .. } => "http_4xx",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Connection { .. } => "connection",
            ApiError::Decode { .. } => "decode",
        }
    }

    /// A wait the server asked for (`Retry-After`), if any, at most [`MAX_SERVER_WAIT`]. The poll
    /// loop waits at least this long before its next poll.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, ApiError::RateLimited { .. } | ApiError::Timeout { .. } | ApiError::Connection { .. })
            || matches!(self, ApiError::Status { status, .. } if *status >= 500)
    }
}

/// One page request of `GET /api/v1/event`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageQuery {
    pub page: u32,
    pub per_page: u32,
    /// Window start and end, Unix seconds (the `q` filter's `from`/`until`; emnify needs both).
    pub from: i64,
    pub until: i64,
    /// Highest ids first (`sort=-id`): where events that reached emnify late are, when its ids grow
    /// with arrival (likely, not documented; nothing depends on it but how soon a walk can stop).
    pub newest_first: bool,
}

/// One page of events, undecoded, with emnify's paging headers.
#[derive(Debug, Clone)]
pub struct EventPage {
    pub body: Bytes,
    pub total_pages: Option<u32>,
    pub total_count: Option<u64>,
    pub current_page: Option<u32>,
    /// `X-Count-Per-Page`.
    pub per_page: Option<u32>,
}

/// A JWT and when to stop using it.
struct Jwt {
    token: Secret,
    refresh_at: Option<Instant>,
}

/// At most this many logins in any 5 minutes: emnify allows 100 per IP.
const LOGIN_LIMIT: usize = 90;
const LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Longest wait for one retry within a request. A `Retry-After` asking for more ends the request
/// instead (the poll fails, and the poll loop waits it out), so the wait is never cut short.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Longest wait honoured from one `Retry-After` (the hold on every request, and the poll loop's wait):
/// a larger one, such as a misconfigured proxy's `Retry-After: 99999999`, is cut to this so it cannot
/// stop polling for good.
pub const MAX_SERVER_WAIT: Duration = Duration::from_secs(600);

/// Told of every request the client makes and how it ended (the exporter's metrics count them),
/// so the client does not depend on the metrics it feeds.
pub trait RequestObserver: Send + Sync {
    /// `code` is the HTTP status code, or `timeout` / `error` when no answer came.
    fn request_done(&self, endpoint: &'static str, code: &str);
    /// The request budget's adaptive factor after an answer (see [`super::budget`]).
    fn budget_factor(&self, _factor: f64) {}
}

/// A client shared by the requests a poll has in flight at once: each method takes `&self`.
pub struct Client {
    http: reqwest::Client,
    settings: ClientSettings,
    observer: Arc<dyn RequestObserver>,
    clock: Arc<EmnifyClock>,
    /// The JWT. Logins happen while this lock is held, so requests that find no valid JWT wait for one
    /// login instead of each making their own.
    session: tokio::sync::Mutex<Session>,
    pacing: std::sync::Mutex<Pacing>,
    /// A page buffer handed back by [`Client::recycle`], so the next page is read into memory that is
    /// already mapped instead of a fresh allocation faulted in page by page.
    spare_body: std::sync::Mutex<Option<bytes::BytesMut>>,
    /// emnify answered `sort=-id` with 400 or 422.
    descending_refused: std::sync::atomic::AtomicBool,
}

#[derive(Default)]
struct Session {
    jwt: Option<Jwt>,
    logins: VecDeque<Instant>,
}

/// When requests may go out.
struct Pacing {
    /// When the latest request reserved so far goes out.
    last_request: Option<Instant>,
    /// No request before this: a `Retry-After` on any refused answer (4xx or 5xx) holds every request,
    /// logins included, not only the refused one's retry.
    not_before: Option<Instant>,
    /// emnify's rate limits, a share of each (none without a budget).
    budget: Option<RequestBudget>,
    jitter: SplitMix64,
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
            session: tokio::sync::Mutex::new(Session::default()),
            pacing: std::sync::Mutex::new(Pacing {
                last_request: None,
                not_before: None,
                budget,
                jitter: SplitMix64::from_time(),
            }),
            spare_body: std::sync::Mutex::new(None),
            descending_refused: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// emnify's clock, as the answers so far tell it.
    pub fn clock(&self) -> &Arc<EmnifyClock> {
        &self.clock
    }

    /// emnify's time now (Unix ms). Before any answer has told it, logs in (the login's answer
    /// carries a `Date`); an API that sends no `Date` at all leaves the host's clock as the only one.
    pub async fn emnify_now_millis(&self) -> Result<i64, ApiError> {
        if self.clock.now_millis().is_none() {
            self.jwt().await?;
        }
        Ok(self.clock.now_millis().unwrap_or_else(crate::timefmt::now_millis))
    }

    /// `GET /api/v1/event/type`: the live event-type catalogue as `(id, name)`.
    pub async fn event_types(&self) -> Result<Vec<(u32, String)>, ApiError> {
        let url = format!("{}/api/v1/event/type", self.settings.api_url);
        let response = self.get("event_type", &url).await?;
        let list: Vec<serde_json::Value> = serde_json::from_slice(&response.body).map_err(|e| ApiError::Decode {
            endpoint: "event_type",
            message: crate::emnify::model::describe_decode_error(&e),
        })?;
        Ok(list
            .iter()
            .filter_map(|t| {
                let id = u32::try_from(t.get("id")?.as_u64()?).ok()?;
                let name = t.get("description").or_else(|| t.get("name"))?.as_str()?.trim();
                (!name.is_empty()).then(|| (id, name.to_string()))
            })
            .collect())
    }

    /// `GET /api/v1/event` for one page of a time window, sorted by id so the order is total and stable
    /// (ascending, or descending for [`PageQuery::newest_first`]).
    pub async fn event_page(&self, query: &PageQuery) -> Result<EventPage, ApiError> {
        use std::sync::atomic::Ordering::Relaxed;
        let descending = query.newest_first && !self.descending_refused.load(Relaxed);
        match self.event_page_sorted(query, descending).await {
            // `sort=-id` is in emnify's examples but not promised for events: without it, ascending.
            Err(ApiError::Status { status: 400 | 422, .. }) if descending => {
                tracing::warn!("emnify refused sort=-id on the event list; sorting by ascending id from now on");
                self.descending_refused.store(true, Relaxed);
                self.event_page_sorted(query, false).await
            }
            page => page,
        }
    }

    async fn event_page_sorted(&self, query: &PageQuery, descending: bool) -> Result<EventPage, ApiError> {
        let q = format!("from:{},until:{}", format_filter_date(query.from), format_filter_date(query.until));
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("page", &query.page.to_string())
            .append_pair("per_page", &query.per_page.to_string())
            .append_pair("sort", if descending { "-id" } else { "id" })
            .append_pair("q", &q)
            .finish();
        let url = format!("{}/api/v1/event?{params}", self.settings.api_url);
        let r = self.get("event", &url).await?;
        Ok(EventPage {
            total_pages: header_number(&r.headers, "x-total-pages"),
            total_count: header_number(&r.headers, "x-total-count"),
            current_page: header_number(&r.headers, "x-current-page"),
            per_page: header_number(&r.headers, "x-count-per-page"),
            body: r.body,
        })
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

    /// A GET with login, one re-login on 401, pacing and retries.
    async fn get(&self, endpoint: &'static str, url: &str) -> Result<Body, ApiError> {
        let mut attempt = 0;
        let mut relogged = false;
        loop {
            attempt += 1;
            let result = self.get_once(endpoint, url).await;
            let err = match result {
                Ok(body) => return Ok(body),
                Err(Failure::Unauthorized(rejected)) if !relogged => {
                    // The JWT expired early or was revoked: log in again, once (unless a request that
                    // was in flight at the same time already did).
                    tracing::info!(endpoint, "emnify answered 401; logging in again");
                    let mut session = self.session.lock().await;
                    let same = |jwt: &Jwt| rejected.as_ref().is_none_or(|r| r.expose() == jwt.token.expose());
                    if session.jwt.as_ref().is_some_and(same) {
                        session.jwt = None;
                    }
                    relogged = true;
                    attempt -= 1;
                    continue;
                }
                Err(Failure::Unauthorized(_)) => ApiError::Auth { status: 401 },
                Err(Failure::Api(e)) => e,
            };
            let Some(wait) = self.retry_wait(attempt, &err) else {
                return Err(err);
            };
            tracing::warn!(endpoint, attempt, error = %err, wait_ms = wait.as_millis() as u64, "retrying emnify request");
            tokio::time::sleep(wait).await;
        }
    }

    async fn get_once(&self, endpoint: &'static str, url: &str) -> Result<Body, Failure> {
        let jwt = self.jwt().await.map_err(Failure::Api)?;
        let budgeted = if endpoint == "event" { Endpoint::Events } else { Endpoint::Other };
        self.pace(budgeted).await;
        let sent = self.http.get(url).bearer_auth(jwt.expose()).header("accept", "application/json").send().await;
        let response = self.check(endpoint, sent).map_err(|failure| match failure {
            Failure::Unauthorized(_) => Failure::Unauthorized(Some(jwt)),
            other => other,
        })?;
        let headers = response.headers().clone();
        let buffer = lock(&self.spare_body).take().unwrap_or_default();
        let body = read_limited(endpoint, response, buffer).await.map_err(Failure::Api)?;
        Ok(Body { headers, body })
    }

    /// Records the request and turns its status into a result.
    fn check(
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

    /// The current JWT, logging in first if there is none or it is about to expire.
    async fn jwt(&self) -> Result<Secret, ApiError> {
        let mut session = self.session.lock().await;
        if let Some(jwt) = &session.jwt {
            if jwt.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(jwt.token.clone());
            }
            tracing::debug!("emnify JWT is about to expire; logging in again");
        }
        session.jwt = None;
        let jwt = self.login(&mut session.logins).await?;
        let token = jwt.token.clone();
        session.jwt = Some(jwt);
        Ok(token)
    }

    async fn login(&self, logins: &mut VecDeque<Instant>) -> Result<Jwt, ApiError> {
        let now = Instant::now();
        while logins.front().is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW) {
            logins.pop_front();
        }
        if logins.len() >= LOGIN_LIMIT {
            return Err(ApiError::LoginBudget { limit: LOGIN_LIMIT });
        }
        let application_token = self.settings.token.read()?;
        self.pace(Endpoint::Other).await;
        logins.push_back(Instant::now());
        let url = format!("{}/api/v1/authenticate", self.settings.api_url);
        let body = serde_json::json!({ "application_token": application_token.expose() }).to_string();
        let sent = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let response = match self.check("authenticate", sent) {
            Ok(r) => r,
            Err(Failure::Unauthorized(_)) => return Err(ApiError::Auth { status: 401 }),
            Err(Failure::Api(ApiError::Status { status: status @ (400 | 403 | 404), .. })) => {
                return Err(ApiError::Auth { status })
            }
            Err(Failure::Api(e)) => return Err(e),
        };
        let bytes = read_limited("authenticate", response, bytes::BytesMut::new()).await?;
        let decode_error = |message: &str| ApiError::Decode { endpoint: "authenticate", message: message.to_string() };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| decode_error("the body is not JSON"))?;
        let token = value
            .get("auth_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| decode_error("no auth_token in the response"))?;
        // `exp` is on emnify's clock, which this answer just told.
        let now = self.clock.now_millis().unwrap_or_else(crate::timefmt::now_millis) / 1000;
        let refresh_at = jwt_expiry(token).map(|exp| refresh_instant(exp, now));
        tracing::info!(expires_in_s = jwt_expiry(token).map(|e| e - now), "logged in to emnify");
        Ok(Jwt { token: Secret::new(token), refresh_at })
    }

    /// Waits until the request budget allows a request to `endpoint`, and at least
    /// `min_request_interval` after the last one.
    /// Requests in flight at once reserve their turns one after the other, so together they keep to
    /// the budget too.
    async fn pace(&self, endpoint: Endpoint) {
        let wait = self.reserve_turn(endpoint, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves the next turn for a request to `endpoint` and returns how long until it.
    fn reserve_turn(&self, endpoint: Endpoint, now: Instant) -> Duration {
        let mut pacing = lock(&self.pacing);
        let mut wait = pacing.budget.as_mut().map_or(Duration::ZERO, |budget| budget.reserve(endpoint, now));
        if let Some(last) = pacing.last_request {
            wait = wait.max((last + self.settings.min_request_interval).saturating_duration_since(now));
        }
        if let Some(not_before) = pacing.not_before {
            wait = wait.max(not_before.saturating_duration_since(now));
        }
        pacing.last_request = Some(now + wait);
        wait
    }

    /// The wait before retrying after the `attempt`-th failure, or `None` to give up: the error is not
    /// transient, the attempts are used up, or its `Retry-After` asks for more than one retry may wait
    /// (then the poll loop waits it out before the next poll).
    fn retry_wait(&self, attempt: u32, err: &ApiError) -> Option<Duration> {
        if !err.is_transient() || attempt >= self.settings.max_attempts {
            return None;
        }
        match err.retry_after() {
            Some(asked) if asked > MAX_RETRY_WAIT => None,
            asked => Some(self.backoff(attempt, asked)),
        }
    }

    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.settings.retry_base.saturating_mul(1u32 << (attempt - 1).min(16));
        let jittered = exp.mul_f64(0.5 + lock(&self.pacing).jitter.unit());
        jittered.max(retry_after.unwrap_or_default()).min(MAX_RETRY_WAIT)
    }
}

/// Why a single request failed; 401 is kept apart because it triggers a re-login (of the JWT it
/// carries, the one emnify rejected).
enum Failure {
    Unauthorized(Option<Secret>),
    Api(ApiError),
}

/// Locks one of the client's small pieces of state; a panic elsewhere cannot leave them inconsistent.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

struct Body {
    headers: reqwest::header::HeaderMap,
    body: Bytes,
}

/// Largest page buffer kept for reuse (a page of 1,000 events is about 700 KB).
const MAX_SPARE_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Largest response body read: a page of 10,000 events is about 15 MB; anything far beyond is refused
/// rather than held in memory.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// Reads a body up to [`MAX_BODY_BYTES`] into `body` (an empty buffer, possibly with room already).
async fn read_limited(
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

fn transport_error(endpoint: &'static str, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout { endpoint }
    } else if e.is_decode() || e.is_body() {
        ApiError::Connection { endpoint, message: format!("reading the body failed: {}", error_chain(e)) }
    } else {
        ApiError::Connection { endpoint, message: error_chain(e) }
    }
}

/// The error and its causes (URLs carry no secret: the token travels in the body and the JWT in a header).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn header_number<T: std::str::FromStr>(headers: &reqwest::header::HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The wait a `Retry-After` header asks for, not yet capped: delta-seconds, or an HTTP-date. A date is
/// measured from the same answer's `Date` (the server's clock, which may differ from the host's by
/// minutes); without a readable `Date` it is ignored, as is anything else.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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
fn hold(pacing: &mut Pacing, endpoint: &'static str, status: u16, asked: Duration, now: Instant) -> Duration {
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

/// The end of a failed request's message: the wait emnify asked for, if it did.
fn wait_note(retry_after: Option<Duration>) -> String {
    retry_after.map(|w| format!(", asked to wait {} s (Retry-After)", w.as_secs())).unwrap_or_default()
}

/// The `exp` claim of a JWT, Unix seconds; the signature is emnify's to check, not ours.
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

/// When to log in again: a minute before `exp`, or a quarter of the lifetime for short-lived tokens.
fn refresh_instant(exp: i64, now: i64) -> Instant {
    let lifetime = (exp - now).max(0) as u64;
    let margin = (lifetime / 4).min(60);
    Instant::now() + Duration::from_secs(lifetime - margin)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
