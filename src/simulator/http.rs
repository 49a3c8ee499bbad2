//! The simulator's HTTP API: routing, the per-request faults and rate limits, login, and the control
//! routes under `/simulator/`; the event list is answered in `list`, errors in `reply`.

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
use super::list::list_events;
use super::reply::{error, unauthorized};
use super::Simulator;
use crate::catalogue::EVENT_TYPES;
use crate::http::{json, respond, serve_http, ConnectionCounters, HttpLimits, HttpResponse, WholeBody};
use crate::timefmt::format_http_date;
use std::net::SocketAddr;

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
        (_, ["api", "v1" | "v2", ..]) => Some(Limit::Other),
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
        (method, ["api", "v2", "data_stream", rest @ ..]) => {
            sim.lock().note_request();
            if !authorized(&sim, &req) {
                return Ok(whole(unauthorized()).await);
            }
            super::stream_api::answer(&sim, &method, rest)
        }
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
        (&Method::POST, ["data-stream"]) => {
            // `id` and `status` set a stream's state (pause, resume, fail); `error_after` the failures
            // in a row that put streams in Error (0: never).
            if let Some(n) = number("error_after") {
                sim.set_stream_error_after(u32::try_from(n).ok().filter(|n| *n > 0));
            }
            let status = params.get("status").map(|s| super::data_stream::StreamStatus::parse(s));
            match (number("id"), status) {
                (Some(id), Some(Some(status))) if sim.set_data_stream_status(id, status) => json(StatusCode::OK, "{}"),
                (None, None) => json(StatusCode::OK, "{}"),
                _ => error(StatusCode::BAD_REQUEST, "id must name a data stream and status be one of its states"),
            }
        }
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
