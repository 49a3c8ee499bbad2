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
