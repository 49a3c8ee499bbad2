//! Payload timestamps that cannot be trusted (1970, 2099, absent, null, garbage) never skip an event,
//! never pin the dedup memory, and never move `emnify_last_event_timestamp_seconds` into the future.

use std::time::Duration;

use crate::common::{self, assert_counts_match_text, parse_exposition, sum, wait_for, TestExporter, TestSimulator};
use emnify_exporter::simulator::Simulator;
use emnify_exporter::timefmt::now_millis;
use serde_json::{json, Value};

/// The odd payload timestamps tried, `None` meaning the field is left out.
fn odd_timestamps() -> Vec<Option<Value>> {
    vec![
        Some(json!("1970-01-01T00:00:00.000Z")),
        Some(json!("2099-12-31T23:59:59.000Z")),
        Some(Value::Null),
        Some(json!("garbage")),
        Some(json!(17)),
        None,
    ]
}

/// The smallest dedup memory `--emnify.max-remembered-ids` allows.
const MIN_REMEMBERED_IDS: usize = 1000;

async fn gauge(exporter: &TestExporter, name: &str) -> f64 {
    sum(&exporter.scrape().await, name, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polled_events_with_absurd_timestamps_are_counted_once_and_forgotten_in_time() {
    let simulator = TestSimulator::seeded(81).await;
    let sim = &simulator.sim;
    let mut config = simulator.exporter_config();
    config.tally.max_remembered_ids = MIN_REMEMBERED_IDS;
    // A short overlap, so ids are forgotten within seconds once no window reaches them.
    if let Some(poll) = config.poll.as_mut() {
        poll.walk.overlap = Duration::from_secs(2);
    }
    let exporter = TestExporter::start(config).await;
    for _ in 0..3 {
        sim.generate(40);
        for timestamp in odd_timestamps() {
            sim.generate_with_payload_timestamp(20, timestamp);
        }
        exporter.wait_for_total(sim.truth().total()).await;
    }
    let text = exporter.scrape_text().await;
    assert_counts_match_text(&text, &sim.truth());
    let samples = parse_exposition(&text);
    assert_eq!(sum(&samples, "emnify_events_skipped_total", &[]), 0.0, "nothing skipped");
    let newest = sum(&samples, "emnify_last_event_timestamp_seconds", &[]);
    let now = now_millis() as f64 / 1000.0;
    assert!(newest <= now + 5.0 && newest > now - 600.0, "last event at {newest}, now {now}");
    // With no new events, every id leaves the dedup memory once no window reaches it: none is pinned
    // by a timestamp in 2099.
    let forgotten = wait_for(common::PATIENCE, async || gauge(&exporter, "emnify_dedup_remembered_ids").await == 0.0);
    assert!(forgotten.await, "ids still remembered: {}", gauge(&exporter, "emnify_dedup_remembered_ids").await);
    // Forgotten, yet not counted again by the windows that still ran.
    assert_eq!(exporter.total().await, sim.truth().total() as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_with_absurd_timestamps_are_counted_once_and_forgotten_in_time() {
    let mut config = common::push_only_config();
    config.tally.max_remembered_ids = MIN_REMEMBERED_IDS;
    config.tally.remember_pushed = Duration::from_secs(2);
    let exporter = TestExporter::start(config).await;
    let sim = Simulator::new(common::sim_config(82));
    sim.generate(30);
    for timestamp in odd_timestamps() {
        sim.generate_with_payload_timestamp(15, timestamp);
    }
    let produced = sim.truth().total();
    for body in sim.event_json_batches(40) {
        // Each batch twice, as the Data Streamer resends after a timeout.
        for _ in 0..2 {
            let (status, answer) = exporter.push("/webhook/events", &[], body.clone()).await;
            assert_eq!(status, 200, "{answer}");
        }
    }
    exporter.wait_for_total(produced).await;
    let text = exporter.scrape_text().await;
    assert_counts_match_text(&text, &sim.truth());
    let samples = parse_exposition(&text);
    assert_eq!(sum(&samples, "emnify_events_duplicate_total", &[]), produced as f64, "every resend recognised");
    let newest = sum(&samples, "emnify_last_event_timestamp_seconds", &[]);
    let now = now_millis() as f64 / 1000.0;
    assert!(newest <= now + 5.0 && newest > now - 600.0, "last event at {newest}, now {now}");
    let forgotten = wait_for(common::PATIENCE, async || gauge(&exporter, "emnify_dedup_remembered_ids").await == 0.0);
    assert!(forgotten.await, "pushed ids pinned: {}", gauge(&exporter, "emnify_dedup_remembered_ids").await);
}
