//! Push ingestion: the simulator acts as emnify's Data Streamer and pushes to the exporter's receiver.

use crate::common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::{assert_counts_match_text, parse_exposition, sum, wait_for, TestExporter, TestSimulator};
use emnify_exporter::config::Config;
use emnify_exporter::receiver::ReceiverSettings;
use emnify_exporter::secret::Secret;
use emnify_exporter::simulator::{Simulator, StreamerConfig};
use hyper::header::HeaderName;
use tokio_util::sync::CancellationToken;

const SECRET_HEADER: &str = "x-emnify-webhook-secret";
const SECRET: &str = "push-secret-42";

fn receiver_settings() -> ReceiverSettings {
    ReceiverSettings {
        path: "/webhook/events".into(),
        secret_header: Some((HeaderName::from_static(SECRET_HEADER), Secret::new(SECRET))),
        basic_auth: None,
        insecure_no_auth: false,
        max_body_bytes: 32 * 1024 * 1024,
        max_records: 10_000,
        read_timeout: Duration::from_secs(5),
        max_concurrent: 4,
    }
}

/// An exporter that only receives pushes.
async fn push_only(receiver: ReceiverSettings) -> TestExporter {
    let config = Config { poll: None, push: Some(receiver), ..Config::for_tests("http://127.0.0.1:9", "unused") };
    TestExporter::start(config).await
}

/// An exporter that receives pushes and polls `api_url` as the gap-filler.
async fn push_and_poll(api_url: &str, token: &str, receiver: ReceiverSettings) -> TestExporter {
    TestExporter::start(Config { push: Some(receiver), ..Config::for_tests(api_url, token) }).await
}

fn streamer(running: &TestExporter, batch_size: usize, duplicate_chance: f64) -> StreamerConfig {
    StreamerConfig {
        url: running.url("/webhook/events"),
        batch_size,
        headers: vec![(SECRET_HEADER.into(), SECRET.into())],
        duplicate_chance,
        idle: Duration::from_millis(20),
    }
}

/// Starts a push that sends its headers and `sent_body` of a `declared`-byte body, then nothing; returns
/// once it is on the wire, with the thread that reads the answer.
fn slow_push(running: &TestExporter, sent_body: &str, declared: usize) -> std::thread::JoinHandle<String> {
    let address = running.base.trim_start_matches("http://").to_string();
    let sent_body = sent_body.to_string();
    let (sent, on_the_wire) = std::sync::mpsc::channel();
    let answer = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        let head = format!("POST /webhook/events HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n");
        write!(stream, "{head}Content-Length: {declared}\r\n\r\n{sent_body}").unwrap();
        let _ = sent.send(());
        let mut answer = String::new();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let _ = stream.read_to_string(&mut answer);
        answer
    });
    let _ = on_the_wire.recv();
    answer
}

/// Starts a slow upload of `sent_body` (of `declared` bytes) and waits until a push of `padded` is refused
/// with 503 and Retry-After because the upload holds the body budget; returns the upload, or `None` if
/// no push was refused. On a loaded machine a push can reach the budget before the upload's bytes do:
/// then the upload is the one refused (its connection closed), and it is sent again.
async fn hold_the_budget(
    running: &TestExporter,
    sent_body: &str,
    declared: usize,
    padded: &str,
) -> Option<std::thread::JoinHandle<String>> {
    let client = common::http_client();
    let url = running.url("/webhook/events");
    let mut hog = slow_push(running, sent_body, declared);
    let refused = wait_for(Duration::from_secs(15), async || {
        if hog.is_finished() {
            hog = slow_push(running, sent_body, declared);
        }
        let answer = client.post(&url).header(SECRET_HEADER, SECRET).body(padded.to_string()).send().await;
        answer.is_ok_and(|r| r.status() == 503 && r.headers().contains_key("retry-after")) && !hog.is_finished()
    })
    .await;
    refused.then_some(hog)
}

