//! Turns the emnify event list into counts: time windows, a cursor, and dedup.
//!
//! Each poll asks for the window `[from, until]` where `until` is fixed at the
//! start of the poll (so paging walks a stable set) and `from` reaches back
//! `overlap` before the previous poll's `until` (so events that reach emnify
//! late, with older timestamps, are still seen). Overlapping windows return
//! events again; the shared [`Tally`] makes sure each id is counted once. A failed
//! poll does not move the cursor, so the next one covers the same ground again.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::emnify::{decode_event_list, ApiError, Client, DecodeError, EventPage, PageQuery};
use crate::metrics::{EventMetrics, Metrics};
use crate::rng::SplitMix64;
use crate::tally::{checkpoint_blocking, lock, BatchCounts, Origin, SharedTally};
use crate::timefmt::{duration_millis, now_millis};

/// How the poller walks emnify's event list.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// `per_page` asked for (emnify may clamp it).
    pub page_size: u32,
    /// How far each window reaches back before the previous one's end.
    pub overlap: Duration,
}

/// Walks of one window per poll, at most: a walk is repeated when the event count changed under it.
const MAX_PASSES: u32 = 3;
/// Safety stop for a window with broken paging headers.
const MAX_PAGES: u32 = 100_000;
/// Fetches of one page whose body is not a JSON array before the poll fails.
const DECODE_ATTEMPTS: u32 = 3;

/// What one page held.
struct PageSummary {
    /// Elements, readable or not.
    len: usize,
    readable: usize,
    /// Readable events whose id had not yet been seen in this walk.
    new_in_walk: usize,
    /// Identifies what the page held (its events' ids and unreadable records, in order, and its size),
    /// to notice emnify serving the same page again without keeping its body.
    fingerprint: u64,
}

/// What one poll saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The window, Unix seconds.
    pub from: i64,
    pub until: i64,
    pub pages: u32,
    pub passes: u32,
    /// What the pages held and what of it was counted.
    pub counts: BatchCounts,
}

/// The result of [`Poller::poll_once`].
#[derive(Debug)]
pub enum PollOutcome {
    /// Every page of the window was read; the cursor moved to the window's end.
    Success(PollReport),
    /// The poll stopped early; what it counted stays counted, the cursor stays put.
    Failed { error: ApiError, report: PollReport },
}

impl PollOutcome {
    pub fn is_success(&self) -> bool {
        matches!(self, PollOutcome::Success(_))
    }
}

pub struct Poller {
    client: Client,
    metrics: Arc<Metrics>,
    settings: PollerSettings,
    tally: SharedTally,
    /// The clock offset last warned about, so the warning comes once per change, not once per poll.
    warned_offset_millis: Option<i64>,
    /// When emnify's event-type catalogue was last read.
    types_loaded: Option<Instant>,
    /// When it was last read because of an event type without a name.
    refreshed_for_unknown: Option<Instant>,
}

/// Least time between two reads of emnify's event-type catalogue prompted by an unknown type id.
const TYPE_REFRESH_AFTER_UNKNOWN: Duration = Duration::from_secs(600);
/// The catalogue is read again this often anyway, so names emnify adds reach new series.
const TYPE_REFRESH_EVERY: Duration = Duration::from_secs(3600);

/// A difference between emnify's clock and the host's worth a warning: harmless to counting, but a
/// sign of a host clock gone wrong (and of dashboards whose "now" is not emnify's).
const CLOCK_WARN_MILLIS: i64 = 5_000;

