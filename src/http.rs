//! HTTP plumbing shared by the exporter's routes, the Data Streamer receiver and the simulator.
//!
//! One accept loop (plain or TLS), the connection limits, graceful shutdown, and the builder
//! every complete response is made with.
//!
//! At the connection limit the oldest connection that is not in the middle of a request (an
//! unfinished header, an idle keep-alive, a client not reading its answer, a handler waiting for the
//! client's body: see [`ClientPaced`]) is closed to make room: a slowloris attack fills the slots, but
//! a probe or scrape still gets one at once.

use std::future::Future;
use std::io;
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
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
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
    /// Longest a client may take no bytes of its answer (a many-MB `/metrics` held by a client
    /// that never reads); then the connection is closed.
    pub write_timeout: Duration,
    /// How long open connections get to finish after shutdown starts.
    pub shutdown_grace: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 512,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            shutdown_grace: SHUTDOWN_GRACE,
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

/// Why the plumbing refuses a request: `host` (HTTP/1.1 without a `Host`, or two of them: RFC 9112 §3.2).
pub const REFUSAL_REASONS: [&str; 1] = ["host"];

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
    let mut evictions_logged: Option<(std::time::Instant, u64)> = None;
    let refusals_logged = Arc::new(std::sync::Mutex::new(None::<std::time::Instant>));
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
        let (table, open, trimmer) = (table.clone(), counters.open.clone(), trimmer.clone());
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
                        let acceptor = tokio_rustls::TlsAcceptor::from(config);
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
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
fn log_refusal(logged: &std::sync::Mutex<Option<std::time::Instant>>, reason: &'static str) {
    let mut logged = logged.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if logged.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
        *logged = Some(std::time::Instant::now());
        tracing::warn!(
            reason,
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
fn log_eviction(logged: &mut Option<(std::time::Instant, u64)>, limit: usize) {
    match logged {
        Some((at, since)) if at.elapsed() < Duration::from_secs(60) => *since += 1,
        _ => {
            let earlier = logged.map_or(0, |(_, n)| n);
            tracing::warn!(
                limit,
                evicted_since_last_line = earlier + 1,
                "at --web.max-connections: closing the oldest connections that are between requests to make room \
                 (a slowloris attack, or the limit is too low for the clients)"
            );
            *logged = Some((std::time::Instant::now(), 0));
        }
    }
}

/// Gives memory back to the system after many connections closed. glibc keeps what they freed in its
/// per-thread arenas, fragmented, for reuse: 512 connections that sent 8 KB of headers each left the
/// process at 17 MiB instead of 7 after they closed, until `malloc_trim` returned it.
struct Trimmer {
    open: prometheus::IntGauge,
    /// Most connections open at once since the last trim.
    peak: std::sync::atomic::AtomicI64,
    /// A trim is scheduled (at most one a second, covering every close until then).
    scheduled: std::sync::atomic::AtomicBool,
}

impl Trimmer {
    /// Connections that must have closed since the peak for a trim to be worth it.
    const CLOSED_SINCE_PEAK: i64 = 128;
    const DELAY: Duration = Duration::from_secs(1);

    fn new(open: prometheus::IntGauge) -> Self {
        Trimmer { open, peak: Default::default(), scheduled: Default::default() }
    }

    fn opened(&self) {
        self.peak.fetch_max(self.open.get(), std::sync::atomic::Ordering::Relaxed);
    }

    fn closed(self: &Arc<Self>) {
        use std::sync::atomic::Ordering::{AcqRel, Relaxed};
        if self.peak.load(Relaxed) - self.open.get() < Self::CLOSED_SINCE_PEAK || self.scheduled.swap(true, AcqRel) {
            return;
        }
        let trimmer = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Self::DELAY).await;
            trimmer.peak.store(trimmer.open.get(), Relaxed);
            trimmer.scheduled.store(false, Relaxed);
            // It walks every arena: milliseconds, not for the async workers.
            let _ = tokio::task::spawn_blocking(trim_allocator).await;
        });
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim_allocator() {
    // SAFETY: malloc_trim has no preconditions; it only returns free memory of glibc's arenas.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() {}

/// The open connections, oldest first, and whether each is inside a request.
#[derive(Default)]
struct ConnectionTable {
    next_id: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<ConnectionEntry>>>,
}

struct ConnectionEntry {
    id: u64,
    /// Requests being handled (more than one only if the client pipelines).
    in_request: Arc<std::sync::atomic::AtomicUsize>,
    evict: CancellationToken,
}

impl ConnectionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<ConnectionEntry>>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection; its `evict` token is cancelled when it is evicted.
    fn open(&self) -> Arc<ConnectionEntry> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Arc::new(ConnectionEntry { id, in_request: Arc::default(), evict: CancellationToken::new() });
        self.lock().insert(id, entry.clone());
        entry
    }

    /// Forgets a connection that ended; false if it was evicted (and so forgotten already).
    fn close(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Closes the oldest connection that is not inside a request; false if there is none.
    fn evict_oldest_idle(&self) -> bool {
        let mut open = self.lock();
        let idle = open
            .values()
            .find(|c| c.in_request.load(std::sync::atomic::Ordering::Acquire) == 0 && !c.evict.is_cancelled())
            .map(|c| c.id);
        match idle.and_then(|id| open.remove(&id)) {
            Some(entry) => {
                entry.evict.cancel();
                true
            }
            None => false,
        }
    }
}

/// A connection's place under `--web.max-connections`: a permit of its own, or the place of the
/// connection it evicted, whose permit stays taken (so there are never more places than the limit,
/// only a moment's overlap while the evicted one closes).
enum Slot {
    Own(Option<tokio::sync::OwnedSemaphorePermit>),
    /// Gives its place back to the semaphore when dropped (unless handed over in turn).
    HandedOver(Option<Arc<tokio::sync::Semaphore>>),
}

impl Slot {
    /// Keeps the place taken for the connection that evicted this one.
    fn hand_over(mut self) {
        match &mut self {
            Slot::Own(permit) => permit.take().into_iter().for_each(tokio::sync::OwnedSemaphorePermit::forget),
            Slot::HandedOver(semaphore) => drop(semaphore.take()),
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::HandedOver(Some(semaphore)) = self {
            semaphore.add_permits(1);
        }
    }
}

/// Lets a handler say that it waits for the client (its body): meanwhile its connection counts as
/// between requests, and may be closed to make room at the limit. 600 authenticated pushes that sent
/// one body byte each held every slot until their read timeout, and probes failed.
#[derive(Clone)]
pub struct ClientPaced(Arc<std::sync::atomic::AtomicUsize>);

impl ClientPaced {
    /// The mark of the connection `req` came in on (none for a request not served by [`serve_http`]).
    pub fn of<T>(req: &Request<T>) -> Option<ClientPaced> {
        req.extensions().get::<ClientPaced>().cloned()
    }

    /// Runs `waiting` (a read of the client's body) with the connection evictable.
    pub async fn wait<F: Future>(&self, waiting: F) -> F::Output {
        let _idle = IdleMark::new(self.0.clone());
        waiting.await
    }
}

/// Counts a connection as between requests while it lives (see [`ClientPaced`]).
struct IdleMark(Arc<std::sync::atomic::AtomicUsize>);

impl IdleMark {
    fn new(in_request: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        in_request.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        IdleMark(in_request)
    }
}

impl Drop for IdleMark {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// Marks a connection as inside a request while it lives.
struct RequestMark(Arc<std::sync::atomic::AtomicUsize>);

impl RequestMark {
    fn new(in_request: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        in_request.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        RequestMark(in_request)
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

/// A stream whose writes fail once the peer has taken no bytes for a while, so a client that never
/// reads its answer cannot hold the connection (and the answer's buffer) for ever.
struct WriteTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Running while a write waits for the peer.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> WriteTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        WriteTimeout { inner, timeout, stalled: None }
    }

    fn progress<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took no bytes within the write timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for WriteTimeout<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progress(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.progress(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progress(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that reads nothing fails the write once the timeout passes without progress; a peer
    /// that reads lets a write far larger than the pipe finish.
    #[tokio::test]
    async fn writes_fail_when_the_peer_stops_reading() {
        let (near, _far) = tokio::io::duplex(64);
        let mut stream = WriteTimeout::new(near, Duration::from_millis(50));
        let err = stream.write_all(&[0u8; 4096]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let (near, mut far) = tokio::io::duplex(64);
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            far.read_to_end(&mut all).await.map(|_| all.len())
        });
        let mut stream = WriteTimeout::new(near, Duration::from_millis(50));
        stream.write_all(&[7u8; 256 * 1024]).await.unwrap();
        drop(stream);
        assert_eq!(reader.await.unwrap().unwrap(), 256 * 1024);
    }
}
