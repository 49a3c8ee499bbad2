//! Turns the emnify event list into counts: time windows, a cursor, probes of the overlap, and dedup.
//!
//! Each poll covers `[cursor - overlap, until]` on emnify's clock, where `until` is fixed at the
//! start of the poll (so paging walks a stable set): events that reach emnify up to `overlap` late,
//! stamped with an older time, are still seen. Only the new ground `[cursor, until]` is read in full.
//! The overlap behind the cursor is kept as a few [`Segment`]s, each with the number of events emnify
//! reported for it (`X-Total-Count`) when it was last read completely; a poll asks emnify for each
//! segment's count again with a page of its newest records (a probe), and reads again only a segment
//! whose count changed, highest ids first, stopping once it found as many new records as the count
//! grew by (usually on the probe page itself). So an event is read about once, and a late one within
//! one poll of its arrival.
//!
//! Probes compare emnify's answer with emnify's answer to the very same query, never with what the
//! exporter remembers, so they do not depend on how emnify treats the whole seconds at a window's ends
//! (undocumented). Adjacent windows share their boundary second, so whichever way emnify reads `from`
//! and `until`, every second is inside at least one of them. An API without `X-Total-Count` cannot be
//! probed: its overlap is read in full on every poll. The shared [`Tally`] makes sure each id is
//! counted once, and a failed poll does not move the cursor, so the next one covers the same ground.

pub mod plan;

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::emnify::{decode_event_list, ApiError, Client, DecodeError, EventPage, PageQuery};
use crate::metrics::{EventMetrics, Metrics};
use crate::rng::SplitMix64;
use crate::tally::{checkpoint_blocking, lock, BatchCounts, FirstSeen, Origin, SharedTally};
use crate::timefmt::{duration_millis, now_millis};

/// How the poller walks emnify's event list.
#[derive(Debug, Clone)]
pub struct PollerSettings {
    /// `per_page` asked for (emnify may clamp it).
    pub page_size: u32,
    /// How far each window reaches back before the previous one's end.
    pub overlap: Duration,
    /// Most requests of one poll in flight at once (pages of a walk, probes), within the request budget.
    pub requests_in_flight: usize,
}

/// The default of `--emnify.requests-in-flight`: enough to hide a slow API's latency, few enough to
/// leave emnify's burst allowance to the account's other clients.
pub const DEFAULT_REQUESTS_IN_FLIGHT: usize = 4;

/// Passes of one walk at most: a walk is repeated (stopping once it found what is new) when the event
/// count changed under it.
const MAX_PASSES: u32 = 2;
/// Safety stop for a window with broken paging headers.
const MAX_PAGES: u32 = 100_000;
/// Fetches of one page whose body is not a JSON array before the poll fails.
const DECODE_ATTEMPTS: u32 = 3;
/// Records on a probe page: a segment's newest, enough for what arrives late between two polls.
const PROBE_PAGE_SIZE: u32 = 250;
/// Segments kept at most (one probe a poll each); beyond it, two neighbours are merged.
const MAX_SEGMENTS: usize = 24;

/// What one page held.
struct PageSummary {
    /// Elements, readable or not.
    len: usize,
    readable: usize,
    /// Readable events whose id had not yet been seen in this walk.
    new_in_walk: usize,
    /// Records not yet seen in this walk (unreadable records that are not objects each count).
    distinct_new: u64,
    /// Of those, the records first seen after the pass that established the known count.
    found: u64,
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
    /// Pages read (probes not included).
    pub pages: u32,
    /// Most passes one walk took (a walk is repeated when emnify's count changed under it).
    pub passes: u32,
    /// Requests asking emnify how many events a segment of the overlap holds (its newest records'
    /// page, or one record for a merge).
    pub probes: u32,
    /// Segments of the overlap read again because emnify's count for them changed (or is unknown).
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

/// A stretch `[from, until]` (Unix seconds) of the overlap, read completely, with emnify's
/// `X-Total-Count` for it as of that read: `None` when unknown (then it is read again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Segment {
    from: i64,
    until: i64,
    total: Option<u64>,
    /// The pass that established `total`: as many of the segment's records were seen by its end.
    seq: PassSeq,
}

/// Walks' passes, numbered in order: a record's first sighting is dated by one.
type PassSeq = u32;

