//! The connection table behind `--web.max-connections`: which connections are inside a request (and so
//! never closed to make room), the slot each holds, and giving memory back after many have closed.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::Request;
use tokio_util::sync::CancellationToken;

/// Gives memory back to the system after many connections closed. glibc keeps what they freed in its
/// per-thread arenas, fragmented, for reuse: 512 connections that sent 8 KB of headers each left the
/// process at 17 MiB instead of 7 after they closed, until `malloc_trim` returned it.
pub(super) struct Trimmer {
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

    pub(super) fn new(open: prometheus::IntGauge) -> Self {
        Trimmer { open, peak: Default::default(), scheduled: Default::default() }
    }

    pub(super) fn opened(&self) {
        self.peak.fetch_max(self.open.get(), std::sync::atomic::Ordering::Relaxed);
    }

    pub(super) fn closed(self: &Arc<Self>) {
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
pub(super) struct ConnectionTable {
    next_id: std::sync::atomic::AtomicU64,
    open: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<ConnectionEntry>>>,
}

pub(super) struct ConnectionEntry {
    pub(super) id: u64,
    /// Requests being handled (more than one only if the client pipelines).
    pub(super) in_request: Arc<std::sync::atomic::AtomicUsize>,
    pub(super) evict: CancellationToken,
}

impl ConnectionTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Arc<ConnectionEntry>>> {
        self.open.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a new connection; its `evict` token is cancelled when it is evicted.
    pub(super) fn open(&self) -> Arc<ConnectionEntry> {
        let id = self.next_id.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let entry = Arc::new(ConnectionEntry { id, in_request: Arc::default(), evict: CancellationToken::new() });
        self.lock().insert(id, entry.clone());
        entry
    }

    /// Forgets a connection that ended; false if it was evicted (and so forgotten already).
    pub(super) fn close(&self, id: u64) -> bool {
        self.lock().remove(&id).is_some()
    }

    /// Closes the oldest connection that is not inside a request; false if there is none.
    pub(super) fn evict_oldest_idle(&self) -> bool {
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
pub(super) enum Slot {
    Own(Option<tokio::sync::OwnedSemaphorePermit>),
    /// Gives its place back to the semaphore when dropped (unless handed over in turn).
    HandedOver(Option<Arc<tokio::sync::Semaphore>>),
}

impl Slot {
    /// Keeps the place taken for the connection that evicted this one.
    pub(super) fn hand_over(mut self) {
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
pub struct ClientPaced(pub(super) Arc<std::sync::atomic::AtomicUsize>);

impl ClientPaced {
    /// The mark of the connection `req` came in on (none for a request not served by [`super::serve_http`]).
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
pub(super) struct RequestMark(Arc<std::sync::atomic::AtomicUsize>);

impl RequestMark {
    pub(super) fn new(in_request: Arc<std::sync::atomic::AtomicUsize>) -> Self {
        in_request.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        RequestMark(in_request)
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}
