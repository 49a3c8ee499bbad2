//! The request budget against a simulator that enforces emnify's documented rate limits (10 requests a
//! second with a burst of 5 on the event list, 2,000 per 5 minutes per client, 429 without `Retry-After`).

use std::time::Instant;

use crate::common::{assert_counts_match_text, sim_config, TestExporter, TestSimulator};
use emnify_exporter::simulator::SimulatorConfig;

/// Catches up a backlog of `pages` full pages with the budget at `share` (`None`: no budget); returns
/// the seconds it took and the 429s the simulator answered. Counting is exact either way.
async fn catch_up(share: Option<f64>, pages: usize, seed: u64) -> (f64, u64) {
    let test_sim = TestSimulator::start(SimulatorConfig { enforce_limits: true, ..sim_config(seed) }).await;
    test_sim.sim.generate(pages * 1000);
    let mut config = test_sim.exporter_config();
    let poll = config.poll.as_mut().expect("a polling configuration");
    poll.walk.page_size = 1000;
    poll.request_budget_share = share;
    let started = Instant::now();
    let running = TestExporter::start(config).await;
    running.wait_for_total((pages * 1000) as u64).await;
    let seconds = started.elapsed().as_secs_f64();
    assert_counts_match_text(&running.scrape_text().await, &test_sim.sim.truth());
    let refused = test_sim.sim.stats().rate_limited;
    running.shutdown.cancel();
    (seconds, refused)
}

/// With the default budget (90% of each limit) a 30-page catch-up gets no 429; without a budget the same
/// stand-in refuses requests (so it does enforce the limits), and counting stays exact through the 429s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catch_up_within_the_budget_gets_no_429() {
    let (budgeted, refused) = catch_up(Some(0.9), 30, 61).await;
    assert_eq!(refused, 0, "the budget kept every request within emnify's limits");
    let (unbudgeted, refused_without) = catch_up(None, 30, 62).await;
    assert!(refused_without > 0, "without a budget the stand-in answers 429");
    println!(
        "30-page catch-up against emnify's limits: {budgeted:.1} s with the budget (0 x 429), \
         {unbudgeted:.1} s without ({refused_without} x 429); the limiter's minimum is 2.5 s"
    );
}

/// A storm of 429s without `Retry-After` slows the budget down (visible in
/// `emnify_api_request_budget_factor`), counting stays exact through it, and the budget recovers once
/// emnify answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_slows_the_budget_and_it_recovers() {
    use crate::common::{parse_exposition, sum, wait_for};
    let test_sim = TestSimulator::start(sim_config(63)).await;
    let sim = &test_sim.sim;
    sim.set_faults("429=0.3".parse().unwrap());
    sim.generate(500);
    let mut config = test_sim.exporter_config();
    config.poll.as_mut().expect("a polling configuration").request_budget_share = Some(0.9);
    let running = TestExporter::start(config).await;
    running.wait_for_total(500).await;
    let factor = |text: &str| sum(&parse_exposition(text), "emnify_api_request_budget_factor", &[]);
    let refused = |text: &str| sum(&parse_exposition(text), "emnify_api_requests_total", &[("code", "429")]);
    // The first scrape that shows a 429 shows its effect too (winning it all back takes 25 answers more).
    let mut seen = String::new();
    assert!(
        wait_for(crate::common::PATIENCE, async || {
            seen = running.scrape_text().await;
            refused(&seen) > 0.0
        })
        .await,
        "the storm's 429s reach the exporter"
    );
    assert!(factor(&seen) < 1.0, "429s lowered the budget: {}", factor(&seen));
    assert_counts_match_text(&running.scrape_text().await, &sim.truth());

    sim.set_faults(emnify_exporter::simulator::faults::FaultConfig::none());
    sim.generate(3000);
    let recovered = wait_for(crate::common::PATIENCE, async || factor(&running.scrape_text().await) == 1.0).await;
    assert!(recovered, "the budget recovers once emnify answers");
    running.wait_for_total(3500).await;
    assert_counts_match_text(&running.scrape_text().await, &sim.truth());
    running.shutdown.cancel();
}
