//! The HTTP surface: `/metrics`, a landing page at `/`, and `/-/healthy` and `/-/ready` probes.
//!
//! `/metrics` only encodes what the poller has counted; it never calls emnify.
//! `/-/ready` is true once configuration is loaded and the listener is up, and
//! is never tied to emnify being reachable: as a sidecar, this exporter's
//! readiness gates the whole pod.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, TEXT_CONTENT_TYPE};
use crate::receiver::Receiver;
use crate::timefmt::now_millis;
use crate::webconfig::{WebConfig, WebSecurity};

/// How long open connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
    /// TLS and basic auth from `--web.config.file`, if given.
    pub security: Option<Arc<WebSecurity>>,
    /// The Data Streamer receiver, in push and both modes.
    pub receiver: Option<Arc<Receiver>>,
}

/// Every response this crate's servers send: a complete body.
pub type HttpResponse = Response<Full<Bytes>>;

/// Serves the exporter's endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    let security = state.security.clone();
    serve_http(listener, shutdown, SHUTDOWN_GRACE, security, move |req| handle(state.clone(), req)).await;
}

/// Longest a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs an HTTP/1 server: one task per connection (over TLS when `security` says so), then, once
/// `shutdown` is cancelled, at most `grace` for open connections to finish.
///
/// A handler that returns `Err` has its connection closed without an answer.
pub async fn serve_http<F, Fut, B, E>(
    listener: TcpListener,
    shutdown: CancellationToken,
    grace: Duration,
    security: Option<Arc<WebSecurity>>,
    handler: F,
) where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<Response<B>, E>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let graceful = GracefulShutdown::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                // Responses go out whole; Nagle's algorithm would hold their last segment back until the
                // client's delayed ACK (milliseconds per response on a kept-alive connection).
                let _ = stream.set_nodelay(true);
                stream
            }
            Err(err) => {
                // Usually out of file descriptors: wait a little instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let tls = security.as_ref().and_then(|s| s.current().tls.clone());
        let handler = handler.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = {
                let mut b = http1::Builder::new();
                b.timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10));
                b
            };
            let result = match tls {
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config);
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls_stream)) => {
                            let connection = builder.serve_connection(TokioIo::new(tls_stream), service_fn(handler));
                            watcher.watch(connection).await
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(error = %err, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake timed out");
                            return;
                        }
                    }
                }
                None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service_fn(handler))).await,
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("HTTP connections still open after the shutdown grace period; closing them");
        }
    }
}

async fn handle(state: Arc<ServerState>, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    let path = req.uri().path().to_string();
    let config = state.security.as_ref().map(|s| (s, s.current()));
    let mut response = match &state.receiver {
        // Pushes carry their own credentials (see `receiver`), so the web config's basic auth is not asked.
        Some(receiver) if path == receiver.path() => receiver.handle(req).await,
        _ if path == state.telemetry_path || matches!(path.as_str(), "/" | "/-/healthy" | "/-/ready") => {
            respond(&state, &req, &path, config.as_ref().map(|(s, c)| (s.as_ref(), c.as_ref())))
        }
        _ => plain(StatusCode::NOT_FOUND, "404 page not found\n"),
    };
    if let Some((_, config)) = &config {
        for (name, value) in &config.headers {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    Ok(response)
}

fn respond(
    state: &ServerState,
    req: &Request<Incoming>,
    path: &str,
    security: Option<(&WebSecurity, &WebConfig)>,
) -> HttpResponse {
    // Probes stay open: they reveal nothing, and kubelets send no credentials.
    let probe = matches!(path, "/-/healthy" | "/-/ready");
    if let Some((security, config)) = security {
        let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        if !probe && !security.authorized(config, header) {
            let mut response = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
            response
                .headers_mut()
                .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"emnify-exporter\""));
            return response;
        }
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/-/healthy" => plain(StatusCode::OK, "Healthy\n"),
        "/-/ready" => plain(StatusCode::OK, "Ready\n"),
        "/" => landing_page(state),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
            response
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

fn landing_page(state: &ServerState) -> HttpResponse {
    let status = state.metrics.status();
    let poll = match status.last_success_unix {
        Some(t) => format!(
            "last successful poll {:.0}s ago; the last poll {}",
            (now_millis() as f64 / 1000.0 - t).max(0.0),
            if status.up { "succeeded" } else { "failed (see emnify_poll_errors_total)" }
        ),
        None if status.up => "polling".to_string(),
        None => "no successful poll yet".to_string(),
    };
    let path = html_escape(&state.telemetry_path);
    let body = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>emnify exporter</title></head>\n\
         <body style=\"font-family: sans-serif\">\n\
         <h1 style=\"background: #e6522c; color: white; padding: 0.3em\">emnify exporter</h1>\n\
         <p>Prometheus exporter for emnify IoT platform events. Version {version} (revision {revision}).</p>\n\
         <p>Status: {poll}. Events counted since start: {counted}.</p>\n\
         <ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li>\
         <li><a href=\"/-/ready\">Readiness</a></li></ul>\n</body></html>\n",
        version = crate::VERSION,
        revision = crate::REVISION,
        counted = status.events_counted,
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
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
