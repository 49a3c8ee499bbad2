//! Exactly-once counting against the simulator's ground truth, over real HTTP on 127.0.0.1.

use crate::common;

use std::time::Duration;

use crate::common::{assert_counts_match, rig, sim_config};
use emnify_exporter::poller::PollOutcome;

fn success(outcome: PollOutcome) -> emnify_exporter::poller::PollReport {
    match outcome {
        PollOutcome::Success(report) => report,
        PollOutcome::Failed { error, .. } => panic!("poll failed: {error}"),
    }
}

/// Many polls with events arriving between them, during pagination and late: counts equal the truth.
#[tokio::test]
async fn counts_equal_ground_truth_over_many_polls() {
    let mut rig = rig(sim_config(42), 50).await;
    let mut duplicates = 0;
    for round in 0..12u32 {
        rig.sim.generate(150 + (round as usize * 37) % 120);
        if round % 3 == 1 {
            // Events reach emnify late, stamped up to five minutes ago (inside the 10-minute overlap).
            rig.sim.generate_aged(40, Duration::from_secs(30 + 20 * u64::from(round)));
        }
        if round % 4 == 2 {
            rig.sim.generic_burst(round as usize, 60);
        }
        if round % 2 == 0 {
            // Old-stamped events land between pages while the poller walks them.
            rig.sim.inject_while_paging(2, 25, Duration::from_secs(5));
        }
        let report = success(rig.poller.poll_once().await);
        duplicates += report.counts.duplicates;
    }
    let total = assert_counts_match(&rig.metrics, &rig.sim.truth());
    assert!(total > 2000, "the test should exercise many events, got {total}");
    assert!(duplicates > 0, "overlapping windows must have re-delivered events");
    println!("checked {total} events over 12 polls; {duplicates} re-deliveries were not counted again");
}

/// Events inserted while the pages of one window are walked are counted in that same poll.
#[tokio::test]
async fn events_arriving_mid_pagination_are_counted_in_the_same_poll() {
    let mut rig = rig(sim_config(7), 40).await;
    rig.sim.generate(400);
    rig.sim.inject_while_paging(3, 30, Duration::from_secs(2));
    let report = success(rig.poller.poll_once().await);
    assert_eq!(report.passes, 2, "the count changed under the walk, so the window is walked again");
    assert_eq!(report.counts.counted, 430);
    assert_counts_match(&rig.metrics, &rig.sim.truth());
}

/// Polling again with nothing new counts nothing new, and reads again only what emnify says changed.
#[tokio::test]
async fn repeated_windows_never_double_count() {
    let mut rig = rig(sim_config(3), 100).await;
    rig.sim.generate(250);
    let first = success(rig.poller.poll_once().await);
    assert_eq!(first.counts.counted, 250);
    let second = success(rig.poller.poll_once().await);
    assert_eq!(second.counts.counted, 0);
    // Only the second the two windows share is read again (here it holds all 250 events).
    assert_eq!((second.probes, second.rereads), (1, 0), "emnify's count for the overlap is unchanged");
    assert_eq!(second.counts.duplicates, second.counts.received);
    assert_counts_match(&rig.metrics, &rig.sim.truth());
}

/// A page with unreadable records: they are skipped and counted as such, the rest is counted.
#[tokio::test]
async fn unreadable_events_are_skipped_not_fatal() {
    let mut rig = rig(sim_config(11), 1000).await;
    rig.sim.generate(120);
    rig.sim.insert_unreadable(3);
    rig.sim.generate(80);
    let report = success(rig.poller.poll_once().await);
    assert_eq!(report.counts.unreadable, 3);
    assert_eq!(report.counts.counted, 200);
    assert_counts_match(&rig.metrics, &rig.sim.truth());
}

/// The JWT stops working mid-run: the client logs in again once and nothing is lost.
#[tokio::test]
async fn token_expiry_mid_run_relogs_once_and_loses_nothing() {
    let mut rig = rig(sim_config(5), 100).await;
    rig.sim.generate(300);
    success(rig.poller.poll_once().await);
    assert_eq!(rig.sim.stats().logins, 1);
    rig.sim.expire_tokens();
    rig.sim.generate(300);
    success(rig.poller.poll_once().await);
    let stats = rig.sim.stats();
    assert_eq!(stats.logins, 2, "one re-login after the 401");
    // Requests in flight at once (the probes of the overlap) each meet the 401; one logs in again.
    assert!((1..=4).contains(&stats.unauthorized), "{} answers 401", stats.unauthorized);
    success(rig.poller.poll_once().await);
    assert_eq!(rig.sim.stats().logins, 2, "the new JWT is reused");
    assert_counts_match(&rig.metrics, &rig.sim.truth());
}

