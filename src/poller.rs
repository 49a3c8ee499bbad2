//! Turns the emnify event list into counts: time windows, a cursor, and dedup.
//!
//! Each poll asks for the window `[from, until]` where `until` is fixed at the
//! start of the poll (so paging walks a stable set) and `from` reaches back
//! `overlap` before the previous poll's `until` (so events that reach emnify
//! late, with older timestamps, are still seen). Overlapping windows return
//! events again; [`RecentIds`] makes sure each id is counted once. A failed
//! poll does not move the cursor, so the next one covers the same ground again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dedup::RecentIds;
use crate::emnify::model::describe_decode_error;
use crate::emnify::{decode_event_list, ApiError, Client, DecodedEvent, PageQuery};
use crate::metrics::Metrics;
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
}

impl Poller {
    /// A poller that counts events from `start_millis - lookback` on.
    pub fn new(client: Client, metrics: Arc<Metrics>, settings: PollerSettings, start_millis: i64) -> Self {
        let lookback = i64::try_from(settings.lookback.as_millis()).unwrap_or(i64::MAX);
        // Whole seconds: some emnify timestamps carry no milliseconds.
        let floor_millis = start_millis.saturating_sub(lookback).div_euclid(1000) * 1000;
        let seen = RecentIds::new(floor_millis, settings.max_remembered_ids);
        Poller { client, metrics, settings, cursor: None, floor_millis, seen }
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
                // No later window starts before this, so older ids can go.
                self.seen.forget_before(until.saturating_sub(overlap).max(floor) * 1000);
                self.metrics.set_remembered_ids(self.seen.len());
                self.metrics.record_poll_success(elapsed, now_millis() as f64 / 1000.0);
                tracing::debug!(?report, "poll succeeded");
                PollOutcome::Success(report)
            }
            Err(error) => {
                self.metrics.record_poll_failure(elapsed, error.reason());
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
    async fn walk_pages(&mut self, report: &mut PollReport) -> Result<(Option<u64>, Option<u64>), ApiError> {
        let mut page = 1;
        let mut first_total = None;
        let mut last_total = None;
        let mut previous_ids: Vec<u64> = Vec::new();
        loop {
            let query = PageQuery { page, per_page: self.settings.page_size, from: report.from, until: report.until };
            let response = self.client.event_page(&query).await?;
            report.pages += 1;
            let events = decode_event_list(&response.body)
                .map_err(|e| ApiError::Decode { endpoint: "event", message: describe_decode_error(&e) })?;
            if page == 1 {
                first_total = response.total_count;
            }
            last_total = response.total_count.or(last_total);
            let ids: Vec<u64> = events.iter().filter_map(|e| e.as_ref().ok().map(|e| e.id)).collect();
            // Past the last page emnify returns the last page again; never count on an empty page.
            if response.current_page.is_some_and(|c| c != page) || (page > 1 && !ids.is_empty() && ids == previous_ids)
            {
                break;
            }
            let empty = events.is_empty();
            self.ingest(events, report);
            let last_page = match response.total_pages {
                Some(total) => page >= total,
                None => empty,
            };
            if last_page {
                break;
            }
            if page >= MAX_PAGES {
                tracing::warn!(page, "stopping a window walk at the page limit; paging headers look wrong");
                break;
            }
            previous_ids = ids;
            page += 1;
        }
        Ok((first_total, last_total))
    }

    fn ingest(&mut self, events: Vec<DecodedEvent<'_>>, report: &mut PollReport) {
        for decoded in events {
            report.received += 1;
            let event = match decoded {
                Ok(e) => e,
                Err(bad) => {
                    report.unreadable += 1;
                    self.metrics.record_unreadable(bad.reason);
                    tracing::warn!(id = bad.id, reason = bad.reason, "skipping an event that cannot be read");
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
