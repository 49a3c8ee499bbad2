//! Turns the emnify event list into counts: time windows, a cursor, and dedup.
//!
//! Each poll asks for the window `[from, until]` where `until` is fixed at the
//! start of the poll (so paging walks a stable set) and `from` reaches back
//! `overlap` before the previous poll's `until` (so events that reach emnify
//! late, with older timestamps, are still seen). Overlapping windows return
//! events again; [`RecentIds`] makes sure each id is counted once. A failed
//! poll does not move the cursor, so the next one covers the same ground again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::config::RETENTION;
use crate::dedup::RecentIds;
use crate::emnify::model::describe_decode_error;
use crate::emnify::{decode_event_list, ApiError, Client, DecodedEvent, EventPage, PageQuery};
use crate::metrics::Metrics;
use crate::state::{SavedState, StateStore};
use crate::timefmt::now_millis;

/// How the poller walks emnify's event list.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// `per_page` asked for (emnify may clamp it).
    pub page_size: u32,
    /// How far each window reaches back before the previous one's end.
    pub overlap: Duration,
    /// History to count at start-up; zero means only events from now on.
    pub lookback: Duration,
    /// Upper bound of the dedup memory.
    pub max_remembered_ids: usize,
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
}

/// What one poll saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// The window, Unix seconds.
    pub from: i64,
    pub until: i64,
    pub pages: u32,
    pub passes: u32,
    pub received: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub unreadable: u64,
    pub skipped: u64,
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

    pub fn report(&self) -> &PollReport {
        match self {
            PollOutcome::Success(r) | PollOutcome::Failed { report: r, .. } => r,
        }
    }
}

pub struct Poller {
    client: Client,
    metrics: Arc<Metrics>,
    settings: PollerSettings,
    /// End of the last successful window, Unix seconds.
    cursor: Option<i64>,
    /// Events before this (Unix ms) are history the user did not ask for.
    floor_millis: i64,
    seen: RecentIds,
    /// Fingerprints of unreadable records, so each is reported once.
    seen_unreadable: RecentIds,
    state: Option<StateStore>,
    last_checkpoint: Instant,
}

/// Longest a long poll goes without a checkpoint (save, then publish the counts so far).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

