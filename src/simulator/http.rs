//! The simulator's HTTP API: emnify's routes, paging headers and error answers.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::faults::{FaultConfig, RequestFault};
use super::limits::Limit;
use super::state::{ListCache, PagingInjection, StoredEvent};
use super::Simulator;
use crate::catalogue::EVENT_TYPES;
use crate::http::{empty, json, respond, serve_http, ConnectionCounters, HttpLimits, HttpResponse, WholeBody};
use crate::timefmt::{format_http_date, parse_timestamp_millis};
use std::net::SocketAddr;
use std::sync::Arc;

impl Simulator {
    /// Serves the API on `listener` until `shutdown` is cancelled.
    pub async fn serve(self, listener: TcpListener, shutdown: CancellationToken) {
        let limits = HttpLimits { shutdown_grace: Duration::from_secs(2), ..HttpLimits::default() };
        let counters = ConnectionCounters::default();
        serve_http(listener, shutdown, limits, None, counters, move |req| handle(self.clone(), req)).await;
    }

    /// Binds `127.0.0.1:0`, serves there in the background, and returns the address.
    pub async fn start(&self, shutdown: CancellationToken) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let address = listener.local_addr()?;
        tokio::spawn(self.clone().serve(listener, shutdown));
        Ok(address)
    }
}

/// An event-list request being answered, counted in [`super::Stats::event_requests_peak`].
struct EventRequest(Simulator);

impl EventRequest {
    fn start(sim: &Simulator) -> Self {
        let mut state = sim.lock();
        state.event_requests += 1;
        state.stats.event_requests_peak = state.stats.event_requests_peak.max(state.event_requests);
        EventRequest(sim.clone())
    }
}

impl Drop for EventRequest {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        state.event_requests = state.event_requests.saturating_sub(1);
    }
}

/// A response body: whole, or sent in two halves with a stall between them.
enum SimBody {
    Whole(Option<Bytes>),
    Stalling { first: Option<Bytes>, pause: Pin<Box<tokio::time::Sleep>>, rest: Option<Bytes> },
}

impl hyper::body::Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Infallible>>> {
        let frame = |b: Bytes| Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        match self.get_mut() {
            SimBody::Whole(bytes) => bytes.take().map_or(Poll::Ready(None), frame),
            SimBody::Stalling { first, pause, rest } => {
                if let Some(b) = first.take() {
                    return frame(b);
                }
                if pause.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                rest.take().map_or(Poll::Ready(None), frame)
            }
        }
    }
}

type SimResponse = Response<SimBody>;

/// Answers one request; every answer carries the simulator's time in `Date`, as emnify's do.
async fn handle(sim: Simulator, req: Request<Incoming>) -> Result<SimResponse, std::io::Error> {
    let date = format_http_date(sim.now_millis());
    let mut response = route(sim, req).await?;
    if let Ok(value) = HeaderValue::from_str(&date) {
        response.headers_mut().insert(hyper::header::DATE, value);
    }
    Ok(response)
}

