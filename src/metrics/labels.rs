//! Labelling policy: the label values derived from ids, and which series exist at zero before their first count.
//!
//! Label values are canonical names looked up by id, never the free-text descriptions (whose
//! spelling varies). Series are created at zero when a later `increase()` or alert must see their
//! first increment: a series that appears with its first count shows no increase at all.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError, RwLock};

use prometheus::IntCounterVec;

use crate::catalogue::{self, severity_name, source_name, GENERIC_CAUSES, GENERIC_EVENT_TYPE};

/// The label value of an id without a known name.
const UNKNOWN: &str = "unknown";

/// Why a poll failed; each is a value of `emnify_poll_errors_total{reason}`, all of them at zero from the start.
pub const POLL_ERROR_REASONS: [&str; 7] =
    ["auth", "rate_limited", "http_4xx", "http_5xx", "timeout", "connection", "decode"];

/// Why a push is refused; each is a value of `emnify_push_rejected_total{reason}`, all of them at zero from the start.
pub const PUSH_REJECT_REASONS: [&str; 6] =
    ["unauthorized", "too_large", "malformed", "timeout", "overloaded", "method"];

/// Why an event is deliberately not counted; each is a value of `emnify_events_skipped_total{reason}`,
/// all of them at zero from the start.
pub(super) const SKIP_REASONS: [&str; 2] = ["before_start", "beyond_dedup_horizon"];

/// Why a record cannot be read; each is a value of `emnify_events_unreadable_total{reason}`, all of them
/// at zero from the start.
pub(super) const UNREADABLE_REASONS: [&str; 3] = crate::emnify::model::UNREADABLE_REASONS;

/// The causes a new organisation's `emnify_generic_events_total` series start with at zero: all of them.
pub(super) const ZEROED_GENERIC_CAUSES: [&str; 3] = GENERIC_CAUSES;

/// Creates the series of a one-label family for each of `values`, at zero.
pub(super) fn zero_series(vec: &IntCounterVec, values: &[&str]) {
    for value in values {
        vec.with_label_values(&[value]);
    }
}

/// The `organisation` and `organisation_id` label values of one organisation.
pub(super) struct Organisation {
    pub(super) name: String,
    pub(super) id: String,
}

/// The label values of one `emnify_events_total` series, and of its `emnify_alert_events_total` series.
pub(super) struct EventLabels {
    type_name: String,
    type_id: String,
    source: &'static str,
    severity: &'static str,
    pub(super) organisation: Organisation,
}

impl EventLabels {
    /// In the order of `emnify_events_total`'s label names.
    pub(super) fn events(&self) -> [&str; 6] {
        let org = &self.organisation;
        [&self.type_name, &self.type_id, self.source, self.severity, &org.name, &org.id]
    }

    /// In the order of `emnify_alert_events_total`'s label names.
    pub(super) fn alerts(&self) -> [&str; 4] {
        [&self.type_name, &self.type_id, &self.organisation.name, &self.organisation.id]
    }
}

/// Names for the ids events carry.
pub(super) struct LabelNames {
    /// Event-type names: the built-in catalogue, updated from the API.
    type_names: RwLock<HashMap<u32, String>>,
    /// The first name seen for each organisation id, so one id never gets two `organisation` values
    /// (a renamed organisation would otherwise split its counts over two series).
    org_names: Mutex<HashMap<Option<u64>, String>>,
}

impl LabelNames {
    /// Event types named as in the built-in catalogue; no organisation names yet.
    pub(super) fn from_catalogue() -> Self {
        let type_names = catalogue::EVENT_TYPES.iter().map(|(id, name, _)| (*id, (*name).to_string())).collect();
        LabelNames { type_names: RwLock::new(type_names), org_names: Mutex::new(HashMap::new()) }
    }

    /// Replaces event-type names (from `GET /api/v1/event/type`); ids not given keep their names.
    pub(super) fn set_event_type_names(&self, names: impl IntoIterator<Item = (u32, String)>) {
        let mut map = self.type_names.write().unwrap_or_else(PoisonError::into_inner);
        for (id, name) in names {
            map.insert(id, name);
        }
    }

    /// The label value for an event type id.
    pub(super) fn event_type_name(&self, id: u32) -> String {
        let map = self.type_names.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&id).cloned().unwrap_or_else(|| UNKNOWN.to_string())
    }

    /// The labels of an organisation; the first name given for its id is kept for good.
    pub(super) fn organisation(&self, id: Option<u64>, name: Option<&str>) -> Organisation {
        let mut names = self.org_names.lock().unwrap_or_else(PoisonError::into_inner);
        let name = names.entry(id).or_insert_with(|| name.unwrap_or(UNKNOWN).to_string()).clone();
        Organisation { name, id: id.map_or_else(|| UNKNOWN.to_string(), |id| id.to_string()) }
    }

    /// Keeps the organisation name of a restored series, so the organisation's series continue after a
    /// restart rather than start anew under a name it has since been given.
    pub(super) fn keep_organisation_name(&self, labels: &HashMap<&str, &str>) {
        if let (Some(name), Some(id)) = (labels.get("organisation"), labels.get("organisation_id")) {
            let id = id.parse().ok();
            let mut names = self.org_names.lock().unwrap_or_else(PoisonError::into_inner);
            names.entry(id).or_insert_with(|| name.to_string());
        }
    }

    /// The labels of an event of `event_type` from `source` with `severity` in `organisation`.
    pub(super) fn event(
        &self,
        event_type: u32,
        source: Option<u32>,
        severity: Option<u32>,
        organisation: Organisation,
    ) -> EventLabels {
        EventLabels {
            type_name: self.event_type_name(event_type),
            type_id: event_type.to_string(),
            source: source_name(source),
            severity: severity_name(severity),
            organisation,
        }
    }

    /// The Generic event series a new organisation starts with at zero, so an alert on `increase()`
    /// sees its first Generic event (data sessions disconnected: throttling, quota updates). Generic
    /// events come from Policy Control with severity Warn (emnify's catalogue and examples).
    pub(super) fn zeroed_generic_series(&self, organisation: Organisation) -> EventLabels {
        self.event(GENERIC_EVENT_TYPE, Some(1), Some(1), organisation)
    }
}
