//! The GETs: a page of the event list and the event-type catalogue, each paced, logged in, logged in
//! again once on a 401, and retried with backoff while the failure is transient.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::connection::{lock, read_limited, Body, Client, Failure};
use super::error::ApiError;
use super::retry::MAX_RETRY_WAIT;
use super::session::Jwt;
use crate::emnify::budget::Endpoint;
use crate::timefmt::format_filter_date;

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

impl Client {
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

    /// `GET /api/v1/event` for one page of a time window, sorted by id (a documented sort field) so the
    /// order is total and stable: ascending, or descending for [`PageQuery::newest_first`].
    pub async fn event_page(&self, query: &PageQuery) -> Result<EventPage, ApiError> {
        let descending = query.newest_first;
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

    /// A GET with login, one re-login on 401, pacing and retries.
    pub(super) async fn get(&self, endpoint: &'static str, url: &str) -> Result<Body, ApiError> {
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

    /// Waits until the request budget allows a request to `endpoint`, and at least
    /// `min_request_interval` after the last one.
    /// Requests in flight at once reserve their turns one after the other, so together they keep to
    /// the budget too.
    pub(super) async fn pace(&self, endpoint: Endpoint) {
        let wait = self.reserve_turn(endpoint, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Reserves the next turn for a request to `endpoint` and returns how long until it.
    pub(super) fn reserve_turn(&self, endpoint: Endpoint, now: Instant) -> Duration {
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
    pub(super) fn retry_wait(&self, attempt: u32, err: &ApiError) -> Option<Duration> {
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

fn header_number<T: std::str::FromStr>(headers: &reqwest::header::HeaderMap, name: &str) -> Option<T> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}
