//! Deterministic simulation of the world outside the exporter: emnify's API, its Data Streamer, ground truth.
//!
//! One `u64` [`seed::Seed`] gives a whole history: no tokio, no HTTP, no threads, no system clock, no
//! `HashMap` order; time is simulated Unix milliseconds. The tests in this file check the model itself.

mod core;
mod core_tests;
mod cost;
mod emnify;
mod limits;
mod mix;
mod regressions;
mod seed;
mod shrink;
mod streamer;
mod streamer_tests;
mod truth;
mod world;

use emnify_exporter::emnify::client::PageQuery;

use crate::emnify::{Answer, Emnify, Event};
use crate::seed::{Params, Seed, Subsystem, DAY, HOUR, MINUTE, SECOND};
use crate::streamer::DataStreamer;
use crate::truth::CountingRule;

/// A hash that is the same on every platform and toolchain (FNV-1a's constants over 8-byte words, with the
/// length mixed in, so that it stays fast in unoptimised test builds).
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x0100_0000_01b3);
            self.0 ^= self.0 >> 29;
        }
        self.0 = (self.0 ^ bytes.len() as u64).wrapping_mul(0x0100_0000_01b3);
    }
}

/// The ids in a page or push body (an array or one bare object).
pub(crate) fn ids_of(body: &[u8]) -> Vec<i64> {
    let value: serde_json::Value = serde_json::from_slice(body).expect("body is JSON");
    let records = match value {
        serde_json::Value::Array(records) => records,
        object => vec![object],
    };
    records.iter().map(|r| r["id"].as_i64().expect("id is a signed 64-bit integer")).collect()
}

fn window(from_ms: i64, until_ms: i64, page: u32, per_page: u32, newest_first: bool) -> PageQuery {
    PageQuery { page, per_page, from: from_ms.div_euclid(1000), until: until_ms.div_euclid(1000), newest_first }
}

fn page_of(answer: Answer) -> emnify_exporter::emnify::client::EventPage {
    match answer {
        Answer::Page { page, .. } => page,
        other => panic!("expected a page, got HTTP {}", other.status()),
    }
}

/// A crude driver: polls the last 5 minutes every 10 s and takes every push, accepting two batches in
/// three, for 20 simulated minutes. Returns a hash of every answer, delivery and the final truth.
fn probe(seed: Seed) -> u64 {
    let params = seed.params();
    let mut emnify = Emnify::new(seed, params.clone());
    let mut streamer = DataStreamer::new(seed, params.clone());
    let mut hash = Fnv::new();
    let mut now = params.start_ms;
    while now < params.start_ms + 20 * MINUTE {
        emnify.advance_to(now);
        streamer.feed(emnify.events());
        for page in 1..=4 {
            let answer = emnify.answer(&window(now - 5 * MINUTE, now, page, 100, page % 2 == 0), now);
            hash.write(&answer.fingerprint());
            if !matches!(&answer, Answer::Page { page: p, .. } if p.total_pages.is_some_and(|t| t > page)) {
                break;
            }
        }
        while let Some(d) = streamer.next_delivery(now) {
            assert!(d.ids.iter().all(|id| emnify.event(*id).is_some_and(|e| e.arrival_ms <= d.at_ms)));
            hash.write(&d.body);
            hash.write(&d.batch_id.to_le_bytes());
            streamer.acknowledge(d.batch_id, d.batch_id % 3 != 0);
        }
        now += 10 * SECOND;
    }
    let rule = CountingRule { overlap_ms: Some(MINUTE), ..CountingRule::new(params.start_ms, now) };
    hash.write(format!("{:?}", emnify.truth(&rule)).as_bytes());
    hash.write(format!("{:?} {:?}", emnify.stats(), streamer.stats()).as_bytes());
    hash.0
}