async fn route(sim: Simulator, req: Request<Incoming>) -> Result<SimResponse, std::io::Error> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let limited = match (req.method(), segments.as_slice()) {
        (&Method::POST, ["api", "v1", "authenticate"]) => Some(Limit::Login),
        (&Method::GET, ["api", "v1", "event"]) => Some(Limit::EventList),
        (_, ["api", "v1", ..]) => Some(Limit::Other),
        _ => None,
    };
    let refused = limited.is_some_and(|kind| {
        let mut state = sim.lock();
        let admitted = state.limits.as_mut().is_none_or(|limits| limits.admit(kind, std::time::Instant::now()));
        state.stats.rate_limited += u64::from(!admitted);
        !admitted
    });
    if refused {
        return Ok(whole(error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests")).await);
    }
    let _answering = matches!(limited, Some(Limit::EventList)).then(|| EventRequest::start(&sim));
    if let (Some(Limit::EventList), Some((low, high))) = (limited, sim.config.page_latency) {
        let unit = sim.lock().rng.unit();
        tokio::time::sleep(low + (high - low).mul_f64(unit)).await;
    }
    let plain = match (req.method().clone(), segments.as_slice()) {
        (Method::POST, ["api", "v1", "authenticate"]) => authenticate(&sim, req).await,
        (_, ["simulator", rest @ ..]) => control(&sim, req.method(), rest, &query),
        (Method::GET, ["api", "v1", rest @ ..]) => {
            sim.lock().note_request();
            if !authorized(&sim, &req) {
                return Ok(whole(unauthorized()).await);
            }
            let fault = sim.lock().faults.request();
            let response = match fault {
                Some(RequestFault::Reset) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset"))
                }
                Some(RequestFault::RateLimited(retry_after)) => {
                    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
                    set_retry_after(&sim, &mut r, retry_after);
                    r
                }
                Some(RequestFault::ServerError(code, retry_after)) => {
                    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                    let mut r = error(status, "injected server error");
                    set_retry_after(&sim, &mut r, retry_after);
                    r
                }
                Some(RequestFault::Unauthorized) => {
                    // As if the JWT had expired or been revoked: it stops working for good.
                    if let Some(token) = bearer(&req) {
                        sim.lock().tokens.remove(&token);
                    }
                    unauthorized()
                }
                Some(RequestFault::Html) => {
                    respond(
                        StatusCode::OK,
                        "text/html",
                        Bytes::from_static(
                            b"<html><head><title>503</title></head><body><h1>Service temporarily unavailable</h1></body></html>",
                        ),
                    )
                }
                other => {
                    let response = api_get(&sim, rest, &query);
                    return Ok(mangle(response, other).await);
                }
            };
            return Ok(whole(response).await);
        }
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    };
    Ok(whole(plain).await)
}

/// Adds `Retry-After` for `secs`, as seconds or (`retry-after-form=date`) as an HTTP-date on the
/// simulator's clock, the one its `Date` header tells. Both are whole seconds, and the `Date` is taken
/// before this, so a date never asks for less than `secs`.
fn set_retry_after(sim: &Simulator, response: &mut HttpResponse, secs: Option<u64>) {
    let Some(secs) = secs else { return };
    let as_date = sim.lock().faults.config.retry_after_as_date;
    let value = if as_date {
        let millis = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
        HeaderValue::from_str(&format_http_date(sim.now_millis().saturating_add(millis))).ok()
    } else {
        Some(HeaderValue::from(secs))
    };
    if let Some(value) = value {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
}

async fn body_bytes(body: WholeBody) -> Bytes {
    match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    }
}

async fn whole(response: HttpResponse) -> SimResponse {
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, SimBody::Whole(Some(body_bytes(body).await)))
}

/// Applies a body fault (stall, truncation, syntax error) to an otherwise good answer.
async fn mangle(response: HttpResponse, fault: Option<RequestFault>) -> SimResponse {
    let (parts, body) = response.into_parts();
    let bytes = body_bytes(body).await;
    let half = bytes.len() / 2;
    let body = match fault {
        Some(RequestFault::Stall(pause)) => SimBody::Stalling {
            first: Some(bytes.slice(..half)),
            pause: Box::pin(tokio::time::sleep(pause)),
            rest: Some(bytes.slice(half..)),
        },
        Some(RequestFault::Truncate) => SimBody::Whole(Some(bytes.slice(..half))),
        Some(RequestFault::Malformed) => {
            let mut broken = bytes.to_vec();
            // Stray braces right after the opening bracket: still looks like JSON, never parses.
            broken.splice(1.min(broken.len())..1.min(broken.len()), b"},{".iter().copied());
            SimBody::Whole(Some(Bytes::from(broken)))
        }
        _ => SimBody::Whole(Some(bytes)),
    };
    let mut parts = parts;
    parts.headers.remove(hyper::header::CONTENT_LENGTH);
    Response::from_parts(parts, body)
}

