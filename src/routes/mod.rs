//! The exporter's own routes: `/metrics`, a landing page at `/` (`landing.rs`), `/-/healthy` and
//! `/-/ready` probes, and in the demo the simulator's control routes (`demo.rs`).
//!
//! `/metrics` only encodes what has been counted; it never calls emnify.
//! `/-/ready` is true once configuration is loaded and the listener is up, and
//! is never tied to emnify being reachable: as a sidecar, this exporter's
//! readiness gates the whole pod.

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{
    HeaderValue, ACCEPT, ACCEPT_ENCODING, ALLOW, AUTHORIZATION, CONTENT_ENCODING, VARY, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod demo;
mod landing;
mod state;

pub use state::{About, ServerState};

use crate::http::{respond, serve_http, text, HttpResponse, WholeBody};
use crate::metrics::Exposition;

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
    // Probes stay open: they reveal nothing, and kubelets send no credentials.
    let authorized = || async {
        match &config {
            Some((security, config)) if !matches!(path.as_str(), "/-/healthy" | "/-/ready") => {
                let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_string);
                security.authorized(config.clone(), header).await
            }
            _ => true,
        }
    };
    let demo = state.about.demo_simulator.as_deref().filter(|_| demo::is_demo_path(&path));
    let mut response = match &state.receiver {
        // Pushes carry their own credentials (see `receiver`), so the web config's basic auth is not asked.
        Some(receiver) if path == receiver.path() => receiver.handle(req).await,
        _ if demo.is_some() => match demo {
            Some(simulator) if authorized().await => demo::answer(simulator, &req).await,
            _ => unauthorized(),
        },
        _ if path == state.telemetry_path || matches!(path.as_str(), "/" | "/-/healthy" | "/-/ready") => {
            let authorized = authorized().await;
            let compress = path == state.telemetry_path && req.method() == Method::GET && accepts_gzip(&req);
            answer(&state, &req, &path, authorized, compress).await
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

fn unauthorized() -> HttpResponse {
    let mut response = text(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"emnify-exporter\""));
    response
}

/// The answer of the exporter's own routes; `/metrics` gzip-compressed when `gzip` (see
/// `Metrics::encode_gzip`: the published part is compressed once per publication, not per scrape).
async fn answer(
    state: &ServerState,
    req: &Request<Incoming>,
    path: &str,
    authorized: bool,
    gzip: bool,
) -> HttpResponse {
    if !authorized {
        return unauthorized();
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/-/healthy" => text(StatusCode::OK, "Healthy\n"),
        "/-/ready" => text(StatusCode::OK, "Ready\n"),
        "/" => landing::landing_page(state),
        _ => {
            let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
            let format = Exposition::from_accept(accept);
            // Compressing never fails with in-memory buffers; the plain answer is still right if it did.
            let compressed = if gzip { state.metrics.encode_gzip(format).await } else { None };
            let encoded = compressed.is_some();
            let (first, second) = compressed.unwrap_or_else(|| state.metrics.encode_parts(format));
            let mut response = respond(StatusCode::OK, format.content_type(), WholeBody::two(first, second));
            response.headers_mut().insert(VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
            if encoded {
                response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            }
            response
        }
    }
}
