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
pub(super) const UNKNOWN: &str = "unknown";

/// The `organisation` and `organisation_id` of the series that organisations beyond the limit share, and
/// the `event_type` and `event_type_id` of those that unnamed event types beyond theirs share.
pub const OVERFLOW: &str = "overflow";

/// Bounds on the series a client (a reseller's token, anyone who can push) can make the exporter create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesLimits {
    /// Organisations with series of their own; later ones are counted under [`OVERFLOW`].
    pub max_organisations: usize,
    /// Longest label value taken from a payload (organisation and event-type names), in characters.
    pub max_label_length: usize,
    /// Event-type ids that no catalogue names (the built-in one, emnify's, the state file's) with series
    /// of their own; later ones are counted under [`OVERFLOW`]. Named ones always have theirs: a pusher
    /// cannot crowd a real event type out.
    pub max_unknown_event_types: usize,
}

impl Default for SeriesLimits {
    fn default() -> Self {
        SeriesLimits { max_organisations: 2000, max_label_length: 128, max_unknown_event_types: 100 }
    }
}

/// Which organisation an event's series belong to, once the limit is applied.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(super) enum OrgKey {
    Id(u64),
    /// The event named no organisation.
    Unknown,
    /// Beyond [`SeriesLimits::max_organisations`]: one series set for all of them.
    Overflow,
}

impl OrgKey {
    /// The key an organisation id has if it was admitted (the fast path looks it up as that).
    pub(super) fn of(id: Option<u64>) -> OrgKey {
        id.map_or(OrgKey::Unknown, OrgKey::Id)
    }
}

/// `text` cut to at most `max` characters (on a character boundary).
fn bounded(text: &str, max: usize) -> String {
    bounded_str(text, max).to_string()
}

/// The first `max` characters of `text` (all of it if it is shorter), without copying.
fn bounded_str(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// Why a poll failed; each is a value of `emnify_poll_errors_total{reason}`, all of them at zero from the start.
pub const POLL_ERROR_REASONS: [&str; 7] =
    ["auth", "rate_limited", "http_4xx", "http_5xx", "timeout", "connection", "decode"];

/// Why a push is refused; each is a value of `emnify_push_rejected_total{reason}`, all of them at zero from the start.
pub const PUSH_REJECT_REASONS: [&str; 8] = [
    "unauthorized",
    "too_large",
    "too_many_records",
    "unsupported_encoding",
    "malformed",
    "timeout",
    "overloaded",
    "method",
];

/// Why an event is deliberately not counted; each is a value of `emnify_events_skipped_total{reason}`,
/// all of them at zero from the start.
pub(super) const SKIP_REASONS: [&str; 3] = ["before_start", "beyond_dedup_horizon", "polled_already"];

/// Why a record cannot be read; each is a value of `emnify_events_unreadable_total{reason}`, all of them
/// at zero from the start.
pub(super) const UNREADABLE_REASONS: [&str; 5] = crate::emnify::model::UNREADABLE_REASONS;

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
    /// (a renamed organisation would otherwise split its counts over two series). Its ids are the
    /// organisations admitted under the limit.
    org_names: Mutex<OrgNames>,
    /// Event-type ids without a name that have series of their own (see [`LabelNames::admit_type`]).
    unknown_types: Mutex<std::collections::HashSet<u32>>,
    limits: SeriesLimits,
}

/// Organisation names by key, and how many of them are organisations (not `unknown`).
#[derive(Default)]
struct OrgNames {
    names: HashMap<OrgKey, String>,
    admitted: usize,
}

impl OrgNames {
    fn insert(&mut self, key: OrgKey, name: String) {
        if self.names.insert(key, name).is_none() && matches!(key, OrgKey::Id(_)) {
            self.admitted += 1;
        }
    }
}

impl LabelNames {
    /// Event types named as in the built-in catalogue; no organisation names yet.
    pub(super) fn from_catalogue(limits: SeriesLimits) -> Self {
        let type_names = catalogue::EVENT_TYPES.iter().map(|(id, name, _)| (*id, (*name).to_string())).collect();
        LabelNames {
            type_names: RwLock::new(type_names),
            org_names: Mutex::new(OrgNames::default()),
            unknown_types: Mutex::default(),
            limits,
        }
    }

    /// Admits an organisation under the limit (naming it with the first name given), or says it is
    /// beyond it; an organisation already admitted (or restored) stays admitted.
    pub(super) fn admit(&self, id: Option<u64>, name: Option<&str>) -> OrgKey {
        let key = OrgKey::of(id);
        let mut names = self.org_names.lock().unwrap_or_else(PoisonError::into_inner);
        if names.names.contains_key(&key) {
            return key;
        }
        if matches!(key, OrgKey::Id(_)) && names.admitted >= self.limits.max_organisations {
            return OrgKey::Overflow;
        }
        names.insert(key, bounded(name.unwrap_or(UNKNOWN), self.limits.max_label_length));
        key
    }

    /// The event type's id if it has series of its own: it has a name, or it is one of the first
    /// [`SeriesLimits::max_unknown_event_types`] without one; `None` for the overflow.
    pub(super) fn admit_type(&self, id: u32) -> Option<u32> {
        if self.knows_event_type(id) {
            return Some(id);
        }
        let mut unknown = self.unknown_types.lock().unwrap_or_else(PoisonError::into_inner);
        if unknown.contains(&id) || unknown.len() < self.limits.max_unknown_event_types {
            unknown.insert(id);
            return Some(id);
        }
        None
    }