fn api_get(sim: &Simulator, rest: &[&str], query: &str) -> HttpResponse {
    match rest {
        ["event", "type"] => json(StatusCode::OK, event_types(sim)),
        ["event"] => list_events(sim, query, None),
        ["endpoint", id, "event"] => match id.parse::<u64>() {
            Ok(id) => list_events(sim, query, Some(id)),
            Err(_) => error(StatusCode::BAD_REQUEST, "invalid endpoint id"),
        },
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// emnify's error body: `{error_code, error_token, message}`.
fn error(status: StatusCode, message: &str) -> HttpResponse {
    let body = json!({
        "error_code": status.as_u16(),
        "error_token": status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"),
        "message": message,
    });
    json(status, body.to_string())
}

/// 401 with an empty body, as emnify answers most authentication failures.
fn unauthorized() -> HttpResponse {
    empty(StatusCode::UNAUTHORIZED)
}

async fn authenticate(sim: &Simulator, req: Request<Incoming>) -> HttpResponse {
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return error(StatusCode::BAD_REQUEST, "unreadable body"),
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "malformed JSON body");
    };
    let Some(token) = value.get("application_token").and_then(|t| t.as_str()) else {
        return error(StatusCode::BAD_REQUEST, "application_token is required");
    };
    let mut state = sim.lock();
    state.note_login();
    if let Some(status) = state.faults.login() {
        state.stats.failed_logins += 1;
        return error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "injected login failure",
        );
    }
    if token != sim.config.application_token || state.revoked {
        state.stats.failed_logins += 1;
        return unauthorized();
    }
    state.stats.logins += 1;
    let now = sim.now_millis() / 1000;
    let exp = now + sim.config.jwt_lifetime.as_secs() as i64;
    let nonce = state.rng.next_u64();
    let encode = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let header = encode(&json!({"alg": "HS512", "typ": "JWT"}));
    let claims = encode(&json!({
        "iss": "emnify-simulator", "sub": "application-token", "iat": now, "exp": exp,
        "esc.org": super::events::ORGANISATIONS[0].id, "jti": nonce,
    }));
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce.to_be_bytes());
    let jwt = format!("{header}.{claims}.{signature}");
    state.tokens.insert(jwt.clone(), exp);
    json(StatusCode::OK, json!({ "auth_token": jwt }).to_string())
}

/// Whether the request carries a JWT this simulator issued and that has not expired.
fn authorized(sim: &Simulator, req: &Request<Incoming>) -> bool {
    let bearer = bearer(req);
    let mut state = sim.lock();
    let valid = bearer.and_then(|t| state.tokens.get(&t).copied()).is_some_and(|exp| exp > sim.now_millis() / 1000);
    if !valid {
        state.stats.unauthorized += 1;
    }
    valid
}

fn bearer(req: &Request<Incoming>) -> Option<String> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    Some(value.strip_prefix("Bearer ")?.trim().to_string())
}