impl Poller {
    /// A poller that counts events from `start_millis - lookback` on.
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: PollerSettings, start_millis: i64) -> Self {
        let lookback = i64::try_from(settings.lookback.as_millis()).unwrap_or(i64::MAX);
        // Whole seconds: some emnify timestamps carry no milliseconds.
        let floor_millis = start_millis.saturating_sub(lookback).div_euclid(1000) * 1000;
        let seen = RecentIds::new(floor_millis, settings.max_remembered_ids);
        let seen_unreadable = RecentIds::new(floor_millis, 10_000);
        Poller {
            client,
            metrics,
            settings,
            cursor: None,
            floor_millis,
            seen,
            seen_unreadable,
            state: None,
            last_checkpoint: Instant::now(),
        }
    }

    /// Saves progress to `store` at every checkpoint, after resuming from what it holds (if anything).
    pub fn with_state(mut self, store: StateStore) -> Self {
        let resumed = match store.load() {
            Some(saved) => {
                self.resume(saved);
                true
            }
            None => false,
        };
        self.state = Some(store);
        if !resumed {
            // Saved at once, so a crash before the first poll still remembers when counting began.
            self.checkpoint();
        }
        self
    }

    fn resume(&mut self, saved: SavedState) {
        let oldest = now_millis() - i64::try_from(RETENTION.as_millis()).unwrap_or(i64::MAX);
        if saved.cursor.is_some_and(|c| c * 1000 < oldest) {
            tracing::warn!("the saved cursor is older than emnify's 30-day retention; events in between are lost");
        }
        self.cursor = saved.cursor.map(|c| c.max(oldest / 1000));
        self.floor_millis = saved.floor_millis;
        self.seen = RecentIds::from_entries(saved.horizon_millis, self.settings.max_remembered_ids, &saved.ids);
        self.seen_unreadable = RecentIds::from_entries(saved.horizon_millis, 10_000, &saved.unreadable);
        let restored = self.metrics.restore_counters(&saved.counters);
        self.metrics.set_remembered_ids(self.seen.len());
        tracing::info!(
            cursor = saved.cursor,
            remembered_ids = self.seen.len(),
            counters = restored,
            saved_ms_ago = now_millis() - saved.saved_at_millis,
            "resumed from the state file"
        );
    }

    /// Everything [`StateStore`] saves.
    pub fn snapshot(&self, api_url: &str) -> SavedState {
        SavedState {
            cursor: self.cursor,
            floor_millis: self.floor_millis,
            horizon_millis: self.seen.horizon_millis(),
            ids: self.seen.entries(),
            unreadable: self.seen_unreadable.entries(),
            counters: self.metrics.counter_values(),
            ..SavedState::new(api_url)
        }
    }

    /// Saves the state (if there is a state file), then publishes the counts: scrapes never see a value
    /// that a restart would take back.
    pub fn checkpoint(&mut self) {
        self.last_checkpoint = Instant::now();
        if let Some(store) = &self.state {
            if let Err(err) = store.save(&self.snapshot(&store.api_url)) {
                tracing::error!(error = %err, "saving the state failed; counts stay unpublished until a save works");
                return;
            }
        }
        self.metrics.publish();
    }

    /// Loads the live event-type names; on failure the built-in catalogue stays in use.
    pub async fn load_event_types(&mut self) -> bool {
        match self.client.event_types().await {
            Ok(types) if !types.is_empty() => {
                tracing::info!(count = types.len(), "loaded event types from emnify");
                self.metrics.set_event_type_names(types);
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

    /// The client, e.g. to read its login count.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// End of the last successful window, Unix seconds.
    pub fn cursor(&self) -> Option<i64> {
        self.cursor
    }

    /// Polls one window and counts what is new in it.
    pub async fn poll_once(&mut self) -> PollOutcome {
        let started = Instant::now();
        let overlap = i64::try_from(self.settings.overlap.as_secs()).unwrap_or(i64::MAX / 2);
        let floor = self.floor_millis.div_euclid(1000);
        let until = (now_millis() / 1000).max(floor);
        let from = self.cursor.map_or(floor, |c| c.saturating_sub(overlap)).max(floor).min(until);
        let mut report = PollReport { from, until, ..PollReport::default() };
        let result = self.walk_window(&mut report).await;
        let elapsed = started.elapsed().as_secs_f64();
        self.metrics.set_remembered_ids(self.seen.len());
        match result {
            Ok(()) => {
                self.cursor = Some(until);
                let overlap_start = until.saturating_sub(overlap);
                // No later window starts before this, so older ids can go.
                let horizon = overlap_start.max(floor) * 1000;
                self.seen.forget_before(horizon);
                self.seen_unreadable.forget_before(horizon);
                self.metrics.set_remembered_ids(self.seen.len());
                self.metrics.record_poll_success(elapsed, now_millis() as f64 / 1000.0);
                self.checkpoint();
                tracing::debug!(?report, "poll succeeded");
                PollOutcome::Success(report)
            }
            Err(error) => {
                self.metrics.record_poll_failure(elapsed, error.reason());
                self.checkpoint();
                tracing::warn!(error = %error, reason = error.reason(), pages = report.pages, counted = report.counted, "poll failed");
                PollOutcome::Failed { error, report }
            }
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
    async fn walk_pages(&mut self, report: &mut PollReport) -> Result<(Option<u64>, Option<u64>), ApiError> {
        let mut page = 1;
        let mut first_total = None;
        let mut last_total = None;
        let mut first_len = 0;
        let mut previous_body = Bytes::new();
        let mut seen_in_walk = HashSet::new();
        loop {
            let query = PageQuery { page, per_page: self.settings.page_size, from: report.from, until: report.until };
            let (response, summary) = self.fetch_and_ingest(&query, &mut seen_in_walk, report).await?;
            if page == 1 {
                first_total = response.total_count;
                first_len = summary.len;
            }
            last_total = response.total_count.or(last_total);
            let repeated = page > 1
                && (response.current_page.is_some_and(|c| c != page)
                    || (summary.readable > 0 && summary.new_in_walk == 0)
                    || response.body == previous_body);
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
            previous_body = response.body;
            page += 1;
            if self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                self.checkpoint();
            }
        }
        Ok((first_total, last_total))
    }

    /// Fetches one page and counts what is new on it. A body that is not a JSON array (truncated,
    /// garbled, an HTML error page) is fetched again, up to [`DECODE_ATTEMPTS`] times.
    async fn fetch_and_ingest(
        &mut self,
        query: &PageQuery,
        seen_in_walk: &mut HashSet<u64>,
        report: &mut PollReport,
    ) -> Result<(EventPage, PageSummary), ApiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self.client.event_page(query).await?;
            report.pages += 1;
            let decoded = decode_event_list(&response.body);
            match decoded {
                Ok(events) => {
                    let mut summary = PageSummary { len: events.len(), readable: 0, new_in_walk: 0 };
                    for event in events.iter().flatten() {
                        summary.readable += 1;
                        summary.new_in_walk += usize::from(seen_in_walk.insert(event.id));
                    }
                    self.ingest(events, report);
                    return Ok((response, summary));
                }
                Err(err) => {
                    let error = ApiError::Decode { endpoint: "event", message: describe_decode_error(&err) };
                    if attempt >= DECODE_ATTEMPTS {
                        return Err(error);
                    }
                    tracing::warn!(page = query.page, attempt, error = %error, "fetching an unreadable page again");
                }
            }
        }
    }

    fn ingest(&mut self, events: Vec<DecodedEvent<'_>>, report: &mut PollReport) {
        for decoded in events {
            report.received += 1;
            let event = match decoded {
                Ok(e) => e,
                Err(bad) => {
                    // Non-objects leave no fingerprint; each of those is counted every time it is received.
                    if bad.fingerprint == 0 || self.seen_unreadable.insert(bad.fingerprint, report.until * 1000) {
                        report.unreadable += 1;
                        self.metrics.record_unreadable(bad.reason);
                        tracing::warn!(id = bad.id, reason = bad.reason, "skipping an event that cannot be read");
                    }
                    continue;
                }
            };
            let time = event.timestamp_millis.unwrap_or(report.until * 1000);
            if time < self.floor_millis {
                report.skipped += 1;
                self.metrics.record_skipped("before_start");
                continue;
            }
            if time < self.seen.horizon_millis() && !self.seen.contains(event.id) {
                report.skipped += 1;
                self.metrics.record_skipped("beyond_dedup_horizon");
                tracing::warn!(
                    id = event.id,
                    "skipping an event older than the dedup memory; it may have been counted"
                );
                continue;
            }
            if self.seen.insert(event.id, time) {
                report.counted += 1;
                self.metrics.record_event(&event);
            } else {
                report.duplicates += 1;
                self.metrics.record_duplicate();
            }
        }
    }
}
