//! Series are bounded whatever the payloads say: a push naming 200,000 organisations (a reseller's
//! token, or anyone who can reach the webhook) stays under `--metrics.max-organisations`, counting
//! every event, and names longer than `--metrics.max-label-length` are cut.

use crate::common::{parse_exposition, sum, TestExporter};
use emnify_exporter::metrics::SeriesLimits;

const ORGANISATIONS: u64 = 200_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_of_200000_organisations_stays_under_the_cap() {
    let mut config = crate::common::push_only_config();
    config.tally.max_remembered_ids = 1_000_000;
    let limits = SeriesLimits::default();
    config.series = limits;
    let exporter = TestExporter::start(config).await;

    let long_name = "N".repeat(10_000);
    for batch in 0..ORGANISATIONS / 10_000 {
        let events: Vec<String> = (0..10_000)
            .map(|i| {
                let org = batch * 10_000 + i + 1;
                let name = if org == 1 { long_name.clone() } else { format!("Reseller customer {org}") };
                format!(r#"{{"id":{org},"event_type":{{"id":3}},"organisation":{{"id":{org},"name":"{name}"}}}}"#)
            })
            .collect();
        let (status, answer) = exporter.push("/webhook/events", &[], format!("[{}]", events.join(","))).await;
        assert_eq!(status, 200, "{answer}");
    }
    exporter.wait_for_total(ORGANISATIONS).await;
    let text = exporter.scrape_text().await;
    let samples = parse_exposition(&text);
    let cap = limits.max_organisations as f64;
    assert_eq!(sum(&samples, "emnify_events_total", &[]), ORGANISATIONS as f64, "every event counted");
    assert_eq!(sum(&samples, "emnify_organisations", &[]), cap);
    assert_eq!(
        sum(&samples, "emnify_events_over_organisation_limit_total", &[]),
        ORGANISATIONS as f64 - cap,
        "the rest went to the overflow"
    );
    assert_eq!(sum(&samples, "emnify_events_total", &[("organisation_id", "overflow")]), ORGANISATIONS as f64 - cap);
    let landing = crate::common::http_client().get(&exporter.base).send().await.unwrap().text().await.unwrap();
    let overflow = format!("{} organisations with series of their own, of at most {}; <strong class=\"bad\">{} events</strong> counted under organisation_id=\"overflow\"", limits.max_organisations, limits.max_organisations, ORGANISATIONS - limits.max_organisations as u64);
    assert!(landing.contains(&overflow), "the landing page shows the overflow: {landing}");
    let organisation_ids: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "emnify_events_total")
        .filter_map(|s| s.labels.get("organisation_id").map(String::as_str))
        .collect();
    assert_eq!(organisation_ids.len(), limits.max_organisations + 1, "the admitted ones and the overflow");
    let series = samples.iter().filter(|s| s.name.starts_with("emnify_")).count();
    // Per organisation: its own series, its zeroed Generic ones (events, alerts, three causes) and its info.
    assert!(series <= (limits.max_organisations + 1) * 7 + 100, "{series} series");
    let longest = samples.iter().filter_map(|s| s.labels.get("organisation")).map(|n| n.chars().count()).max();
    assert_eq!(longest, Some(limits.max_label_length), "a 10,000-character name is cut");
    println!(
        "{ORGANISATIONS} organisations pushed: {} with series of their own, {series} emnify_* series, \
         /metrics {} bytes",
        limits.max_organisations,
        text.len()
    );
}

/// Event types are bounded like organisations: 5,000 events, each of its own event-type id that no
/// catalogue names, leave `--metrics.max-unknown-event-types` of them with series of their own and the
/// rest under `event_type_id="overflow"`, every event counted; a catalogue type pushed after them still
/// has its own series (a pusher cannot crowd a real type out). The landing page says the cap was reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_event_types_beyond_the_cap_share_the_overflow() {
    const TYPES: u64 = 5_000;
    let mut config = crate::common::push_only_config();
    let limits = SeriesLimits { max_unknown_event_types: 20, ..SeriesLimits::default() };
    config.series = limits;
    let exporter = TestExporter::start(config).await;
    let one = |id: u64, event_type: u64| format!(r#"{{"id":{id},"event_type":{{"id":{event_type}}}}}"#);
    let bogus: Vec<String> = (0..TYPES).map(|i| one(i + 1, 100_000 + i)).collect();
    let (status, answer) = exporter.push("/webhook/events", &[], format!("[{}]", bogus.join(","))).await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = exporter.push("/webhook/events", &[], format!("[{}]", one(TYPES + 1, 3))).await;
    assert_eq!(status, 200, "{answer}");
    exporter.wait_for_total(TYPES + 1).await;
    let samples = parse_exposition(&exporter.scrape_text().await);
    let type_ids: std::collections::BTreeSet<&str> = samples
        .iter()
        .filter(|s| s.name == "emnify_events_total")
        .filter_map(|s| s.labels.get("event_type_id").map(String::as_str))
        .collect();
    let unnamed = type_ids.iter().filter(|id| id.parse::<u64>().is_ok_and(|id| id >= 100_000)).count();
    assert_eq!(unnamed, 20, "{type_ids:?}");
    assert!(type_ids.contains("overflow") && type_ids.contains("3"), "{type_ids:?}");
    let cap = limits.max_unknown_event_types as f64;
    assert_eq!(sum(&samples, "emnify_events_total", &[("event_type_id", "overflow")]), TYPES as f64 - cap);
    assert_eq!(sum(&samples, "emnify_events_total", &[("event_type", "overflow")]), TYPES as f64 - cap);
    assert_eq!(sum(&samples, "emnify_events_over_event_type_limit_total", &[]), TYPES as f64 - cap);
    assert_eq!(sum(&samples, "emnify_unknown_event_types", &[]), cap);
    assert_eq!(sum(&samples, "emnify_unknown_event_types_limit", &[]), cap);
    assert_eq!(sum(&samples, "emnify_events_total", &[("event_type_id", "3")]), 1.0);
    let series = samples.iter().filter(|s| s.name.starts_with("emnify_")).count();
    assert!(series < 300, "{series} series for {TYPES} event types");
    // The operator sees the cap reached on the landing page too, as for organisations.
    let landing = crate::common::http_client().get(&exporter.base).send().await.unwrap().text().await.unwrap();
    let overflow = format!(
        "20 event types without a name with series of their own, of at most 20; <strong class=\"bad\">{} \
         events</strong> counted under event_type_id=\"overflow\"",
        TYPES - 20
    );
    assert!(landing.contains(&overflow), "the landing page shows the event-type overflow: {landing}");
}