/// The simulator's own control routes under `/simulator/`, for the demo, scripts and tests.
fn control(sim: &Simulator, method: &Method, rest: &[&str], query: &str) -> HttpResponse {
    let params: std::collections::HashMap<String, String> =
        form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let number = |name: &str| params.get(name).and_then(|v| v.parse::<u64>().ok());
    match (method, rest) {
        (&Method::GET, ["truth"]) => truth(sim),
        (&Method::GET, ["stats"]) => {
            let s = sim.stats();
            let body = json!({"logins": s.logins, "failed_logins": s.failed_logins, "unauthorized": s.unauthorized,
                              "event_pages": s.event_pages, "requests": s.requests, "faults_injected": s.faults_injected,
                              "rate_limited": s.rate_limited, "events": sim.truth().total()});
            json(StatusCode::OK, body.to_string())
        }
        (&Method::POST, ["generate"]) => {
            let count = number("count").unwrap_or(1) as usize;
            match number("generic_org") {
                Some(org) => sim.generic_burst(org as usize, count),
                None => sim.generate_aged(count, Duration::from_secs(number("age").unwrap_or(0))),
            }
            json(StatusCode::OK, json!({"total": sim.truth().total()}).to_string())
        }
        (&Method::POST, ["faults"]) => match params.get("spec").map_or(Ok(FaultConfig::none()), |s| s.parse()) {
            Ok(config) => {
                sim.set_faults(config);
                json(StatusCode::OK, "{}")
            }
            Err(message) => error(StatusCode::BAD_REQUEST, &message),
        },
        (&Method::POST, ["rate"]) => match params.get("events_per_second").and_then(|v| v.parse::<f64>().ok()) {
            Some(rate) if rate >= 0.0 => {
                sim.set_rate(rate);
                json(StatusCode::OK, "{}")
            }
            _ => error(StatusCode::BAD_REQUEST, "events_per_second must be a number >= 0"),
        },
        (&Method::POST, ["expire-tokens"]) => {
            sim.expire_tokens();
            json(StatusCode::OK, "{}")
        }
        (&Method::POST, ["revoke"]) => {
            sim.set_revoked(params.get("revoked").is_none_or(|v| v != "false"));
            json(StatusCode::OK, "{}")
        }
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn event_types(sim: &Simulator) -> String {
    sim.lock().stats.event_type_reads += 1;
    let built_in = EVENT_TYPES.iter().map(|(id, name, _)| json!({"id": id, "description": name}));
    let added = sim.added_event_types().into_iter().map(|(id, name)| json!({"id": id, "description": name}));
    serde_json::Value::Array(built_in.chain(added).collect()).to_string()
}

fn truth(sim: &Simulator) -> HttpResponse {
    let truth = sim.truth();
    let events: Vec<serde_json::Value> = truth
        .events
        .iter()
        .map(|(k, v)| {
            json!({"event_type_id": k.event_type_id, "event_source": k.event_source,
                   "event_severity": k.event_severity, "organisation_id": k.organisation_id, "count": v})
        })
        .collect();
    let generic: Vec<serde_json::Value> = truth
        .generic
        .iter()
        .map(|((cause, org), v)| json!({"cause": cause, "organisation_id": org, "count": v}))
        .collect();
    let body = json!({"total": truth.total(), "events": events, "generic": generic, "unreadable": truth.unreadable});
    json(StatusCode::OK, body.to_string())
}

/// The parsed `q` filter.
#[derive(Default)]
struct Filter {
    from: Option<i64>,
    until: Option<i64>,
    types: Option<Vec<u32>>,
    source: Option<u32>,
    severity: Option<u32>,
    alert: Option<bool>,
}

impl Filter {
    fn parse(q: &str) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for part in q.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value) = part.split_once(':').ok_or_else(|| format!("invalid filter '{part}'"))?;
            let number = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("invalid value for {field}"));
            match field.trim() {
                "from" => filter.from = Some(parse_date(value)?),
                "until" => filter.until = Some(parse_date(value)?),
                "type" => filter.types = Some(value.split('|').map(number).collect::<Result<_, _>>()?),
                "source" => filter.source = Some(number(value)?),
                "severity" => filter.severity = Some(number(value)?),
                "alert" => filter.alert = Some(value.trim() == "true"),
                other => return Err(format!("unsupported filter '{other}'")),
            }
        }
        if filter.from.is_some() != filter.until.is_some() {
            return Err("from and until must be given together".into());
        }
        Ok(filter)
    }

    fn matches(&self, e: &StoredEvent, endpoint: Option<u64>) -> bool {
        // `until` names a second; the whole second is inside the window.
        self.from.is_none_or(|f| e.timestamp_millis >= f)
            && self.until.is_none_or(|u| e.timestamp_millis < u + 1000)
            && self.types.as_ref().is_none_or(|t| t.contains(&e.event_type))
            && self.source.is_none_or(|s| s == e.source)
            && self.severity.is_none_or(|s| s == e.severity)
            && self.alert.is_none_or(|a| a == e.alert)
            && endpoint.is_none_or(|id| e.endpoint == Some(id))
    }
}

