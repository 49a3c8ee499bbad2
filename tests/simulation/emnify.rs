//! `Emnify`: a pure, seeded model of emnify's event API (`GET /api/v1/event`) in simulated time.
//!
//! Drive it with [`Emnify::answer`] (one request, at simulated Unix ms `now_ms`) and read what happened
//! with [`Emnify::events`] and [`Emnify::truth`]. Nothing here touches the network, threads or the
//! system clock; the same [`Seed`] and the same calls give byte-identical answers.
//!
//! Semantics chosen (emnify documents none of them precisely):
//! - `q=from:F,until:U` (whole Unix seconds) selects events with `F*1000 <= timestamp_ms < (U+1)*1000`:
//!   `from` from the start of its second, `until` to the end of its second, both inclusive.
//! - An event is visible at `now` when `arrival_ms <= now` and, with retention, `now < expires_ms`
//!   (`expires_ms = timestamp_ms + retention`).
//! - Pages are 1-based; page 0 is page 1; a page past the end is the last page (as emnify documents);
//!   `X-Current-Page` names the page served. `X-Total-Pages` is `ceil(X-Total-Count / size)`, 0 when empty.
//! - Order: by id as asked (`newest_first`: descending) when `sort` is honoured, else descending id.
//! - Rate limits (when on): a request is refused with 429 when 2,000 requests were admitted in the last
//!   5 minutes, or when the event list's token bucket (10 per second, burst 5) is empty. Refused requests
//!   consume no budget.
//! - A token that expired answers 401 to every request until [`Emnify::log_in`].

use std::collections::BTreeMap;

use bytes::Bytes;
use emnify_exporter::emnify::client::{EventPage, PageQuery};
use emnify_exporter::rng::SplitMix64;
use emnify_exporter::simulator::events::{pick_profile, render, EventSpec, HOSTILE_ORGANISATION, ORGANISATIONS};

use crate::limits::RateLimiter;
use crate::seed::{Params, Seed, Subsystem, DAY, SECOND};
use crate::truth::{CountingRule, Truth};

/// One event as emnify holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Positive, unique; grows with arrival except for step-backs.
    pub id: i64,
    /// emnify's timestamp (Unix ms), as rendered in `json` (some renderings drop the milliseconds).
    pub timestamp_ms: i64,
    /// When the event becomes visible in answers (and pushable); never before `timestamp_ms`.
    pub arrival_ms: i64,
    /// When retention removes it; `None` without retention.
    pub expires_ms: Option<i64>,
    pub event_type_id: u32,
    pub source_id: u32,
    pub severity_id: u32,
    pub organisation_id: u64,
    pub organisation_name: &'static str,
    pub alert: bool,
    pub description: &'static str,
    /// The event object exactly as emnify sends it (in pages and in pushes).
    pub json: String,
}

impl Event {
    /// In answers at `now_ms`.
    pub fn visible_at(&self, now_ms: i64) -> bool {
        self.arrival_ms <= now_ms && self.expires_ms.is_none_or(|e| now_ms < e)
    }
}

/// emnify's answer to one event-list request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// 200 with a page. `date_millis` is the `Date` header (whole seconds, skewed, outlying or absent).
    Page { page: EventPage, date_millis: Option<i64> },
    /// 401, 429, 500 or 503.
    Failure { status: u16, retry_after_secs: Option<u64>, date_millis: Option<i64> },
}

impl Answer {
    pub fn status(&self) -> u16 {
        match self {
            Answer::Page { .. } => 200,
            Answer::Failure { status, .. } => *status,
        }
    }

    pub fn date_millis(&self) -> Option<i64> {
        match self {
            Answer::Page { date_millis, .. } | Answer::Failure { date_millis, .. } => *date_millis,
        }
    }

    /// Bytes that identify the answer exactly (status, headers, body), for determinism hashes.
    pub fn fingerprint(&self) -> Vec<u8> {
        match self {
            Answer::Page { page, date_millis } => {
                let head = format!(
                    "200 {:?} {:?} {:?} {:?} {date_millis:?}\n",
                    page.total_count, page.total_pages, page.current_page, page.per_page
                );
                [head.as_bytes(), &page.body[..]].concat()
            }
            Answer::Failure { status, retry_after_secs, date_millis } => {
                format!("{status} {retry_after_secs:?} {date_millis:?}\n").into_bytes()
            }
        }
    }
}