/// A range's count as of an earlier complete read, for reading it again.
#[derive(Debug, Clone)]
struct Known {
    total: u64,
    /// The pass that established it: records first seen after it are new to the range.
    seq: PassSeq,
    /// Records new to the range known without reading it again (see [`Poller::boundary_seen`]).
    already: Arc<IdSet>,
}

impl Known {
    fn new(total: u64, seq: PassSeq) -> Self {
        Known { total, seq, already: Arc::default() }
    }

    /// Whether `now` records, `found` of them new since, are all accounted for.
    fn all_found(&self, now: u64, found: u64) -> bool {
        now >= self.total && found + self.already.len() as u64 >= now - self.total
    }
}

/// Two neighbouring segments to become one. Their union's count was probed after both were known;
/// if neither count has changed by the next poll's probes, none changed at the moment of that probe
/// either, so it is the union's count as of a complete read (when the next poll's probe of the union
/// agrees with it).
#[derive(Debug, Clone, Copy)]
struct Merge {
    first: Segment,
    second: Segment,
    total: u64,
    /// The last pass before the union was probed.
    seq: PassSeq,
}

/// What the poller knows of the overlap behind its cursor.
#[derive(Debug, Default)]
struct Coverage {
    /// In time order; each one's `until` is the next one's `from`, the last one's is the cursor.
    segments: VecDeque<Segment>,
    merge: Option<Merge>,
}

/// What is walked: a window, and which ids come first.
#[derive(Debug, Clone, Copy, Default)]
struct Range {
    from: i64,
    until: i64,
    newest_first: bool,
}

impl Range {
    fn query(self, page: u32, per_page: u32) -> PageQuery {
        PageQuery { page, per_page, from: self.from, until: self.until, newest_first: self.newest_first }
    }
}

/// What one walk of a range saw.
#[derive(Debug, Default)]
struct Pass {
    /// `X-Total-Count` on its first and last page.
    first_total: Option<u64>,
    last_total: Option<u64>,
    /// Distinct records read (unreadable records that are not objects each count).
    read: u64,
    /// The count when the walk stopped early, having found every record the count says is new.
    found_all: Option<u64>,
}

