//! Turns the emnify event list into counts: the async shell around the poll planner ([`plan`]).
//!
//! The planner decides which page to ask for next from what emnify answered (see its module docs for
//! the plan and why it reads each event about once); this shell asks emnify for it through the
//! [`Client`] (a few pages ahead where the planner knows they will be needed), decodes and counts each
//! page off the async workers ([`page`]), and tells the planner what the page held. A failed poll does
//! not move the cursor, so the next one covers the same ground; the shared [`Tally`](crate::tally::Tally)
//! makes sure each id is counted once.

mod ahead;
mod page;
pub mod plan;
mod schedule;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::emnify::{ApiError, Client, EventPage, PageQuery, RETENTION};
use crate::metrics::Metrics;
use crate::rng::SplitMix64;
use crate::tally::{BatchCounts, Origin, SharedTally};
use crate::timefmt::{duration_millis, now_millis};
use ahead::{joined, Ahead};
use page::{decode_and_count, Page, WalkSeen};
use plan::{Headers, Plan, PlanSettings, Step};
pub use schedule::retry_delay;

/// How the poller walks emnify's event list.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// `per_page` asked for (emnify may clamp it).
    pub page_size: u32,
    /// How far each window reaches back before the previous one's end.
    pub overlap: Duration,
    /// Most requests of one poll in flight at once (pages fetched ahead), within the request budget.
    pub requests_in_flight: usize,
}

/// The default of `--emnify.requests-in-flight`: enough to hide a slow API's latency, few enough to
/// leave emnify's burst allowance to the account's other clients.
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 4;

/// Safety stop for a walk with broken paging headers.
const MAX_PAGES: u32 = 100_000;
/// Fetches of one page whose body is not a JSON array before the poll fails.
const DECODE_ATTEMPTS: u32 = 3;