    /// Event-type ids without a name that have series of their own.
    pub(super) fn unknown_event_types(&self) -> usize {
        self.unknown_types.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Keeps a restored series' event type admitted (whatever the limit: its series exist already).
    pub(super) fn keep_event_type(&self, labels: &HashMap<&str, &str>) {
        let id = labels.get("event_type_id").and_then(|id| id.parse::<u32>().ok());
        if let Some(id) = id.filter(|id| !self.knows_event_type(*id)) {
            self.unknown_types.lock().unwrap_or_else(PoisonError::into_inner).insert(id);
        }
    }

    /// Organisations with series of their own.
    pub(super) fn organisations(&self) -> usize {
        self.org_names.lock().unwrap_or_else(PoisonError::into_inner).admitted
    }

    pub(super) fn limits(&self) -> SeriesLimits {
        self.limits
    }

    /// A name from a payload cut to [`SeriesLimits::max_label_length`], without a copy.
    pub(super) fn bounded_str<'a>(&self, name: &'a str) -> &'a str {
        bounded_str(name, self.limits.max_label_length)
    }

    /// Replaces event-type names (from `GET /api/v1/event/type`); ids not given keep their names.
    pub(super) fn set_event_type_names(&self, names: impl IntoIterator<Item = (u32, String)>) {
        let mut map = self.type_names.write().unwrap_or_else(PoisonError::into_inner);
        for (id, name) in names {
            map.insert(id, bounded(&name, self.limits.max_label_length));
        }
    }

    /// Whether an event type id has a name (from the catalogue, the API or the state file).
    pub(super) fn knows_event_type(&self, id: u32) -> bool {
        self.type_names.read().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }

    /// The first of `ids` without a name, looked up under one lock (a page's worth of ids).
    pub(super) fn first_unknown_event_type(&self, mut ids: impl Iterator<Item = u32>) -> Option<u32> {
        let map = self.type_names.read().unwrap_or_else(PoisonError::into_inner);
        ids.find(|id| !map.contains_key(id))
    }

    /// Every event-type name known, for the state file.
    pub(super) fn event_type_names(&self) -> Vec<(u32, String)> {
        let map = self.type_names.read().unwrap_or_else(PoisonError::into_inner);
        let mut names: Vec<(u32, String)> = map.iter().map(|(id, name)| (*id, name.clone())).collect();
        names.sort_unstable();
        names
    }

    /// The label value for an event type id.
    pub(super) fn event_type_name(&self, id: u32) -> String {
        let map = self.type_names.read().unwrap_or_else(PoisonError::into_inner);
        map.get(&id).cloned().unwrap_or_else(|| UNKNOWN.to_string())
    }

    /// The labels of an admitted organisation (see [`LabelNames::admit`]), or of the overflow.
    pub(super) fn organisation(&self, key: OrgKey) -> Organisation {
        let id = match key {
            OrgKey::Id(id) => id.to_string(),
            OrgKey::Unknown => UNKNOWN.to_string(),
            OrgKey::Overflow => return Organisation { name: OVERFLOW.to_string(), id: OVERFLOW.to_string() },
        };
        let names = self.org_names.lock().unwrap_or_else(PoisonError::into_inner);
        let name = names.names.get(&key).cloned().unwrap_or_else(|| UNKNOWN.to_string());
        Organisation { name, id }
    }

    /// Keeps the organisation name of a restored series, so the organisation's series continue after a
    /// restart rather than start anew under a name it has since been given.
    /// Returns the organisation the series belongs to, if it names one.
    pub(super) fn keep_organisation_name(&self, labels: &HashMap<&str, &str>) -> Option<OrgKey> {
        let (name, id) = (labels.get("organisation")?, labels.get("organisation_id")?);
        let key = match *id {
            OVERFLOW => return Some(OrgKey::Overflow),
            UNKNOWN => OrgKey::Unknown,
            id => OrgKey::Id(id.parse().ok()?),
        };
        let mut names = self.org_names.lock().unwrap_or_else(PoisonError::into_inner);
        if !names.names.contains_key(&key) {
            names.insert(key, name.to_string());
        }
        Some(key)
    }

    /// The labels of an event of `event_type` from `source` with `severity` in `organisation`.
    /// `event_type` is `None` for the overflow of unnamed event types.
    pub(super) fn event(
        &self,
        event_type: Option<u32>,
        source: Option<u32>,
        severity: Option<u32>,
        organisation: Organisation,
    ) -> EventLabels {
        let (type_name, type_id) = match event_type {
            Some(id) => (self.event_type_name(id), id.to_string()),
            None => (OVERFLOW.to_string(), OVERFLOW.to_string()),
        };
        EventLabels { type_name, type_id, source: source_name(source), severity: severity_name(severity), organisation }
    }

    /// The Generic event series a new organisation starts with at zero, so an alert on `increase()`
    /// sees its first Generic event (data sessions disconnected: throttling, quota updates). Generic
    /// events come from Policy Control with severity Warn (emnify's catalogue and examples).
    pub(super) fn zeroed_generic_series(&self, organisation: Organisation) -> EventLabels {
        self.event(Some(GENERIC_EVENT_TYPE), Some(1), Some(1), organisation)
    }
}