/// Push only: two streamers deliver every event twice, into a receiver that takes one push at a
/// time, while a slow upload holds most of its body budget at first (so pushes are refused with 503
/// and sent again): every event is still counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_only_counts_once_despite_retries_and_duplicates() {
    let stop = CancellationToken::new();
    let sim = Simulator::new(common::sim_config(51));
    let settings = ReceiverSettings {
        max_concurrent: 1,
        max_body_bytes: 64 * 1024,
        read_timeout: Duration::from_secs(1),
        ..receiver_settings()
    };
    let running = push_only(settings).await;
    let padded = format!("[{}]", " ".repeat(8 * 1024));
    let hog = hold_the_budget(&running, &format!("[{}", " ".repeat(60 * 1024)), 64 * 1024, &padded).await;
    let hog = hog.expect("the slow upload holds most of the budget");
    tokio::spawn(sim.clone().run_streamer(streamer(&running, 37, 0.3), stop.clone()));
    tokio::spawn(
        sim.clone().run_streamer(StreamerConfig { batch_size: 1, ..streamer(&running, 1, 0.3) }, stop.clone()),
    );
    for _ in 0..10 {
        sim.generate(150);
        sim.generic_burst(1, 10);
        sim.insert_unreadable(1);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let truth = sim.truth();
    running.wait_for_total(truth.total()).await;
    // Wait until both streamers have delivered everything (their retries included).
    let text = running.scrape_text().await;
    assert_counts_match_text(&text, &truth);
    let samples = parse_exposition(&text);
    let stats = sim.stats();
    assert!(stats.duplicate_pushes > 0 && stats.push_failures > 0, "{stats:?}");
    let hog = tokio::task::spawn_blocking(move || hog.join().unwrap()).await.unwrap();
    assert!(hog.starts_with("HTTP/1.1 408"), "{hog}");
    assert!(sum(&samples, "emnify_events_duplicate_total", &[]) > 0.0);
    assert!(
        sum(&samples, "emnify_push_requests_total", &[("code", "503")]) > 0.0,
        "pushes were refused and sent again"
    );
    assert_eq!(sum(&samples, "emnify_up", &[]), 1.0, "push-only mode is up without polling");
    assert!(sum(&samples, "emnify_last_push_timestamp_seconds", &[]) > 1.6e9);
    println!(
        "push only: {} events exact after {} pushes, {} refused and re-sent, {} sent twice",
        truth.total(),
        stats.pushes,
        stats.push_failures,
        stats.duplicate_pushes
    );
    stop.cancel();
    running.shutdown.cancel();
}

