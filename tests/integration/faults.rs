//! Exactly-once counting and good manners under every fault the simulator can inject.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::{assert_counts_match, client_settings, parse_exposition, sim_config, sum, TestSimulator};
use emnify_exporter::emnify::{Client, ClientSettings};
use emnify_exporter::metrics::Metrics;
use emnify_exporter::poller::{PollOutcome, Poller, PollerSettings};
use emnify_exporter::rng::SplitMix64;
use emnify_exporter::simulator::faults::FaultConfig;
use emnify_exporter::simulator::{Simulator, SimulatorConfig};
use emnify_exporter::tally::TallySettings;
use emnify_exporter::timefmt::now_millis;
use tokio_util::sync::CancellationToken;

/// A client that gives up quickly, so stalled bodies time out within the test.
fn impatient(url: &str, token: &str) -> ClientSettings {
    ClientSettings {
        request_timeout: Duration::from_millis(300),
        retry_base: Duration::from_millis(5),
        ..client_settings(url, token)
    }
}

struct Run {
    sim: Simulator,
    poller: Poller,
    metrics: Arc<Metrics>,
    /// Serves `sim` until the run is dropped.
    _simulator: TestSimulator,
}

async fn run_with(config: SimulatorConfig, page_size: u32) -> Run {
    run_with_in_flight(config, page_size, 4).await
}

async fn run_with_in_flight(config: SimulatorConfig, page_size: u32, requests_in_flight: usize) -> Run {
    let test_sim = TestSimulator::start(config).await;
    let sim = test_sim.sim.clone();
    let metrics = Arc::new(Metrics::new());
    let client = Client::new(impatient(&test_sim.url, &sim.application_token()), metrics.clone()).unwrap();
    let settings = PollerSettings { page_size, overlap: Duration::from_secs(600), requests_in_flight };
    let counting = TallySettings { lookback: Duration::from_secs(3600), ..TallySettings::default() };
    let poller = common::poller_with(client, &metrics, settings, counting);
    Run { sim, poller, metrics, _simulator: test_sim }
}

/// Clears the faults and polls until a poll succeeds (bounded), as the exporter's loop would.
async fn recover(run: &mut Run) {
    run.sim.set_faults(FaultConfig::none());
    for _ in 0..5 {
        if run.poller.poll_once().await.is_success() {
            return;
        }
    }
    panic!("no successful poll after the faults were cleared");
}

fn stall_for() -> Duration {
    Duration::from_millis(500)
}

/// Each fault on its own, at a high rate: after the API recovers, counts equal the truth.
#[tokio::test]
async fn every_single_fault_keeps_counts_exact() {
    let faults = [
        "429=0.4",
        "429=0.4,retry-after=0",
        "5xx=0.3",
        "reset=0.3",
        "stall=0.2,stall-for=500ms",
        "truncate=0.3",
        "malformed=0.3",
        "html=0.3",
        "401=0.3",
        "login-5xx=0.5",
        "login-429=0.5",
        "no-paging=0.6",
        "bad-paging=0.6",
        "dup=0.8",
        "late=0.8",
    ];
    let mut checked = 0;
    for (i, spec) in faults.iter().enumerate() {
        let config: FaultConfig = spec.parse().unwrap();
        let mut run = run_with(SimulatorConfig { faults: config, ..sim_config(100 + i as u64) }, 40).await;
        let mut failures = 0;
        for round in 0..5 {
            run.sim.generate(120);
            if round == 2 {
                run.sim.generic_burst(round, 30);
            }
            // Fresh logins every round, so the login faults get their chance.
            run.sim.expire_tokens();
            failures += usize::from(!run.poller.poll_once().await.is_success());
        }
        recover(&mut run).await;
        checked += assert_counts_match(&run.metrics, &run.sim.truth());
        assert!(run.sim.stats().faults_injected > 0, "{spec}: no fault was injected");
        println!("{spec}: {} faults injected, {failures} failed polls, counts exact", run.sim.stats().faults_injected);
    }
    println!("{} fault kinds, {checked} events checked", faults.len());
}

/// The property: many seeded runs with random fault mixes; counted == produced for every label set.
#[tokio::test]
async fn exactly_once_under_random_fault_schedules() {
    let runs = 40;
    let mut events = 0;
    let mut faults = 0;
    let mut failed_polls = 0;
    let only: Option<u64> = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok());
    for seed in (0..runs).filter(|s| only.is_none_or(|o| o == *s)) {
        println!("seed {seed}");
        let mut rng = SplitMix64::new(seed);
        let config = FaultConfig::random(&mut rng, stall_for());
        let page_size = 10 + rng.below(90) as u32;
        let mut run = run_with(SimulatorConfig { faults: config.clone(), ..sim_config(seed) }, page_size).await;
        for _ in 0..6 {
            run.sim.generate(rng.below(250) as usize);
            if rng.chance(0.3) {
                run.sim.generate_aged(rng.below(40) as usize, Duration::from_secs(rng.below(300)));
            }
            if rng.chance(0.3) {
                run.sim.generic_burst(rng.below(3) as usize, rng.below(80) as usize);
            }
            if rng.chance(0.2) {
                run.sim.insert_unreadable(1);
            }
            failed_polls += usize::from(!run.poller.poll_once().await.is_success());
        }
        recover(&mut run).await;
        let truth = run.sim.truth();
        let counted = assert_counts_match(&run.metrics, &truth);
        assert_eq!(counted, truth.total(), "seed {seed} ({config})");
        events += counted;
        faults += run.sim.stats().faults_injected;
    }
    println!(
        "{runs} seeded runs: {events} events counted exactly once under {faults} injected faults ({failed_polls} failed polls)"
    );
    assert!(faults > 100, "the schedules should have injected many faults");
}

