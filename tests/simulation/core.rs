//! Whole histories of the sans-IO counting core (the poll planner and the tally) against the model of
//! emnify, in simulated time: every history must count exactly, series by series.

use std::collections::HashSet;
use std::sync::Arc;

use emnify_exporter::emnify::decode_event_list;
use emnify_exporter::metrics::Metrics;
use emnify_exporter::poller::plan::{Headers, PageSeen, Plan, PlanSettings, Step};
use emnify_exporter::tally::{checkpoint, lock, FirstSeen, Origin, SharedTally, Tally, TallySettings};

use crate::emnify::{Answer, Emnify};
use crate::seed::{Params, Seed, Subsystem, MINUTE, SECOND};
use crate::truth::{check, CountingRule, Truth};

pub const INTERVAL_MS: i64 = 10 * SECOND;
pub const OVERLAP_SECS: i64 = 100;

/// What one history cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    pub requests: u64,
    pub events: u64,
}

/// The faults this suite draws: late arrivals within the overlap, ids that step back, `sort` honoured
/// or ignored, `per_page` clamped, absent counts, 5xx; counts are honest (lying counts are the shell's
/// documented limit), the clock is emnify's own.
pub fn params_for(seed: u64) -> Params {
    let mut rng = Seed(seed).rng(Subsystem::Driver);
    let mut p = Params::calm();
    p.history_ms = 10 * MINUTE;
    p.events_per_minute = [5.0, 60.0, 600.0][rng.below(3) as usize];
    p.late_share = [0.0, 0.05, 0.3][rng.below(3) as usize];
    p.late_max_ms = 60 * SECOND;
    p.id_stride_max = 1 + rng.below(3) as i64;
    p.step_back_share = [0.0, 0.1][rng.below(2) as usize];
    p.step_back_max = 100;
    p.sort_honoured = rng.below(4) != 0;
    p.per_page_max = [100, 250, 1000][rng.below(3) as usize];
    p.counts_absent_share = [0.0, 0.0, 1.0][rng.below(3) as usize];
    p.fail_5xx_share = [0.0, 0.05][rng.below(2) as usize];
    p
}

/// Runs one history; `Err` holds the seed's diff against the truth.
pub fn run(seed: u64, params: Params) -> Result<Cost, String> {
    let mut emnify = Emnify::new(Seed(seed), params.clone());
    let metrics = Arc::new(Metrics::new());
    let tally = Tally::new(metrics.clone(), TallySettings::default()).shared();
    let mut plan = Plan::new(PlanSettings { page_size: 1000, overlap_secs: OVERLAP_SECS, max_pages: 100_000 });
    let mut now = params.start_ms + INTERVAL_MS;
    let floor = lock(&tally).floor_from(now);
    let end = params.start_ms + params.history_ms;
    let mut cost = Cost::default();
    while now < end {
        poll(&mut emnify, &tally, &mut plan, now, 20, &mut cost);
        now += INTERVAL_MS;
    }
    // Quiescence: time stands still for the last polls (nothing arrives during them); once two have
    // succeeded (failures still come, as drawn: a failed poll is tried again, as the loop would), every
    // event must have been read.
    let mut succeeded = 0;
    for _ in 0..1_000 {
        succeeded += u32::from(poll(&mut emnify, &tally, &mut plan, now, 0, &mut cost));
        if succeeded == 2 {
            break;
        }
    }
    let rule = CountingRule {
        floor_ms: floor,
        horizon_ms: now,
        overlap_ms: Some((OVERLAP_SECS - 1) * SECOND - INTERVAL_MS),
        min_visible_ms: None,
    };
    let truth = Truth::of(emnify.events(), &rule);
    cost.events = emnify.events().iter().filter(|e| e.arrival_ms <= now && e.timestamp_ms >= floor).count() as u64;
    if !checkpoint(&tally) {
        return Err("checkpoint failed".into());
    }
    let text = String::from_utf8(metrics.encode()).map_err(|e| e.to_string())?;
    check(&text, &truth).map(|()| cost).map_err(|diff| {
        let p = &params;
        format!(
            "seed {seed} (per minute {}, late {}, stride {}, step back {}, sort {}, per_page {}, counts absent {}, \
             5xx {}): {diff}",
            p.events_per_minute,
            p.late_share,
            p.id_stride_max,
            p.step_back_share,
            p.sort_honoured,
            p.per_page_max,
            p.counts_absent_share,
            p.fail_5xx_share
        )
    })
}

/// One poll at emnify time `now` (ms), each request taking `step_ms`; whether it succeeded.
fn poll(emnify: &mut Emnify, tally: &SharedTally, plan: &mut Plan, now: i64, step_ms: i64, cost: &mut Cost) -> bool {
    let (floor, cursor) = {
        let mut t = lock(tally);
        (t.floor_from(now).div_euclid(1000), t.cursor())
    };
    let mut at = now;
    let mut step = plan.start((now + 999).div_euclid(1000), floor, cursor);
    let mut walk_ids = HashSet::new();
    let mut previous: Option<Vec<u64>> = None;
    loop {
        let (query, counting) = match step {
            Step::Fetch(q) => (q, false),
            Step::Count(q) => (q, true),
            Step::Done { until, keep_from } => {
                lock(tally).window_done(until, keep_from * 1000);
                return true;
            }
        };
        cost.requests += 1;
        at += step_ms;
        let page = match emnify.answer(&query, at) {
            Answer::Page { page, .. } => page,
            Answer::Failure { .. } => {
                plan.abandon();
                return false;
            }
        };
        let Ok(events) = decode_event_list(&page.body) else {
            plan.abandon();
            return false;
        };
        let ids: Vec<u64> = events.iter().filter_map(|e| e.as_ref().ok().map(|e| e.id)).collect();
        let len = events.len() as u32;
        let origin = Origin::Poll { from_millis: query.from * 1000, until_millis: query.until * 1000 + 999 };
        let mut first_seen = FirstSeen::default();
        lock(tally).ingest_noting(events, origin, Some(&mut first_seen));
        let seen = PageSeen {
            len,
            new_in_walk: ids.iter().filter(|id| walk_ids.insert(**id)).count() as u64,
            new_to_polling: (first_seen.ids.len() + first_seen.unreadable.len()) as u64,
            descending: match (ids.first(), ids.last()) {
                (Some(a), Some(b)) if a != b => Some(a > b),
                _ => None,
            },
            repeated: previous.as_ref() == Some(&ids),
        };
        previous = Some(ids);
        step = if counting {
            plan.count(page.total_count)
        } else {
            plan.page(Headers { total_count: page.total_count, total_pages: page.total_pages }, seen)
        };
    }
}