impl Poller {
    /// A poller that counts into `tally` (shared with the Data Streamer receiver, if there is one).
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: PollerSettings, tally: SharedTally) -> Self {
        Poller {
            client,
            metrics,
            settings,
            tally,
            warned_offset_millis: None,
            types_loaded: None,
            refreshed_for_unknown: None,
        }
    }

    /// Saves (with a state file) and publishes what was counted so far.
    pub async fn checkpoint(&self) {
        checkpoint_blocking(&self.tally).await;
    }

    /// Whether emnify's catalogue may be read again now: at most every [`TYPE_REFRESH_AFTER_UNKNOWN`].
    fn may_refresh_event_types(&self) -> bool {
        self.refreshed_for_unknown.is_none_or(|at| at.elapsed() >= TYPE_REFRESH_AFTER_UNKNOWN)
    }

    /// Reads emnify's event-type catalogue again because a page has an event type without a name.
    async fn refresh_event_types(&mut self) {
        self.refreshed_for_unknown = Some(Instant::now());
        self.load_event_types().await;
    }

    /// Loads the live event-type names; on failure the names known so far stay in use.
    pub async fn load_event_types(&mut self) -> bool {
        self.types_loaded = Some(Instant::now());
        match self.client.event_types().await {
            Ok(types) if !types.is_empty() => {
                tracing::info!(count = types.len(), "loaded event types from emnify");
                self.metrics.events.set_event_type_names(types);
                true
            }
            Ok(_) => {
                tracing::warn!("emnify returned no event types; using the built-in catalogue");
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not load event types; using the built-in catalogue");
                false
            }
        }
    }

    /// End of the last successful window, Unix seconds.
    pub fn cursor(&self) -> Option<i64> {
        lock(&self.tally).cursor()
    }

    /// Polls one window and counts what is new in it.
    pub async fn poll_once(&mut self) -> PollOutcome {
        let started = Instant::now();
        if self.types_loaded.is_some_and(|at| at.elapsed() >= TYPE_REFRESH_EVERY) {
            self.load_event_types().await;
        }
        let overlap = duration_millis(self.settings.overlap) / 1000;
        // Windows are on emnify's clock: it filters `q` by its own timestamps.
        let now = match self.client.emnify_now_millis().await {
            Ok(now) => now,
            Err(error) => return self.failed(started, error, PollReport::default()).await,
        };
        self.note_clock_offset();
        let (floor, cursor) = {
            let mut tally = lock(&self.tally);
            (tally.floor_from(now).div_euclid(1000), tally.cursor())
        };
        // emnify's time is known to a second or so below the truth (its `Date` headers are whole
        // seconds), so the window ends at the end of the second that may be current: a window
        // reaching a moment into emnify's future loses nothing (the next one starts `overlap` earlier),
        // while one ending a second short would hold back what just happened until the next poll.
        let until = (now + 999).div_euclid(1000).max(floor).max(cursor.unwrap_or(i64::MIN));
        let from = cursor.map_or(floor, |c| c.saturating_sub(overlap)).max(floor).min(until);
        let mut report = PollReport { from, until, ..PollReport::default() };
        match self.walk_window(&mut report).await {
            Ok(()) => {
                let elapsed = started.elapsed().as_secs_f64();
                self.metrics.polling.record_success(elapsed, now_millis() as f64 / 1000.0);
                // No later window starts before `until - overlap`, so older ids can go.
                lock(&self.tally).window_done(until, until.saturating_sub(overlap).max(floor) * 1000);
                self.checkpoint().await;
                tracing::debug!(?report, "poll succeeded");
                PollOutcome::Success(report)
            }
            Err(error) => self.failed(started, error, report).await,
        }
    }

    /// Ends a poll that stopped early: what it counted stays counted (and is checkpointed), the cursor stays.
    async fn failed(&self, started: Instant, error: ApiError, report: PollReport) -> PollOutcome {
        self.metrics.polling.record_failure(started.elapsed().as_secs_f64(), error.reason());
        self.checkpoint().await;
        tracing::warn!(error = %error, reason = error.reason(), pages = report.pages, counted = report.counts.counted, "poll failed");
        PollOutcome::Failed { error, report }
    }

    /// Publishes how far emnify's clock is from the host's, and warns when that is more than a few seconds.
    fn note_clock_offset(&mut self) {
        let Some(offset) = self.client.clock().offset_millis() else {
            return;
        };
        self.metrics.polling.set_clock_offset(offset as f64 / 1000.0);
        lock(&self.tally).set_emnify_offset(offset);
        let moved = self.warned_offset_millis.is_none_or(|warned| (warned - offset).abs() > CLOCK_WARN_MILLIS);
        if offset.abs() > CLOCK_WARN_MILLIS && moved {
            self.warned_offset_millis = Some(offset);
            tracing::warn!(
                offset_seconds = offset as f64 / 1000.0,
                "this host's clock differs from emnify's; windows follow emnify's clock, so counting is not \
                 affected, but check the host's time synchronisation"
            );
        }
    }

    async fn walk_window(&mut self, report: &mut PollReport) -> Result<(), ApiError> {
        for pass in 1..=MAX_PASSES {
            report.passes = pass;
            let (first_total, last_total) = self.walk_pages(report).await?;
            match (first_total, last_total) {
                (Some(a), Some(b)) if a != b && pass < MAX_PASSES => {
                    tracing::info!(before = a, after = b, "events arrived while paging; walking the window again");
                }
                _ => break,
            }
        }
        Ok(())
    }

    /// Walks every page of the window once; returns `X-Total-Count` as seen on the first and last page.
    ///
    /// Paging headers are hints, not promises: a walk goes on past `X-Total-Pages` while pages come back
    /// full, and it ends when emnify repeats a page (what it does past the end) or a page is empty.
    /// While one page is decoded and counted, the next one the headers announce is already fetched.
    async fn walk_pages(&mut self, report: &mut PollReport) -> Result<(Option<u64>, Option<u64>), ApiError> {
        let mut page = 1;
        let mut first_total = None;
        let mut last_total = None;
        let mut first_len = 0;
        let mut previous_fingerprint = None;
        let mut seen_in_walk = WalkIds::default();
        let mut prefetched = None;
        loop {
            let query = PageQuery { page, per_page: self.settings.page_size, from: report.from, until: report.until };
            let response = match prefetched.take() {
                Some(fetched) => fetched?,
                None => self.fetch(&query, report).await?,
            };
            let (response, summary) =
                self.ingest_page(&query, response, &mut seen_in_walk, &mut prefetched, report).await?;
            if page == 1 {
                first_total = response.total_count;
                first_len = summary.len;
            }
            last_total = response.total_count.or(last_total);
            let repeated = page > 1
                && (response.current_page.is_some_and(|c| c != page)
                    || (summary.readable > 0 && summary.new_in_walk == 0)
                    || previous_fingerprint == Some(summary.fingerprint));
            if repeated {
                break;
            }
            let full_size = if page == 1 {
                self.settings.page_size.min(response.per_page.unwrap_or(u32::MAX)) as usize
            } else {
                first_len
            };
            let full = summary.len > 0 && summary.len >= full_size;
            let last_page = match response.total_pages {
                Some(total) => page >= total && !full,
                None => summary.len == 0,
            };
            if last_page {
                break;
            }
            if page >= MAX_PAGES {
                tracing::warn!(page, "stopping a window walk at the page limit; paging headers look wrong");
                break;
            }
            previous_fingerprint = Some(summary.fingerprint);
            self.client.recycle(response.body);
            page += 1;
        }
        Ok((first_total, last_total))
    }

    async fn fetch(&mut self, query: &PageQuery, report: &mut PollReport) -> Result<EventPage, ApiError> {
        let page = self.client.event_page(query).await;
        report.pages += u32::from(page.is_ok());
        page
    }

    /// Counts what is new on a fetched page, decoding on a blocking thread (a page can be megabytes)
    /// while the next page announced by the headers is fetched into `prefetched`. A body that is not
    /// a JSON array (truncated, garbled, an HTML error page) is fetched again, up to
    /// [`DECODE_ATTEMPTS`] times.
    async fn ingest_page(
        &mut self,
        query: &PageQuery,
        mut response: EventPage,
        seen_in_walk: &mut WalkIds,
        prefetched: &mut Option<Result<EventPage, ApiError>>,
        report: &mut PollReport,
    ) -> Result<(EventPage, PageSummary), ApiError> {
        // emnify filters by whole seconds: the window holds events up to the end of its last second.
        let origin = Origin::Poll { from_millis: report.from * 1000, until_millis: report.until * 1000 + 999 };
        let mut attempt = 1;
        loop {
            // A page with an event type no name is known for waits for a look at emnify's live catalogue
            // first (at most every TYPE_REFRESH_AFTER_UNKNOWN), so its series are named once, rightly.
            let stop_on_unknown_type = self.may_refresh_event_types();
            let decoding = tokio::task::spawn_blocking({
                let body = response.body.clone();
                let tally = self.tally.clone();
                let metrics = self.metrics.clone();
                let mut ids = std::mem::take(seen_in_walk);
                move || {
                    let check = stop_on_unknown_type.then_some(&metrics.events);
                    let result = decode_and_count(&body, &tally, origin, &mut ids, check);
                    (result, ids)
                }
            });
            let announced = response.total_pages.is_some_and(|total| query.page < total);
            if prefetched.is_none() && announced && query.page < MAX_PAGES {
                let next = PageQuery { page: query.page + 1, ..query.clone() };
                *prefetched = Some(self.fetch(&next, report).await);
            }
            let (result, ids) = decoding.await.map_err(|err| ApiError::Decode {
                endpoint: "event",
                message: format!("decoding the page stopped: {err}"),
            })?;
            *seen_in_walk = ids;
            let error = match result {
                Ok(Page::Counted(summary, counts)) => {
                    report.counts.add(counts);
                    return Ok((response, summary));
                }
                Ok(Page::UnknownEventType(id)) => {
                    tracing::info!(event_type_id = id, "an event type without a name: reading emnify's catalogue");
                    self.refresh_event_types().await;
                    continue;
                }
                Err(err) => ApiError::Decode { endpoint: "event", message: err.to_string() },
            };
            if attempt >= DECODE_ATTEMPTS {
                return Err(error);
            }
            tracing::warn!(page = query.page, attempt, error = %error, "fetching an unreadable page again");
            attempt += 1;
            response = self.fetch(query, report).await?;
        }
    }
}