/// While the API fails, the last values stay served with `emnify_up 0`, the cursor stays put, and the
/// exporter recovers by itself.
#[tokio::test]
async fn failing_api_keeps_last_values_and_the_cursor() {
    let mut run = run_with(sim_config(7), 100).await;
    run.sim.generate(200);
    assert!(run.poller.poll_once().await.is_success());
    let cursor = run.poller.cursor();
    // The next window must end later than this one, or an unmoved cursor would prove nothing. Windows
    // end at emnify's time as its one-second `Date` headers tell it, up to two seconds behind the host's.
    while cursor.is_some_and(|c| now_millis() / 1000 <= c + 2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    run.sim.set_faults("5xx=1".parse().unwrap());
    run.sim.generate(50);
    match run.poller.poll_once().await {
        PollOutcome::Failed { error, report } => {
            assert_eq!(error.reason(), "http_5xx");
            assert!(Some(report.until) > cursor, "the failed window reached past the cursor");
        }
        PollOutcome::Success(_) => panic!("a 5xx-only API cannot succeed"),
    }
    assert_eq!(run.poller.cursor(), cursor, "a failed poll never moves the cursor");
    let samples = parse_exposition(&String::from_utf8(run.metrics.encode()).unwrap());
    assert_eq!(sum(&samples, "emnify_up", &[]), 0.0);
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 200.0, "the last values stay served");
    assert_eq!(sum(&samples, "emnify_poll_errors_total", &[("reason", "http_5xx")]), 1.0);
    assert!(sum(&samples, "emnify_api_requests_total", &[("code", "503")]) >= 1.0);
    recover(&mut run).await;
    assert!(run.poller.cursor() > cursor, "recovery moves the cursor on");
    assert_counts_match(&run.metrics, &run.sim.truth());
}

/// A 429 with `Retry-After: 1` is retried no sooner than a second later.
#[tokio::test]
async fn retry_after_is_honoured() {
    // One request at a time, so the attempts of one request can be told apart.
    let mut run = run_with_in_flight(sim_config(8), 100, 1).await;
    assert!(run.poller.poll_once().await.is_success());
    run.sim.set_faults("429=1,retry-after=1".parse().unwrap());
    let before = run.sim.request_times().0.len();
    let outcome = run.poller.poll_once().await;
    assert!(!outcome.is_success());
    let (times, _) = run.sim.request_times();
    let attempts = &times[before..];
    assert_eq!(attempts.len(), 3, "three attempts per request");
    for pair in attempts.windows(2) {
        assert!(pair[1] - pair[0] >= 1000, "retried after {} ms despite Retry-After: 1", pair[1] - pair[0]);
    }
}

/// A 5xx with `Retry-After: 2`, as seconds or as an HTTP-date, holds every request to emnify for 2 s:
/// the refused request's retries, the next request of another kind, and the poll loop's next poll (an
/// independent stand-in once saw 11 requests in 10 s). Two attempts a request, so the loop gives up
/// on the event types and then on a poll within the first few requests.
#[tokio::test]
async fn retry_after_on_a_5xx_holds_every_request() {
    for (spec, wanted) in [("5xx=1,5xx-retry-after=2", 5), ("5xx=1,5xx-retry-after=2,retry-after-form=date", 3)] {
        let test_sim = TestSimulator::start(SimulatorConfig { faults: spec.parse().unwrap(), ..sim_config(11) }).await;
        let sim = test_sim.sim.clone();
        let metrics = Arc::new(Metrics::new());
        let settings = ClientSettings { max_attempts: 2, ..impatient(&test_sim.url, &sim.application_token()) };
        let client = Client::new(settings, metrics.clone()).unwrap();
        // One request at a time: requests in flight together all go out before the first answer.
        let walk = PollerSettings { page_size: 100, overlap: Duration::from_secs(60), requests_in_flight: 1 };
        let counting = TallySettings { lookback: Duration::from_secs(3600), ..TallySettings::default() };
        let poller = common::poller_with(client, &metrics, walk, counting);
        let loop_stop = CancellationToken::new();
        let task =
            tokio::spawn(emnify_exporter::poller::run_poll_loop(poller, Duration::from_secs(1), loop_stop.clone()));
        // Every API request but the login is answered 5xx with the header.
        let refused = || {
            let (mut requests, logins) = sim.request_times();
            for login in logins {
                if let Some(at) = requests.iter().position(|t| *t == login) {
                    requests.remove(at);
                }
            }
            requests
        };
        let reached = common::wait_for(common::PATIENCE, async || refused().len() >= wanted).await;
        loop_stop.cancel();
        task.await.unwrap();
        assert!(reached, "{spec}: only {} requests", refused().len());
        let times = refused();
        for pair in times.windows(2) {
            assert!(
                pair[1] - pair[0] >= 2000,
                "{spec}: a request {} ms after a 5xx with Retry-After: 2",
                pair[1] - pair[0]
            );
        }
        let span = times[times.len() - 1] - times[0];
        assert!(times.len() as i64 <= 1 + span / 2000, "{spec}: {} requests in {span} ms", times.len());
        let samples = parse_exposition(&String::from_utf8(metrics.encode()).unwrap());
        let answered_5xx: f64 = ["500", "502", "503"]
            .iter()
            .map(|code| sum(&samples, "emnify_api_requests_total", &[("code", code)]))
            .sum();
        assert!(answered_5xx >= times.len() as f64, "{spec}: the client saw the 5xx answers");
        println!(
            "{spec}: {} requests in {span} ms, gaps {:?} ms",
            times.len(),
            times.windows(2).map(|p| p[1] - p[0]).collect::<Vec<_>>()
        );
    }
}

