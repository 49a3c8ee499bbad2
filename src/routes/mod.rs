//! The exporter's own routes: `/metrics`, a landing page at `/`, and `/-/healthy` and `/-/ready` probes.
//!
//! `/metrics` only encodes what has been counted; it never calls emnify.
//! `/-/ready` is true once configuration is loaded and the listener is up, and
//! is never tied to emnify being reachable: as a sidecar, this exporter's
//! readiness gates the whole pod.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_ENCODING, VARY, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{respond, serve_http, text, HttpLimits, HttpResponse, WholeBody};
use crate::metrics::{Exposition, Metrics, StateHealth};
use crate::receiver::Receiver;
use crate::timefmt::now_millis;
use crate::webconfig::WebSecurity;

/// What the handlers read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
    /// TLS and basic auth from `--web.config.file`, if given.
    pub security: Option<Arc<WebSecurity>>,
    /// The Data Streamer receiver, in push and both modes.
    pub receiver: Option<Arc<Receiver>>,
    /// What clients may hold of the server.
    pub limits: HttpLimits,
    /// The set-up, as the landing page describes it.
    pub about: About,
}

/// The set-up as the landing page describes it, fixed at start. Never a secret: the API's URL, not
/// the token; how pushes authenticate, not with what.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// `poll`, `push` or `both`.
    pub mode: &'static str,
    /// The emnify API polled, and every how often (poll and both modes).
    pub api: Option<(String, std::time::Duration)>,
    /// The receiver's path and how pushes authenticate (push and both modes).
    pub webhook: Option<(String, &'static str)>,
    /// The address served (TLS and basic auth are read from the web configuration as it is now: it
    /// reloads when its files change).
    pub listen: String,
    pub state_file: Option<String>,
    /// In the demo: the built-in simulator's base URL.
    pub demo_simulator: Option<String>,
    /// How long a pushed id is remembered in push mode (`--webhook.remember`).
    pub remember_pushed: std::time::Duration,
}

/// Serves the exporter's endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    let security = state.security.clone();
    let limits = state.limits.clone();
    let counters = state.metrics.http.clone();
    serve_http(listener, shutdown, limits, security, counters, move |req| handle(state.clone(), req)).await;
}

