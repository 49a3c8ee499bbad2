//! TLS handshakes bounded in CPU, in arrival order.
//!
//! A handshake's CPU (the server's signature: about a millisecond with RSA-2048) is spent when the
//! ClientHello is processed, on the async workers that also answer probes. 400 clients sending
//! ClientHellos kept both cores signing, in no particular order: TLS probes took up to 1.5 s and some
//! failed. Now a ClientHello is read with nothing held, then at most `--web.max-tls-handshakes`
//! connections process theirs at once, first come first served (a fair semaphore), so a probe waits for
//! the handshakes queued before it and no longer: at most (connections in a handshake) × (a handshake's
//! CPU) / places. Serving the newest first was tried: most probes were faster, but some waited past their
//! timeout behind a steady stream of newer ones. The gate is held only for the ClientHello's processing
//! and the first write of the answer, never while the client is awaited.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::Semaphore;
use tokio_rustls::server::TlsStream;
use tokio_rustls::StartHandshake;

/// Completes a handshake whose ClientHello has arrived, processing it (and writing the answer's first
/// flight) with a place of `gate`; the rest, which waits for the client, runs without one.
pub(super) async fn handshake<IO>(
    gate: &Semaphore,
    start: StartHandshake<IO>,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let place = gate.acquire().await.map_err(|_| io::Error::other("the server is shutting down"))?;
    let mut accept = start.into_stream(config);
    let first = std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut accept).poll(cx))).await;
    drop(place);
    match first {
        Poll::Ready(done) => done,
        Poll::Pending => accept.await,
    }
}
