//! Names that change under the exporter: event types emnify adds while it runs.

use crate::common::{parse_exposition, TestExporter, TestSimulator};

/// A type emnify adds while the exporter runs is named from the live catalogue before its series is
/// created, not `unknown` until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_type_added_mid_run_is_named_at_once() {
    let simulator = TestSimulator::seeded(91).await;
    let sim = &simulator.sim;
    let exporter = TestExporter::start(simulator.exporter_config()).await;
    sim.generate(50);
    exporter.wait_for_total(50).await;

    sim.add_event_type(900, "Brand new event");
    sim.generate_of_type(10, 900);
    exporter.wait_for_total(60).await;
    let samples = parse_exposition(&exporter.scrape_text().await);
    let names: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "emnify_events_total" && s.labels.get("event_type_id").is_some_and(|id| id == "900"))
        .filter_map(|s| s.labels.get("event_type").map(String::as_str))
        .collect();
    assert_eq!(names, ["Brand new event"].into_iter().collect(), "one id, one name, from its first event");
    assert_eq!(sim.stats().event_type_reads, 2, "the catalogue read at start and once for the new id");
}

/// A renamed organisation keeps its series (keyed by `organisation_id`, named as first seen), so no
/// panel splits and no baseline is lost; `emnify_organisation_info` carries the current name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renamed_organisation_keeps_its_series_and_shows_its_new_name_in_the_info_metric() {
    let config = crate::common::push_only_config();
    let exporter = TestExporter::start(config).await;
    let event = |id: u64, name: &str| {
        format!(r#"{{"id": {id}, "event_type": {{"id": 0}}, "organisation": {{"id": 5, "name": "{name}"}}}}"#)
    };
    for (ids, name) in [(1..=3, "Acme Old GmbH"), (4..=6, "Acme New GmbH")] {
        let body = format!("[{}]", ids.map(|id| event(id, name)).collect::<Vec<_>>().join(","));
        let (status, answer) = exporter.push("/webhook/events", &[], body).await;
        assert_eq!(status, 200, "{answer}");
    }
    exporter.wait_for_total(6).await;
    let samples = parse_exposition(&exporter.scrape_text().await);
    let of_org = |name: &str| {
        samples
            .iter()
            .filter(|s| s.name == name && s.labels.get("organisation_id").is_some_and(|id| id == "5"))
            .collect::<Vec<_>>()
    };
    let names: std::collections::BTreeSet<&str> =
        of_org("emnify_events_total").iter().filter_map(|s| s.labels.get("organisation").map(String::as_str)).collect();
    assert_eq!(names, ["Acme Old GmbH"].into_iter().collect(), "the series keep the first name");
    let counted: f64 = of_org("emnify_events_total").iter().map(|s| s.value).sum();
    assert_eq!(counted, 6.0, "one series set, not split by the rename");
    let info = of_org("emnify_organisation_info");
    assert_eq!(info.len(), 1, "one info series per organisation: {info:?}");
    assert_eq!(info[0].labels["organisation"], "Acme New GmbH");
    assert_eq!(info[0].value, 1.0);
    // An event that names no organisation leaves the current name as it is.
    let nameless = r#"{"id": 7, "event_type": {"id": 0}, "organisation": {"id": 5}}"#;
    assert_eq!(exporter.push("/webhook/events", &[], nameless).await.0, 200);
    exporter.wait_for_total(7).await;
    let samples = parse_exposition(&exporter.scrape_text().await);
    let names: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == "emnify_organisation_info" && s.labels["organisation_id"] == "5")
        .map(|s| s.labels["organisation"].as_str())
        .collect();
    assert_eq!(names, ["Acme New GmbH"]);
}

/// Across a restart with a state file, a renamed organisation's series continue under the name they
/// had (their values kept), and the info series shows the new name once its events say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_across_a_restart_continues_the_series() {
    let dir = tempfile::tempdir().unwrap();
    let config = || emnify_exporter::config::Config {
        state_file: Some(dir.path().join("state.json")),
        ..crate::common::push_only_config()
    };
    let event = |id: u64, name: &str| {
        format!(r#"[{{"id": {id}, "event_type": {{"id": 1}}, "organisation": {{"id": 5, "name": "{name}"}}}}]"#)
    };
    let first = TestExporter::start(config()).await;
    assert_eq!(first.push("/webhook/events", &[], event(1, "Before GmbH")).await.0, 200);
    first.stop().await;
    let second = TestExporter::start(config()).await;
    // Restored with its series, before any new event: panels that join the name keep the organisation.
    let restored = parse_exposition(&second.scrape_text().await);
    let info: Vec<_> = restored
        .iter()
        .filter(|s| s.name == "emnify_organisation_info" && s.labels["organisation_id"] == "5")
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0].labels["organisation"], "Before GmbH");
    assert_eq!(second.push("/webhook/events", &[], event(2, "After GmbH")).await.0, 200);
    second.wait_for_total(2).await;
    let samples = parse_exposition(&second.scrape_text().await);
    let series: Vec<_> = samples
        .iter()
        .filter(|s| s.name == "emnify_events_total" && s.labels["organisation_id"] == "5" && s.value > 0.0)
        .collect();
    assert_eq!(series.len(), 1, "{series:?}");
    assert_eq!((series[0].labels["organisation"].as_str(), series[0].value), ("Before GmbH", 2.0));
    let info: Vec<_> =
        samples.iter().filter(|s| s.name == "emnify_organisation_info" && s.labels["organisation_id"] == "5").collect();
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].labels["organisation"], "After GmbH");
}
