//! The host's clock can be wrong by minutes: windows, the start of counting and token lifetimes follow
//! emnify's clock (its `Date` headers), so nothing is lost, counted twice, or held back.

use std::time::Duration;

use crate::common::{
    assert_counts_match_text, parse_exposition, sim_config, sum, wait_for, TestExporter, TestSimulator,
};
use emnify_exporter::simulator::SimulatorConfig;

/// Polls done so far, as `emnify_poll_duration_seconds_count` says.
async fn polls(exporter: &TestExporter) -> f64 {
    sum(&exporter.scrape().await, "emnify_poll_duration_seconds_count", &[])
}

/// A simulator whose clock is `offset_secs` from the host's, and an exporter that counts only what
/// happens from its start on (no lookback: the case a wrong host clock broke outright).
async fn counts_exactly_with_a_clock_offset(offset_secs: i64, seed: u64) {
    let sim_config = SimulatorConfig {
        clock_offset_millis: offset_secs * 1000,
        // Short-lived tokens: a lifetime read against the wrong clock would mean a login per request.
        jwt_lifetime: Duration::from_secs(60),
        ..sim_config(seed)
    };
    let simulator = TestSimulator::start(sim_config).await;
    let sim = &simulator.sim;
    // History from before the start, on emnify's clock: never counted with no lookback.
    sim.generate_aged(40, Duration::from_secs(30));
    let mut config = simulator.exporter_config();
    config.tally.lookback = Duration::ZERO;
    let exporter = TestExporter::start(config).await;
    assert!(wait_for(crate::common::PATIENCE, async || polls(&exporter).await >= 1.0).await, "a first poll");
    let history = sim.truth();

    for round in 0..3 {
        let before = polls(&exporter).await;
        sim.generate(60);
        sim.generic_burst(round, 5);
        let wanted = sim.truth().total() - history.total();
        exporter.wait_for_total(wanted).await;
        // Counted by the poll running when the events were made or the next one: never held back
        // for the clock offset (that would be hundreds of polls at one per second).
        let took = polls(&exporter).await - before;
        assert!(took <= 3.0, "round {round} needed {took} polls");
    }
    let text = exporter.scrape_text().await;
    let samples = parse_exposition(&text);
    let offset = sum(&samples, "emnify_clock_offset_seconds", &[]);
    assert!((offset - offset_secs as f64).abs() <= 2.0, "measured offset {offset} s for {offset_secs} s");
    assert_eq!(sum(&samples, "emnify_up", &[]), 1.0);
    // The JWT's lifetime is read on emnify's clock: one login, not one per request.
    assert!(sim.stats().logins <= 2, "{} logins", sim.stats().logins);

    // Everything made after the start is counted exactly, series by series: the truth minus the history.
    let mut truth = sim.truth();
    subtract(&mut truth, &history);
    assert_counts_match_text(&text, &truth);
}

/// `truth` minus what `earlier` had already counted, series by series.
fn subtract(truth: &mut emnify_exporter::simulator::Truth, earlier: &emnify_exporter::simulator::Truth) {
    for (key, n) in &earlier.events {
        if let Some(count) = truth.events.get_mut(key) {
            *count -= n;
        }
    }
    for (key, n) in &earlier.generic {
        if let Some(count) = truth.generic.get_mut(key) {
            *count -= n;
        }
    }
    for (key, n) in &earlier.alerts {
        if let Some(count) = truth.alerts.get_mut(key) {
            *count -= n;
        }
    }
    truth.unreadable -= earlier.unreadable;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emnify_an_hour_behind_the_host() {
    counts_exactly_with_a_clock_offset(-3600, 71).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emnify_fifteen_minutes_behind_the_host() {
    counts_exactly_with_a_clock_offset(-900, 72).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emnify_fifteen_minutes_ahead_of_the_host() {
    counts_exactly_with_a_clock_offset(900, 73).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emnify_an_hour_ahead_of_the_host() {
    counts_exactly_with_a_clock_offset(3600, 74).await;
}
