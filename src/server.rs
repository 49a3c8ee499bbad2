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
use hyper::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, TEXT_CONTENT_TYPE};
use crate::timefmt::now_millis;

/// How long open connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
}

/// Every response this crate's servers send: a complete body.
pub type HttpResponse = Response<Full<Bytes>>;

/// Serves the exporter's endpoints on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<ServerState>, shutdown: CancellationToken) {
    serve_http(listener, shutdown, SHUTDOWN_GRACE, move |req| handle(state.clone(), req)).await;
}

/// Runs an HTTP/1 server: one task per connection, then, once `shutdown` is cancelled, at most `grace`
/// for open connections to finish.
///
/// A handler that returns `Err` has its connection closed without an answer.
pub async fn serve_http<F, Fut, B, E>(listener: TcpListener, shutdown: CancellationToken, grace: Duration, handler: F)
where
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
            Ok((stream, _)) => stream,
            Err(err) => {
                // Usually out of file descriptors: wait a little instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service_fn(handler));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
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
    let path = req.uri().path();
    let known = path == state.telemetry_path || matches!(path, "/" | "/-/healthy" | "/-/ready");
    if !known {
        return Ok(plain(StatusCode::NOT_FOUND, "404 page not found\n"));
    }
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    Ok(match path {
        "/-/healthy" => plain(StatusCode::OK, "Healthy\n"),
        "/-/ready" => plain(StatusCode::OK, "Ready\n"),
        "/" => landing_page(&state),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.encode())));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
            response
        }
    })
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