pub struct Poller {
    client: Arc<Client>,
    metrics: Arc<Metrics>,
    settings: PollerSettings,
    tally: SharedTally,
    coverage: Coverage,
    /// The number of the latest pass of any walk.
    pass_seq: PassSeq,
    /// Records stamped with a second two neighbouring segments share, by id: the pass that saw them
    /// first and their second. Reading one of the two again counts such a record as new to it when
    /// the other one saw it first, after this one's count was established.
    boundary_seen: BoundarySeen,
    /// emnify's `until` covers the whole second it names (seen in an answer; until then not assumed).
    until_covers_second: bool,
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
            client: Arc::new(client),
            metrics,
            settings,
            tally,
            coverage: Coverage::default(),
            pass_seq: 0,
            boundary_seen: BoundarySeen::default(),
            until_covers_second: false,
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
        let overlap = self.overlap_secs();
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
        // A cursor ahead of emnify's now (its clock was stepped back, and the step followed) was read
        // while that ground was still the future: events stamped there arrive from now on. The window
        // starts from now again, so no stretch of time goes unread.
        let cursor = cursor.map(|c| c.min((now + 999).div_euclid(1000)));
        // emnify's time is known to a second or so below the truth (its `Date` headers are whole
        // seconds), so the window ends at the end of the second that may be current: a window
        // reaching a moment into emnify's future loses nothing (the next one starts `overlap` earlier),
        // while one ending a second short would hold back what just happened until the next poll.
        let until = (now + 999).div_euclid(1000).max(floor).max(cursor.unwrap_or(i64::MIN));
        let from = cursor.map_or(floor, |c| c.saturating_sub(overlap)).max(floor).min(until);
        let mut report = PollReport { from, until, ..PollReport::default() };
        match self.poll_window(from, until, cursor, &mut report).await {
            Ok(()) => {
                let elapsed = started.elapsed().as_secs_f64();
                self.metrics.polling.record_success(elapsed, now_millis() as f64 / 1000.0);
                // No later window starts before `until - overlap`, and no segment still probed before
                // the first one that reaches it, so older ids can go.
                let next_from = until.saturating_sub(overlap).max(floor);
                let kept = self.coverage.segments.iter().find(|s| s.until >= next_from).map_or(next_from, |s| s.from);
                self.boundary_seen.retain(|_, (_, second)| *second >= kept);
                lock(&self.tally).window_done(until, kept.min(next_from).max(floor) * 1000);
                self.checkpoint().await;
                let c = &report.counts;
                tracing::debug!(
                    from = report.from,
                    until = report.until,
                    pages = report.pages,
                    passes = report.passes,
                    probes = report.probes,
                    rereads = report.rereads,
                    received = c.received,
                    counted = c.counted,
                    duplicates = c.duplicates,
                    unreadable = c.unreadable,
                    skipped = c.skipped,
                    "poll succeeded"
                );
                PollOutcome::Success(report)
            }
            Err(error) => self.failed(started, error, report).await,
        }
    }

    fn overlap_secs(&self) -> i64 {
        duration_millis(self.settings.overlap) / 1000
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

    /// Covers `[from, until]`: the overlap behind the cursor by probes (reading again what changed),
    /// the new ground after it by reading it.
    async fn poll_window(
        &mut self,
        from: i64,
        until: i64,
        cursor: Option<i64>,
        report: &mut PollReport,
    ) -> Result<(), ApiError> {
        let overlap = match cursor {
            Some(c) if c > from => {
                self.keep_segments(from, c);
                Some(c)
            }
            _ => {
                self.coverage = Coverage::default();
                None
            }
        };
        // New ground first: events of the second it shares with the newest segment that arrived since
        // the last poll are then read once, here, and the newest segment's probe page finds them known.
        if cursor.is_none_or(|c| until > c) {
            self.read_new(overlap.unwrap_or(from), until, report).await?;
        }
        if let Some(cursor) = overlap {
            self.check_overlap(from, cursor, report).await?;
        }
        self.propose_merge(report).await;
        Ok(())
    }

    /// Drops the segments a poll of `[from, ...]` with the cursor at `cursor` does not keep: those
    /// past the cursor (from a poll that failed after reading them) and those before `from`.
    fn keep_segments(&mut self, from: i64, cursor: i64) {
        let segments = &mut self.coverage.segments;
        segments.retain(|s| s.until >= from && s.until <= cursor);
        if segments.back().is_some_and(|s| s.until != cursor) {
            segments.clear();
        }
    }

    /// Makes sure everything in `[from, cursor]` (read by earlier polls) is counted: segments whose
    /// count emnify reports unchanged are left alone, the others are read again.
    async fn check_overlap(&mut self, from: i64, cursor: i64, report: &mut PollReport) -> Result<(), ApiError> {
        let coverage = &mut self.coverage;
        let segments: Vec<Segment> = coverage.segments.iter().copied().filter(|s| s.until <= cursor).collect();
        let covered_from = segments.first().map_or(cursor, |s| s.from);
        let mut merge = coverage.merge.take();
        // Unknown ground (after a restart: the coverage is not saved) is read in full first.
        if covered_from > from {
            let range = Range { from, until: covered_from, newest_first: false };
            let (total, seq) = self.walk(range, None, report).await?;
            self.coverage.segments.push_front(Segment { from, until: covered_from, total, seq });
        }
        // A proposed merge's union is probed again: two answers that agree, with neither part changed
        // in between, make its count one a single wrong header cannot have made up.
        let mut targets = segments.clone();
        targets.extend(merge.map(|m| Segment {
            from: m.first.from,
            until: m.second.until,
            total: Some(m.total),
            seq: m.seq,
        }));
        // Each segment is probed with a page of its newest records: when its count changed, the records
        // that arrived late are usually all on it (where ids grow with arrival), and reading it settles
        // the segment without another request. The union is probed with a single record.
        let per_page = self.settings.page_size.min(PROBE_PAGE_SIZE);
        let queries = targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let union = i >= segments.len();
                let range = Range { from: t.from, until: t.until, newest_first: !union };
                let size = if union { 1 } else { per_page };
                t.total.map(|_| range.query(1, size))
            })
            .collect();
        let mut pages = self.probe_all(queries, report).await?;
        let union_now = if merge.is_some() { pages.pop().flatten().and_then(|p| p.total_count) } else { None };
        let probed: Vec<Option<u64>> = pages.iter().map(|p| p.as_ref().and_then(|p| p.total_count)).collect();
        if let Some(m) = merge.take() {
            let unchanged = |part: Segment| {
                segments.iter().zip(&probed).any(|(s, p)| *s == part && part.total.is_some() && *p == part.total)
            };
            if unchanged(m.first) && unchanged(m.second) && union_now == Some(m.total) {
                merge = Some(m);
            }
        }
        for ((segment, probed), page) in segments.into_iter().zip(probed).zip(pages) {
            if segment.total.is_some() && probed == segment.total {
                continue;
            }
            report.rereads += 1;
            self.metrics.polling.record_reread();
            tracing::debug!(
                from = segment.from,
                until = segment.until,
                before = segment.total,
                now = probed,
                "emnify's count for a stretch of the overlap changed; reading it again"
            );
            let range = Range { from: segment.from, until: segment.until, newest_first: true };
            let known = segment.total.filter(|_| probed.is_some()).map(|total| Known::new(total, segment.seq));
            let settled = match (known, page) {
                (Some(known), Some(page)) => self.settle_with(range, segment, known, page, report).await,
                (known, _) => Ok(Err(known)),
            };
            let walked = match settled {
                Ok(Ok(settled)) => Ok(settled),
                Ok(Err(known)) => self.walk(range, known, report).await,
                Err(error) => Err(error),
            };
            let (total, seq) = match walked {
                Ok(walked) => walked,
                Err(error) => {
                    // Read again next time; what was counted stays counted.
                    self.set_total(segment, None, segment.seq);
                    return Err(error);
                }
            };
            // A merge of a segment that changed would hide the change.
            if merge.is_some_and(|m| m.first == segment || m.second == segment) {
                merge = None;
            }
            self.set_total(segment, total, seq);
        }
        if let Some(m) = merge {
            let coverage = &mut self.coverage;
            if let Some(i) = coverage.segments.iter().position(|s| *s == m.first) {
                if coverage.segments.get(i + 1) == Some(&m.second) {
                    coverage.segments[i] =
                        Segment { from: m.first.from, until: m.second.until, total: Some(m.total), seq: m.seq };
                    coverage.segments.remove(i + 1);
                }
            }
        }
        Ok(())
    }

    /// Takes back the memory of boundary records from a walk, and what it learned of `until`.
    fn absorb(&mut self, boundary: BoundarySeen, until_covers_second: bool) {
        self.boundary_seen = boundary;
        if until_covers_second && !self.until_covers_second {
            tracing::debug!("emnify's until covers the whole second it names");
            self.until_covers_second = true;
        }
    }

    /// Records stamped with the segment's last second that a later walk saw first, after the segment's
    /// count was established: in the segment too, once emnify is known to read `until` as the whole
    /// second (the newest segment's last second is emnify's current one when it is read, so what that
    /// second brings later is read by the next poll's new ground).
    fn seen_by_neighbours(&self, segment: Segment) -> IdSet {
        if !self.until_covers_second {
            return IdSet::default();
        }
        self.boundary_seen
            .iter()
            .filter(|(_, (seq, second))| *second == segment.until && *seq > segment.seq)
            .map(|(id, _)| *id)
            .collect()
    }

    fn set_total(&mut self, segment: Segment, total: Option<u64>, seq: PassSeq) {
        if let Some(s) = self.coverage.segments.iter_mut().find(|s| **s == segment) {
            s.total = total;
            s.seq = seq;
        }
    }

    /// Reads `[from, until]` for the first time: what no later window reaches back to in one go,
    /// forgotten; the rest becomes a segment.
    async fn read_new(&mut self, from: i64, until: i64, report: &mut PollReport) -> Result<(), ApiError> {
        let kept_from = until.saturating_sub(self.overlap_secs()).saturating_sub(1).max(from);
        let range = Range { from: kept_from, until, newest_first: false };
        let (total, seq) = self.walk(range, None, report).await?;
        self.coverage.segments.push_back(Segment { from: kept_from, until, total, seq });
        if kept_from > from {
            let range = Range { from, until: kept_from, newest_first: false };
            self.walk(range, None, report).await?;
        }
        Ok(())
    }

    /// Fetches the probe pages (`None` where there is none to fetch), a few at a time, in order. A
    /// failed probe fails the poll: emnify is refusing or failing, and the next poll asks again after
    /// the backoff.
    async fn probe_all(
        &mut self,
        queries: Vec<Option<PageQuery>>,
        report: &mut PollReport,
    ) -> Result<Vec<Option<EventPage>>, ApiError> {
        let count = queries.len();
        let mut queries = queries.into_iter();
        let mut results = Vec::with_capacity(count);
        let mut in_flight = VecDeque::new();
        while results.len() < count {
            while in_flight.len() < self.settings.requests_in_flight.max(1) {
                let Some(query) = queries.next() else { break };
                in_flight.push_back(query.map(|q| self.spawn_fetch(q)));
            }
            let Some(handle) = in_flight.pop_front() else { break };
            let Some(handle) = handle else {
                results.push(None);
                continue;
            };
            report.probes += 1;
            self.metrics.polling.record_probe();
            match joined(handle).await {
                Ok(page) => results.push(Some(page)),
                Err(error) => {
                    in_flight.into_iter().flatten().for_each(|h| h.abort());
                    return Err(error);
                }
            }
        }
        Ok(results)
    }

    /// Counts a segment's probe page (its newest records); returns the count to keep when what it
    /// held, with the records of the segment's last second that the new ground read first (see
    /// [`Poller::seen_by_neighbours`]), accounts for everything new to the segment; else what is known
    /// for walking it.
    async fn settle_with(
        &mut self,
        range: Range,
        segment: Segment,
        known: Known,
        page: EventPage,
        report: &mut PollReport,
    ) -> Result<Result<(Option<u64>, PassSeq), Option<Known>>, ApiError> {
        let per_page = page.per_page.unwrap_or(self.settings.page_size);
        self.pass_seq += 1;
        let seq = self.pass_seq;
        let mut walk =
            Walked { range, seq, known: Some(known.clone()), found_ids: Some(Vec::new()), ..Walked::new(self) };
        let ingested = self.ingest_page(range, &range.query(1, per_page), page, &mut walk, report).await;
        self.absorb(walk.boundary, walk.until_covers_second);
        let (page, _) = ingested?;
        self.client.recycle(page.body);
        // After the page: it may be what shows how emnify reads `until`.
        let already = self.seen_by_neighbours(segment);
        let found = walk.found_ids.unwrap_or_default().into_iter().filter(|id| !already.contains(id)).count();
        let known = Known { already: Arc::new(already), ..known };
        match page.total_count {
            Some(now) if known.all_found(now, found as u64) => Ok(Ok((Some(now), seq))),
            _ => Ok(Err(Some(known))),
        }
    }

    /// Keeps the number of segments (probes a poll) bounded: probes the union of the two shortest
    /// neighbours, to become one segment at the next poll if neither changed (see [`Merge`]).
    async fn propose_merge(&mut self, report: &mut PollReport) {
        let segments = &self.coverage.segments;
        if segments.len() <= MAX_SEGMENTS || self.coverage.merge.is_some() {
            return;
        }
        // Not the newest: events stamped with its last seconds are still arriving.
        let pair = (0..segments.len().saturating_sub(2))
            .filter(|&i| segments[i].total.is_some() && segments[i + 1].total.is_some())
            .min_by_key(|&i| segments[i + 1].until - segments[i].from);
        let Some(i) = pair else { return };
        let (first, second) = (segments[i], segments[i + 1]);
        let query = Range { from: first.from, until: second.until, newest_first: false }.query(1, 1);
        report.probes += 1;
        self.metrics.polling.record_probe();
        let seq = self.pass_seq;
        if let Ok(Some(total)) = joined(self.spawn_fetch(query)).await.map(|page| page.total_count) {
            self.coverage.merge = Some(Merge { first, second, total, seq });
        }
    }

    fn spawn_fetch(&self, query: PageQuery) -> JoinHandle<Result<EventPage, ApiError>> {
        let client = self.client.clone();
        tokio::spawn(async move { client.event_page(&query).await })
    }

    /// Walks a range and returns the count to keep for it: never more than the distinct records the
    /// walk read, so a count that is wrong (a bad header, records emnify lists twice) or that grew
    /// under the walk costs a read later, but never hides an event. `None`: emnify did not tell it.
    ///
    /// `known_total` is the count as of an earlier complete read: then the walk stops as soon as it
    /// found as many records never seen before as the count grew by. When the count changed while the
    /// pages were read, the range is read once more that way, highest ids first, so events that arrive
    /// during a walk are usually counted in the same poll; what still changes is left to the next
    /// poll's probe.
    async fn walk(
        &mut self,
        range: Range,
        known: Option<Known>,
        report: &mut PollReport,
    ) -> Result<(Option<u64>, PassSeq), ApiError> {
        let mut range = range;
        let mut known = known;
        let mut kept = (None, self.pass_seq);
        for pass in 1..=MAX_PASSES {
            report.passes = report.passes.max(pass);
            self.pass_seq += 1;
            let seq = self.pass_seq;
            let seen = self.walk_pages(range, known.clone(), report).await?;
            if seen.found_all.is_some() {
                return Ok((seen.found_all, seq));
            }
            let (Some(first), Some(last)) = (seen.first_total, seen.last_total) else { return Ok((None, seq)) };
            kept = (Some(last.min(seen.read)), seq);
            if first == last {
                break;
            }
            self.metrics.polling.record_changed_while_paging();
            tracing::debug!(before = first, after = last, "the count changed while paging; reading the range again");
            range.newest_first = true;
            // A count that shrank (records expired, emnify's 30-day retention) shifted the pages under the
            // walk: records may have moved onto pages already read, so what was read proves nothing and
            // the range is read again in full, newest first (an expiry at the oldest end moves none of
            // those pages). A count that only grew is settled by finding what is new.
            known = if last < first { None } else { kept.0.map(|total| Known::new(total, seq)) };
        }
        Ok(kept)
    }

    /// Walks every page of the range once.
    ///
    /// Paging headers are hints, not promises: a walk goes on past `X-Total-Pages` while pages come back
    /// full, and it ends when emnify repeats a page (what it does past the end) or a page is empty.
    /// Up to `requests_in_flight` of the pages the headers announce are fetched while one is counted;
    /// pages are counted in order.
    async fn walk_pages(
        &mut self,
        range: Range,
        known: Option<Known>,
        report: &mut PollReport,
    ) -> Result<Pass, ApiError> {
        let known_total = known.as_ref().map(|k| k.total);
        let per_page = self.settings.page_size;
        let mut pass = Pass::default();
        let mut page = 1;
        let mut first_len = 0;
        let mut previous_fingerprint = None;
        let mut walk = Walked { range, known: known.clone(), ..Walked::new(self) };
        let mut found = 0;
        let mut in_flight = InFlight::default();
        // A read expected to stop early asks for one page at a time until it knows it cannot.
        let mut depth = if known_total.is_some() { 0 } else { self.settings.requests_in_flight.max(1) };
        let mut response = self.fetch(range.query(page, per_page), report).await?;
        let walked = loop {
            let announced = response.total_pages.unwrap_or(0).min(MAX_PAGES);
            while in_flight.len() < depth && in_flight.requested(page) < announced {
                let next = in_flight.requested(page) + 1;
                in_flight.push(next, self.spawn_fetch(range.query(next, per_page)));
            }
            let query = range.query(page, per_page);
            let (done, summary) = match self.ingest_page(range, &query, response, &mut walk, report).await {
                Ok(ingested) => ingested,
                Err(error) => break Err(error),
            };
            found += summary.found;
            pass.read += summary.distinct_new;
            if page == 1 {
                pass.first_total = done.total_count;
                first_len = summary.len;
            }
            pass.last_total = done.total_count.or(pass.last_total);
            let repeated = page > 1
                && (done.current_page.is_some_and(|c| c != page)
                    || (summary.readable > 0 && summary.new_in_walk == 0)
                    || previous_fingerprint == Some(summary.fingerprint));
            if repeated {
                break Ok(());
            }
            // At least `known` of the range's records were read before, and the count grew by no more
            // than the records found now for the first time: every record it holds has been read.
            pass.found_all = match (&known, pass.first_total, done.total_count) {
                (Some(known), Some(first), Some(now)) if first == now && known.all_found(now, found) => Some(now),
                _ => None,
            };
            if pass.found_all.is_some() {
                break Ok(());
            }
            depth = self.settings.requests_in_flight.max(1);
            let full_size =
                if page == 1 { per_page.min(done.per_page.unwrap_or(u32::MAX)) as usize } else { first_len };
            let full = summary.len > 0 && summary.len >= full_size;
            let last_page = match done.total_pages {
                Some(total) => page >= total && !full,
                None => summary.len == 0,
            };
            if last_page {
                break Ok(());
            }
            if page >= MAX_PAGES {
                tracing::warn!(page, "stopping a window walk at the page limit; paging headers look wrong");
                break Ok(());
            }
            previous_fingerprint = Some(summary.fingerprint);
            self.client.recycle(done.body);
            page += 1;
            response = match in_flight.take(page) {
                Some(handle) => match joined(handle).await {
                    Ok(fetched) => {
                        report.pages += 1;
                        fetched
                    }
                    Err(error) => break Err(error),
                },
                None => match self.fetch(range.query(page, per_page), report).await {
                    Ok(fetched) => fetched,
                    Err(error) => break Err(error),
                },
            };
        };
        in_flight.abort();
        // Absent counts are left out of the line (tracing records an `Option` only when it is `Some`).
        tracing::debug!(
            from = range.from,
            until = range.until,
            newest_first = range.newest_first,
            known_total,
            pages = page,
            found,
            read = pass.read,
            first_total = pass.first_total,
            last_total = pass.last_total,
            found_all = pass.found_all,
            "walked"
        );
        self.absorb(walk.boundary, walk.until_covers_second);
        walked.map(|()| pass)
    }

    async fn fetch(&self, query: PageQuery, report: &mut PollReport) -> Result<EventPage, ApiError> {
        let page = self.client.event_page(&query).await;
        report.pages += u32::from(page.is_ok());
        page
    }

    /// Counts what is new on a fetched page, decoding on a blocking thread (a page can be megabytes).
    /// A body that is not a JSON array (truncated, garbled, an HTML error page) is fetched again, up to
    /// [`DECODE_ATTEMPTS`] times.
    async fn ingest_page(
        &mut self,
        range: Range,
        query: &PageQuery,
        mut response: EventPage,
        walk: &mut Walked,
        report: &mut PollReport,
    ) -> Result<(EventPage, PageSummary), ApiError> {
        // emnify filters by whole seconds: the window holds events up to the end of its last second.
        let origin = Origin::Poll { from_millis: range.from * 1000, until_millis: range.until * 1000 + 999 };
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
            response = self.fetch(query.clone(), report).await?;
        }
    }
}