/// Ids seen in one walk of a window, to recognise a page that emnify repeats.
type WalkIds = HashSet<u64, foldhash::fast::RandomState>;

/// What became of a page.
enum Page {
    Counted(PageSummary, BatchCounts),
    /// Not counted: it has an event of this type, which has no name yet.
    UnknownEventType(u32),
}

/// Decodes one page and counts what is new on it; the tally checkpoints here when one is due, right
/// after counting, so a page's counts are saved and published without waiting for the next fetch.
fn decode_and_count(
    body: &[u8],
    tally: &SharedTally,
    origin: Origin,
    seen_in_walk: &mut WalkIds,
    stop_on_unknown_type: Option<&EventMetrics>,
) -> Result<Page, DecodeError> {
    let events = decode_event_list(body)?;
    if let Some(names) = stop_on_unknown_type {
        let types = events.iter().filter_map(|e| e.as_ref().ok()).map(|e| e.event_type_id);
        if let Some(id) = names.first_unknown_event_type(types) {
            return Ok(Page::UnknownEventType(id));
        }
    }
    let mut summary = PageSummary { len: events.len(), readable: 0, new_in_walk: 0, fingerprint: 0 };
    let mut fingerprint = foldhash::quality::FixedState::with_seed(0x656d_6e69_6679).build_hasher();
    for decoded in &events {
        match decoded {
            Ok(event) => {
                summary.readable += 1;
                summary.new_in_walk += usize::from(seen_in_walk.insert(event.id));
                fingerprint.write_u64(event.id);
            }
            Err(bad) => {
                fingerprint.write_u64(bad.fingerprint);
                fingerprint.write_u64(bad.id.unwrap_or(u64::MAX));
            }
        }
    }
    // The body's length too: records that are not objects all look alike.
    fingerprint.write_usize(events.len());
    fingerprint.write_usize(body.len());
    summary.fingerprint = fingerprint.finish();
    // A save that fails here is retried by the poll's closing checkpoint.
    let ingested = lock(tally).ingest(events, origin);
    ingested.finish(tally);
    let counts = ingested.counts;
    Ok(Page::Counted(summary, counts))
}

