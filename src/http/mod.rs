//! HTTP plumbing shared by the exporter's routes, the Data Streamer receiver and the simulator.
//!
//! One accept loop (plain or TLS), the connection limits, graceful shutdown, and the builder
//! every complete response is made with.
//!
//! At the connection limit the oldest connection that is not in the middle of a request (an
//! unfinished header, an idle keep-alive, a client not reading its answer, a handler waiting for the
//! client's body: see [`ClientPaced`]) is closed to make room: a slowloris attack fills the slots, but
//! a probe or scrape still gets one at once.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::loglimit::{LineGate, LogLimiter, MINUTE};
use crate::webconfig::WebSecurity;

mod connections;
mod handshake;
mod write_timeout;

pub use connections::ClientPaced;
use connections::{ConnectionTable, RequestMark, Slot, Trimmer};
use write_timeout::WriteTimeout;

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
    /// Longest a client may take no bytes of its answer (a many-MB `/metrics` held by a client
    /// that never reads); then the connection is closed.
    pub write_timeout: Duration,
    /// How long open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
    /// TLS handshakes whose CPU (the server's signature) is spent at once, in arrival order (see `handshake`).
    pub max_tls_handshakes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: SHUTDOWN_GRACE,
            max_tls_handshakes: 1,
        }
    }
}

/// Every complete response: the whole body at once.
pub type HttpResponse = Response<WholeBody>;

/// A body known whole, in up to two parts sent as they are: a large shared buffer (the published
/// exposition, referenced by every scrape in flight rather than copied for each) and a small fresh one.
#[derive(Debug, Default)]
pub struct WholeBody([Option<Bytes>; 2]);

impl WholeBody {
    pub fn new(body: impl Into<Bytes>) -> Self {
        WholeBody([Some(body.into()), None])
    }

    /// `first` then `second`, as one body.
    pub fn two(first: Bytes, second: Bytes) -> Self {
        WholeBody([Some(first), Some(second)])
    }

    fn len(&self) -> u64 {
        self.0.iter().flatten().map(|b| b.len() as u64).sum()
    }

    /// The parts, in order.
    pub fn parts(&self) -> impl Iterator<Item = &Bytes> {
        self.0.iter().flatten()
    }
}

impl hyper::body::Body for WholeBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let next = self.0.iter_mut().find_map(|part| part.take().filter(|b| !b.is_empty()));
        Poll::Ready(next.map(|b| Ok(hyper::body::Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.len() == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.len())
    }
}

/// A response with `status`, a `Content-Type` and a body.
pub fn respond(status: StatusCode, content_type: &'static str, body: impl Into<WholeBody>) -> HttpResponse {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

impl From<Bytes> for WholeBody {
    fn from(body: Bytes) -> Self {
        WholeBody::new(body)
    }
}

impl From<Vec<u8>> for WholeBody {
    fn from(body: Vec<u8>) -> Self {
        WholeBody::new(body)
    }
}

impl From<String> for WholeBody {
    fn from(body: String) -> Self {
        WholeBody::new(body)
    }
}

impl From<&'static str> for WholeBody {
    fn from(body: &'static str) -> Self {
        WholeBody::new(Bytes::from_static(body.as_bytes()))
    }
}

/// A response with `status` and no body.
pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(WholeBody::default());
    *response.status_mut() = status;
    response
}

/// A `text/plain` response.
pub fn text(status: StatusCode, body: &'static str) -> HttpResponse {
    respond(status, "text/plain; charset=utf-8", body)
}

/// An `application/json` response.
pub fn json(status: StatusCode, body: impl Into<WholeBody>) -> HttpResponse {
    respond(status, "application/json", body)
}

/// What the accept loop reports: connections open now, those closed to make room at the limit, and
/// requests refused before any handler saw them, by reason ([`REFUSAL_REASONS`]).
/// [`Default`] gives unregistered ones (for servers whose figures nobody scrapes).
#[derive(Debug, Clone)]
pub struct ConnectionCounters {
    pub open: prometheus::IntGauge,
    pub evicted: prometheus::IntCounter,
    pub refused: prometheus::IntCounterVec,
}

/// Why a request is refused before it is handled: `host` (400 from the plumbing: HTTP/1.1 without a `Host`,
/// or two of them: RFC 9112 §3.2), and `password_too_long` (401 from the web configuration's basic auth: see
/// [`crate::webconfig::BCRYPT_MAX_PASSWORD_BYTES`]). All start at zero, so a first refusal is an increase.
pub const REFUSAL_REASONS: [&str; 2] = ["host", crate::webconfig::PASSWORD_TOO_LONG];

impl Default for ConnectionCounters {
    fn default() -> Self {
        let refused = prometheus::Opts::new("http_requests_refused", "unregistered");
        ConnectionCounters {
            open: prometheus::IntGauge::new("http_connections_open", "unregistered").expect("a valid name"),
            evicted: prometheus::IntCounter::new("http_connections_evicted", "unregistered").expect("a valid name"),
            refused: prometheus::IntCounterVec::new(refused, &["reason"]).expect("a valid name"),
        }
    }
}

