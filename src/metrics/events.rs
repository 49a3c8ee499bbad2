//! Counting events: `emnify_events_total` and its companions, with each label set's handles resolved once.
//!
//! Resolving the labels of an event (names, organisation, zeroed companions) happens the first
//! time its label set is seen; after that, counting an event is a hash lookup and an atomic add.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus::{Gauge, IntCounter, IntCounterVec, IntGauge, IntGaugeVec};

use super::encode::{Exemplar, ExemplarSlot, LabelledFamily};
use super::labels::{
    zero_series, LabelNames, OrgKey, Organisation, SeriesLimits, SKIP_REASONS, UNREADABLE_REASONS,
    ZEROED_GENERIC_CAUSES,
};
use super::persist::OnRestore;
use super::registrar::Registrar;
use crate::catalogue::{generic_cause, GENERIC_EVENT_TYPE};
use crate::emnify::model::Event;
use crate::loglimit::LogLimiter;

/// What identifies one `emnify_events_total` series.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct EventKey {
    /// `None`: an unnamed event type beyond [`SeriesLimits::max_unknown_event_types`] (the overflow).
    event_type: Option<u32>,
    source: Option<u32>,
    severity: Option<u32>,
    organisation: OrgKey,
    alert: bool,
}

/// Counter handles of one event label set, resolved once.
struct EventHandles {
    events: IntCounter,
    /// The series' newest event, an OpenMetrics exemplar.
    exemplar: Arc<ExemplarSlot>,
    /// Only for alert-flagged events, so non-alert types add no zero series.
    alerts: Option<IntCounter>,
    /// The organisation name the last event of this label set carried, cut as its label is: a rename
    /// shows as a mismatch here, found without a lookup of its own.
    last_org_name: Option<Box<str>>,
}

type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A series' counter and its exemplar slot.
type CounterWithExemplar = (IntCounter, Arc<ExemplarSlot>);

/// Each label set's handles, kept under the recorder's lock.
type HandleCache = FastMap<EventKey, EventHandles>;

/// `emnify_organisation_info{organisation_id, organisation}`: 1 per organisation with series of its own,
/// with its current name, which this keeps so a rename replaces the series rather than adds one.
struct OrgInfo {
    gauge: IntGaugeVec,
    current: Mutex<FastMap<u64, String>>,
}

impl OrgInfo {
    /// Makes `name` the current name of organisation `id`.
    fn set(&self, id: u64, name: &str) {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let id_text = id.to_string();
        match current.get_mut(&id) {
            Some(old) if old == name => return,
            Some(old) => {
                let _ = self.gauge.remove_label_values(&[&id_text, old]);
                *old = name.to_string();
            }
            None => {
                current.insert(id, name.to_string());
            }
        }
        self.gauge.with_label_values(&[&id_text, name]).set(1);
    }

    /// Gives organisation `id` the name `name` unless it has a current name already.
    fn set_if_absent(&self, id: u64, name: &str) {
        if !self.current.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id) {
            self.set(id, name);
        }
    }

    /// The series of `unknown` and `overflow`, whose names never change.
    fn set_fixed(&self, organisation: &Organisation) {
        self.gauge.with_label_values(&[organisation.id.as_str(), organisation.name.as_str()]).set(1);
    }
}