/// Polls every `interval`; after a failure, retries sooner with jittered exponential backoff.
pub async fn run_poll_loop(mut poller: Poller, interval: Duration, shutdown: CancellationToken) {
    poll_until_cancelled(&mut poller, interval, &shutdown).await;
    // Whatever was counted before the stop is saved (with a state file) and published.
    poller.checkpoint().await;
}

async fn poll_until_cancelled(poller: &mut Poller, interval: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = poller.load_event_types() => {}
        () = shutdown.cancelled() => return,
    }
    let mut failures = 0u32;
    let mut jitter = SplitMix64::from_time();
    loop {
        let outcome = tokio::select! {
            outcome = poller.poll_once() => outcome,
            () = shutdown.cancelled() => return,
        };
        let wait = match &outcome {
            PollOutcome::Success(_) => {
                failures = 0;
                interval
            }
            PollOutcome::Failed { error, .. } => {
                failures += 1;
                retry_delay(failures, interval, error, jitter.unit())
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Wait after the `failures`-th failed poll in a row; `unit` is a random number in `[0, 1)`.
///
/// Transient errors retry within the poll interval; a rejected token backs off to
/// five minutes so a revoked token never hammers emnify's login limit.
pub fn retry_delay(failures: u32, interval: Duration, error: &ApiError, unit: f64) -> Duration {
    let cap = if error.reason() == "auth" { interval.max(Duration::from_secs(300)) } else { interval };
    let exp = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let wait = exp.min(cap).mul_f64(0.75 + 0.5 * unit);
    wait.max(error.retry_after().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let err = ApiError::Status { endpoint: "event", status: 503 };
        let minute = Duration::from_secs(60);
        assert_eq!(retry_delay(1, minute, &err, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(3, minute, &err, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(30, minute, &err, 0.5), minute);
        let auth = ApiError::Auth { status: 401 };
        assert_eq!(retry_delay(30, minute, &auth, 0.5), Duration::from_secs(300));
        let limited = ApiError::RateLimited { endpoint: "event", retry_after: Some(Duration::from_secs(90)) };
        assert_eq!(retry_delay(1, minute, &limited, 0.0), Duration::from_secs(90));
    }
}
