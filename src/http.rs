//! HTTP plumbing shared by the exporter's routes, the Data Streamer receiver and the simulator.
//!
//! One accept loop (plain or TLS), the connection limits, graceful shutdown, and the builder
//! every complete response is made with.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::webconfig::WebSecurity;

/// How long open connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What one server lets its clients hold: every one of them is the client's to choose otherwise.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// Connections open at once; further clients wait in the kernel's backlog until one closes.
    pub max_connections: usize,
    /// Bytes of request line and headers buffered per connection; beyond it the request is refused
    /// (hyper's own default is about 400 KB, which 600 unfinished requests turn into 240 MB).
    pub max_header_bytes: usize,
    /// Time a client gets to send its request line and headers.
    pub header_timeout: Duration,
    /// How long open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Every complete response: the whole body at once.
pub type HttpResponse = Response<Full<Bytes>>;

/// A response with `status`, a `Content-Type` and a body.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A response with `status` and no body.
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    respond(status, "text/plain; charset=utf-8", Bytes::from_static(body.as_bytes()))
}

/// An `application/json` response.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    respond(status, "application/json", body)
}

/// Longest a client may take over the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs an HTTP/1 server: one task per connection (over TLS when `security` says so), then, once
/// `shutdown` is cancelled, at most [`HttpLimits::shutdown_grace`] for open connections to finish.
///
/// A handler that returns `Err` has its connection closed without an answer.
pub async fn serve_http<F, Fut, B, E>(
    listener: TcpListener,
    shutdown: CancellationToken,
    limits: HttpLimits,
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
    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // A connection slot first: at the limit, new clients wait in the backlog instead of each
        // holding a buffer here.
        let slot = tokio::select! {
            slot = connections.clone().acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
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
        let (header_timeout, max_header_bytes) = (limits.header_timeout, limits.max_header_bytes);
        tokio::spawn(async move {
            let builder = {
                let mut b = http1::Builder::new();
                b.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_buf_size(max_header_bytes);
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
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.shutdown_grace) => {
            tracing::warn!("HTTP connections still open after the shutdown grace period; closing them");
        }
    }
}
