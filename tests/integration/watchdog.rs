//! The Data Streamer watchdog (issue 26): the simulator's data-stream API and a streamer that fails
//! and is restarted, and the exporter watching (and, when asked, restarting) its stream end to end.

use std::time::Duration;

use crate::common::{self, wait_for, TestExporter, TestSimulator, PATIENCE};
use emnify_exporter::config::Config;
use emnify_exporter::emnify::TokenSource;
use emnify_exporter::secret::Secret;
use emnify_exporter::simulator::data_stream::{StreamStatus, EVENT_STREAM, USAGE_STREAM};
use emnify_exporter::simulator::StreamerConfig;
use emnify_exporter::watchdog::{PlanSettings, WatchdogSettings};

/// A JWT of the simulator's, from its login, for calling the API by hand.
async fn jwt(test_sim: &TestSimulator) -> String {
    let client = common::http_client();
    let body = serde_json::json!({"application_token": test_sim.sim.application_token()}).to_string();
    let answer = client.post(format!("{}/api/v1/authenticate", test_sim.url)).body(body).send().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    value["auth_token"].as_str().expect("a JWT").to_string()
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    let answer = client.get(url).bearer_auth(token).send().await.unwrap();
    serde_json::from_str(&answer.text().await.unwrap()).unwrap()
}

/// A loopback URL nothing listens on: a port bound and given back.
fn dead_url(path: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}{path}")
}

/// The simulator lists its streams as emnify does, answers the state catalogue, restarts by id, and
/// refuses a request without a JWT; its streamer goes to Error after the set number of failed
/// deliveries and stays there, holding its events, until restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulated_data_stream_api_lists_fails_and_restarts() {
    let test_sim = TestSimulator::seeded(2601).await;
    let sim = &test_sim.sim;
    let usage = sim.add_data_stream("usage to S3", USAGE_STREAM, "https://example.com/usage", StreamStatus::Paused);
    sim.set_stream_error_after(Some(5));
    let url = dead_url("/webhook/events");
    let streamer = StreamerConfig {
        url: url.clone(),
        batch_size: 10,
        headers: Vec::new(),
        duplicate_chance: 0.0,
        idle: Duration::from_millis(10),
    };
    tokio::spawn(sim.clone().run_streamer(streamer, test_sim.shutdown.clone()));
    sim.generate(25);
    let ours = || sim.data_streams().into_iter().find(|s| s.url == url);
    assert!(
        wait_for(PATIENCE, async || ours().is_some_and(|s| s.status == StreamStatus::Error)).await,
        "the streamer goes to Error: {:?}",
        sim.data_streams()
    );
    let failed = sim.stats().push_failures;
    assert!(failed >= 5, "{failed} failed deliveries");

    let client = common::http_client();
    let token = jwt(&test_sim).await;
    let list = format!("{}/api/v2/data_stream", test_sim.url);
    assert_eq!(client.get(&list).send().await.unwrap().status(), 401, "no JWT, no list");
    let body = get_json(&client, &list, &token).await;
    let streams = body.as_array().expect("a list");
    assert_eq!(streams.len(), 2);
    let stream_id = ours().unwrap().id;
    let listed = streams.iter().find(|s| s["id"] == stream_id).expect("the streamer is listed");
    assert_eq!(listed["status"], serde_json::json!({"id": 3, "description": "Error"}));
    assert_eq!(listed["data_stream_type"]["id"], EVENT_STREAM);
    assert_eq!(listed["destination"]["credentials"]["url"], url.as_str());
    let other = streams.iter().find(|s| s["id"] == usage).expect("the usage stream is listed");
    assert_eq!(other["status"]["description"], "Paused");

    let states = get_json(&client, &format!("{}/api/v2/data_stream/status", test_sim.url), &token).await;
    let names: Vec<&str> = states.as_array().unwrap().iter().filter_map(|s| s["description"].as_str()).collect();
    assert_eq!(names, ["Running", "Paused", "Error", "Pending"]);

    // Nothing is sent while in Error.
    let pushes_in_error = sim.stats().push_failures;
    let restart =
        |id: u64| client.post(format!("{}/api/v2/data_stream/{id}/restart", test_sim.url)).bearer_auth(&token);
    assert_eq!(restart(999).send().await.unwrap().status(), 404);
    assert_eq!(sim.stats().push_failures, pushes_in_error, "a stream in Error sends nothing");
    assert_eq!(restart(stream_id).send().await.unwrap().status(), 200);
    assert_eq!(ours().unwrap().restarts, 1);
    // Restarted against a destination still down, it tries again and fails again.
    assert!(
        wait_for(PATIENCE, async || sim.stats().push_failures >= pushes_in_error + 5
            && ours().is_some_and(|s| s.status == StreamStatus::Error))
        .await,
        "a restarted stream tries again and goes back to Error: {:?}",
        ours()
    );
    assert_eq!(sim.stats().pushes, 0, "nothing was ever delivered");
}