/// Both modes together: what arrives by push and by poll is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_and_poll_together_count_each_event_once() {
    let test_sim = TestSimulator::seeded(52).await;
    let sim = &test_sim.sim;
    let running = push_and_poll(&test_sim.url, &sim.application_token(), receiver_settings()).await;
    tokio::spawn(sim.clone().run_streamer(streamer(&running, 50, 0.1), test_sim.shutdown.clone()));
    for _ in 0..8 {
        sim.generate(200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let truth = sim.truth();
    running.wait_for_total(truth.total()).await;
    // Let the poller run over the same events again.
    let text = running.scrape_text().await;
    let polls_before = sum(&parse_exposition(&text), "emnify_poll_duration_seconds_count", &[]);
    let url = format!("{}/metrics", running.base);
    assert!(
        wait_for(Duration::from_secs(10), async || {
            sum(&parse_exposition(&common::blocking_get(&url).1), "emnify_poll_duration_seconds_count", &[])
                >= polls_before + 2.0
        })
        .await
    );
    let text = running.scrape_text().await;
    assert_counts_match_text(&text, &truth);
    let samples = parse_exposition(&text);
    assert!(sum(&samples, "emnify_push_events_total", &[]) > 0.0, "events arrived by push");
    assert!(sum(&samples, "emnify_events_duplicate_total", &[]) >= truth.total() as f64, "and again by poll");
    running.shutdown.cancel();
}

/// A bare object and an array are both accepted; the answer says what was counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_and_array_bodies_and_partly_unreadable_batches() {
    let running = push_only(receiver_settings()).await;
    let url = format!("{}/webhook/events", running.base);
    let client = common::http_client();
    let event = |id: u64| {
        serde_json::json!({"id": id, "timestamp": "2026-11-27T10:00:00Z", "event_type": {"id": 0, "description": "Generic"},
        "event_source": {"id": 1}, "event_severity": {"id": 1}, "organisation": {"id": 5, "name": "Org"},
        "description": "Disconnecting data access for endpoint to apply throttling action.", "alert": true})
    };
    let post = |body: String| client.post(&url).header(SECRET_HEADER, SECRET).body(body).send();
    let r = post(event(1).to_string()).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()["counted"], 1);
    let batch = serde_json::json!([event(2), event(3), {"id": "broken"}, "junk", event(1)]);
    let r = client.put(&url).header(SECRET_HEADER, SECRET).body(batch.to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200, "one poison record never fails the batch");
    let answer: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!((answer["received"].as_u64(), answer["counted"].as_u64()), (Some(5), Some(2)));
    assert_eq!((answer["duplicates"].as_u64(), answer["unreadable"].as_u64()), (Some(1), Some(2)));
    let r = client.patch(&url).header(SECRET_HEADER, SECRET).body(event(4).to_string()).send().await.unwrap();
    assert_eq!(r.status(), 200, "PATCH is allowed too");
    running.wait_for_total(4).await;
    let samples = parse_exposition(&running.scrape_text().await);
    assert_eq!(sum(&samples, "emnify_generic_events_total", &[("cause", "throttling")]), 4.0);
    assert_eq!(sum(&samples, "emnify_push_events_total", &[]), 7.0);
    running.shutdown.cancel();
}

/// Every bad push gets its documented answer, and nothing of it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_refused_and_count_nothing() {
    let settings = ReceiverSettings {
        max_body_bytes: 4096,
        read_timeout: Duration::from_millis(500),
        max_concurrent: 1,
        ..receiver_settings()
    };
    let running = push_only(settings).await;
    let url = format!("{}/webhook/events", running.base);
    let client = common::http_client();
    let one = r#"{"id": 9, "event_type": {"id": 1}, "organisation": {"id": 5, "name": "Org"}}"#;
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(client.post(&url).body(one).send().await.unwrap()), 401, "no secret");
    assert_eq!(status(client.post(&url).header(SECRET_HEADER, "wrong").body(one).send().await.unwrap()), 401);
    assert_eq!(status(client.post(&url).header(SECRET_HEADER, SECRET).body("[{\"id\": 1,").send().await.unwrap()), 400);
    assert_eq!(status(client.post(&url).header(SECRET_HEADER, SECRET).body("<html>").send().await.unwrap()), 400);
    let big = format!("[{}]", vec![one; 100].join(","));
    assert_eq!(status(client.post(&url).header(SECRET_HEADER, SECRET).body(big).send().await.unwrap()), 413);
    assert_eq!(status(client.get(&url).header(SECRET_HEADER, SECRET).send().await.unwrap()), 405);

    // Slow clients, more of them than there are slots: headers and part of the body, then nothing. They
    // hold their connections and the bytes they sent, not a slot: a complete push meanwhile is counted.
    let slow: Vec<_> = (0..3).map(|_| slow_push(&running, "[{\"id\"", 500)).collect();
    let complete = client.post(&url).header(SECRET_HEADER, SECRET).body("[]").send().await.unwrap();
    assert_eq!(complete.status(), 200, "slow uploads hold no processing slot");
    for answer in slow {
        let answer = tokio::task::spawn_blocking(move || answer.join().unwrap()).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "a slow body is cut off at the read timeout: {answer}");
    }

    let metrics_url = format!("{}/metrics", running.base);
    assert!(
        wait_for(common::PATIENCE, async || {
            let samples = parse_exposition(&common::blocking_get(&metrics_url).1);
            sum(&samples, "emnify_push_rejected_total", &[("reason", "timeout")]) == 3.0
        })
        .await,
        "the refusals are published within a checkpoint period"
    );
    let samples = parse_exposition(&running.scrape_text().await);
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 0.0, "nothing counted");
    for (reason, n) in
        [("unauthorized", 2.0), ("malformed", 2.0), ("too_large", 1.0), ("method", 1.0), ("timeout", 3.0)]
    {
        assert_eq!(sum(&samples, "emnify_push_rejected_total", &[("reason", reason)]), n, "{reason}");
    }
    running.shutdown.cancel();
}

