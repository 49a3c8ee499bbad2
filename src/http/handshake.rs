//! TLS handshakes bounded in CPU, newest first.
//!
//! A handshake's CPU (the server's signature: about a millisecond with RSA-2048) is spent when the
//! ClientHello is processed, on the async workers that also answer probes. 400 clients sending
//! ClientHellos kept both cores signing: TLS probes took 1.5 s and some failed. Now a ClientHello is read
//! with no CPU held, then at most `--web.max-tls-handshakes` connections process theirs at once, and a
//! waiting one is admitted newest first: under a flood of handshakes, the one that arrived last (a probe
//! among them) waits for the handshakes in progress, not for the whole queue. The gate is held only for
//! the ClientHello's processing and the first write of the answer, never while the client is awaited.

use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::oneshot;
use tokio_rustls::server::TlsStream;
use tokio_rustls::StartHandshake;

/// Handshakes whose CPU may be spent at once, and the ones waiting, newest last.
pub(super) struct HandshakeGate(Mutex<GateState>);

struct GateState {
    free: usize,
    waiting: Vec<oneshot::Sender<Ticket>>,
}

/// A place at the gate; dropped, it goes to the newest waiter still there.
struct Ticket(Option<Arc<HandshakeGate>>);

impl HandshakeGate {
    pub(super) fn new(at_once: usize) -> Arc<Self> {
        Arc::new(HandshakeGate(Mutex::new(GateState { free: at_once.max(1), waiting: Vec::new() })))
    }

    async fn enter(self: &Arc<Self>) -> Option<Ticket> {
        let admitted = {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if state.free > 0 {
                state.free -= 1;
                return Some(Ticket(Some(self.clone())));
            }
            // Waiters that gave up (timed out, evicted) are dropped now and then, not one by one.
            if state.waiting.len() >= 256 && state.waiting.len().is_power_of_two() {
                state.waiting.retain(|waiter| !waiter.is_closed());
            }
            let (give, admitted) = oneshot::channel();
            state.waiting.push(give);
            admitted
        };
        admitted.await.ok()
    }

    /// Gives a freed place to the newest waiter still waiting, or back to the pool.
    fn hand_on(self: &Arc<Self>) {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        while let Some(waiter) = state.waiting.pop() {
            match waiter.send(Ticket(Some(self.clone()))) {
                Ok(()) => return,
                // That waiter is gone: its ticket is not used (and must not hand on again under the lock).
                Err(mut unused) => drop(unused.0.take()),
            }
        }
        state.free += 1;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(gate) = self.0.take() {
            gate.hand_on();
        }
    }
}

/// Completes a handshake whose ClientHello has arrived, processing it (and writing the answer's first
/// flight) through `gate`; the rest, which waits for the client, runs outside it.
pub(super) async fn handshake<IO>(
    gate: &Arc<HandshakeGate>,
    start: StartHandshake<IO>,
    config: Arc<rustls::ServerConfig>,
) -> io::Result<TlsStream<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let ticket = gate.enter().await;
    let mut accept = start.into_stream(config);
    let first = std::future::poll_fn(|cx| Poll::Ready(std::pin::Pin::new(&mut accept).poll(cx))).await;
    drop(ticket);
    match first {
        Poll::Ready(done) => done,
        Poll::Pending => accept.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one place taken, waiters are admitted newest first, and one that gave up is passed over.
    #[tokio::test]
    async fn places_go_to_the_newest_waiter() {
        let gate = HandshakeGate::new(1);
        let first = gate.enter().await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..4 {
            let (waiting, order) = (gate.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let ticket = waiting.enter().await;
                order.lock().unwrap().push(n);
                drop(ticket);
            }));
            // Each waiter is queued before the next one starts.
            while gate.0.lock().unwrap().waiting.len() < n + 1 {
                tokio::task::yield_now().await;
            }
        }
        waiters.remove(3).abort();
        let _ = tokio::task::yield_now().await;
        drop(first);
        for waiter in waiters {
            waiter.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), [2, 1, 0]);
        assert_eq!(gate.0.lock().unwrap().free, 1, "every place came back");
    }
}
