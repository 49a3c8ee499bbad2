//! The overlap behind the cursor is probed, not read again: late events at its edge, counts that lie,
//! the cost in reads, and pages fetched ahead of the one being counted.

use std::sync::Arc;
use std::time::Duration;

use crate::common::{self, assert_counts_match, client_settings, sim_config, wait_until_windows_reach_now};
use emnify_exporter::emnify::Client;
use emnify_exporter::metrics::Metrics;
use emnify_exporter::poller::{PollOutcome, PollReport, Poller, PollerSettings};
use emnify_exporter::simulator::{Simulator, SimulatorConfig};
use emnify_exporter::tally::TallySettings;
use tokio_util::sync::CancellationToken;

struct Run {
    sim: Simulator,
    poller: Poller,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
}

impl Drop for Run {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn run(config: SimulatorConfig, page_size: u32, overlap: Duration, requests_in_flight: usize) -> Run {
    let shutdown = CancellationToken::new();
    let sim = Simulator::new(config);
    let address = sim.start(shutdown.clone()).await.expect("simulator binds 127.0.0.1:0");
    let metrics = Arc::new(Metrics::new());
    let settings = client_settings(&format!("http://{address}"), &sim.application_token());
    let client = Client::new(settings, metrics.clone()).expect("client");
    let walk = PollerSettings { page_size, overlap, requests_in_flight };
    let counting = TallySettings { lookback: Duration::from_secs(3600), ..TallySettings::default() };
    let poller = common::poller_with(client, &metrics, walk, counting);
    Run { sim, poller, metrics, shutdown }
}

async fn poll(run: &mut Run) -> PollReport {
    match run.poller.poll_once().await {
        PollOutcome::Success(report) => report,
        PollOutcome::Failed { error, .. } => panic!("poll failed: {error}"),
    }
}

/// Events that reach emnify almost a whole overlap late are counted by the next poll, once.
#[tokio::test]
async fn late_events_at_the_edge_of_the_overlap_are_counted_once() {
    let overlap = Duration::from_secs(60);
    let mut run = run(sim_config(21), 100, overlap, 4).await;
    run.sim.generate(150);
    assert_eq!(poll(&mut run).await.counts.counted, 150);
    wait_until_windows_reach_now().await;
    run.sim.generate(40);
    assert_eq!(poll(&mut run).await.counts.counted, 40);
    // The oldest moment the next window still covers is 60 s before the cursor, which lies a second
    // or two ahead of now: 57 s ago is inside, at its edge.
    run.sim.generate_aged(25, Duration::from_secs(57));
    run.sim.generate_aged(5, Duration::from_secs(1));
    let report = poll(&mut run).await;
    assert_eq!(report.counts.counted, 30, "{report:?}");
    assert!(report.rereads >= 1, "the segments holding them were read again: {report:?}");
    let again = poll(&mut run).await;
    assert_eq!((again.counts.counted, again.rereads), (0, 0), "{again:?}");
    assert_counts_match(&run.metrics, &run.sim.truth());
}

/// A count that changes while the pages stay the same costs a read of the segments, never a count;
/// events that arrive late while it lies are still counted.
#[tokio::test]
async fn a_count_that_lies_costs_reads_not_counts() {
    let mut run = run(sim_config(22), 50, Duration::from_secs(600), 4).await;
    run.sim.generate(400);
    poll(&mut run).await;
    run.sim.set_total_count_offset(7);
    let lied = poll(&mut run).await;
    assert_eq!(lied.counts.counted, 0);
    assert!(lied.rereads >= 1, "{lied:?}");
    // The true count now reaches what the lie said: a segment that had kept the lie as its count
    // would see no change and miss these.
    run.sim.set_total_count_offset(0);
    run.sim.generate_aged(7, Duration::from_secs(120));
    let late = poll(&mut run).await;
    assert_eq!(late.counts.counted, 7, "{late:?}");
    run.sim.set_total_count_offset(-3);
    let understated = poll(&mut run).await;
    assert_eq!(understated.counts.counted, 0);
    run.sim.set_total_count_offset(0);
    poll(&mut run).await;
    let settled = poll(&mut run).await;
    assert_eq!((settled.counts.counted, settled.rereads), (0, 0), "a truthful count again: {settled:?}");
    assert_counts_match(&run.metrics, &run.sim.truth());
}

/// Over many polls with late events each event is read about once, not once per poll its overlap spans.
#[tokio::test]
async fn each_event_is_read_about_once() {
    // Ids that grow with arrival, as a database sequence's: a stretch that gained late events finds
    // them on its probe page (with random ids it reads until it found them, about half the stretch).
    let config = SimulatorConfig { ascending_ids: true, ..sim_config(23) };
    let mut run = run(config, 100, Duration::from_secs(600), 4).await;
    let mut received = 0;
    for round in 0..8u64 {
        run.sim.generate(300);
        if round % 3 == 2 {
            run.sim.generate_aged(10, Duration::from_secs(30 * round));
        }
        // Events of the second a poll ends in are read again by the next (neighbouring windows share
        // it): here they are all of a round's, so each poll waits until that second is past.
        wait_until_windows_reach_now().await;
        received += poll(&mut run).await.counts.received;
    }
    let produced = run.sim.truth().total();
    assert_counts_match(&run.metrics, &run.sim.truth());
    // Reading the whole overlap on every poll receives the k-th round's events 9 - k times: 4.5 times
    // the events. Here each is read about once, plus the seconds neighbouring windows share.
    assert!(received < 3 * produced, "{received} records received for {produced} events");
}

/// An API that ignores `sort=id` (`sort` is not promised for events) and answers highest ids first:
/// the exporter walks the pages from the first one instead, late events are still counted, and the
/// fallback shows.
#[tokio::test]
async fn an_ignored_sort_is_walked_from_the_first_page() {
    let config = SimulatorConfig { ignore_sort: true, ..sim_config(25) };
    let mut run = run(config, 50, Duration::from_secs(600), 4).await;
    run.sim.generate(200);
    poll(&mut run).await;
    run.sim.generate_aged(15, Duration::from_secs(120));
    let late = poll(&mut run).await;
    assert_eq!(late.counts.counted, 15, "{late:?}");
    assert!(late.rereads >= 1, "{late:?}");
    assert_counts_match(&run.metrics, &run.sim.truth());
    // The fallback shows: emnify does not sort as asked.
    let text = String::from_utf8(run.metrics.encode()).expect("UTF-8 exposition");
    assert!(text.lines().any(|l| l == "emnify_poll_sort_honoured 0"), "{text}");
}

/// Against a slow API, pages the headers announce are fetched ahead, never more than the bound at once,
/// and counted exactly.
#[tokio::test]
async fn pages_are_fetched_ahead_within_the_bound() {
    let config = SimulatorConfig {
        page_latency: Some((Duration::from_millis(50), Duration::from_millis(100))),
        ..sim_config(24)
    };
    let mut run = run(config, 20, Duration::from_secs(600), 3).await;
    run.sim.generate(400);
    let report = poll(&mut run).await;
    assert_eq!(report.counts.counted, 400);
    let peak = run.sim.stats().event_requests_peak;
    assert!((2..=3).contains(&peak), "{peak} event requests at once");
    assert_counts_match(&run.metrics, &run.sim.truth());
}

/// Records expire (emnify's 30-day retention) between page 1 and page 2 of a walk: the pages after it
/// shift towards the start, under the walk. Every record that survives is still counted. In ascending
/// order (as the exporter asks) page 1 holds the oldest records, so their expiry shifts every page not
/// yet read.
#[tokio::test]
async fn records_expiring_mid_walk_never_hide_a_survivor() {
    let config = sim_config(27);
    let mut run = run(config, 100, Duration::from_secs(60), 1).await;
    run.sim.generate(1_000);
    let before: std::collections::BTreeSet<u64> = run.sim.event_ids().into_iter().collect();
    run.sim.expire_while_paging(1, 300);
    let report = poll(&mut run).await;
    let survivors: std::collections::BTreeSet<u64> = run.sim.event_ids().into_iter().collect();
    assert_eq!(survivors.len(), 700);
    // Page 1 (the 100 oldest) was read before they expired; of the 200 that expired unread nothing can
    // be known. Every survivor is counted.
    let expired_unread = before.len() - survivors.len() - 100;
    assert_eq!(report.counts.counted as usize, before.len() - expired_unread, "{report:?}");
}