fn parse_date(value: &str) -> Result<i64, String> {
    parse_timestamp_millis(value).ok_or_else(|| format!("invalid date '{value}', expected YYYY-MM-DDTHH:mm:ssZ"))
}

/// A `sort` field: descending or not, and the value compared.
type SortKey = (bool, fn(&StoredEvent) -> i128);

fn sort_key(field: &str) -> Result<SortKey, String> {
    let (descending, name) = match field.strip_prefix('-') {
        Some(name) => (true, name),
        None => (false, field.strip_prefix('+').unwrap_or(field)),
    };
    let key: fn(&StoredEvent) -> i128 = match name {
        "id" => |e| i128::from(e.id),
        "timestamp" => |e| i128::from(e.timestamp_millis),
        "type" => |e| i128::from(e.event_type),
        "source" => |e| i128::from(e.source),
        "severity" => |e| i128::from(e.severity),
        "alert" => |e| i128::from(e.alert),
        other => return Err(format!("unsupported sort field '{other}'")),
    };
    Ok((descending, key))
}

fn list_events(sim: &Simulator, query: &str, endpoint: Option<u64>) -> HttpResponse {
    let mut page: i64 = 1;
    let mut per_page: i64 = 0;
    let mut sort = String::new();
    let mut q = String::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "page" => match value.trim().parse() {
                Ok(p) => page = p,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid page"),
            },
            "per_page" => match value.trim().parse() {
                Ok(p) => per_page = p,
                Err(_) => return error(StatusCode::BAD_REQUEST, "invalid per_page"),
            },
            "sort" => sort = value.into_owned(),
            "q" => q = value.into_owned(),
            _ => {}
        }
    }
    let filter = match Filter::parse(&q) {
        Ok(f) => f,
        Err(message) => return error(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    // Unsorted lists come newest first, as the Portal shows them.
    let sort_spec = if sort.is_empty() { "-timestamp".to_string() } else { sort.clone() };
    let mut keys = Vec::new();
    for field in sort_spec.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        match sort_key(field) {
            Ok((true, _)) if sim.config.refuse_descending_sort => {
                return error(StatusCode::UNPROCESSABLE_ENTITY, "InvalidSortCriteria");
            }
            Ok(k) => keys.push(k),
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        }
    }
    let per_page = if per_page < 1 {
        sim.config.default_per_page
    } else {
        per_page.min(i64::from(sim.config.max_per_page)) as u32
    };

    let mut state = sim.lock();
    state.stats.event_pages += 1;
    // Walking a large list page by page asks the same question again and again: keep the last answer
    // while no event was added, so serving a page costs the page, not a sort of everything.
    let question = format!("{q}|{sort_spec}|{endpoint:?}");
    let cached = state
        .list_cache
        .as_ref()
        .filter(|c| c.question == question && c.events == state.events.len())
        .map(|c| c.selected.clone());
    let selected = match cached {
        Some(selected) => selected,
        None => {
            let events = &state.events;
            let mut selected: Vec<usize> =
                (0..events.len()).filter(|&i| filter.matches(&events[i], endpoint)).collect();
            if let [(descending, key)] = keys.as_slice() {
                // One field (what pollers ask for): sort by a precomputed key, not by chasing every
                // event in every comparison (a 100,000-event window sorts several times faster).
                let sign = if *descending { -1 } else { 1 };
                selected.sort_by_cached_key(|&i| (sign * key(&events[i]), events[i].id));
            } else {
                selected.sort_by(|&a, &b| {
                    let (a, b) = (&events[a], &events[b]);
                    for (descending, key) in &keys {
                        let ord = key(a).cmp(&key(b));
                        let ord = if *descending { ord.reverse() } else { ord };
                        if ord.is_ne() {
                            return ord;
                        }
                    }
                    a.id.cmp(&b.id)
                });
            }
            let selected = Arc::new(selected);
            let events = state.events.len();
            state.list_cache = Some(ListCache { question, events, selected: selected.clone() });
            selected
        }
    };
    let total = selected.len() as u64;
    let total_pages = total.div_ceil(u64::from(per_page)).max(1);
    // Past the end, emnify serves the last page again; before the start, the first.
    let current = (page.max(1) as u64).min(total_pages);
    let start = ((current - 1) * u64::from(per_page)) as usize;
    // Fault: the last event of the page before shows up again at the top of this one.
    let previous = start.checked_sub(1).and_then(|i| selected.get(i)).copied();
    let repeated = previous.filter(|_| state.faults.duplicate());
    // The page is copied straight from the stored JSON, under the lock: no per-event reference counting.
    let events = &state.events;
    let items: Vec<&str> = repeated
        .into_iter()
        .chain(selected.iter().skip(start).take(per_page as usize).copied())
        .map(|i| &*events[i].json)
        .collect();
    let mut body = String::with_capacity(items.iter().map(|s| s.len() + 1).sum::<usize>() + 2);
    body.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(item);
    }
    body.push(']');
    let omit_paging = sim.config.omit_paging_headers || state.faults.missing_paging();
    let (reported_total, reported_pages) = match state.faults.wrong_paging() {
        Some(delta) => {
            let pages = (total_pages as i64 + delta).max(1) as u64;
            (pages * u64::from(per_page), pages)
        }
        None if state.total_count_offset != 0 => {
            let told = (total as i64).saturating_add(state.total_count_offset).max(0) as u64;
            (told, told.div_ceil(u64::from(per_page)).max(1))
        }
        None => (total, total_pages),
    };

    let mut late = state.injections.front().filter(|i| u64::from(i.page) == current).cloned();
    if late.is_some() {
        state.injections.pop_front();
    } else if let Some((count, age)) = state.faults.late() {
        late = Some(PagingInjection { page: current as u32, count, age, expire: 0 });
    }
    if let Some(injection) = late {
        let time = sim.now_millis() - crate::timefmt::duration_millis(injection.age);
        for _ in 0..injection.count {
            state.produce(time, None);
        }
        state.expire_lowest_ids(injection.expire);
    }
    drop(state);

    let mut response = json(StatusCode::OK, body);
    let base = match endpoint {
        Some(id) => format!("/api/v1/endpoint/{id}/event"),
        None => "/api/v1/event".to_string(),
    };
    let link = |p: u64, rel: &str| {
        let params = form_urlencoded::Serializer::new(String::new())
            .append_pair("page", &p.to_string())
            .append_pair("per_page", &per_page.to_string())
            .append_pair("sort", &sort)
            .append_pair("q", &q)
            .finish();
        format!("<{base}?{params}>;rel=\"{rel}\"")
    };
    let mut links = vec![link(1, "first")];
    if current > 1 {
        links.push(link(current - 1, "prev"));
    }
    if current < total_pages {
        links.push(link(current + 1, "next"));
    }
    links.push(link(total_pages, "last"));
    if omit_paging {
        return response;
    }
    let headers = response.headers_mut();
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("link", links.join(", "));
    set("x-count-per-page", per_page.to_string());
    set("x-current-page", current.to_string());
    set("x-total-count", reported_total.to_string());
    set("x-total-pages", reported_pages.to_string());
    if !q.is_empty() {
        set("x-filter", q.clone());
    }
    if !sort.is_empty() {
        set("x-sort", sort.clone());
    }
    response
}