/// Page requests of one walk sent ahead of the page being counted, in page order.
#[derive(Default)]
struct InFlight {
    pages: VecDeque<(u32, JoinHandle<Result<EventPage, ApiError>>)>,
}

impl InFlight {
    fn len(&self) -> usize {
        self.pages.len()
    }

    /// The highest page asked for so far, `current` if none is in flight.
    fn requested(&self, current: u32) -> u32 {
        self.pages.back().map_or(current, |(page, _)| *page)
    }

    fn push(&mut self, page: u32, handle: JoinHandle<Result<EventPage, ApiError>>) {
        self.pages.push_back((page, handle));
    }

    /// The request for `page`, if it was sent ahead.
    fn take(&mut self, page: u32) -> Option<JoinHandle<Result<EventPage, ApiError>>> {
        if self.pages.front().is_some_and(|(p, _)| *p == page) {
            self.pages.pop_front().map(|(_, handle)| handle)
        } else {
            None
        }
    }

    /// Gives up the requests a walk that ended no longer needs.
    fn abort(self) {
        for (_, handle) in self.pages {
            handle.abort();
        }
    }
}

/// The result of a spawned request.
async fn joined(handle: JoinHandle<Result<EventPage, ApiError>>) -> Result<EventPage, ApiError> {
    handle.await.unwrap_or_else(|err| {
        Err(ApiError::Connection { endpoint: "event", message: format!("the request stopped: {err}") })
    })
}

