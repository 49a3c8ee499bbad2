//! The watchdog's plan driven through simulated time: which streams are ours, state changes, and when
//! a stream in Error is restarted (only with the flag, only ours, only in Error, with backoff).

use std::time::Duration;

use super::plan::*;

const MINUTE: Duration = Duration::from_secs(60);

fn settings(restart: bool) -> PlanSettings {
    PlanSettings {
        webhook_path: "/webhook/events".into(),
        stream_ids: Vec::new(),
        restart,
        restart_interval: 15 * MINUTE,
        max_restart_interval: 60 * MINUTE,
    }
}

fn stream(id: u64, kind: StreamKind, url: &str, state: StreamState) -> StreamView {
    StreamView { id, name: format!("stream {id}"), kind, url: Some(url.into()), state }
}

const OURS: &str = "https://exporter.example.com:9853/webhook/events";

/// Our event stream (1), another receiver's event stream (2) and a usage stream to our path (3), each
/// in `state`.
fn list(ours: StreamState, others: StreamState) -> Vec<StreamView> {
    vec![
        stream(1, StreamKind::Events, OURS, ours),
        stream(2, StreamKind::Events, "https://other.example.com/hook", others),
        stream(3, StreamKind::Usage, OURS, others),
    ]
}

#[test]
fn ours_are_event_streams_to_the_webhook_path_or_the_ids_given() {
    let plan = Plan::new(settings(false));
    let with = |url: &str, kind| plan.is_ours(&stream(9, kind, url, StreamState::Running));
    assert!(with(OURS, StreamKind::Events));
    assert!(with("https://exporter.example.com/webhook/events/", StreamKind::Events), "a trailing slash");
    assert!(with("https://proxy.example.com/emnify/webhook/events?tenant=1", StreamKind::Events), "behind a prefix");
    assert!(!with("https://exporter.example.com/webhook/events2", StreamKind::Events));
    assert!(!with("https://exporter.example.com/other?next=/webhook/events", StreamKind::Events), "in the query");
    assert!(!with("https://webhook/events", StreamKind::Events), "a host is no path");
    assert!(!with(OURS, StreamKind::Usage), "usage streams carry no events");
    let no_url = StreamView { url: None, ..stream(9, StreamKind::Events, OURS, StreamState::Running) };
    assert!(!plan.is_ours(&no_url));

    let by_id = Plan::new(PlanSettings { stream_ids: vec![2, 3], ..settings(false) });
    let ours: Vec<bool> = list(StreamState::Running, StreamState::Running).iter().map(|s| by_id.is_ours(s)).collect();
    assert_eq!(ours, [false, true, true], "given ids decide alone");
}

#[test]
fn states_are_tracked_with_the_time_they_were_first_seen() {
    let mut plan = Plan::new(settings(false));
    let first = plan.observe(MINUTE, list(StreamState::Running, StreamState::Paused));
    assert_eq!(first, Observation { changed: vec![1, 2, 3], gone: vec![], restart: vec![] });
    let same = plan.observe(2 * MINUTE, list(StreamState::Running, StreamState::Paused));
    assert_eq!(same, Observation::default());
    let failed = plan.observe(3 * MINUTE, list(StreamState::Error, StreamState::Paused));
    assert_eq!(failed.changed, [1]);
    assert_eq!(failed.restart, Vec::<u64>::new(), "no restart without the flag");
    let (view, ours, since) = plan.stream(1).unwrap();
    assert_eq!((view.state, ours, since), (StreamState::Error, true, 3 * MINUTE));
    assert_eq!(plan.stream(2).unwrap().2, MINUTE, "unchanged since first seen");
    let gone = plan.observe(4 * MINUTE, vec![stream(1, StreamKind::Events, OURS, StreamState::Error)]);
    assert_eq!(gone, Observation { changed: vec![], gone: vec![2, 3], restart: vec![] });
    assert_eq!(plan.streams().count(), 1);
}