/// Why a request must be refused before it is handled, if it must: RFC 9112 §3.2 asks for 400 for an
/// HTTP/1.1 request without `Host` and for any request with more than one.
fn host_refusal<T>(req: &Request<T>) -> Option<&'static str> {
    let hosts = req.headers().get_all(hyper::header::HOST).iter().count();
    let needs_host = req.version() == hyper::Version::HTTP_11;
    (hosts > 1 || (hosts == 0 && needs_host)).then_some("host")
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
    counters: ConnectionCounters,
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
    let table = Arc::new(ConnectionTable::default());
    let trimmer = Arc::new(Trimmer::new(counters.open.clone()));
    let handshakes = Arc::new(tokio::sync::Semaphore::new(limits.max_tls_handshakes.max(1)));
    let mut evictions_logged = LineGate::new();
    let refusals_logged = Arc::new(LogLimiter::new(MINUTE));
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
                limit_send_buffer(&stream);
                stream
            }
            Err(err) => {
                // Usually out of file descriptors: wait a little instead of spinning.
                tracing::warn!(error = %err, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match connections.clone().try_acquire_owned() {
            Ok(permit) => Slot::Own(Some(permit)),
            // At the limit: the oldest connection between requests makes room (see the module docs),
            // and hands its slot over, so accepting goes on at full speed (a backlog that fills
            // during a flood drops SYNs, and a dropped SYN costs a probe a second).
            Err(_) if table.evict_oldest_idle() => {
                counters.evicted.inc();
                log_eviction(&mut evictions_logged, limits.max_connections);
                Slot::HandedOver(Some(connections.clone()))
            }
            // With every one inside a request, the new client waits for one to end.
            Err(_) => {
                let permit = tokio::select! {
                    permit = connections.clone().acquire_owned() => permit,
                    () = shutdown.cancelled() => break,
                };
                let Ok(permit) = permit else { break };
                Slot::Own(Some(permit))
            }
        };
        let tls = security.as_ref().and_then(|s| s.current().tls.clone());
        let watcher = graceful.watcher();
        let limits = limits.clone();
        let entry = table.open();
        let handler = {
            let (handler, in_request) = (handler.clone(), entry.in_request.clone());
            let (refused, refusals_logged) = (counters.refused.clone(), refusals_logged.clone());
            move |mut req: Request<Incoming>| {
                let busy = RequestMark::new(in_request.clone());
                req.extensions_mut().insert(ClientPaced(in_request.clone()));
                let refusal = host_refusal(&req);
                let answer = refusal.is_none().then(|| handler(req));
                let (refused, refusals_logged) = (refused.clone(), refusals_logged.clone());
                async move {
                    let response = match (answer, refusal) {
                        (Some(answer), _) => answer.await.map(|r| r.map(http_body_util::Either::Left)),
                        (None, reason) => {
                            let reason = reason.unwrap_or("host");
                            refused.with_label_values(&[reason]).inc();
                            log_refusal(&refusals_logged, reason);
                            let mut r = text(StatusCode::BAD_REQUEST, "400 Bad Request: one Host header is required\n");
                            r.headers_mut().insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
                            Ok(r.map(http_body_util::Either::Right))
                        }
                    };
                    drop(busy);
                    response
                }
            }
        };
        let (table, open, trimmer, handshakes) =
            (table.clone(), counters.open.clone(), trimmer.clone(), handshakes.clone());
        open.inc();
        trimmer.opened();
        tokio::spawn(async move {
            let builder = {
                let mut b = http1::Builder::new();
                b.timer(TokioTimer::new())
                    .header_read_timeout(limits.header_timeout)
                    .max_buf_size(limits.max_header_bytes);
                b
            };
            let stream = WriteTimeout::new(stream, limits.write_timeout);
            let serve = async {
                match tls {
                    Some(config) => {
                        // The ClientHello is read without a place at the handshake gate; its processing takes one.
                        let accepted = async {
                            let acceptor = rustls::server::Acceptor::default();
                            let start = tokio_rustls::LazyConfigAcceptor::new(acceptor, stream).await?;
                            handshake::handshake(&handshakes, start, config).await
                        };
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, accepted).await {
                            Ok(Ok(tls_stream)) => {
                                let connection =
                                    builder.serve_connection(TokioIo::new(tls_stream), service_fn(handler));
                                watcher.watch(connection).await
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "TLS handshake failed");
                                Ok(())
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                Ok(())
                            }
                        }
                    }
                    None => watcher.watch(builder.serve_connection(TokioIo::new(stream), service_fn(handler))).await,
                }
            };
            let result = tokio::select! {
                result = serve => result,
                // Dropping the connection closes it.
                () = entry.evict.cancelled() => Ok(()),
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, "HTTP connection ended with an error");
            }
            if !table.close(entry.id) {
                // Evicted: the connection that took its place has its slot.
                slot.hand_over();
            }
            open.dec();
            trimmer.closed();
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

/// Says that a request was refused by the plumbing, at most once a minute (never what it carried).
fn log_refusal(logged: &LogLimiter, reason: &'static str) {
    if let Some(refused) = logged.note() {
        tracing::warn!(
            reason,
            refused_since_last_line = refused,
            "refused a request with 400 before handling it (an HTTP/1.1 request without a Host header, or one with \
             two; at most one line a minute, see emnify_http_requests_refused_total)"
        );
    }
}

/// Caps the kernel's send buffer of a connection (Linux would let it grow to `tcp_wmem`'s 4 MiB):
/// a client that asks for a large `/metrics` and never reads pins no more than this in the kernel.
fn limit_send_buffer(stream: &tokio::net::TcpStream) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let bytes: libc::c_int = SEND_BUFFER_BYTES;
        // SAFETY: a valid socket descriptor and an int option of the right size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_SNDBUF,
                (&raw const bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// See [`limit_send_buffer`]; the kernel doubles it for its bookkeeping.
const SEND_BUFFER_BYTES: i32 = 128 * 1024;

/// One line when evictions start, then at most one a minute with how many there were.
fn log_eviction(logged: &mut LineGate, limit: usize) {
    if let Some(evicted) = logged.note(std::time::Instant::now(), MINUTE) {
        tracing::warn!(
            limit,
            evicted_since_last_line = evicted,
            "at --web.max-connections: closing the oldest connections that are between requests to make room \
             (a slowloris attack, or the limit is too low for the clients)"
        );
    }
}
