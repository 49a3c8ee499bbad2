//! Unit tests of `events`: what the counting side keeps of a payload's free text.

use std::borrow::Cow;

use super::super::labels::SeriesLimits;
use super::super::Metrics;
use crate::emnify::model::Event;

fn event(id: u64, source: u32, organisation_name: &str) -> Event<'_> {
    Event {
        id,
        timestamp_millis: Some(1_700_000_000_000),
        alert: false,
        description: Cow::Borrowed(""),
        event_type_id: 3,
        source_id: Some(source),
        severity_id: Some(1),
        organisation_id: Some(42),
        organisation_name: Some(Cow::Borrowed(organisation_name)),
        endpoint_id: None,
        iccid: None,
    }
}

/// An organisation name of megabytes costs what its label keeps, in every label set of it: before, each
/// label set kept the whole last name it saw (8 organisations with 30 MB names held 229 MiB for good).
#[test]
fn only_what_the_label_keeps_of_an_organisation_name_is_stored() {
    let limits = SeriesLimits::default();
    let m = Metrics::with_limits(limits);
    let huge = "é".repeat(1 << 20);
    let other = format!("{huge}x");
    for (i, name) in [&huge, &other, &huge].into_iter().enumerate() {
        for source in 0..3 {
            m.events.record(&event(i as u64 * 10 + u64::from(source), source, name));
        }
    }
    let handles = m.events.handles.lock().unwrap();
    assert_eq!(handles.len(), 3);
    for h in handles.values() {
        let kept = h.last_org_name.as_deref().unwrap();
        assert_eq!(kept.chars().count(), limits.max_label_length);
    }
    drop(handles);
    let info = m.events.org_info.current.lock().unwrap();
    assert!(info.values().all(|name| name.chars().count() == limits.max_label_length));
}