type IdSet = HashSet<u64, foldhash::fast::RandomState>;

/// Records seen in one walk of a window, to recognise a page that emnify repeats and to count the
/// distinct records it read: event ids, and fingerprints of unreadable records.
#[derive(Default)]
struct WalkSeen {
    ids: IdSet,
    unreadable: IdSet,
}

/// See [`Poller::boundary_seen`]: id -> (first pass, second).
type BoundarySeen = HashMap<u64, (PassSeq, i64), foldhash::fast::RandomState>;

/// What a walk carries from page to page (onto the blocking thread that decodes each page and back).
#[derive(Default)]
struct Walked {
    range: Range,
    /// This pass.
    seq: PassSeq,
    /// The range's count from an earlier complete read, if it has one.
    known: Option<Known>,
    seen: WalkSeen,
    boundary: BoundarySeen,
    /// A record stamped inside the second `until` names (not at its start) came back: emnify's
    /// `until` covers that whole second.
    until_covers_second: bool,
    /// When wanted, the ids counted in `found`.
    found_ids: Option<Vec<u64>>,
}

impl Walked {
    /// A walk of the poller's current pass, holding its memory of boundary records meanwhile.
    fn new(poller: &mut Poller) -> Self {
        Walked { seq: poller.pass_seq, boundary: std::mem::take(&mut poller.boundary_seen), ..Walked::default() }
    }
}

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
    walk: &mut Walked,
    stop_on_unknown_type: Option<&EventMetrics>,
) -> Result<Page, DecodeError> {
    let events = decode_event_list(body)?;
    if let Some(names) = stop_on_unknown_type {
        let types = events.iter().filter_map(|e| e.as_ref().ok()).map(|e| e.event_type_id);
        if let Some(id) = names.first_unknown_event_type(types) {
            return Ok(Page::UnknownEventType(id));
        }
    }
    let mut summary =
        PageSummary { len: events.len(), readable: 0, new_in_walk: 0, distinct_new: 0, found: 0, fingerprint: 0 };
    let mut fingerprint = foldhash::quality::FixedState::with_seed(0x656d_6e69_6679).build_hasher();
    // Records new to this walk (with their second), to see after counting which are new to the range.
    let mut new_ids = Vec::new();
    let mut new_unreadable = Vec::new();
    for decoded in &events {
        match decoded {
            Ok(event) => {
                summary.readable += 1;
                if walk.seen.ids.insert(event.id) {
                    summary.new_in_walk += 1;
                    let second = event.timestamp_millis.map(|t| t.div_euclid(1000));
                    new_ids.push((event.id, second));
                }
                if let Some(t) = event.timestamp_millis {
                    walk.until_covers_second |= t.div_euclid(1000) == walk.range.until && t.rem_euclid(1000) != 0;
                }
                fingerprint.write_u64(event.id);
            }
            Err(bad) => {
                if bad.fingerprint == 0 {
                    // Not an object: cannot be told apart from another, so it is never "found".
                    summary.distinct_new += 1;
                } else if walk.seen.unreadable.insert(bad.fingerprint) {
                    summary.distinct_new += 1;
                    new_unreadable.push(bad.fingerprint);
                }
                fingerprint.write_u64(bad.fingerprint);
                fingerprint.write_u64(bad.id.unwrap_or(u64::MAX));
            }
        }
    }
    summary.distinct_new += summary.new_in_walk as u64;
    // The body's length too: records that are not objects all look alike.
    fingerprint.write_usize(events.len());
    fingerprint.write_usize(body.len());
    summary.fingerprint = fingerprint.finish();
    let mut first_seen = FirstSeen::default();
    // A save that fails here is retried by the poll's closing checkpoint.
    let ingested = lock(tally).ingest_noting(events, origin, Some(&mut first_seen));
    ingested.finish(tally);
    // The tally notes what was first seen in page order, and whatever it saw first this walk saw first
    // too: the fresh records are a subsequence of the new ones, so one pass pairs them, no hashing. (A
    // record that broke the rule would only go unpaired: read again later, never missed.)
    let mut fresh = first_seen.ids.into_iter().peekable();
    let range = walk.range;
    let already = walk.known.as_ref().map(|k| k.already.clone()).unwrap_or_default();
    for (id, second) in new_ids {
        let is_fresh = fresh.next_if_eq(&id).is_some();
        if already.contains(&id) {
            // Counted as new to the range already.
        } else if is_fresh {
            summary.found += 1;
            if let Some(found) = &mut walk.found_ids {
                found.push(id);
            }
            // A second this range shares with a neighbour (or none that can be trusted): the neighbour
            // may hold the record too.
            let inside = second.filter(|s| (range.from..=range.until).contains(s));
            if inside.is_none_or(|s| s == range.from || s == range.until) {
                walk.boundary.insert(id, (walk.seq, inside.unwrap_or(range.until)));
            }
        } else if let (Some(known), Some((seq, _))) = (&walk.known, walk.boundary.get(&id)) {
            if *seq > known.seq {
                summary.found += 1;
                if let Some(found) = &mut walk.found_ids {
                    found.push(id);
                }
            }
        }
    }
    let mut fresh_unreadable = first_seen.unreadable.into_iter().peekable();
    let new_unreadable = new_unreadable.into_iter().filter(|fp| fresh_unreadable.next_if_eq(fp).is_some());
    summary.found += new_unreadable.count() as u64;
    Ok(Page::Counted(summary, ingested.counts))
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
        let err = ApiError::Status { endpoint: "event", status: 503, retry_after: None };
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
