//! End to end with a real Prometheus: it scrapes the exporter (polling the simulator), evaluates the
//! shipped rules (with windows shortened for a test run), and answers every shipped query.

use crate::common::{self, TestSimulator};

use std::time::{Duration, Instant};

use crate::common::artifacts::{self, dashboard_queries, grafana_alert_queries, rules_in, substitute};
use crate::common::prometheus::start_prometheus;
use crate::common::{wait_for, TestExporter};

/// The shipped rules with windows short enough for a test run; the rule logic is unchanged.
fn test_variant(shipped: &str) -> String {
    // Windows shrunk so a minute of real time holds several of them; each replacement must still apply.
    let replacements = [
        ("[2m]", "[10s]"),
        ("[5m]", "[20s]"),
        ("[9m]", "[25s]"),
        ("[30m] offset 23h45m", "[10s] offset 15s"),
        ("[30m] offset 6d23h45m", "[10s] offset 25s"),
        ("[10m]", "[30s]"),
        ("[1d]", "[2m]"),
        ("offset 1h", "offset 15s"),
    ];
    let mut text = shipped.to_string();
    for (from, to) in replacements {
        assert!(text.contains(from), "the shipped rules no longer contain {from}; update test_variant");
        text = text.replace(from, to);
    }
    for d in ["15m", "10m", "5m", "1m"] {
        text = text.replace(&format!("for: {d}"), "for: 5s");
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_records_alerts_and_answers_every_shipped_query() {
    let test_sim = TestSimulator::start(common::sim_config(2024)).await;
    let sim = &test_sim.sim;
    sim.generate(3000);
    // The first one also watches a Data Streamer stream of its own, for the watchdog's series.
    let stream = emnify_exporter::simulator::data_stream::StreamStatus::Running;
    sim.add_data_stream("exporter", 2, "https://x.example.com/webhook/events", stream);
    let watchdog = Some(crate::watchdog::watchdog_for(&test_sim, false));
    let exporter =
        TestExporter::start(emnify_exporter::config::Config { watchdog, ..test_sim.exporter_config() }).await;
    // A second replica polling the same workspace, as for high availability: shipped queries must not double count.
    let replica = TestExporter::start(test_sim.exporter_config()).await;
    let target =
        format!("{},{}", exporter.base.trim_start_matches("http://"), replica.base.trim_start_matches("http://"));

    // (a) promtool finds nothing to complain about in what Prometheus will scrape.
    let metrics_url = format!("{}/metrics", exporter.base);
    assert!(wait_for(Duration::from_secs(20), async || common::blocking_get(&metrics_url).1.contains("Generic")).await);
    common::assert_promtool_clean(&common::blocking_get(&metrics_url).1);

    let shipped = artifacts::shipped_rules_text();
    let variant = test_variant(&shipped);
    let prometheus = start_prometheus(&target, &variant).await;

    // (a) The targets are up.
    assert!(
        wait_for(Duration::from_secs(30), async || {
            prometheus.query(r#"up{job="emnify-exporter"} == 1"#).await.len() == 2
        })
        .await,
        "the exporter targets never came up"
    );
    // The organisation's Generic series exists (zero-initialised) before the burst, so increase() sees it.
    assert!(
        wait_for(Duration::from_secs(30), async || {
            !prometheus.query(r#"emnify_events_total{event_type_id="0", organisation_id="719710"}"#).await.is_empty()
        })
        .await
    );
    // Let the baseline window fill with quiet history first, so both alert branches are evaluated.
    assert!(
        wait_for(Duration::from_secs(60), async || {
            !prometheus.query("organisation:emnify_generic_events:baseline_increase10m").await.is_empty()
        })
        .await,
        "the baseline recording rule never produced a series"
    );

    // (d) A Generic burst makes the spike alert fire.
    let burst_started = Instant::now();
    sim.generic_burst(0, 150);
    sim.generate(200);
    let mut pending_after = None;
    let fired = wait_for(Duration::from_secs(90), async || {
        let alerts = prometheus.api("/api/v1/alerts", &[]).await;
        let spike = alerts["data"]["alerts"].as_array().cloned().unwrap_or_default().into_iter().find(|a| {
            a["labels"]["alertname"] == "EmnifyGenericDisconnectSpike" && a["labels"]["organisation_id"] == "719710"
        });
        if spike.is_some() && pending_after.is_none() {
            pending_after = Some(burst_started.elapsed());
        }
        spike.is_some_and(|a| a["state"] == "firing")
    })
    .await;
    assert!(fired, "EmnifyGenericDisconnectSpike never fired for the burst");
    let firing_after = burst_started.elapsed();
    println!(
        "spike alert pending after {:.1}s, firing after {:.1}s (test windows: 30s increase, for: 5s, 1s scrape)",
        pending_after.unwrap_or_default().as_secs_f64(),
        firing_after.as_secs_f64()
    );

    // The burst's devices are in Prometheus as exemplars of the organisation's Generic series: events
    // the simulator produced, each with the device it concerns.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
    let query = r#"emnify_generic_events_total{organisation_id="719710"}"#;
    let mut stored = Vec::new();
    let found = wait_for(Duration::from_secs(30), async || {
        let answer =
            prometheus.api("/api/v1/query_exemplars", &[("query", query), ("start", &start), ("end", &end)]).await;
        assert_eq!(answer["status"], "success", "{answer}");
        stored = answer["data"].as_array().cloned().unwrap_or_default();
        !stored.is_empty()
    })
    .await;
    assert!(found, "Prometheus stored no exemplar of the Generic series");
    let mut checked = 0;
    for series in &stored {
        for exemplar in series["exemplars"].as_array().unwrap() {
            let label = |name: &str| exemplar["labels"][name].as_str().and_then(|v| v.parse::<u64>().ok());
            let (event, endpoint) = (label("event_id").expect("event_id"), label("endpoint_id").expect("endpoint_id"));
            assert!(sim.endpoint_event_ids(endpoint).contains(&event), "{exemplar}: not that device's event");
            assert_eq!(exemplar["value"], "1");
            checked += 1;
        }
    }
    println!("{checked} exemplars of the Generic series read back from Prometheus, each a simulated device's event");

    // Only the spike fires: a healthy exporter raises none of the exporter alerts.
    let alerts = prometheus.api("/api/v1/alerts", &[]).await;
    for alert in alerts["data"]["alerts"].as_array().unwrap() {
        assert_eq!(alert["labels"]["alertname"], "EmnifyGenericDisconnectSpike", "unexpected alert {alert}");
    }
    // Only the burst's organisation.
    assert!(alerts["data"]["alerts"].as_array().unwrap().iter().all(|a| a["labels"]["organisation_id"] == "719710"));

    // Every rule loaded and evaluates without error.
    let groups = prometheus.api("/api/v1/rules", &[]).await;
    let mut evaluated = 0;
    for group in groups["data"]["groups"].as_array().unwrap() {
        for rule in group["rules"].as_array().unwrap() {
            assert_eq!(rule["health"], "ok", "rule {} fails: {}", rule["name"], rule["lastError"]);
            evaluated += 1;
        }
    }
    let shipped_rules = rules_in(&shipped);
    assert_eq!(evaluated, shipped_rules.len(), "every shipped rule is loaded");

    // (c) Every recording rule produces series.
    // (The seasonal ones look back the furthest: they wait for enough history.)
    for rule in shipped_rules.iter().filter(|r| !r.alert) {
        let produced = wait_for(Duration::from_secs(30), async || !prometheus.query(&rule.name).await.is_empty()).await;
        assert!(produced, "recording rule {} produced no series", rule.name);
    }
    // (b) Every rule expression, as shipped, is accepted by Prometheus.
    for rule in &shipped_rules {
        prometheus.query(&rule.expr).await;
    }

    // Two replicas, one count: the dashboards' HA form equals a single replica's count (the rules' HA
    // form is covered by the promtool unit tests).
    let produced = sim.truth().total() as f64;
    let value = |r: &[serde_json::Value]| r.first().and_then(|v| v["value"][1].as_str()?.parse::<f64>().ok());
    assert!(
        wait_for(Duration::from_secs(30), async || {
            let each = prometheus.query(r#"sum by (instance) (emnify_events_total{job="emnify-exporter"})"#).await;
            each.len() == 2 && each.iter().all(|s| s["value"][1].as_str() == Some(&produced.to_string()))
        })
        .await,
        "both replicas counted every event"
    );
    let deduplicated =
        prometheus.query(r#"sum(max without (instance, pod) (emnify_events_total{job="emnify-exporter"}))"#).await;
    assert_eq!(value(&deduplicated), Some(produced), "the dashboards' HA form counts once");
    let naive = prometheus.query(r#"sum(emnify_events_total{job="emnify-exporter"})"#).await;
    assert_eq!(value(&naive), Some(2.0 * produced), "a plain sum would count twice");

    // (b) Every dashboard query is accepted and returns data.
    let queries = dashboard_queries();
    for q in &queries {
        let expr = substitute(&q.expr, "10s", "2m");
        let result = prometheus.query(&expr).await;
        assert!(!result.is_empty(), "{} / {}: no data for `{expr}`", q.dashboard, q.panel);
    }
    // Grafana-managed alert queries are accepted too.
    let grafana = grafana_alert_queries();
    for (_uid, expr) in &grafana {
        prometheus.query(expr).await;
    }
    println!(
        "checked {} dashboard queries, {} rules ({} recording), {} Grafana alert queries against Prometheus",
        queries.len(),
        shipped_rules.len(),
        shipped_rules.iter().filter(|r| !r.alert).count(),
        grafana.len()
    );
}
