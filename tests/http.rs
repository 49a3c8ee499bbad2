//! The exporter's HTTP surface, served by the real app on 127.0.0.1:0 against the simulator.

mod common;

use std::time::Duration;

use common::{exporter_config as config, parse_exposition, start_exporter as start, sum, wait_for};
use emnify_exporter::simulator::Simulator;
use tokio_util::sync::CancellationToken;

fn http() -> reqwest::Client {
    emnify_exporter::install_crypto_provider();
    reqwest::Client::new()
}

async fn scrape(client: &reqwest::Client, url: &str) -> Vec<common::Sample> {
    let text = client.get(url).send().await.unwrap().text().await.unwrap();
    parse_exposition(&text)
}

async fn simulator() -> (Simulator, String, CancellationToken) {
    let shutdown = CancellationToken::new();
    let sim = Simulator::new(common::sim_config(21));
    let addr = sim.start(shutdown.clone()).await.unwrap();
    (sim, format!("http://{addr}"), shutdown)
}

#[tokio::test]
async fn endpoints_answer_as_documented() {
    let (sim, url, sim_stop) = simulator().await;
    sim.generate(200);
    sim.generic_burst(1, 30);
    let running = start(config(&url, &sim.application_token())).await;
    let client = http();
    let metrics_url = format!("{}/metrics", running.base);
    assert!(
        wait_for(Duration::from_secs(20), async || {
            sum(&scrape(&client, &metrics_url).await, "emnify_events_total", &[]) == 230.0
        })
        .await,
        "all 230 events counted"
    );

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
    assert!(html.contains("last successful poll"), "{html}");
    for (path, status) in [("/-/healthy", 200), ("/-/ready", 200), ("/nope", 404), ("/metrics/extra", 404)] {
        let r = client.get(format!("{}{path}", running.base)).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    let post = client.post(&metrics_url).send().await.unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");

    running.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), running.task).await.expect("clean shutdown in time").unwrap();
    sim_stop.cancel();
}

/// Readiness never depends on emnify: with the API unreachable the exporter is ready, and says `emnify_up 0`.
#[tokio::test]
async fn ready_while_emnify_is_unreachable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cfg = config(&dead_url, "whatever");
    cfg.telemetry_path = "/custom-metrics".into();
    let running = start(cfg).await;
    let client = http();
    let metrics_url = format!("{}/custom-metrics", running.base);
    assert!(
        wait_for(Duration::from_secs(20), async || {
            sum(&scrape(&client, &metrics_url).await, "emnify_poll_errors_total", &[("reason", "connection")]) >= 1.0
        })
        .await,
        "a connection failure is counted"
    );
    let samples = scrape(&client, &metrics_url).await;
    assert_eq!(sum(&samples, "emnify_up", &[]), 0.0);
    assert_eq!(client.get(format!("{}/-/ready", running.base)).send().await.unwrap().status(), 200);
    assert_eq!(client.get(format!("{}/metrics", running.base)).send().await.unwrap().status(), 404);
    running.shutdown.cancel();
}

/// `promtool check metrics` (from the `prometheus` package) finds nothing to complain about.
#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let (sim, url, sim_stop) = simulator().await;
    sim.generate(500);
    sim.generic_burst(0, 20);
    sim.insert_unreadable(2);
    let running = start(config(&url, &sim.application_token())).await;
    let client = http();
    let metrics_url = format!("{}/metrics", running.base);
    assert!(
        wait_for(Duration::from_secs(20), async || {
            sum(&scrape(&client, &metrics_url).await, "emnify_events_total", &[]) == 520.0
        })
        .await
    );
    let text = client.get(&metrics_url).send().await.unwrap().text().await.unwrap();
    common::assert_promtool_clean(&text);
    running.shutdown.cancel();
    sim_stop.cancel();
}