/// A wrong application token: the poll fails as `auth`, `emnify_up` is 0, and nothing is counted.
#[tokio::test]
async fn a_rejected_token_fails_the_poll_cleanly() {
    use emnify_exporter::emnify::Client;
    use emnify_exporter::poller::PollerSettings;
    use emnify_exporter::tally::TallySettings;
    let rig = rig(sim_config(9), 100).await;
    rig.sim.generate(10);
    let metrics = std::sync::Arc::new(emnify_exporter::metrics::Metrics::new());
    let client = Client::new(common::client_settings(&rig.url, "wrong-token"), metrics.clone()).unwrap();
    let settings = PollerSettings { page_size: 100, overlap: Duration::from_secs(60), requests_in_flight: 4 };
    let counting =
        TallySettings { lookback: Duration::from_secs(60), max_remembered_ids: 1000, ..TallySettings::default() };
    let mut poller = common::poller_with(client, &metrics, settings, counting);
    match poller.poll_once().await {
        PollOutcome::Failed { error, .. } => assert_eq!(error.reason(), "auth"),
        PollOutcome::Success(_) => panic!("a wrong token must not succeed"),
    }
    assert_eq!(poller.cursor(), None, "a failed poll never moves the cursor");
    let text = String::from_utf8(metrics.encode()).unwrap();
    let samples = common::parse_exposition(&text);
    assert_eq!(common::sum(&samples, "emnify_up", &[]), 0.0);
    assert_eq!(common::sum(&samples, "emnify_poll_errors_total", &[("reason", "auth")]), 1.0);
    assert_eq!(common::sum(&samples, "emnify_events_total", &[]), 0.0);
    assert_eq!(rig.sim.stats().failed_logins, 1, "one login attempt, no retry storm");
}

/// With lookback 0, history before start is never counted.
#[tokio::test]
async fn default_start_is_now_without_replaying_history() {
    use emnify_exporter::emnify::Client;
    use emnify_exporter::poller::PollerSettings;
    use emnify_exporter::tally::TallySettings;
    let rig = rig(sim_config(13), 100).await;
    rig.sim.generate_aged(50, Duration::from_secs(120));
    let metrics = std::sync::Arc::new(emnify_exporter::metrics::Metrics::new());
    let client = Client::new(common::client_settings(&rig.url, &rig.sim.application_token()), metrics.clone()).unwrap();
    let settings = PollerSettings { page_size: 100, overlap: Duration::from_secs(600), requests_in_flight: 4 };
    let counting = TallySettings { lookback: Duration::ZERO, max_remembered_ids: 1000, ..TallySettings::default() };
    let mut poller = common::poller_with(client, &metrics, settings, counting);
    let first = success(poller.poll_once().await);
    assert_eq!(first.counts.counted, 0, "events from before the start are history");
    rig.sim.generate(20);
    common::wait_until_windows_reach_now().await;
    let second = success(poller.poll_once().await);
    assert_eq!(second.counts.counted, 20);
}

/// Without paging headers the poller walks until a page repeats (emnify repeats the last page) and counts exactly.
#[tokio::test]
async fn absent_paging_headers_are_tolerated() {
    use emnify_exporter::simulator::SimulatorConfig;
    let mut rig = rig(SimulatorConfig { omit_paging_headers: true, ..sim_config(17) }, 60).await;
    rig.sim.generate(450);
    let report = success(rig.poller.poll_once().await);
    assert_eq!(report.counts.counted, 450);
    // The window holds the 450 events: 8 pages, then the repeated last page ends the walk (one query
    // covers the window, so the empty hour before the events costs no page of its own any more).
    assert_eq!(report.pages, 8 + 1);
    rig.sim.generate(30);
    let report = success(rig.poller.poll_once().await);
    assert_eq!(report.counts.counted, 30);
    assert_counts_match(&rig.metrics, &rig.sim.truth());
}