#[test]
fn same_seed_same_history() {
    let first: Vec<u64> = (0..8).map(|s| probe(Seed(s))).collect();
    let second: Vec<u64> = (0..8).map(|s| probe(Seed(s))).collect();
    assert_eq!(first, second, "a seed must replay byte for byte");
    let mut distinct = first.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), first.len(), "different seeds gave the same history: {first:x?}");
    assert_eq!(Seed(7).params(), Seed(7).params());
    assert_ne!(Seed(7).params(), Seed(8).params());
    let subsystems = [
        Subsystem::Params,
        Subsystem::Arrivals,
        Subsystem::Render,
        Subsystem::Answers,
        Subsystem::Streamer,
        Subsystem::Crashes,
        Subsystem::Driver,
    ];
    let mut subs: Vec<u64> = subsystems.iter().map(|s| Seed(7).sub(*s)).collect();
    subs.sort_unstable();
    subs.dedup();
    assert_eq!(subs.len(), subsystems.len(), "each subsystem has its own stream");
}

#[test]
fn ids_are_positive_unique_and_stop_at_i64_max() {
    for s in 0..20 {
        let seed = Seed(s);
        let mut emnify = Emnify::new(seed, seed.params());
        emnify.advance_to(emnify.params().start_ms + emnify.params().history_ms);
        let mut ids: Vec<i64> = emnify.events().iter().map(|e| e.id).collect();
        assert!(!ids.is_empty(), "seed {s} made no events");
        assert!(ids.iter().all(|&id| id >= 1), "seed {s}");
        let n = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), n, "seed {s} reused an id");
    }
    let mut p = Params::calm();
    p.first_id = i64::MAX - 50;
    p.id_stride_max = 5;
    p.step_back_share = 0.3;
    p.step_back_max = 3;
    let mut emnify = Emnify::new(Seed(1), p.clone());
    emnify.advance_to(p.start_ms + DAY);
    let events = emnify.events().to_vec();
    assert!(events.len() >= 10 && events.len() <= 51, "{} events", events.len());
    assert!(events.iter().any(|e| e.id > i64::MAX - 5), "ids reach the top");
    assert!(events.iter().all(|e| e.id >= i64::MAX - 50 - 3), "a step back goes at most 3 below the highest");
    assert!(events.windows(2).any(|w| w[1].id < w[0].id), "some ids step back");
    let query = window(p.start_ms - MINUTE, p.start_ms + DAY, 1, 1000, false);
    let body = page_of(emnify.answer(&query, p.start_ms + DAY)).body;
    assert_eq!(ids_of(&body).len(), events.len());
}

#[test]
fn late_events_appear_only_after_arrival() {
    let mut p = Params::calm();
    p.late_share = 0.5;
    p.late_max_ms = HOUR;
    let mut emnify = Emnify::new(Seed(3), p.clone());
    emnify.advance_to(p.start_ms + 2 * HOUR);
    let late: Vec<Event> =
        emnify.events().iter().filter(|e| e.arrival_ms - e.timestamp_ms > 10 * MINUTE).take(20).cloned().collect();
    assert!(late.len() >= 10, "too few late events");
    for e in &late {
        let query = window(e.timestamp_ms, e.timestamp_ms, 1, 1000, false);
        assert!(!emnify.select(&query, e.arrival_ms - 1).contains(&e.id), "event {} seen before arrival", e.id);
        assert!(emnify.select(&query, e.arrival_ms).contains(&e.id), "event {} missing after arrival", e.id);
    }
    let now = p.start_ms + 2 * HOUR;
    let ids = emnify.select(&window(p.start_ms - HOUR, now, 1, 1000, false), now);
    assert!(ids.iter().all(|id| emnify.event(*id).is_some_and(|e| e.arrival_ms <= now)));
}

#[test]
fn from_and_until_are_whole_seconds_inclusive() {
    let mut p = Params::calm();
    p.whole_second_share = 0.0;
    let mut emnify = Emnify::new(Seed(4), p.clone());
    let now = p.start_ms + HOUR;
    emnify.advance_to(now);
    for e in emnify.events().iter().take(50) {
        let second = e.timestamp_ms.div_euclid(1000);
        let hit = |from: i64, until: i64| {
            emnify.select(&PageQuery { page: 1, per_page: 1000, from, until, newest_first: false }, now).contains(&e.id)
        };
        assert!(hit(second, second) && hit(second - 5, second) && hit(second, second + 5));
        assert!(!hit(second + 1, second + 5) && !hit(second - 5, second - 1));
    }
}

