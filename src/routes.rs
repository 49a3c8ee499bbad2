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

fn landing_page(state: &ServerState) -> HttpResponse {
    let status = state.metrics.status();
    let now = now_millis() as f64 / 1000.0;
    let ago = |t: f64| format!("{:.0}s ago", (now - t).max(0.0));
    let poll = match status.last_success_unix {
        Some(t) => format!(
            "last successful poll {}; the last poll {}",
            ago(t),
            if status.up { "succeeded" } else { "failed (see emnify_poll_errors_total)" }
        ),
        None if status.up => "polling".to_string(),
        None => "no successful poll yet".to_string(),
    };
    // A failing save freezes the published counts: that must be said here, whatever the poll did.
    let poll = match &status.state {
        StateHealth::Failing { .. } => "polls go on, but their counts are not published while the state file \
                                        cannot be saved"
            .to_string(),
        _ => poll,
    };
    let saving = match &status.state {
        StateHealth::NotUsed => String::new(),
        StateHealth::Saved(Some(t)) => format!("<p>State file: last saved {}.</p>\n", ago(*t)),
        StateHealth::Saved(None) => "<p>State file: not saved yet.</p>\n".to_string(),
        StateHealth::Failing { error, last_success_unix } => format!(
            "<p style=\"color: #b00020\"><strong>State file: saving FAILS</strong> ({}); the published counts \
             stay as of the last good save{} until a save works. See emnify_state_save_failures_total.</p>\n",
            html_escape(error),
            last_success_unix.map(|t| format!(", {}", ago(t))).unwrap_or_default()
        ),
    };
    let path = html_escape(&state.telemetry_path);
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>emnify exporter</title></head>\n\
         <body style=\"font-family: sans-serif\">\n\
         <h1 style=\"background: #e6522c; color: white; padding: 0.3em\">emnify exporter</h1>\n\
         <p>Prometheus exporter for emnify IoT platform events. Version {version} (revision {revision}).</p>\n\
         <p>Status: {poll}. Events counted since start: {counted}.</p>\n{saving}\
         <ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li>\
         <li><a href=\"/-/ready\">Readiness</a></li></ul>\n</body></html>\n",
        version = crate::VERSION,
        revision = crate::REVISION,
        counted = status.events_counted,
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