/// The event metrics, and the label names their series get.
pub struct EventMetrics {
    total: Arc<LabelledFamily>,
    generic: Arc<LabelledFamily>,
    alerts: Arc<LabelledFamily>,
    unreadable: IntCounterVec,
    duplicates: IntCounter,
    skipped: IntCounterVec,
    last_event: Gauge,
    remembered_ids: IntGauge,
    /// Every event counted, for the landing page; not exposed (the sum of `emnify_events_total` is).
    counted: IntCounter,
    names: Arc<LabelNames>,
    handles: Mutex<HandleCache>,
    generic_handles: Mutex<HashMap<(OrgKey, &'static str), CounterWithExemplar>>,
    /// Events counted under `organisation_id="overflow"`.
    over_limit: IntCounter,
    /// Organisations with series of their own, and the limit.
    organisations: IntGauge,
    /// Says the limit was reached, at most once an hour.
    over_limit_logged: LogLimiter,
    /// Events counted under `event_type_id="overflow"`.
    over_type_limit: IntCounter,
    /// Unnamed event types with series of their own.
    unknown_types: IntGauge,
    /// Says the event-type limit was reached, at most once an hour.
    over_type_limit_logged: LogLimiter,
    org_info: Arc<OrgInfo>,
}

/// How often reaching the organisation limit is logged again while new organisations keep coming.
const OVER_LIMIT_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl EventMetrics {
    /// Registers the event metrics, with their reasons at zero.
    pub(super) fn register(reg: &mut Registrar<'_>, limits: SeriesLimits) -> Self {
        let names = Arc::new(LabelNames::from_catalogue(limits));
        let counted = IntCounter::new("emnify_events_counted", "internal").expect("valid");
        let org_info = Arc::new(OrgInfo {
            gauge: reg.int_gauge_vec(
                prometheus::Opts::new(
                    "emnify_organisation_info",
                    "1 for each organisation with series of its own, labelled with its current name. Event series \
                     keep the name first seen for their id; join this (on organisation_id) to show today's name.",
                ),
                &["organisation_id", "organisation"],
            ),
            current: Mutex::new(FastMap::default()),
        });
        // A restored event series counts towards the total, and keeps its organisation's name, which is
        // also its current name until an event says otherwise.
        let on_restore: OnRestore = {
            let (counted, names, org_info) = (counted.clone(), names.clone(), org_info.clone());
            Box::new(move |labels, value| {
                counted.inc_by(value);
                names.keep_event_type(labels);
                match names.keep_organisation_name(labels) {
                    Some(OrgKey::Id(id)) => org_info.set(id, &names.organisation(OrgKey::Id(id)).name),
                    Some(key) => org_info.set_fixed(&names.organisation(key)),
                    None => {}
                }
            })
        };
        let total = LabelledFamily::new(
            "emnify_events_total",
            "emnify events counted, each event id once. Polled from the emnify API on the exporter's own timer \
             (events are a stream, not state).",
            &["event_type", "event_type_id", "event_source", "event_severity", "organisation", "organisation_id"],
        );
        let total = reg.labelled(total, Some(on_restore));
        let generic = LabelledFamily::new(
            "emnify_generic_events_total",
            "emnify Generic (id 0) events, data sessions disconnected, by cause: throttling, quota_update or other.",
            &["cause", "organisation", "organisation_id"],
        );
        let generic = reg.labelled(generic, None);
        let alerts = LabelledFamily::new(
            "emnify_alert_events_total",
            "emnify events flagged alert=true, by event type and organisation.",
            &["event_type", "event_type_id", "organisation", "organisation_id"],
        );
        let alerts = reg.labelled(alerts, None);
        let unreadable = reg.counter_vec(
            "emnify_events_unreadable_total",
            "Records in an event list that could not be read and were skipped (each record once), by reason.",
            &["reason"],
        );
        zero_series(&unreadable, &UNREADABLE_REASONS);
        let duplicates = reg.counter(
            "emnify_events_duplicate_total",
            "Events received again (overlapping windows, repeated pages) and not counted a second time.",
        );
        let skipped = reg.counter_vec(
            "emnify_events_skipped_total",
            "Distinct events received but deliberately not counted: beyond_dedup_horizon (too old to tell whether \
             they were counted already: the dedup cap forgot too much). before_start no longer occurs and stays 0.",
            &["reason"],
        );
        zero_series(&skipped, &SKIP_REASONS);
        let last_event = reg.gauge(
            "emnify_last_event_timestamp_seconds",
            "Unix time of the newest event counted (its emnify timestamp).",
        );
        let remembered_ids = reg.int_gauge(
            "emnify_dedup_remembered_ids",
            "Event ids remembered to recognise duplicates in overlapping poll windows.",
        );
        let over_limit = reg.counter(
            "emnify_events_over_organisation_limit_total",
            "Events counted under organisation_id=overflow because --metrics.max-organisations organisations \
             have series of their own already (never dropped).",
        );
        let organisations = reg.int_gauge(
            "emnify_organisations",
            "Organisations with series of their own (at most --metrics.max-organisations).",
        );
        let limit = reg.int_gauge(
            "emnify_organisations_limit",
            "--metrics.max-organisations: organisations beyond it share the organisation_id=overflow series.",
        );
        limit.set(i64::try_from(limits.max_organisations).unwrap_or(i64::MAX));
        let over_type_limit = reg.counter(
            "emnify_events_over_event_type_limit_total",
            "Events counted under event_type_id=overflow because --metrics.max-unknown-event-types event types \
             without a name have series of their own already (never dropped).",
        );
        let unknown_types = reg.int_gauge(
            "emnify_unknown_event_types",
            "Event types without a name in the event-type catalogue that have series of their own (at most \
             --metrics.max-unknown-event-types).",
        );
        let type_limit = reg.int_gauge(
            "emnify_unknown_event_types_limit",
            "--metrics.max-unknown-event-types: unnamed event types beyond it share the event_type_id=overflow series.",
        );
        type_limit.set(i64::try_from(limits.max_unknown_event_types).unwrap_or(i64::MAX));
        EventMetrics {
            total,
            generic,
            alerts,
            unreadable,
            duplicates,
            skipped,
            last_event,
            remembered_ids,
            counted,
            names,
            handles: Mutex::new(HashMap::default()),
            generic_handles: Mutex::new(HashMap::new()),
            over_limit,
            organisations,
            over_limit_logged: LogLimiter::new(OVER_LIMIT_LOG_EVERY),
            over_type_limit,
            unknown_types,
            over_type_limit_logged: LogLimiter::new(OVER_LIMIT_LOG_EVERY),
            org_info,
        }
    }

    /// Replaces the event-type names (from `GET /api/v1/event/type`); call before counting.
    pub fn set_event_type_names(&self, names: impl IntoIterator<Item = (u32, String)>) {
        self.names.set_event_type_names(names);
    }

    /// The label value for an event type id.
    pub fn event_type_name(&self, id: u32) -> String {
        self.names.event_type_name(id)
    }

    /// Whether an event type id has a name; an event of one that has none is worth a look at the API's
    /// live catalogue before its series is named `unknown` for good.
    pub fn knows_event_type(&self, id: u32) -> bool {
        self.names.knows_event_type(id)
    }

    /// The first of `ids` whose event type has no name (one lock for them all).
    pub fn first_unknown_event_type(&self, ids: impl Iterator<Item = u32>) -> Option<u32> {
        self.names.first_unknown_event_type(ids)
    }

    /// Every event-type name known (the catalogue's and those learned since), for the state file.
    pub fn event_type_names(&self) -> Vec<(u32, String)> {
        self.names.event_type_names()
    }

    /// Counts one event, already known to be new, at its payload's time.
    pub fn record(&self, event: &Event<'_>) {
        self.recorder().record(event, event.timestamp_millis);
    }

    /// Counts a batch of new events under one lock; the totals are settled when it is dropped. The lock
    /// is held while it lives: nothing on the same thread may call [`EventMetrics::record`] meanwhile.
    pub fn recorder(&self) -> EventRecorder<'_> {
        EventRecorder {
            metrics: self,
            handles: self.handles.lock().unwrap_or_else(PoisonError::into_inner),
            counted: 0,
            newest_millis: None,
        }
    }