#[test]
fn retention_removes_events() {
    let mut p = Params::calm();
    p.retention_ms = Some(5 * MINUTE);
    let mut emnify = Emnify::new(Seed(5), p.clone());
    emnify.advance_to(p.start_ms + HOUR);
    let e = emnify.events()[10].clone();
    let expires = e.expires_ms.expect("retention sets an expiry");
    assert_eq!(expires, e.timestamp_ms + 5 * MINUTE);
    let query = window(e.timestamp_ms, e.timestamp_ms, 1, 1000, false);
    assert!(emnify.select(&query, expires - 1).contains(&e.id));
    assert!(!emnify.select(&query, expires).contains(&e.id));
    let now = p.start_ms + HOUR;
    let all = ids_of(&page_of(emnify.answer(&window(p.start_ms, now, 1, 1000, false), now)).body);
    assert!(all.iter().all(|id| emnify.event(*id).is_some_and(|e| e.timestamp_ms >= now - 5 * MINUTE)));
    assert!(all.len() < emnify.events().len() / 4, "older events are gone");
}

#[test]
fn sort_is_honoured_or_ignored_per_params() {
    for honoured in [true, false] {
        let mut p = Params::calm();
        p.sort_honoured = honoured;
        p.step_back_share = 0.2;
        p.step_back_max = 10;
        let mut emnify = Emnify::new(Seed(6), p.clone());
        let now = p.start_ms + HOUR;
        // Descending asked: descending either way (ignoring `sort`, it answers newest first).
        let ids = ids_of(&page_of(emnify.answer(&window(p.start_ms, now, 1, 1000, true), now)).body);
        assert!(ids.len() > 100);
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "sort honoured: {honoured}");
        // Ascending asked: ascending only when honoured.
        let plain = ids_of(&page_of(emnify.answer(&window(p.start_ms, now, 1, 1000, false), now)).body);
        let ascending = plain.windows(2).all(|w| w[0] < w[1]);
        let descending = plain.windows(2).all(|w| w[0] > w[1]);
        assert_eq!((ascending, descending), (honoured, !honoured), "sort honoured: {honoured}");
    }
}

#[test]
fn per_page_is_clamped_and_pages_past_the_end_give_the_last() {
    for echo in [false, true] {
        let mut p = Params::calm();
        p.per_page_max = 250;
        p.per_page_default = 100;
        p.count_per_page_echoes_request = echo;
        let mut emnify = Emnify::new(Seed(8), p.clone());
        let now = p.start_ms + HOUR;
        emnify.advance_to(now);
        let total = emnify.events().len();
        assert!(total > 600, "{total} events");
        let first = page_of(emnify.answer(&window(p.start_ms - MINUTE, now, 1, 1000, false), now));
        assert_eq!(ids_of(&first.body).len(), 250);
        assert_eq!(first.per_page, Some(if echo { 1000 } else { 250 }));
        assert_eq!(first.total_count, Some(total as u64));
        assert_eq!(first.total_pages, Some(total.div_ceil(250) as u32));
        let past = page_of(emnify.answer(&window(p.start_ms - MINUTE, now, 99, 1000, false), now));
        assert_eq!(past.current_page, first.total_pages);
        assert_eq!(ids_of(&past.body).len(), (total - 1) % 250 + 1);
        let default = page_of(emnify.answer(&window(p.start_ms - MINUTE, now, 1, 0, false), now));
        assert_eq!(ids_of(&default.body).len(), 100);
    }
}

#[test]
fn counts_lie_or_vanish_only_when_params_say_so() {
    let answers = |p: &Params| {
        let mut emnify = Emnify::new(Seed(9), p.clone());
        (1..=60)
            .map(|m| {
                let now = p.start_ms + m * MINUTE;
                emnify.advance_to(now);
                let truth = emnify.select(&window(p.start_ms, now, 1, 100, false), now).len() as u64;
                (page_of(emnify.answer(&window(p.start_ms, now, 1, 100, false), now)).total_count, truth)
            })
            .collect::<Vec<_>>()
    };
    let p = Params::calm();
    assert!(answers(&p).iter().all(|(got, truth)| *got == Some(*truth)));
    let mut lying = Params::calm();
    lying.counts_lying_share = 1.0;
    assert!(answers(&lying).iter().all(|(got, truth)| got.is_some_and(|g| g != *truth)));
    let mut absent = Params::calm();
    absent.counts_absent_share = 1.0;
    assert!(answers(&absent).iter().all(|(got, _)| got.is_none()));
}