/// Requests answered, by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u64,
    pub by_status: BTreeMap<u16, u64>,
    /// 429s from the documented limits (not injected).
    pub rate_limited: u64,
    pub logins: u64,
}

/// The model of emnify's event API.
pub struct Emnify {
    params: Params,
    arrivals: SplitMix64,
    rendering: SplitMix64,
    faults: SplitMix64,
    /// Every event generated so far, in arrival order.
    events: Vec<Event>,
    /// id → index in `events`.
    by_id: BTreeMap<i64, usize>,
    /// Arrivals are generated up to and including this instant.
    generated_until: i64,
    next_arrival_ms: i64,
    max_id: i64,
    /// No id above `i64::MAX` is left: no more events.
    exhausted: bool,
    limits: RateLimiter,
    token_valid: bool,
    stats: Stats,
}

impl Emnify {
    /// A fresh world at `params.start_ms`, logged in, with no events yet.
    pub fn new(seed: Seed, params: Params) -> Emnify {
        let start = params.start_ms;
        Emnify {
            arrivals: seed.rng(Subsystem::Arrivals),
            rendering: seed.rng(Subsystem::Render),
            faults: seed.rng(Subsystem::Answers),
            events: Vec::new(),
            by_id: BTreeMap::new(),
            generated_until: start - 1,
            next_arrival_ms: start,
            max_id: 0,
            exhausted: false,
            limits: RateLimiter::new(start),
            token_valid: true,
            stats: Stats::default(),
            params,
        }
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Every event generated so far, in arrival order (expired ones included).
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    pub fn event(&self, id: i64) -> Option<&Event> {
        self.by_id.get(&id).map(|&i| &self.events[i])
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Ground truth under `rule` over every event generated so far (see [`Truth::of`]).
    pub fn truth(&self, rule: &CountingRule) -> Truth {
        Truth::of(&self.events, rule)
    }

    /// Generates every arrival up to and including `now_ms` (earlier instants are ignored).
    pub fn advance_to(&mut self, now_ms: i64) {
        while !self.exhausted && self.next_arrival_ms <= now_ms {
            let at = self.next_arrival_ms;
            let mut count = if self.arrivals.chance(self.params.burst_share) {
                1 + self.arrivals.below(u64::from(self.params.burst_max.max(1))) as u32
            } else {
                1
            };
            // Above 1,000 a second several arrive in each millisecond (the gap is at least 1 ms).
            let per_ms = self.params.events_per_minute / 60_000.0;
            if per_ms > 1.0 {
                count = count - 1 + self.arrivals.below((2.0 * per_ms) as u64 + 1) as u32;
            }
            for _ in 0..count {
                self.arrive(at);
            }
            self.next_arrival_ms = if per_ms > 1.0 {
                at + 1
            } else {
                let mean_gap = (60_000.0 / self.params.events_per_minute.max(1e-6)).min(30.0 * DAY as f64) as u64;
                at + 1 + self.arrivals.below(2 * mean_gap.max(1)) as i64
            };
        }
        self.generated_until = self.generated_until.max(now_ms);
    }

    fn next_id(&mut self) -> Option<i64> {
        if self.events.is_empty() {
            self.max_id = self.params.first_id.max(1);
            return Some(self.max_id);
        }
        let p = &self.params;
        if p.step_back_share > 0.0 && self.arrivals.chance(p.step_back_share) {
            let back = 1 + self.arrivals.below(p.step_back_max.max(1) as u64) as i64;
            let candidate = self.max_id - back;
            if candidate >= 1 && !self.by_id.contains_key(&candidate) {
                return Some(candidate);
            }
        }
        let stride = 1 + self.arrivals.below(self.params.id_stride_max.max(1) as u64) as i64;
        let id = self.max_id.checked_add(stride)?;
        self.max_id = id;
        Some(id)
    }

    fn arrive(&mut self, at: i64) {
        let Some(id) = self.next_id() else {
            self.exhausted = true;
            return;
        };
        let p = &self.params;
        let r = &mut self.arrivals;
        let lag_max = if p.late_share > 0.0 && r.chance(p.late_share) { p.late_max_ms } else { p.ingest_lag_max_ms };
        let mut timestamp = at - r.below(lag_max.max(0) as u64 + 1) as i64;
        if r.chance(p.whole_second_share) {
            timestamp = timestamp.div_euclid(SECOND) * SECOND;
        }
        let organisation = if r.chance(p.hostile_organisation_share) {
            &HOSTILE_ORGANISATION
        } else {
            &ORGANISATIONS[r.below(3) as usize]
        };
        let (event_type, source, severity, alert, device, description) = pick_profile(r);
        let endpoint = device.then(|| organisation.id * 100 + r.below(25));
        let spec = EventSpec {
            id: id as u64,
            timestamp_millis: timestamp,
            event_type,
            source,
            severity,
            alert,
            description,
            organisation,
            endpoint,
        };
        let (json, rendered_ms) = render(&spec, &mut self.rendering);
        self.by_id.insert(id, self.events.len());
        self.events.push(Event {
            id,
            timestamp_ms: rendered_ms,
            arrival_ms: at,
            expires_ms: self.params.retention_ms.map(|r| rendered_ms + r),
            event_type_id: event_type,
            source_id: source,
            severity_id: severity,
            organisation_id: organisation.id,
            organisation_name: organisation.name,
            alert,
            description,
            json,
        });
    }

    /// Makes the JWT invalid: the next requests answer 401 until [`Emnify::log_in`].
    pub fn expire_token(&mut self) {
        self.token_valid = false;
    }

    pub fn token_valid(&self) -> bool {
        self.token_valid
    }

    /// `POST /api/v1/authenticate` at `now_ms`: always succeeds; returns its `Date` header.
    pub fn log_in(&mut self, now_ms: i64) -> Option<i64> {
        self.stats.logins += 1;
        self.token_valid = true;
        self.date_header(now_ms)
    }

    /// The `Date` header emnify's edge sends at `now_ms` (whole seconds), per the params' faults.
    fn date_header(&mut self, now_ms: i64) -> Option<i64> {
        let d = &self.params.date;
        let r = &mut self.faults;
        if d.absent_share > 0.0 && r.chance(d.absent_share) {
            return None;
        }
        let reading = if d.outlier_share > 0.0 && r.chance(d.outlier_share) {
            match r.below(3) {
                0 => r.below(DAY as u64) as i64,                                 // 1970-01-01
                1 => 4_102_444_800_000 + r.below(100 * 365 * DAY as u64) as i64, // 2100 and later
                _ => now_ms + r.below(2 * d.outlier_max_ms.max(1) as u64 + 1) as i64 - d.outlier_max_ms,
            }
        } else {
            now_ms + self.params.date_skew_at(now_ms)
        };
        Some(reading.div_euclid(SECOND) * SECOND)
    }

    fn fail(&mut self, status: u16, retry_after_secs: Option<u64>, now_ms: i64) -> Answer {
        *self.stats.by_status.entry(status).or_default() += 1;
        Answer::Failure { status, retry_after_secs, date_millis: self.date_header(now_ms) }
    }

    fn maybe_retry_after(&mut self) -> Option<u64> {
        let p = &self.params;
        (p.retry_after_share > 0.0 && self.faults.chance(p.retry_after_share))
            .then(|| 1 + self.faults.below(p.retry_after_max_secs.max(1)))
    }

    /// Answers one `GET /api/v1/event` at `now_ms` (generating arrivals up to `now_ms` first).
    /// Checks in order: documented rate limits, token, injected 429/5xx, then serves the page.
    pub fn answer(&mut self, query: &PageQuery, now_ms: i64) -> Answer {
        self.advance_to(now_ms);
        self.stats.requests += 1;
        if self.params.rate_limits {
            if let Some(wait) = self.limits.check(now_ms) {
                self.stats.rate_limited += 1;
                let retry_after = self.maybe_retry_after().map(|_| wait);
                return self.fail(429, retry_after, now_ms);
            }
        }
        let p = &self.params;
        if p.token_expiry_share > 0.0 && self.faults.chance(p.token_expiry_share) {
            self.token_valid = false;
        }
        if !self.token_valid {
            return self.fail(401, None, now_ms);
        }
        if p.fail_429_share > 0.0 && self.faults.chance(p.fail_429_share) {
            let retry_after = self.maybe_retry_after();
            return self.fail(429, retry_after, now_ms);
        }
        if p.fail_5xx_share > 0.0 && self.faults.chance(self.params.fail_5xx_share) {
            let status = if self.faults.chance(0.5) { 503 } else { 500 };
            let retry_after = if status == 503 { self.maybe_retry_after() } else { None };
            return self.fail(status, retry_after, now_ms);
        }
        let page = self.page(query, now_ms);
        *self.stats.by_status.entry(200).or_default() += 1;
        Answer::Page { page, date_millis: self.date_header(now_ms) }
    }

    /// The ids a query selects at `now_ms`, in the order emnify serves them (all pages). Does not generate
    /// arrivals: call [`Emnify::advance_to`] first (as [`Emnify::answer`] does).
    pub fn select(&self, query: &PageQuery, now_ms: i64) -> Vec<i64> {
        let from_ms = query.from.saturating_mul(SECOND);
        let until_ms = query.until.saturating_add(1).saturating_mul(SECOND);
        // Events are in arrival order and `timestamp <= arrival < timestamp + lag + 1 s` (timestamps are floored
        // to whole seconds at most): only a slice can match.
        let lag = self.params.ingest_lag_max_ms.max(self.params.late_max_ms).max(0);
        let first = self.events.partition_point(|e| e.arrival_ms < from_ms);
        let last = self.events.partition_point(|e| e.arrival_ms <= now_ms.min(until_ms.saturating_add(lag + SECOND)));
        let mut ids: Vec<i64> = self.events[first..last.max(first)]
            .iter()
            .filter(|e| e.visible_at(now_ms) && from_ms <= e.timestamp_ms && e.timestamp_ms < until_ms)
            .map(|e| e.id)
            .collect();
        ids.sort_unstable();
        // Ignoring `sort`, it answers in its own order, newest first (as the Portal lists events): the
        // opposite of the ascending order the poller asks for.
        if query.newest_first || !self.params.sort_honoured {
            ids.reverse();
        }
        ids
    }

    /// The page size emnify serves for a requested `per_page`.
    pub fn page_size(&self, per_page: u32) -> u32 {
        if per_page < 1 {
            self.params.per_page_default.max(1)
        } else {
            per_page.min(self.params.per_page_max.max(1))
        }
    }

    fn page(&mut self, query: &PageQuery, now_ms: i64) -> EventPage {
        let ids = self.select(query, now_ms);
        let size = self.page_size(query.per_page);
        let n = ids.len() as u64;
        let pages = n.div_ceil(u64::from(size)) as u32;
        let current = query.page.clamp(1, pages.max(1));
        let start = ((current - 1) as usize) * size as usize;
        let mut body = String::from("[");
        for (i, id) in ids.iter().skip(start).take(size as usize).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&self.events[self.by_id[id]].json);
        }
        body.push(']');
        let p = &self.params;
        let (total_count, total_pages) = if p.counts_absent_share > 0.0 && self.faults.chance(p.counts_absent_share) {
            (None, None)
        } else if p.counts_lying_share > 0.0 && self.faults.chance(p.counts_lying_share) {
            let mut lie = self.faults.below(2 * n + u64::from(size) + 1);
            if lie == n {
                lie += 1;
            }
            (Some(lie), Some(lie.div_ceil(u64::from(size)) as u32))
        } else {
            (Some(n), Some(pages))
        };
        let per_page = if self.params.count_per_page_echoes_request { query.per_page } else { size };
        EventPage {
            body: Bytes::from(body),
            total_pages,
            total_count,
            current_page: Some(current),
            per_page: Some(per_page),
        }
    }
}
