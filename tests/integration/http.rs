//! The exporter's HTTP surface, served by the real app on 127.0.0.1:0 against the simulator.

use std::time::Duration;

use crate::common::{self, parse_exposition, sum, wait_for, TestExporter, TestSimulator};

#[tokio::test]
async fn endpoints_answer_as_documented() {
    let test_sim = TestSimulator::seeded(21).await;
    let sim = &test_sim.sim;
    sim.generate(200);
    sim.generic_burst(1, 30);
    let running = TestExporter::start(test_sim.exporter_config()).await;
    let client = common::http_client();
    let metrics_url = running.url("/metrics");
    assert!(wait_for(common::PATIENCE, async || running.total().await == 230.0).await, "all 230 events counted");

    let r = client.get(&metrics_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let samples = parse_exposition(&r.text().await.unwrap());
    assert_eq!(sum(&samples, "emnify_up", &[]), 1.0);
    let acme_generic: u64 = sim.truth().generic.iter().filter(|((_, org), _)| *org == 891_418).map(|(_, n)| n).sum();
    assert!(acme_generic >= 30);
    assert_eq!(
        sum(&samples, "emnify_generic_events_total", &[("organisation", "Acme Logistics GmbH")]),
        acme_generic as f64
    );
    assert_eq!(sum(&samples, "emnify_exporter_build_info", &[("version", emnify_exporter::VERSION)]), 1.0);
    assert!(sum(&samples, "emnify_last_poll_success_timestamp_seconds", &[]) > 1.6e9);
    assert!(sum(&samples, "emnify_api_requests_total", &[("endpoint", "event"), ("code", "200")]) >= 1.0);
    assert_eq!(sum(&samples, "emnify_api_requests_total", &[("endpoint", "authenticate")]), 1.0, "one login");
    assert!(samples.iter().any(|s| s.name == "process_resident_memory_bytes"));
    for reason in emnify_exporter::metrics::POLL_ERROR_REASONS {
        assert!(
            samples.iter().any(|s| s.name == "emnify_poll_errors_total" && s.labels["reason"] == reason),
            "reason {reason} is pre-initialised"
        );
    }

    let landing = client.get(&running.base).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    let html = landing.text().await.unwrap();
    assert!(html.contains("href=\"/metrics\"") && html.contains(emnify_exporter::VERSION), "{html}");
    assert!(html.contains("Last successful poll"), "{html}");
    for (path, status) in [("/-/healthy", 200), ("/-/ready", 200), ("/nope", 404), ("/metrics/extra", 404)] {
        let r = client.get(format!("{}{path}", running.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    let post = client.post(&metrics_url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");

    tokio::time::timeout(Duration::from_secs(10), running.stop()).await.expect("clean shutdown in time");
}

/// Readiness never depends on emnify: with the API unreachable the exporter is ready, and says `emnify_up 0`.
#[tokio::test]
async fn ready_while_emnify_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cfg = emnify_exporter::config::Config::for_tests(&dead_url, "whatever");
    cfg.telemetry_path = "/custom-metrics".into();
    let running = TestExporter::start(cfg).await;
    let client = common::http_client();
    let metrics_url = running.url("/custom-metrics");
    let scrape = async || parse_exposition(&client.get(&metrics_url).send().await.unwrap().text().await.unwrap());
    assert!(
        wait_for(common::PATIENCE, async || {
            sum(&scrape().await, "emnify_poll_errors_total", &[("reason", "connection")]) >= 1.0
        })
        .await,
        "a connection failure is counted"
    );
    let samples = scrape().await;
    assert_eq!(sum(&samples, "emnify_up", &[]), 0.0);
    assert_eq!(client.get(format!("{}/-/ready", running.base)).send().await.unwrap().status(), 200);
    assert_eq!(client.get(running.url("/metrics")).send().await.unwrap().status(), 404);
}

/// `promtool check metrics` (from the `prometheus` package) finds nothing to complain about.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let test_sim = TestSimulator::seeded(21).await;
    test_sim.sim.generate(500);
    test_sim.sim.generic_burst(0, 20);
    test_sim.sim.insert_unreadable(2);
    let running = TestExporter::start(test_sim.exporter_config()).await;
    assert!(wait_for(common::PATIENCE, async || running.total().await == 520.0).await);
    common::assert_promtool_clean(&running.scrape_text().await);
}

/// Request headers beyond `--web.max-header-size` are refused, not buffered; normal requests go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused() {
    use std::io::{Read, Write};
    let mut config = emnify_exporter::config::Config::for_tests("http://127.0.0.1:9", "unused");
    config.poll = None;
    config.push = Some(common::open_receiver());
    config.http.max_header_bytes = 16 * 1024;
    let running = TestExporter::start(config).await;
    let address = running.base.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let filler = "x".repeat(64 * 1024);
        // The server may stop reading once its buffer is full: the write can fail, the answer stands.
        let _ = write!(stream, "GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Filler: {filler}\r\n\r\n");
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert!(common::blocking_get_ok(&running.url("/-/healthy")), "ordinary requests are still served");
}

/// Unfinished requests holding every connection slot (a slowloris attack; here with a header timeout
/// too long to free them) do not lock out probes and scrapes: the oldest connection between requests
/// is closed to make room, and that shows in a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_get_through_while_unfinished_requests_fill_every_slot() {
    use std::io::{Read, Write};
    let mut config = common::push_only_config();
    config.http.max_connections = 8;
    config.http.header_timeout = Duration::from_secs(3600);
    let running = TestExporter::start(config).await;
    let address = running.base.trim_start_matches("http://").to_string();
    let mut slowloris = Vec::new();
    for _ in 0..12 {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nX-Filler: ").unwrap();
        slowloris.push(stream);
    }
    for _ in 0..5 {
        assert!(common::blocking_get_ok(&running.url("/-/healthy")), "a probe is answered");
    }
    let text = tokio::task::spawn_blocking({
        let url = running.url("/metrics");
        move || common::blocking_get(&url).1
    })
    .await
    .unwrap();
    let samples = parse_exposition(&text);
    assert!(sum(&samples, "emnify_http_connections_evicted_total", &[]) >= 5.0, "{text}");
    assert!(sum(&samples, "emnify_http_connections_open", &[]) <= 8.0, "{text}");
    // The oldest unfinished requests were the ones closed.
    let mut first = slowloris.remove(0);
    first.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(first.read_to_end(&mut rest).unwrap_or(0), 0, "closed without an answer");
}