#[test]
fn date_is_whole_seconds_skewed_outlying_or_absent_per_params() {
    let dates = |p: &Params| {
        let mut emnify = Emnify::new(Seed(10), p.clone());
        (0..200).map(|i| (p.start_ms + i * 1234, emnify.log_in(p.start_ms + i * 1234))).collect::<Vec<_>>()
    };
    let mut p = Params::calm();
    assert!(dates(&p).iter().all(|(now, d)| *d == Some(now.div_euclid(1000) * 1000)));
    p.date.skew_ms = -2 * HOUR;
    assert!(dates(&p).iter().all(|(now, d)| *d == Some((now - 2 * HOUR).div_euclid(1000) * 1000)));
    p.date.skew_window = Some((p.start_ms + 100_000, p.start_ms + 105_000));
    let skewed = dates(&p).iter().filter(|(now, d)| *d != Some(now.div_euclid(1000) * 1000)).count();
    let inside = (0..200).filter(|i| (100_000..105_000).contains(&(i * 1234))).count();
    assert_eq!((skewed, inside), (4, 4), "only answers inside the window are skewed");
    let mut q = Params::calm();
    q.date.outlier_share = 0.5;
    q.date.outlier_max_ms = HOUR;
    let readings = dates(&q);
    assert!(readings.iter().any(|(_, d)| d.is_some_and(|d| d < DAY)), "a 1970 reading");
    assert!(readings.iter().any(|(_, d)| d.is_some_and(|d| d > 4_000_000_000_000)), "a far-future reading");
    assert!(readings.iter().all(|(_, d)| d.is_some_and(|d| d % 1000 == 0)));
    q.date.absent_share = 1.0;
    assert!(dates(&q).iter().all(|(_, d)| d.is_none()));
}

#[test]
fn rate_limits_refuse_beyond_the_documented_budget() {
    let mut p = Params::calm();
    p.rate_limits = true;
    p.retry_after_share = 1.0;
    let start = p.start_ms;
    let mut emnify = Emnify::new(Seed(11), p.clone());
    let q = window(start - MINUTE, start, 1, 100, false);
    // Burst 5 at one instant, then one per 100 ms.
    let statuses: Vec<u16> = (0..7).map(|_| emnify.answer(&q, start).status()).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert!(matches!(emnify.answer(&q, start + 50), Answer::Failure { status: 429, retry_after_secs: Some(1), .. }));
    assert_eq!(emnify.answer(&q, start + 100).status(), 200);
    // 10 per second for 5 minutes: 2,000 in any 5 minutes pass, the rest are refused.
    let mut emnify = Emnify::new(Seed(11), p.clone());
    let ok = (0..3000).filter(|i| emnify.answer(&q, start + i * 100).status() == 200).count();
    assert_eq!(ok, 2000);
    assert_eq!(emnify.stats().rate_limited, 1000);
    assert_eq!(emnify.answer(&q, start + 300_000).status(), 200, "the window slides");
    // 6.67 per second (the sustained per-IP rate) never hits the limit.
    let mut emnify = Emnify::new(Seed(11), p.clone());
    assert!((0..4000).all(|i| emnify.answer(&q, start + i * 150).status() == 200));
    // Off: anything goes.
    p.rate_limits = false;
    let mut emnify = Emnify::new(Seed(11), p);
    assert!((0..50).all(|_| emnify.answer(&q, start).status() == 200));
}