#[test]
fn only_ours_and_only_in_error_are_restarted_and_only_with_the_flag() {
    for state in [StreamState::Running, StreamState::Paused, StreamState::Pending, StreamState::Unknown] {
        let mut plan = Plan::new(settings(true));
        let observation = plan.observe(MINUTE, list(state, StreamState::Error));
        assert!(observation.restart.is_empty(), "{state:?}: others in Error are never restarted");
        assert_eq!(plan.next_restart(2), None);
    }
    let mut plan = Plan::new(settings(true));
    assert_eq!(plan.observe(MINUTE, list(StreamState::Error, StreamState::Error)).restart, [1]);
}

#[test]
fn restarts_wait_the_interval_and_back_off_while_the_stream_keeps_failing() {
    let mut plan = Plan::new(settings(true));
    let mut restarts = Vec::new();
    // In Error for five hours, read every minute: restarted at once, then after 15, 30, 60, 60... min.
    for minute in 0..=300u32 {
        let now = MINUTE * minute;
        if !plan.observe(now, list(StreamState::Error, StreamState::Running)).restart.is_empty() {
            restarts.push(minute);
        }
    }
    assert_eq!(restarts, [0, 15, 45, 105, 165, 225, 285]);
    assert_eq!(plan.next_restart(1), Some(345 * MINUTE));

    // Once it runs again, the next failure starts over with the short interval after the last restart.
    plan.observe(290 * MINUTE, list(StreamState::Running, StreamState::Running));
    assert_eq!(plan.next_restart(1), None, "a running stream is not restarted");
    let again = plan.observe(295 * MINUTE, list(StreamState::Error, StreamState::Running));
    assert_eq!(again.restart, Vec::<u64>::new(), "still within the interval of the last restart");
    assert_eq!(plan.next_restart(1), Some(300 * MINUTE), "the interval after the last restart, no backoff");
    assert_eq!(plan.observe(300 * MINUTE, list(StreamState::Error, StreamState::Running)).restart, [1]);
    assert_eq!(plan.next_restart(1), Some(315 * MINUTE));
}

#[test]
fn a_restart_through_pending_back_to_error_keeps_backing_off() {
    let mut plan = Plan::new(settings(true));
    assert_eq!(plan.observe(Duration::ZERO, list(StreamState::Error, StreamState::Running)).restart, [1]);
    plan.observe(MINUTE, list(StreamState::Pending, StreamState::Running));
    plan.observe(2 * MINUTE, list(StreamState::Error, StreamState::Running));
    assert_eq!(plan.next_restart(1), Some(15 * MINUTE), "Pending is no recovery");
    assert_eq!(plan.observe(15 * MINUTE, list(StreamState::Error, StreamState::Running)).restart, [1]);
    assert_eq!(plan.next_restart(1), Some(45 * MINUTE));
}

#[test]
fn the_list_is_read_leniently() {
    let body = br#"[
        {"id": 7, "name": "exporter", "data_stream_type": {"id": 2, "description": "Event Data"},
         "status": {"id": 3, "description": "Error"},
         "destination": {"connection_type": {"id": 3}, "credentials": {"url": "https://x/webhook/events"}}},
        {"id": "8", "name": null, "data_stream_type": 1, "status": 2},
        {"id": 9, "data_stream_type": {"description": "Event Data"}, "status": {"description": "pending"}},
        {"id": 10, "status": {"id": 42, "description": "Throttled"}},
        {"name": "no id"}
    ]"#;
    let streams = decode_list(body).unwrap();
    let summary: Vec<(u64, StreamKind, StreamState)> = streams.iter().map(|s| (s.id, s.kind, s.state)).collect();
    assert_eq!(
        summary,
        [
            (7, StreamKind::Events, StreamState::Error),
            (8, StreamKind::Usage, StreamState::Paused),
            (9, StreamKind::Events, StreamState::Pending),
            (10, StreamKind::Other, StreamState::Unknown),
        ]
    );
    assert_eq!(streams[0].url.as_deref(), Some("https://x/webhook/events"));
    assert_eq!(streams[1].name, "");
    assert!(decode_list(b"{\"error\": 1}").is_err());
    assert!(decode_list(b"<html>").is_err());
}

#[test]
fn state_labels_are_the_metrics_state_set() {
    let labels: Vec<&str> = StreamState::ALL.iter().map(|s| s.label()).collect();
    assert_eq!(labels, crate::metrics::DATA_STREAM_STATES);
}