/// What one poll saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The window, Unix seconds.
    pub from: i64,
    pub until: i64,
    /// Page requests answered (count requests of an anchor move not included).
    pub pages: u32,
    /// Passes of the walk (2 when records arrived while it was read).
    pub passes: u32,
    /// First pages of walks of a query read before: each learns whether anything is new (see [`plan`]).
    pub probes: u32,
    /// Requests for a count alone, moving the start of the polled query as the window moves on.
    pub moves: u32,
    /// Walks whose first page's count showed records not read before (events arrived, late ones
    /// included), so they read on until those were found.
    pub rereads: u32,
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
    client: Arc<Client>,
    metrics: Arc<Metrics>,
    settings: PollerSettings,
    tally: SharedTally,
    plan: Plan,
    /// Whether the fallback for an API that ignores `sort=id` was logged.
    warned_sort: bool,
    /// Whether a cursor older than emnify's retention was logged.
    warned_retention: bool,
    /// Monotonic time's origin for the tally.
    started: Instant,
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
        let plan = Plan::new(PlanSettings {
            page_size: settings.page_size,
            overlap_secs: duration_millis(settings.overlap) / 1000,
            max_pages: MAX_PAGES,
            // Ascending: records that arrive while a walk reads land on pages past it, moving none of
            // those it has still to read (newest first, each pushes them all one place on).
            newest_first: false,
        });
        Poller {
            client: Arc::new(client),
            metrics,
            settings,
            tally,
            plan,
            warned_sort: false,
            warned_retention: false,
            started: Instant::now(),
            warned_offset_millis: None,
            types_loaded: None,
            refreshed_for_unknown: None,
        }
    }

    /// Saves (with a state file) and publishes what was counted so far.
    pub async fn checkpoint(&self) {
        self.tally.checkpoint_blocking().await;
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
        self.tally.lock().cursor()
    }

    /// Polls one window and counts what is new in it.
    pub async fn poll_once(&mut self) -> PollOutcome {
        let started = Instant::now();
        if self.types_loaded.is_some_and(|at| at.elapsed() >= TYPE_REFRESH_EVERY) {
            self.load_event_types().await;
        }
        // Windows are on emnify's clock: it filters `q` by its own timestamps.
        let now = match self.client.emnify_now_millis().await {
            Ok(now) => now,
            Err(error) => return self.failed(started, error, PollReport::default()).await,
        };
        self.note_clock_offset();
        let mono = duration_millis(self.started.elapsed());
        let confirmed = self.client.clock().confirmed();
        let (floor, cursor) = self.tally.lock().poll_start(now, mono, confirmed);
        if cursor.is_some_and(|c| c * 1000 < now - duration_millis(RETENTION)) && !self.warned_retention {
            self.warned_retention = true;
            tracing::warn!(
                "the saved cursor is older than emnify's 30-day retention: events in between are lost (emnify no \
                 longer has them)"
            );
        }
        // emnify's time is known to a second or so below the truth (its `Date` headers are whole
        // seconds), so the window ends at the end of the second that may be current.
        self.plan.set_clock_confirmed(confirmed);
        let step = self.plan.start((now + 999).div_euclid(1000), floor, cursor);
        let mut report = PollReport::default();
        if let Step::Fetch(query) = &step {
            (report.from, report.until) = (query.from, query.until);
        }
        let walked = self.walk(step, &mut report).await;
        let stats = self.plan.stats;
        (report.pages, report.passes, report.probes, report.moves, report.rereads) =
            (stats.pages, stats.passes, stats.probes, stats.moves, stats.rereads);
        tracing::debug!(
            from = report.from,
            until = report.until,
            pages = report.pages,
            passes = report.passes,
            probes = report.probes,
            moves = report.moves,
            rereads = report.rereads,
            sort_honoured = self.plan.sort_honoured(),
            "walked"
        );
        self.note_sort();
        match walked {
            Ok((until, keep_from)) => {
                let elapsed = started.elapsed().as_secs_f64();
                self.metrics.polling.record_success(elapsed, now_millis() as f64 / 1000.0);
                self.metrics.polling.record_poll_stats(stats.probes + stats.moves, stats.rereads, stats.passes > 1);
                // No later walk reaches before the anchor's start, so older ids can go.
                let confirmed_now = self.client.clock().confirmed_now_millis();
                self.tally.lock().window_done(until, keep_from.max(floor) * 1000, confirmed_now);
                self.checkpoint().await;
                let c = &report.counts;
                // What the walk cost is in the "walked" line above.
                tracing::debug!(
                    until = report.until,
                    received = c.received,
                    counted = c.counted,
                    duplicates = c.duplicates,
                    unreadable = c.unreadable,
                    skipped = c.skipped,
                    "poll succeeded"
                );
                PollOutcome::Success(report)
            }
            Err(error) => {
                self.plan.abandon();
                self.metrics.polling.record_poll_stats(stats.probes + stats.moves, stats.rereads, stats.passes > 1);
                self.failed(started, error, report).await
            }
        }
    }

    /// Carries out the planner's steps until the poll is done; returns where the window ended and the
    /// earliest time a later walk still reaches.
    async fn walk(&mut self, mut step: Step, report: &mut PollReport) -> Result<(i64, i64), ApiError> {
        let mut ahead = Ahead::default();
        let mut walk = WalkSeen::default();
        let result = loop {
            let (query, counting) = match step {
                Step::Done { until, keep_from } => break Ok((until, keep_from)),
                Step::Fetch(query) => (query, false),
                Step::Count(query) => (query, true),
            };
            let response = match ahead.take(&query) {
                Some(handle) => joined(handle).await,
                None => self.client.event_page(&query).await,
            };
            let counted = match response {
                Ok(response) => self.ingest_page(&query, response, &mut walk, report).await,
                Err(error) => Err(error),
            };
            let (page, seen) = match counted {
                Ok(counted) => counted,
                Err(error) => break Err(error),
            };
            step = if counting {
                self.plan.count(page.total_count, seen.new_to_polling)
            } else {
                let headers = Headers {
                    total_count: page.total_count,
                    total_pages: page.total_pages,
                    current_page: page.current_page,
                };
                self.plan.page(headers, seen)
            };
            self.client.recycle(page.body);
            // Pages the walk will need are asked for while this one is counted, a few at once.
            let room = self.settings.requests_in_flight.max(1) - 1;
            for query in self.plan.lookahead(room) {
                if !ahead.has(&query) && ahead.len() < room {
                    ahead.push(query.clone(), self.spawn_fetch(query));
                }
            }
        };
        ahead.abort();
        result
    }

    fn spawn_fetch(&self, query: PageQuery) -> JoinHandle<Result<EventPage, ApiError>> {
        let client = self.client.clone();
        tokio::spawn(async move { client.event_page(&query).await })
    }

    /// Counts what is new on a fetched page, decoding on a blocking thread (a page can be megabytes).
    /// A body that is not a JSON array (truncated, garbled, an HTML error page) is fetched again, up to
    /// [`DECODE_ATTEMPTS`] times.
    async fn ingest_page(
        &mut self,
        query: &PageQuery,
        mut response: EventPage,
        walk: &mut WalkSeen,
        report: &mut PollReport,
    ) -> Result<(EventPage, plan::PageSeen), ApiError> {
        // emnify filters by whole seconds: the window holds events up to the end of its last second.
        let origin = Origin::Poll { from_millis: query.from * 1000, until_millis: query.until * 1000 + 999 };
        let mut attempt = 1;
        loop {
            // A page with an event type no name is known for waits for a look at emnify's live catalogue
            // first (at most every TYPE_REFRESH_AFTER_UNKNOWN), so its series are named once, rightly.
            let stop_on_unknown_type = self.may_refresh_event_types();
            let decoding = tokio::task::spawn_blocking({
                let body = response.body.clone();
                let tally = self.tally.clone();
                let metrics = self.metrics.clone();
                let mut state = std::mem::take(walk);
                move || {
                    let check = stop_on_unknown_type.then_some(&metrics.events);
                    let result = decode_and_count(&body, &tally, origin, &mut state, check);
                    (result, state)
                }
            });
            let (result, state) = decoding.await.map_err(|err| ApiError::Decode {
                endpoint: "event",
                message: format!("decoding the page stopped: {err}"),
            })?;
            *walk = state;
            let error = match result {
                Ok(Page::Counted(seen, counts)) => {
                    report.counts.add(counts);
                    return Ok((response, seen));
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
            response = self.client.event_page(query).await?;
        }
    }

    /// Shows, and logs once, whether emnify sorts by id as asked (else pages are walked from the first).
    fn note_sort(&mut self) {
        let Some(honoured) = self.plan.sort_honoured() else { return };
        self.metrics.polling.set_sort_honoured(honoured);
        if !honoured && !self.warned_sort {
            self.warned_sort = true;
            tracing::warn!(
                "emnify answers sort=id with the highest ids first: walking pages from the first one instead \
                 (counting is not affected, each poll costs more requests; see emnify_poll_sort_honoured)"
            );
        }
    }

    /// Ends a poll that stopped early: what it counted stays counted (and is checkpointed), the cursor stays.
    async fn failed(&self, started: Instant, error: ApiError, report: PollReport) -> PollOutcome {
        self.metrics.polling.record_failure(started.elapsed().as_secs_f64(), error.reason(), &error.to_string());
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
        let ignored = self.client.clock().ignored();
        self.metrics.polling.record_clock_ignored(ignored.outlier, ignored.implausible);
        let moved = self.warned_offset_millis.is_none_or(|warned| (warned - offset).abs() > CLOCK_WARN_MILLIS);
        if offset.abs() > CLOCK_WARN_MILLIS && moved {
            self.warned_offset_millis = Some(offset);
            tracing::warn!(
                offset_seconds = offset as f64 / 1000.0,
                "this host's clock differs from emnify's; windows follow emnify's clock (outlying Date \
                 headers are ignored), so counting is not affected, but check the host's time synchronisation"
            );
        }
    }
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
        let started = Instant::now();
        let outcome = tokio::select! {
            outcome = poller.poll_once() => outcome,
            () = shutdown.cancelled() => return,
        };
        let wait = match &outcome {
            // Polls start every `interval` (a poll that took longer is followed at once).
            PollOutcome::Success(_) => {
                failures = 0;
                interval.saturating_sub(started.elapsed())
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