#[test]
fn failures_and_token_expiry_follow_params() {
    let mut p = Params::calm();
    let q = window(p.start_ms - MINUTE, p.start_ms, 1, 100, false);
    let mut emnify = Emnify::new(Seed(12), p.clone());
    assert!(emnify.token_valid());
    emnify.expire_token();
    assert!(!emnify.token_valid());
    assert_eq!(emnify.answer(&q, p.start_ms).status(), 401);
    assert_eq!(emnify.answer(&q, p.start_ms + 1000).status(), 401);
    emnify.log_in(p.start_ms + 2000);
    assert_eq!(emnify.answer(&q, p.start_ms + 3000).status(), 200);
    p.fail_5xx_share = 1.0;
    p.retry_after_share = 1.0;
    p.retry_after_max_secs = 20;
    let mut emnify = Emnify::new(Seed(12), p.clone());
    let answers: Vec<Answer> = (0..100).map(|i| emnify.answer(&q, p.start_ms + i * 1000)).collect();
    assert!(answers.iter().all(|a| matches!(a.status(), 500 | 503)));
    assert!(answers.iter().all(|a| a.date_millis().is_some_and(|d| d % 1000 == 0)));
    for a in &answers {
        if let Answer::Failure { status, retry_after_secs, .. } = a {
            assert_eq!(retry_after_secs.is_some(), *status == 503);
            assert!(retry_after_secs.is_none_or(|s| (1..=20).contains(&s)));
        }
    }
}

#[test]
fn truth_follows_the_counting_rule() {
    let mut p = Params::calm();
    p.late_share = 0.3;
    p.late_max_ms = 10 * MINUTE;
    p.retention_ms = Some(20 * MINUTE);
    let mut emnify = Emnify::new(Seed(14), p.clone());
    let now = p.start_ms + HOUR;
    emnify.advance_to(now);
    let all = CountingRule::new(i64::MIN, now);
    assert_eq!(emnify.truth(&all).countable_events(), emnify.events().len() as u64);
    let rule = CountingRule { overlap_ms: Some(MINUTE), ..CountingRule::new(p.start_ms + 5 * MINUTE, now) };
    let truth = emnify.truth(&rule);
    let late =
        emnify.events().iter().filter(|e| e.timestamp_ms >= rule.floor_ms && e.arrival_ms - e.timestamp_ms > MINUTE);
    assert_eq!(truth.unreachable_ids.get(&truth::Unreachable::Late).map_or(0, Vec::len), late.count());
    assert!(!truth.unreachable_ids.contains_key(&truth::Unreachable::Expired));
    // Retention 20 min, lateness up to 10 min: events more than 5 min late are visible under 15 min.
    let expiry = CountingRule { overlap_ms: None, min_visible_ms: Some(15 * MINUTE), ..rule };
    let expired = emnify.truth(&expiry).unreachable_ids.remove(&truth::Unreachable::Expired).unwrap_or_default();
    assert!(!expired.is_empty());
    assert!(expired.iter().all(|id| emnify.event(*id).is_some_and(|e| e.arrival_ms - e.timestamp_ms > 5 * MINUTE)));
    assert!(truth.excluded > 0);
    assert_eq!(truth.countable_events() + truth.unreachable_events() + truth.excluded, emnify.events().len() as u64);
}

#[test]
fn drawn_params_cover_the_faults() {
    let params: Vec<Params> = (0..500).map(|s| Seed(s).params()).collect();
    let share = |f: &dyn Fn(&Params) -> bool| params.iter().filter(|p| f(p)).count();
    for (name, n) in [
        ("late", share(&|p| p.late_share > 0.0)),
        ("step back", share(&|p| p.step_back_share > 0.0)),
        ("retention", share(&|p| p.retention_ms.is_some())),
        ("lying counts", share(&|p| p.counts_lying_share > 0.0)),
        ("sort ignored", share(&|p| !p.sort_honoured)),
        ("skew", share(&|p| p.date.skew_ms != 0)),
        ("outliers", share(&|p| p.date.outlier_share > 0.0)),
        ("pauses", share(&|p| !p.pauses.is_empty())),
        ("replays", share(&|p| !p.replays.is_empty())),
        ("crashes", share(&|p| p.crash_share > 0.0)),
        ("ids near the top", share(&|p| p.first_id > i64::MAX / 2)),
    ] {
        assert!((10..490).contains(&n), "{name}: {n} of 500");
    }
    for p in &params {
        assert!(p.date.skew_ms.abs() <= 2 * HOUR);
        assert!(p.replays.iter().all(|r| r.at_ms - r.span_start_ms <= 7 * DAY && r.span_end_ms <= r.at_ms));
        assert!(p.pauses.iter().all(|x| x.end_ms - x.start_ms < 7 * DAY));
    }
}