/// Bodies in flight are bounded as a whole (here one body's worth, one slot): while an upload holds most
/// of it, a push that would go beyond gets 503 with Retry-After; once that upload is gone, pushes are
/// answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_bytes_beyond_the_budget_get_503() {
    let settings = ReceiverSettings {
        max_body_bytes: 4096,
        read_timeout: Duration::from_secs(20),
        max_concurrent: 1,
        ..receiver_settings()
    };
    let running = push_only(settings).await;
    let url = format!("{}/webhook/events", running.base);
    let client = common::http_client();
    let padded = format!("[{}]", " ".repeat(200));
    let hog = hold_the_budget(&running, &format!("[{}", " ".repeat(4000)), 4090, &padded).await;
    let hog = hog.expect("bytes beyond the budget are refused with 503 and Retry-After");
    let push = || client.post(&url).header(SECRET_HEADER, SECRET).body(padded.clone()).send();
    // The hog is cut off at the read timeout (20 s): the budget is free.
    let answered = wait_for(Duration::from_secs(30), async || push().await.is_ok_and(|r| r.status() == 200)).await;
    assert!(answered, "pushes are answered once the upload holding the budget is cut off");
    let answer = tokio::task::spawn_blocking(move || hog.join().unwrap()).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let samples = parse_exposition(&running.scrape_text().await);
    assert!(sum(&samples, "emnify_push_rejected_total", &[("reason", "overloaded")]) >= 1.0);
    running.shutdown.cancel();
}

/// Basic auth instead of a secret header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_pushes() {
    let settings = ReceiverSettings {
        secret_header: None,
        basic_auth: Some(("emnify".into(), Secret::new("streamer-pass"))),
        ..receiver_settings()
    };
    let running = push_only(settings).await;
    let url = format!("{}/webhook/events", running.base);
    let client = common::http_client();
    let one = r#"{"id": 9, "event_type": {"id": 1}}"#;
    let wrong = client.post(&url).basic_auth("emnify", Some("nope")).body(one).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = client.post(&url).basic_auth("emnify", Some("streamer-pass")).body(one).send().await.unwrap();
    assert_eq!(right.status(), 200);
    // The scheme is case-insensitive (RFC 7235): `basic` and `BASIC` are Basic too.
    let credentials = emnify_exporter::receiver::basic_authorization("emnify", &Secret::new("streamer-pass"));
    let credentials = credentials.strip_prefix("Basic ").unwrap();
    for scheme in ["basic", "BASIC"] {
        let header = format!("{scheme} {credentials}");
        let r = client.post(&url).header("authorization", header).body(one).send().await.unwrap();
        assert_eq!(r.status(), 200, "{scheme}");
    }
    running.shutdown.cancel();
}

/// `:PORT` listens on every interface, IPv6 and IPv4 (dual stack; IPv4 alone on a host without IPv6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_interface_means_ipv6_and_ipv4() {
    let mut config = common::push_only_config();
    config.listen_address = emnify_exporter::config::parse_listen_address(":0").unwrap();
    let app = emnify_exporter::app::App::build(config).await.unwrap();
    let address = app.local_addr();
    let stop = CancellationToken::new();
    tokio::spawn(app.run(stop.clone()));
    let _stop = stop.drop_guard();
    let port = address.port();
    let healthy = move |host: String| common::blocking_get_ok(&format!("http://{host}:{port}/-/healthy"));
    let v4 = tokio::task::spawn_blocking(move || healthy("127.0.0.1".into()));
    assert!(v4.await.unwrap(), "IPv4 loopback");
    if address.is_ipv6() {
        let v6 = tokio::task::spawn_blocking(move || healthy("[::1]".into()));
        assert!(v6.await.unwrap(), "IPv6 loopback on {address}");
    }
}