/// A revoked application token: the exporter's loop backs off instead of hammering the login endpoint.
#[tokio::test]
async fn a_revoked_token_backs_off() {
    let test_sim = TestSimulator::start(sim_config(9)).await;
    let sim = &test_sim.sim;
    sim.set_revoked(true);
    let metrics = Arc::new(Metrics::new());
    let settings =
        ClientSettings { min_request_interval: Duration::from_millis(200), ..client_settings(&test_sim.url, "x") };
    let client = Client::new(settings, metrics.clone()).unwrap();
    let poller_settings = PollerSettings { page_size: 100, overlap: Duration::from_secs(60), requests_in_flight: 4 };
    let counting = TallySettings { lookback: Duration::ZERO, max_remembered_ids: 1000, ..TallySettings::default() };
    let poller = common::poller_with(client, &metrics, poller_settings, counting);
    let loop_stop = CancellationToken::new();
    let task = tokio::spawn(emnify_exporter::poller::run_poll_loop(poller, Duration::from_secs(1), loop_stop.clone()));
    // Long enough for a hammering client to make dozens of attempts.
    tokio::time::sleep(Duration::from_secs(6)).await;
    loop_stop.cancel();
    task.await.unwrap();
    let (_, logins) = sim.request_times();
    // Backoff 1 s, 2 s, 4 s (±25%) after the start-up attempt: at most five in six seconds.
    assert!(!logins.is_empty() && logins.len() <= 5, "{} logins in 6 s", logins.len());
    let samples = parse_exposition(&String::from_utf8(metrics.encode()).unwrap());
    assert!(sum(&samples, "emnify_poll_errors_total", &[("reason", "auth")]) >= 1.0);
}

/// With the default pacing, requests stay within emnify's limits (10/s on events, 2,000 per 5 min) in any fault mode.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_rate_stays_within_emnify_limits_under_faults() {
    let test_sim = TestSimulator::start(SimulatorConfig {
        faults: "429=0.2,5xx=0.2,reset=0.1,truncate=0.1,html=0.1,401=0.1,login-5xx=0.3,no-paging=0.3,dup=0.3,late=0.3"
            .parse()
            .unwrap(),
        ..sim_config(10)
    })
    .await;
    let sim = &test_sim.sim;
    sim.generate(3000);
    let metrics = Arc::new(Metrics::new());
    let settings = ClientSettings {
        min_request_interval: Duration::from_millis(200),
        ..impatient(&test_sim.url, &sim.application_token())
    };
    let client = Client::new(settings, metrics.clone()).unwrap();
    let poller_settings = PollerSettings { page_size: 20, overlap: Duration::from_secs(600), requests_in_flight: 4 };
    let counting =
        TallySettings { lookback: Duration::from_secs(3600), max_remembered_ids: 100_000, ..TallySettings::default() };
    let poller = common::poller_with(client, &metrics, poller_settings, counting);
    let loop_stop = CancellationToken::new();
    let task = tokio::spawn(emnify_exporter::poller::run_poll_loop(poller, Duration::from_secs(1), loop_stop.clone()));
    tokio::time::sleep(Duration::from_secs(8)).await;
    loop_stop.cancel();
    task.await.unwrap();
    let (requests, logins) = sim.request_times();
    assert!(requests.len() >= 20, "the exporter should have been busy: {} requests", requests.len());
    let busiest_second = requests
        .iter()
        .map(|start| requests.iter().filter(|t| **t >= *start && **t < start + 1000).count())
        .max()
        .unwrap_or(0);
    assert!(busiest_second <= 6, "{busiest_second} requests in one second (emnify allows 10)");
    assert!(requests.len() <= 2000 * 8 / 300 + 10, "{} requests in 8 s", requests.len());
    assert!(logins.len() <= 90, "{} logins", logins.len());
    println!("{} requests ({} logins) in 8 s, at most {busiest_second} in any second", requests.len(), logins.len());
}