/// Watchdog settings for `test_sim`: its streams read every 100 ms, ours by the webhook path
/// `/webhook/events`, restarted (at most once a second, backing off up to 8 s) when `restart`.
pub fn watchdog_for(test_sim: &TestSimulator, restart: bool) -> WatchdogSettings {
    WatchdogSettings {
        api_url: test_sim.url.clone(),
        token: TokenSource::Value(Secret::new(test_sim.sim.application_token())),
        interval: Duration::from_millis(100),
        request_timeout: Duration::from_secs(5),
        request_budget_share: None,
        plan: PlanSettings {
            webhook_path: "/webhook/events".into(),
            stream_ids: Vec::new(),
            restart,
            restart_interval: Duration::from_secs(1),
            max_restart_interval: Duration::from_secs(8),
        },
    }
}

/// An exporter on `listen` (port 0 the first time) that receives pushes at `/webhook/events`, keeps its
/// state in `state_file`, polls the simulator too in both mode, and watches the simulator's streams
/// every 100 ms, restarting ours in Error when `restart`.
async fn watching_exporter(
    test_sim: &TestSimulator,
    listen: std::net::SocketAddr,
    state_file: &std::path::Path,
    both: bool,
    restart: bool,
) -> TestExporter {
    let base = test_sim.exporter_config();
    let watchdog = watchdog_for(test_sim, restart);
    TestExporter::start(Config {
        listen_address: listen,
        state_file: Some(state_file.to_path_buf()),
        push: Some(common::open_receiver()),
        poll: if both { base.poll.clone() } else { None },
        watchdog: Some(watchdog),
        ..base
    })
    .await
}

fn address(exporter: &TestExporter) -> std::net::SocketAddr {
    exporter.base.trim_start_matches("http://").parse().expect("the exporter's address")
}

/// The value of one series of `name` with `labels`, 0 when absent.
async fn series(exporter: &TestExporter, name: &str, labels: &[(&str, &str)]) -> f64 {
    common::sum(&exporter.scrape().await, name, labels)
}