/// How long from a push's answer to the event showing on /metrics, and how many events a second
/// the receiver takes in 10,000-event batches (printed; speed is for the benchmarks, not asserted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_latency_and_throughput_figures() {
    let running = push_only(receiver_settings()).await;
    let url = format!("{}/webhook/events", running.base);
    let metrics_url = format!("{}/metrics", running.base);
    let client = common::http_client();
    let sim = Simulator::new(common::sim_config(53));
    sim.generate(50_000);
    let bodies: Vec<String> = sim.event_json_batches(10_000);
    let started = Instant::now();
    for body in &bodies {
        let r = client.post(&url).header(SECRET_HEADER, SECRET).body(body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let elapsed = started.elapsed();
    let pushed = Instant::now();
    let one = r#"{"id": 1, "event_type": {"id": 0}, "organisation": {"id": 5, "name": "Latency"}}"#;
    client.post(&url).header(SECRET_HEADER, SECRET).body(one).send().await.unwrap();
    let answered = pushed.elapsed();
    assert!(
        wait_for(Duration::from_secs(10), async || common::blocking_get(&metrics_url)
            .1
            .contains("organisation=\"Latency\""))
        .await
    );
    println!(
        "push: {} events in {} batches of 10,000 in {:.2} s ({:.0} events/s, {} build); one event visible on /metrics \
         {:.0} ms after its push was answered ({:.1} ms to answer)",
        sim.truth().total(),
        bodies.len(),
        elapsed.as_secs_f64(),
        sim.truth().total() as f64 / elapsed.as_secs_f64(),
        if cfg!(debug_assertions) { "debug" } else { "release" },
        (pushed.elapsed() - answered).as_secs_f64() * 1000.0,
        answered.as_secs_f64() * 1000.0
    );
    running.wait_for_total(50_001).await;
    running.shutdown.cancel();
}

/// Push only: `emnify_up` says whether pushes arrive. It turns 0 after `--webhook.stale-after` without
/// a push, and 1 again with the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_only_up_follows_whether_pushes_arrive() {
    let mut config =
        Config { poll: None, push: Some(receiver_settings()), ..Config::for_tests("http://127.0.0.1:9", "unused") };
    config.tally.push_stale_after = Duration::from_secs(1);
    let running = TestExporter::start(config).await;
    let up = async || sum(&running.scrape().await, "emnify_up", &[]);
    assert!(wait_for(common::PATIENCE, async || up().await == 0.0).await, "a silent stream is not up");
    let one = r#"{"id": 77, "event_type": {"id": 1}, "organisation": {"id": 5, "name": "Org"}}"#;
    let (status, answer) = running.push("/webhook/events", &[(SECRET_HEADER, SECRET)], one).await;
    assert_eq!(status, 200, "{answer}");
    assert!(wait_for(common::PATIENCE, async || up().await == 1.0).await, "a push brings it back up");
}