async fn handle(state: Arc<ServerState>, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let path = req.uri().path().to_string();
    let config = state.security.as_ref().map(|s| (s, s.current()));
    let mut response = match &state.receiver {
        // Pushes carry their own credentials (see `receiver`), so the web config's basic auth is not asked.
        Some(receiver) if path == receiver.path() => receiver.handle(req).await,
        _ if path == state.telemetry_path || matches!(path.as_str(), "/" | "/-/healthy" | "/-/ready") => {
            // Probes stay open: they reveal nothing, and kubelets send no credentials.
            let probe = matches!(path.as_str(), "/-/healthy" | "/-/ready");
            let authorized = match &config {
                Some((security, config)) if !probe => {
                    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
                    security.authorized(config.clone(), header).await
                }
                _ => true,
            };
            let response = answer(&state, &req, &path, authorized);
            let compress = path == state.telemetry_path && req.method() == Method::GET && accepts_gzip(&req);
            if compress && response.status() == StatusCode::OK {
                gzip(response).await
            } else {
                response
            }
        }
        _ => text(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    if let Some((_, config)) = &config {
        for (name, value) in &config.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(response)
}

/// Whether the request takes a gzip-encoded answer (`Accept-Encoding: gzip`, not at `q=0`).
fn accepts_gzip(req: &Request<Incoming>) -> bool {
    let header = req.headers().get_all(ACCEPT_ENCODING).iter().filter_map(|v| v.to_str().ok());
    header.flat_map(|v| v.split(',')).any(|coding| {
        let mut parts = coding.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let q = parts.find_map(|p| p.strip_prefix("q=")).map_or(1.0, |q| q.trim().parse().unwrap_or(0.0));
        (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0
    })
}

/// The response with its body gzip-compressed, on the blocking pool (a large workspace's exposition
/// is megabytes): fast compression, as node_exporter's, since it is done for every scrape.
async fn gzip(response: HttpResponse) -> HttpResponse {
    use std::io::Write;
    let (mut parts, body) = response.into_parts();
    let chunks: Vec<bytes::Bytes> = body.parts().cloned().collect();
    let compressed = tokio::task::spawn_blocking(move || {
        let size = chunks.iter().map(|c| c.len()).sum::<usize>();
        let mut encoder = flate2::write::GzEncoder::new(Vec::with_capacity(size / 6 + 64), flate2::Compression::fast());
        for chunk in &chunks {
            encoder.write_all(chunk)?;
        }
        encoder.finish()
    })
    .await;
    match compressed {
        Ok(Ok(bytes)) => {
            parts.headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            hyper::Response::from_parts(parts, WholeBody::new(bytes))
        }
        // Never happens with an in-memory buffer; the uncompressed answer is still right.
        _ => hyper::Response::from_parts(parts, body),
    }
}

fn answer(state: &ServerState, req: &Request<Incoming>, path: &str, authorized: bool) -> HttpResponse {
    if !authorized {
        let mut response = text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
        response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"emnify-exporter\""));
        return response;
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" => text(StatusCode::OK, "Ready\n"),
        "/" => landing_page(state),
        _ => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Exposition::from_accept(accept);
            let (published, live) = state.metrics.encode_parts(format);
            let mut response = respond(StatusCode::OK, format.content_type(), WholeBody::two(published, live));
            response.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
            response
        }
    }
}

/// What is de-duplicated, exactly, in the running mode (docs/how-counting-works.md, "Exactly once").
fn dedup_promise(about: &About) -> String {
    match about.mode {
        "push" => format!(
            "each event id once while remembered: a push delivered again within {} of its arrival is not counted \
             twice, a later one is",
            humantime::format_duration(about.remember_pushed)
        ),
        "both" => "each event id once; a pushed event in a span polling has read is never counted again".into(),
        _ => "each event id once".into(),
    }
}

/// The landing page: is it working, and if not, why. Plain HTML, no scripts; every row has an id
/// (tests and people linking to it read them).
fn landing_page(state: &ServerState) -> HttpResponse {
    let status = state.metrics.status();
    let about = &state.about;
    let now = now_millis() as f64 / 1000.0;
    let when = |t: f64| {
        format!("{} ({:.0}s ago)", crate::timefmt::format_event_timestamp((t * 1000.0) as i64), (now - t).max(0.0))
    };
    let esc = |text: &str| html_escape(text);
    let mut rows: Vec<(&str, &str, String)> = Vec::new();

    let saving_fails = matches!(status.state, StateHealth::Failing { .. });
    let polls = about.api.is_some();
    let overall = if saving_fails {
        "<strong class=\"bad\">NOT PUBLISHING</strong>: the state file cannot be saved, so the published counts \
         stay as they were (see State file)"
            .to_string()
    } else if polls && !status.up {
        match &status.last_poll.error {
            Some((_, reason, _)) => format!(
                "<strong class=\"bad\">POLLS FAIL</strong> ({}): see Last poll, and emnify_poll_errors_total",
                esc(reason)
            ),
            None => "starting: no poll has finished yet".to_string(),
        }
    } else if status.state_set_aside.is_some() {
        // It works, but what Prometheus saw before this start was not continued: not a plain "working".
        "<strong class=\"good\">working</strong>, but <strong class=\"bad\">counters restarted from zero</strong>: \
         the state file was set aside at start (see State file set aside)"
            .to_string()
    } else {
        "<strong class=\"good\">working</strong>".to_string()
    };
    rows.push(("status", "Status", overall));
    let mode = match about.mode {
        "poll" => "poll (emnify REST API)",
        "push" => "push (emnify Data Streamer)",
        _ => "both (Data Streamer pushes, polls as the gap-filler)",
    };
    let demo = if about.demo_simulator.is_some() { ", demo: the built-in simulator stands in for emnify" } else { "" };
    rows.push(("mode", "Mode", format!("{mode}{demo}")));
    if let Some((url, interval)) = &about.api {
        rows.push(("api", "emnify API", format!("{} every {}", esc(url), humantime::format_duration(*interval))));
        let last = match status.last_poll.finished {
            // Counts that cannot be published are no success to report.
            Some((t, true)) if saving_fails => {
                format!(
                    "{}: read, but its counts are <strong class=\"bad\">not published</strong> (see State file)",
                    when(t)
                )
            }
            Some((t, true)) => format!("{}: succeeded", when(t)),
            Some((t, false)) => format!("{}: <strong class=\"bad\">failed</strong>", when(t)),
            None => "none finished yet".to_string(),
        };
        rows.push(("last-poll", "Last poll", last));
        let success = status.last_success_unix.map_or("none yet".to_string(), when);
        rows.push(("last-success", "Last successful poll", success));
        let error = match &status.last_poll.error {
            Some((t, reason, message)) => format!("{}: <code>{}</code>: {}", when(*t), esc(reason), esc(message)),
            None => "none since start".to_string(),
        };
        rows.push(("last-error", "Last poll error", error));
    }
    if let Some((path, auth)) = &about.webhook {
        rows.push(("webhook", "Push receiver", format!("<code>{}</code>, authenticated by {}", esc(path), esc(auth))));
        let push = status.last_push_unix.map_or("none yet".to_string(), when);
        rows.push(("last-push", "Last push accepted", push));
        let refused = match &status.last_push_rejected {
            Some((t, reason)) => format!("{}: <code>{}</code> (see emnify_push_rejected_total)", when(*t), esc(reason)),
            None => "none since start".to_string(),
        };
        rows.push(("last-push-refused", "Last push refused", refused));
    }
    rows.push((
        "counted",
        "Events counted",
        format!("{} ({}, restored counts included)", status.events_counted, dedup_promise(about)),
    ));
    let state_file = match (&about.state_file, &status.state) {
        (None, _) | (_, StateHealth::NotUsed) => "not used: counters start from zero at each start".to_string(),
        (Some(path), StateHealth::Saved(Some(t))) => format!("<code>{}</code>: last saved {}", esc(path), when(*t)),
        (Some(path), StateHealth::Saved(None)) => format!("<code>{}</code>: not saved yet", esc(path)),
        (Some(path), StateHealth::Failing { error, last_success_unix }) => format!(
            "<code>{}</code>: <strong class=\"bad\">saving FAILS</strong> ({}); the published counts stay as of \
             the last good save{} until a save works (see emnify_state_save_failures_total)",
            esc(path),
            esc(error),
            last_success_unix.map(|t| format!(", {}", when(t))).unwrap_or_default()
        ),
    };
    rows.push(("state-file", "State file", state_file));
    if let Some(aside) = &status.state_set_aside {
        let moved = match &aside.moved_to {
            Ok(path) => format!("moved to <code>{}</code>, kept for inspection", esc(path)),
            Err(error) => {
                format!("<strong class=\"bad\">not moved</strong> ({}): the next save overwrites it", esc(error))
            }
        };
        rows.push((
            "state-set-aside",
            "State file set aside",
            format!(
                "<strong class=\"bad\">set aside at start</strong>, {}: <code>{}</code> ({}); {moved}. Every \
                 counter restarted from zero, and the events between that file's last save and this start are \
                 missing (with --emnify.lookback, those within it are counted afresh, some a second time); see \
                 emnify_state_set_aside and docs/reliability.md",
                when(aside.at_unix),
                esc(aside.reason),
                esc(&aside.error),
            ),
        ));
    }
    let (organisations, limit, overflow) = status.organisations;
    let overflowing = if overflow > 0 {
        format!("; <strong class=\"bad\">{overflow} events</strong> counted under organisation_id=\"overflow\" (raise --metrics.max-organisations)")
    } else {
        String::new()
    };
    rows.push((
        "series",
        "Series",
        format!("{organisations} organisations with series of their own, of at most {limit}{overflowing}"),
    ));
    let web = state.security.as_ref().map(|s| s.current());
    let tls = web.as_ref().map_or("off", |w| w.tls_mode());
    let auth = if web.as_ref().is_some_and(|w| w.requires_auth()) { "basic auth" } else { "no auth" };
    rows.push(("web", "Served on", format!("{}, TLS {tls}, {auth}", esc(&about.listen))));
    rows.push((
        "build",
        "Build",
        format!(
            "version {} (branch {}, revision {}), built {} with {}",
            crate::VERSION,
            esc(crate::BRANCH),
            esc(crate::REVISION),
            esc(crate::BUILD_DATE),
            esc(crate::RUSTC_VERSION)
        ),
    ));
    let path = esc(&state.telemetry_path);
    let mut links = format!(
        "<a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a>"
    );
    if let Some(sim) = &about.demo_simulator {
        let sim = esc(sim);
        links.push_str(&format!(
            " · <a href=\"{sim}/simulator/truth\">The simulator's truth</a> (what it produced, to compare with the \
             metrics) · <a href=\"{sim}/simulator/stats\">its request counts</a>"
        ));
        rows.push((
            "burst",
            "Try a burst",
            format!(
                "<form method=\"post\" action=\"{sim}/simulator/generate?generic_org=0&amp;count=200\">\
                 <button type=\"submit\">Send 200 Generic events</button></form> or <code>curl -X POST \
                 '{sim}/simulator/generate?generic_org=0&amp;count=200'</code>; the demo also makes one every 45 s"
            ),
        ));
    }
    rows.push(("links", "Links", links));

    let mut table = String::new();
    for (id, name, value) in &rows {
        table.push_str(&format!("<tr id=\"{id}\"><th>{name}</th><td>{value}</td></tr>\n"));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>emnify exporter</title>\n\
         <style>body {{ font-family: sans-serif; margin: 0 1em; }} h1 {{ background: #e6522c; color: white; \
         padding: 0.3em; }} th {{ text-align: left; vertical-align: top; padding: 0.25em 1em 0.25em 0; \
         white-space: nowrap; }} td {{ padding: 0.25em 0; }} .bad {{ color: #b00020; }} .good {{ color: #1b7a1b; }} \
         form {{ display: inline; }}</style></head>\n<body>\n<h1>emnify exporter</h1>\n\
         <p>Prometheus exporter for emnify IoT platform events.</p>\n<table>\n{table}</table>\n</body></html>\n"
    );
    let mut response = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