/// The round trip of issue 26: the exporter is down until its stream goes to Error; back without
/// `--watchdog.restart` it shows the Error on /metrics and the landing page and restarts nothing; back
/// with it, it restarts its own stream (never the other receiver's, also in Error), the backlog arrives
/// history first, and every event is counted exactly once.
async fn round_trip(both: bool, seed: u64) {
    let test_sim = TestSimulator::seeded(seed).await;
    let sim = &test_sim.sim;
    sim.set_stream_error_after(Some(10));
    let foreign =
        sim.add_data_stream("another receiver", EVENT_STREAM, &dead_url("/webhook/events2"), StreamStatus::Error);
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("state.json");

    let first = watching_exporter(&test_sim, "127.0.0.1:0".parse().unwrap(), &state_file, both, false).await;
    let listen = address(&first);
    let streamer = StreamerConfig {
        url: first.url("/webhook/events"),
        batch_size: 25,
        headers: Vec::new(),
        duplicate_chance: 0.0,
        idle: Duration::from_millis(20),
    };
    tokio::spawn(sim.clone().run_streamer(streamer, test_sim.shutdown.clone()));
    sim.generate(300);
    first.wait_for_total(300).await;
    let ours =
        || sim.data_streams().into_iter().find(|s| s.url.ends_with(&format!("{}/webhook/events", listen.port())));
    let id = ours().expect("the streamer is listed").id;
    assert!(
        wait_for(PATIENCE, async || series(
            &first,
            "emnify_data_stream_state",
            &[("data_stream_id", &id.to_string()), ("state", "running")]
        )
        .await
            == 1.0)
        .await,
        "the watchdog shows the running stream"
    );
    first.stop().await;

    // Down: what happens now piles up in the stream, which fails and goes to Error.
    sim.generate(400);
    sim.generic_burst(1, 50);
    assert!(
        wait_for(PATIENCE, async || ours().is_some_and(|s| s.status == StreamStatus::Error)).await,
        "the stream goes to Error while the exporter is down"
    );

    // Back without --watchdog.restart: the Error shows, nothing is restarted.
    let watching = watching_exporter(&test_sim, listen, &state_file, both, false).await;
    let label = id.to_string();
    assert!(
        wait_for(PATIENCE, async || series(
            &watching,
            "emnify_data_stream_state",
            &[("data_stream_id", &label), ("state", "error")]
        )
        .await
            == 1.0)
        .await,
        "the watchdog shows the stream in Error"
    );
    let samples = watching.scrape().await;
    assert_eq!(
        common::sum(
            &samples,
            "emnify_data_stream_info",
            &[("data_stream_id", &label), ("ours", "true"), ("type", "events")]
        ),
        1.0
    );
    assert_eq!(
        common::sum(
            &samples,
            "emnify_data_stream_info",
            &[("data_stream_id", &foreign.to_string()), ("ours", "false")]
        ),
        1.0
    );
    assert!(
        common::sum(&samples, "emnify_data_stream_state_change_timestamp_seconds", &[("data_stream_id", &label)])
            > 1.6e9
    );
    assert_eq!(common::sum(&samples, "emnify_data_stream_watch_up", &[]), 1.0);
    let page = common::http_client().get(watching.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(
        page.contains("<strong class=\"bad\">Error</strong> since") && page.contains("sends nothing until restarted"),
        "the landing page shows the stream in Error"
    );
    assert_eq!(ours().unwrap().restarts, 0, "no restart without --watchdog.restart");
    watching.stop().await;

    // Back with it: ours is restarted, the other receiver's is not, and the backlog is counted once.
    let mending = watching_exporter(&test_sim, listen, &state_file, both, true).await;
    let truth = sim.truth();
    assert!(
        wait_for(PATIENCE, async || series(&mending, "emnify_push_events_total", &[]).await >= truth.total() as f64)
            .await,
        "the backlog arrives by push: {:?}",
        ours()
    );
    mending.wait_for_total(truth.total()).await;
    let text = mending.scrape_text().await;
    common::assert_counts_match_text(&text, &truth);
    let samples = common::parse_exposition(&text);
    assert!(
        common::sum(&samples, "emnify_data_stream_restarts_total", &[("data_stream_id", &label), ("outcome", "ok")])
            >= 1.0
    );
    assert_eq!(common::sum(&samples, "emnify_data_stream_restarts_total", &[("outcome", "failed")]), 0.0);
    let streams = sim.data_streams();
    assert!(streams.iter().any(|s| s.id == id && s.restarts >= 1), "{streams:?}");
    assert!(
        streams.iter().any(|s| s.id == foreign && s.restarts == 0 && s.status == StreamStatus::Error),
        "{streams:?}"
    );
    // One login per exporter start: in both mode the watchdog uses the poller's JWT (and its budget).
    assert_eq!(sim.stats().logins, 3, "{:?}", sim.stats());
    mending.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mode_round_trip_through_error_counts_each_event_once() {
    round_trip(false, 2602).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_mode_round_trip_through_error_counts_each_event_once() {
    round_trip(true, 2603).await;
}

/// A token whose role may not read data streams (403): the landing page says so and counting goes on.
/// A restart emnify refuses is counted as failed and the stream stays in Error (the alert stays). Push
/// mode without a token: no watchdog, and the page says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_shown_and_a_refused_restart_is_counted_as_failed() {
    let test_sim = TestSimulator::seeded(2604).await;
    let sim = &test_sim.sim;
    let url = "https://exporter.example.com/webhook/events";
    let id = sim.add_data_stream("exporter", EVENT_STREAM, url, StreamStatus::Error).to_string();
    sim.set_data_stream_refusals(Some(403), None);
    let config = Config { watchdog: Some(watchdog_for(&test_sim, true)), ..common::push_only_config() };
    let exporter = TestExporter::start(config).await;
    let client = common::http_client();
    let page = || async { client.get(exporter.url("/")).send().await.unwrap().text().await.unwrap() };
    assert!(
        wait_for(PATIENCE, async || page().await.contains("may not read (or, to restart, change) data streams")).await,
        "the landing page names the missing permission: {}",
        page().await
    );
    assert_eq!(series(&exporter, "emnify_data_stream_watch_up", &[]).await, 0.0);
    sim.generate(5);
    let (status, _) = exporter.push("/webhook/events", &[], sim.event_json_batches(10).remove(0)).await;
    assert_eq!(status, 200);
    exporter.wait_for_total(5).await;

    // The list can be read, but restarts are refused.
    sim.set_data_stream_refusals(None, Some(403));
    let failed = [("data_stream_id", id.as_str()), ("outcome", "failed")];
    assert!(
        wait_for(PATIENCE, async || series(&exporter, "emnify_data_stream_restarts_total", &failed).await >= 2.0).await,
        "refused restarts are counted as failed, and tried again after the interval"
    );
    let samples = exporter.scrape().await;
    assert_eq!(common::sum(&samples, "emnify_data_stream_state", &[("data_stream_id", &id), ("state", "error")]), 1.0);
    assert_eq!(common::sum(&samples, "emnify_data_stream_restarts_total", &[("outcome", "ok")]), 0.0);
    assert_eq!(common::sum(&samples, "emnify_data_stream_watch_up", &[]), 1.0);
    assert_eq!(sim.data_streams()[0].restarts, 0, "emnify restarted nothing");
    exporter.stop().await;

    let unwatched = TestExporter::start(common::push_only_config()).await;
    let page = client.get(unwatched.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("not watched: the watchdog needs an application token"), "{page}");
    assert!(!unwatched.scrape_text().await.contains("emnify_data_stream"), "no watchdog series without it");
}

/// `emnify-exporter simulate --push-error-after N`: the standalone simulator's stream goes to Error
/// after N failed pushes, as the API lists it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_simulators_stream_goes_to_error_after_the_failures_asked_for() {
    let dead = dead_url("/webhook/events");
    let sim = common::Process::start(
        &["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--push-url", &dead, "--push-error-after=3"],
        &[],
    );
    let base = sim.simulator_base();
    let client = common::http_client();
    let generated = client.post(format!("{base}/simulator/generate?count=5")).send().await.unwrap();
    assert_eq!(generated.status(), 200);
    let login = serde_json::json!({"application_token": emnify_exporter::simulator::DEMO_APPLICATION_TOKEN});
    let answer = client.post(format!("{base}/api/v1/authenticate")).body(login.to_string()).send().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(&answer.text().await.unwrap()).unwrap();
    let token = value["auth_token"].as_str().expect("a JWT").to_string();
    let list = format!("{base}/api/v2/data_stream");
    assert!(
        wait_for(PATIENCE, async || {
            let streams = get_json(&client, &list, &token).await;
            streams[0]["status"]["description"] == "Error"
                && streams[0]["destination"]["credentials"]["url"] == dead.as_str()
        })
        .await,
        "the stream goes to Error: {}",
        get_json(&client, &list, &token).await
    );
    sim.kill();
}