/// With a state file, a push is saved and published before it is answered, and its own metrics with
/// it: a scrape right after the answer shows the push, not the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_and_its_metrics_are_published_before_it_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        poll: None,
        push: Some(receiver_settings()),
        state_file: Some(dir.path().join("state.json")),
        ..Config::for_tests("http://127.0.0.1:9", "unused")
    };
    // Nothing publishes on a timer meanwhile: only the push's own checkpoint can.
    config.tally.publish_every = Duration::from_secs(3600);
    config.tally.save_every = Duration::from_secs(3600);
    let running = TestExporter::start(config).await;
    let event = |id: u64| format!(r#"{{"id": {id}, "event_type": {{"id": 1}}, "organisation": {{"id": 5}}}}"#);
    for (round, ids) in [(1u64, vec![1, 2, 3]), (2, vec![4, 5])] {
        let body = format!("[{}]", ids.iter().map(|id| event(*id)).collect::<Vec<_>>().join(","));
        let (status, answer) = running.push("/webhook/events", &[(SECRET_HEADER, SECRET)], body).await;
        assert_eq!(status, 200, "{answer}");
        let samples = running.scrape().await;
        let pushed = if round == 1 { 3.0 } else { 5.0 };
        assert_eq!(sum(&samples, "emnify_events_total", &[]), pushed, "round {round}");
        assert_eq!(sum(&samples, "emnify_push_events_total", &[]), pushed, "round {round}");
        assert!(sum(&samples, "emnify_last_push_timestamp_seconds", &[]) > 1.6e9, "round {round}");
        assert!(sum(&samples, "emnify_state_last_save_success_timestamp_seconds", &[]) > 1.6e9);
    }
}

/// 100,000 records that cannot be read, pushed twice, make one summary log line, not 200,000 lines.
#[test]
fn a_push_of_poison_records_logs_a_summary_not_a_line_each() {
    let exporter = common::Process::start(
        // Ten times emnify's batch maximum, allowed for the test: the log stays one summary line.
        &[
            "--ingest.mode=push",
            "--webhook.insecure-no-auth",
            "--web.listen-address=127.0.0.1:0",
            "--webhook.max-records=100000",
        ],
        &[],
    );
    let base = exporter.exporter_base();
    let body = format!("[{}]", vec!["1"; 100_000].join(","));
    for _ in 0..2 {
        let rest = base.trim_start_matches("http://").to_string();
        let mut stream = std::net::TcpStream::connect(&rest).unwrap();
        write!(
            stream,
            "POST /webhook/events HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Published within a checkpoint period of the last push.
    let unreadable = || {
        let samples = crate::common::parse_exposition(&common::blocking_get(&format!("{base}/metrics")).1);
        sum(&samples, "emnify_events_unreadable_total", &[("reason", "not_an_object")])
    };
    let deadline = Instant::now() + common::PATIENCE;
    while unreadable() < 200_000.0 {
        assert!(Instant::now() < deadline, "never published");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(unreadable(), 200_000.0);
    let lines = exporter.kill_and_collect();
    let summaries = lines.iter().filter(|l| l.contains("skipped records")).count();
    assert!((1..=2).contains(&summaries), "{summaries} summary lines of {} log lines", lines.len());
    assert!(lines.len() < 20, "{} log lines", lines.len());
}

/// Well-formed records whose values cannot be decoded (a lone surrogate in a description or an
/// organisation name, an id of `1E400`) cost only themselves: the push is answered 200, the good
/// record is counted, each poison record is counted unreadable once however often it is sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_values_cost_only_their_own_record() {
    let running = push_only(receiver_settings()).await;
    let url = running.url("/webhook/events");
    let client = common::http_client();
    let body = r#"[{"id": 1, "event_type": {"id": 3}, "description": "\ud800"},
        {"id": 2, "event_type": {"id": 3}, "organisation": {"id": 7, "name": "\udc00 Org"}},
        {"id": 1E400, "event_type": {"id": 3}},
        {"id": 4, "event_type": {"id": 3}, "organisation": {"id": 7, "name": "Org"}}]"#;
    for (counted, unreadable) in [(1, 3), (0, 0)] {
        let r = client.post(&url).header(SECRET_HEADER, SECRET).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let answer: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        assert_eq!((answer["counted"].as_u64(), answer["unreadable"].as_u64()), (Some(counted), Some(unreadable)));
    }
    running.wait_for_total(1).await;
    let samples = parse_exposition(&running.scrape_text().await);
    assert_eq!(sum(&samples, "emnify_events_unreadable_total", &[("reason", "malformed_value")]), 3.0);
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 1.0);
    running.shutdown.cancel();
}