    pub fn record_duplicate(&self) {
        self.duplicates.inc();
    }

    pub fn record_unreadable(&self, reason: &str) {
        self.unreadable.with_label_values(&[reason]).inc();
    }

    /// An event that is deliberately not counted; `reason` is `before_start` or `beyond_dedup_horizon`.
    pub fn record_skipped(&self, reason: &str) {
        self.skipped.with_label_values(&[reason]).inc();
    }

    pub fn set_remembered_ids(&self, count: usize) {
        self.remembered_ids.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    /// How many events were counted (restored counts included).
    pub(super) fn counted(&self) -> u64 {
        self.counted.get()
    }

    /// Of organisations, then of unnamed event types: series of their own, the limit, events under overflow.
    pub(super) fn series_usage(&self) -> [(u64, u64, u64); 2] {
        let usage = |used: &IntGauge, limit: usize, over: &IntCounter| {
            (u64::try_from(used.get()).unwrap_or(0), u64::try_from(limit).unwrap_or(u64::MAX), over.get())
        };
        let limits = self.names.limits();
        [
            usage(&self.organisations, limits.max_organisations, &self.over_limit),
            usage(&self.unknown_types, limits.max_unknown_event_types, &self.over_type_limit),
        ]
    }

    /// Creates the handles of a new label set (its organisation already admitted, or the overflow); a new
    /// organisation also gets its zeroed series.
    fn resolve(&self, key: EventKey) -> EventHandles {
        let organisation = self.names.organisation(key.organisation);
        let labels = self.names.event(key.event_type, key.source, key.severity, organisation);
        let (events, exemplar) = self.total.handle(&labels.events());
        let handles = EventHandles {
            last_org_name: None,
            events,
            exemplar,
            alerts: key.alert.then(|| self.alerts.with_label_values(&labels.alerts())),
        };
        match key.organisation {
            // Named as its series are until an event says otherwise (it may carry no name at all).
            OrgKey::Id(id) => self.org_info.set_if_absent(id, &labels.organisation.name),
            _ => self.org_info.set_fixed(&labels.organisation),
        }
        self.init_organisation(key.organisation, labels.organisation);
        self.organisations.set(i64::try_from(self.names.organisations()).unwrap_or(i64::MAX));
        self.unknown_types.set(i64::try_from(self.names.unknown_event_types()).unwrap_or(i64::MAX));
        handles
    }

    /// Creates the series [`LabelNames::zeroed_generic_series`] and [`ZEROED_GENERIC_CAUSES`] name for an
    /// organisation, at zero (nothing if they exist already).
    fn init_organisation(&self, org: OrgKey, organisation: Organisation) {
        let generic = self.names.zeroed_generic_series(organisation);
        self.total.with_label_values(&generic.events());
        self.alerts.with_label_values(&generic.alerts());
        for cause in ZEROED_GENERIC_CAUSES {
            self.generic_counter(org, cause);
        }
    }

    /// The counter of Generic events of `cause` in an organisation; its labels are looked up only when it is
    /// new, as this runs for every Generic event.
    fn generic_counter(&self, org: OrgKey, cause: &'static str) -> CounterWithExemplar {
        let mut map = self.generic_handles.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((org, cause))
            .or_insert_with(|| {
                let org = self.names.organisation(org);
                self.generic.handle(&[cause, org.name.as_str(), org.id.as_str()])
            })
            .clone()
    }

    /// An event of an unnamed event type beyond the limit: counted under the overflow, and said (once an hour).
    fn note_over_type_limit(&self, event_type: u32) {
        self.over_type_limit.inc();
        if self.over_type_limit_logged.note().is_some() {
            tracing::warn!(
                event_type_id = event_type,
                limit = self.names.limits().max_unknown_event_types,
                "more event types without a name than --metrics.max-unknown-event-types: new ones are counted \
                 under event_type_id=overflow (see emnify_events_over_event_type_limit_total)"
            );
        }
    }

    /// An event of an organisation beyond the limit: counted under the overflow, and said (once an hour).
    fn note_over_limit(&self, org_id: Option<u64>) {
        self.over_limit.inc();
        if self.over_limit_logged.note().is_some() {
            tracing::warn!(
                organisation_id = org_id,
                limit = self.names.limits().max_organisations,
                "more organisations than --metrics.max-organisations: new ones are counted under \
                 organisation_id=overflow (see emnify_events_over_organisation_limit_total)"
            );
        }
    }
}

#[path = "events_recorder.rs"]
mod recorder;
pub use recorder::EventRecorder;

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
