//! Every metric the exporter serves, behind domain verbs like [`Metrics::record_event`].
//!
//! One struct owns a private [`Registry`]; nothing else registers metrics. Label
//! values for events are canonical names derived from ids (never from the
//! free-text descriptions, whose spelling varies), and the counter handles for
//! each label set are resolved once and cached, so counting an event is a hash
//! lookup and an atomic add.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use crate::catalogue::{generic_cause, GENERIC_EVENT_TYPE};
use crate::emnify::model::Event;

mod encode;
mod labels;

pub use encode::TEXT_CONTENT_TYPE;
use encode::{encode_families, LabelledFamily};
use labels::{zero_series, LabelNames, SKIP_REASONS, UNREADABLE_REASONS, ZEROED_GENERIC_CAUSES};
pub use labels::{POLL_ERROR_REASONS, PUSH_REJECT_REASONS};

/// What identifies one `emnify_events_total` series.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
struct EventKey {
    event_type: u32,
    source: Option<u32>,
    severity: Option<u32>,
    organisation: Option<u64>,
    alert: bool,
}

/// Counter handles of one event label set, resolved once.
struct EventHandles {
    events: IntCounter,
    /// Only for alert-flagged events, so non-alert types add no zero series.
    alerts: Option<IntCounter>,
}

/// Counts new events for [`Metrics::event_recorder`].
pub struct EventRecorder<'a> {
    metrics: &'a Metrics,
    handles: MutexGuard<'a, HashMap<EventKey, EventHandles, foldhash::fast::RandomState>>,
    counted: u64,
    newest_millis: Option<i64>,
}

impl EventRecorder<'_> {
    /// Counts one event, already known to be new.
    pub fn record(&mut self, event: &Event<'_>) {
        let metrics = self.metrics;
        let key = EventKey {
            event_type: event.event_type_id,
            source: event.source_id,
            severity: event.severity_id,
            organisation: event.organisation_id,
            alert: event.alert,
        };
        let org_name = event.organisation_name.as_deref();
        let h = match self.handles.get(&key) {
            Some(h) => h,
            None => {
                let created = metrics.resolve(key, org_name);
                self.handles.entry(key).or_insert(created)
            }
        };
        h.events.inc();
        if let Some(alerts) = &h.alerts {
            alerts.inc();
        }
        if event.event_type_id == GENERIC_EVENT_TYPE {
            let cause = generic_cause(&event.description);
            metrics.generic_counter(event.organisation_id, org_name, cause).inc();
        }
        self.counted += 1;
        if let Some(ts) = event.timestamp_millis {
            self.newest_millis = Some(self.newest_millis.map_or(ts, |n| n.max(ts)));
        }
    }
}

impl Drop for EventRecorder<'_> {
    fn drop(&mut self) {
        self.metrics.events_counted.inc_by(self.counted);
        if let Some(ts) = self.newest_millis {
            let secs = ts as f64 / 1000.0;
            if secs > self.metrics.last_event.get() {
                self.metrics.last_event.set(secs);
            }
        }
    }
}

/// How the last poll went, for the landing page.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollStatus {
    pub up: bool,
    pub last_success_unix: Option<f64>,
    pub events_counted: u64,
}

/// One counter series as saved in the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CounterValue {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub value: u64,
}

pub struct Metrics {
    /// The exporter's own metrics; scrapes see them as of the last [`Metrics::publish`].
    registry: Registry,
    /// `process_*`, read fresh at every scrape.
    process_registry: Registry,
    /// The exposition of `registry` at the last publication.
    published: Mutex<Arc<Vec<u8>>>,
    events: LabelledFamily,
    generic: LabelledFamily,
    alerts: LabelledFamily,
    unreadable: IntCounterVec,
    duplicates: IntCounter,
    skipped: IntCounterVec,
    up: IntGauge,
    last_success: Gauge,
    last_event: Gauge,
    poll_duration: Histogram,
    poll_errors: IntCounterVec,
    api_requests: IntCounterVec,
    remembered_ids: IntGauge,
    events_counted: IntCounter,
    push_requests: IntCounterVec,
    push_events: IntCounter,
    push_rejected: IntCounterVec,
    last_push: Gauge,
    names: LabelNames,
    handles: Mutex<HashMap<EventKey, EventHandles, foldhash::fast::RandomState>>,
    generic_handles: Mutex<HashMap<(Option<u64>, &'static str), IntCounter>>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid");
    registry.register(Box::new(vec.clone())).expect("metric names are unique");
    vec
}

fn register<T: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry.register(Box::new(metric.clone())).expect("metric names are unique");
    metric
}

impl Metrics {
    /// Creates every metric, with the series that must exist from the start set to zero.
    pub fn new() -> Self {
        let registry = Registry::new();
        let events = LabelledFamily::new(
            "emnify_events_total",
            "emnify events counted, each event id once. Polled from the emnify API on the exporter's own timer \
             (events are a stream, not state).",
            &["event_type", "event_type_id", "event_source", "event_severity", "organisation", "organisation_id"],
        );
        let generic = LabelledFamily::new(
            "emnify_generic_events_total",
            "emnify Generic (id 0) events, data sessions disconnected, by cause: throttling, quota_update or other.",
            &["cause", "organisation", "organisation_id"],
        );
        let alerts = LabelledFamily::new(
            "emnify_alert_events_total",
            "emnify events flagged alert=true, by event type and organisation.",
            &["event_type", "event_type_id", "organisation", "organisation_id"],
        );
        let unreadable = counter_vec(
            &registry,
            "emnify_events_unreadable_total",
            "Records in an event list that could not be read and were skipped (each record once), by reason.",
            &["reason"],
        );
        let duplicates = register(
            &registry,
            IntCounter::new(
                "emnify_events_duplicate_total",
                "Events received again (overlapping windows, repeated pages) and not counted a second time.",
            )
            .expect("valid"),
        );
        let skipped = counter_vec(
            &registry,
            "emnify_events_skipped_total",
            "Events received but deliberately not counted: before_start (older than start minus lookback) or \
             beyond_dedup_horizon (too old to tell whether they were counted already).",
            &["reason"],
        );
        let up = register(
            &registry,
            IntGauge::new("emnify_up", "1 if the last poll of the emnify API fully succeeded, else 0.").expect("valid"),
        );
        let last_success = register(
            &registry,
            Gauge::new(
                "emnify_last_poll_success_timestamp_seconds",
                "Unix time the last fully successful poll finished.",
            )
            .expect("valid"),
        );
        let last_event = register(
            &registry,
            Gauge::new(
                "emnify_last_event_timestamp_seconds",
                "Unix time of the newest event counted (its emnify timestamp).",
            )
            .expect("valid"),
        );
        let poll_duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new("emnify_poll_duration_seconds", "Time one poll of the emnify API took.")
                    .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
            )
            .expect("valid"),
        );
        let poll_errors = counter_vec(&registry, "emnify_poll_errors_total", "Failed polls, by reason.", &["reason"]);
        let api_requests = counter_vec(
            &registry,
            "emnify_api_requests_total",
            "Requests made to the emnify API, by endpoint and HTTP status code (or timeout/error).",
            &["endpoint", "code"],
        );
        let remembered_ids = register(
            &registry,
            IntGauge::new(
                "emnify_dedup_remembered_ids",
                "Event ids remembered to recognise duplicates in overlapping poll windows.",
            )
            .expect("valid"),
        );
        let events_counted = IntCounter::new("emnify_events_counted", "internal").expect("valid");
        let push_requests = counter_vec(
            &registry,
            "emnify_push_requests_total",
            "Requests to the Data Streamer receiver, by HTTP status code answered.",
            &["code"],
        );
        let push_events = register(
            &registry,
            IntCounter::new(
                "emnify_push_events_total",
                "Event records received by push (Data Streamer), new or not; counted ones are in emnify_events_total.",
            )
            .expect("valid"),
        );
        let push_rejected = counter_vec(
            &registry,
            "emnify_push_rejected_total",
            "Pushes refused as a whole, by reason; nothing of them was counted.",
            &["reason"],
        );
        zero_series(&push_rejected, &PUSH_REJECT_REASONS);
        let last_push = register(
            &registry,
            Gauge::new("emnify_last_push_timestamp_seconds", "Unix time of the last accepted push.").expect("valid"),
        );
        let build_info = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("emnify_exporter_build_info", "Build of the running exporter; the value is always 1."),
                &["version", "revision"],
            )
            .expect("valid"),
        );
        build_info.with_label_values(&[crate::VERSION, crate::REVISION]).set(1);
        let process_registry = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::for_self();
            process_registry.register(Box::new(process)).expect("process metrics register once");
        }
        zero_series(&poll_errors, &POLL_ERROR_REASONS);
        zero_series(&skipped, &SKIP_REASONS);
        zero_series(&unreadable, &UNREADABLE_REASONS);
        let metrics = Metrics {
            registry,
            process_registry,
            published: Mutex::new(Arc::new(Vec::new())),
            events,
            generic,
            alerts,
            unreadable,
            duplicates,
            skipped,
            up,
            last_success,
            last_event,
            poll_duration,
            poll_errors,
            api_requests,
            remembered_ids,
            events_counted,
            push_requests,
            push_events,
            push_rejected,
            last_push,
            names: LabelNames::from_catalogue(),
            handles: Mutex::new(HashMap::default()),
            generic_handles: Mutex::new(HashMap::new()),
        };
        metrics.publish();
        metrics
    }

    /// Replaces the event-type names (from `GET /api/v1/event/type`); call before counting.
    pub fn set_event_type_names(&self, names: impl IntoIterator<Item = (u32, String)>) {
        self.names.set_event_type_names(names);
    }

    /// The label value for an event type id.
    pub fn event_type_name(&self, id: u32) -> String {
        self.names.event_type_name(id)
    }

    /// Counts one event, already known to be new.
    pub fn record_event(&self, event: &Event<'_>) {
        self.event_recorder().record(event);
    }

    /// Counts a batch of new events under one lock; the totals are settled when it is dropped. The lock
    /// is held while it lives: nothing on the same thread may call [`Metrics::record_event`] meanwhile.
    pub fn event_recorder(&self) -> EventRecorder<'_> {
        EventRecorder {
            metrics: self,
            handles: self.handles.lock().unwrap_or_else(PoisonError::into_inner),
            counted: 0,
            newest_millis: None,
        }
    }

    /// Creates the handles of a new label set; a new organisation also gets its zeroed series.
    fn resolve(&self, key: EventKey, org_name: Option<&str>) -> EventHandles {
        let organisation = self.names.organisation(key.organisation, org_name);
        let labels = self.names.event(key.event_type, key.source, key.severity, organisation);
        let handles = EventHandles {
            events: self.events.with_label_values(&labels.events()),
            alerts: key.alert.then(|| self.alerts.with_label_values(&labels.alerts())),
        };
        self.init_organisation(key.organisation, org_name, labels.organisation);
        handles
    }

    /// Creates the series [`LabelNames::zeroed_generic_series`] and [`ZEROED_GENERIC_CAUSES`] name for an
    /// organisation, at zero (nothing if they exist already).
    fn init_organisation(&self, org_id: Option<u64>, org_name: Option<&str>, organisation: labels::Organisation) {
        let generic = self.names.zeroed_generic_series(organisation);
        self.events.with_label_values(&generic.events());
        self.alerts.with_label_values(&generic.alerts());
        for cause in ZEROED_GENERIC_CAUSES {
            self.generic_counter(org_id, org_name, cause);
        }
    }

    /// The counter of Generic events of `cause` in an organisation; its labels are looked up only when it is new.
    fn generic_counter(&self, org_id: Option<u64>, org_name: Option<&str>, cause: &'static str) -> IntCounter {
        let mut map = self.generic_handles.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry((org_id, cause))
            .or_insert_with(|| {
                let org = self.names.organisation(org_id, org_name);
                self.generic.with_label_values(&[cause, org.name.as_str(), org.id.as_str()])
            })
            .clone()
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

    /// One request to the emnify API; `code` is the HTTP status or `timeout`/`error`.
    pub fn record_api_request(&self, endpoint: &str, code: &str) {
        self.api_requests.with_label_values(&[endpoint, code]).inc();
    }

    pub fn record_poll_success(&self, duration_secs: f64, finished_unix: f64) {
        self.poll_duration.observe(duration_secs);
        self.up.set(1);
        self.last_success.set(finished_unix);
    }

    pub fn record_poll_failure(&self, duration_secs: f64, reason: &str) {
        self.poll_duration.observe(duration_secs);
        self.up.set(0);
        self.poll_errors.with_label_values(&[reason]).inc();
    }

    /// A push request answered with `code`.
    pub fn record_push_request(&self, code: u16) {
        self.push_requests.with_label_values(&[&code.to_string()]).inc();
    }

    /// A push accepted with `records` event records in it.
    pub fn record_push_accepted(&self, records: u64) {
        self.push_events.inc_by(records);
        self.last_push.set(crate::timefmt::now_millis() as f64 / 1000.0);
    }

    /// A push refused as a whole; `reason` is one of [`PUSH_REJECT_REASONS`].
    pub fn record_push_rejected(&self, reason: &str) {
        self.push_rejected.with_label_values(&[reason]).inc();
    }

    /// Marks the exporter up without polling (push-only mode: nothing to poll).
    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub fn set_remembered_ids(&self, count: usize) {
        self.remembered_ids.set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn status(&self) -> PollStatus {
        let last = self.last_success.get();
        PollStatus {
            up: self.up.get() == 1,
            last_success_unix: (last > 0.0).then_some(last),
            events_counted: self.events_counted.get(),
        }
    }

    /// Makes the current values visible to scrapes.
    ///
    /// Counting goes on between publications; scrapes see only published values. With a state file the
    /// poller publishes right after saving, so Prometheus never sees a value a restart could take back.
    pub fn publish(&self) {
        let mut text = encode_families(&self.registry.gather());
        for family in [&self.alerts, &self.events, &self.generic] {
            family.encode(&mut text);
        }
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(text);
    }

    /// The text exposition (what `/metrics` serves): the published values, then fresh `process_*` metrics.
    pub fn encode(&self) -> Vec<u8> {
        let published = self.published.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let process = encode_families(&self.process_registry.gather());
        let mut out = Vec::with_capacity(published.len() + process.len());
        out.extend_from_slice(&published);
        out.extend_from_slice(&process);
        out
    }

    /// Every counter series of the exporter's own metrics, for the state file.
    pub fn counter_values(&self) -> Vec<CounterValue> {
        let mut out = Vec::new();
        let labelled = [&self.alerts, &self.events, &self.generic].map(|f| f.collect());
        for family in self.registry.gather().into_iter().chain(labelled.into_iter().flatten()) {
            if family.get_field_type() != prometheus::proto::MetricType::COUNTER {
                continue;
            }
            for metric in family.get_metric() {
                let labels = metric.get_label().iter().map(|l| (l.name().to_string(), l.value().to_string())).collect();
                let value = metric.get_counter().get_value() as u64;
                out.push(CounterValue { name: family.name().to_string(), labels, value });
            }
        }
        out
    }

    /// Adds saved counter values (at start-up, before anything is counted); returns how many were restored.
    pub fn restore_counters(&self, values: &[CounterValue]) -> usize {
        let mut restored = 0;
        for saved in values {
            let labelled = match saved.name.as_str() {
                "emnify_events_total" => Some(&self.events),
                "emnify_generic_events_total" => Some(&self.generic),
                "emnify_alert_events_total" => Some(&self.alerts),
                _ => None,
            };
            let labels: HashMap<&str, &str> = saved.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            if let Some(family) = labelled {
                match family.get_with(&labels) {
                    Some(counter) => {
                        counter.inc_by(saved.value);
                        restored += 1;
                        if saved.name == "emnify_events_total" {
                            self.events_counted.inc_by(saved.value);
                            self.names.keep_organisation_name(&labels);
                        }
                    }
                    None => tracing::warn!(metric = %saved.name, "a saved counter's labels do not fit; ignored"),
                }
                continue;
            }
            let vec = match saved.name.as_str() {
                "emnify_events_unreadable_total" => &self.unreadable,
                "emnify_events_skipped_total" => &self.skipped,
                "emnify_poll_errors_total" => &self.poll_errors,
                "emnify_api_requests_total" => &self.api_requests,
                "emnify_push_requests_total" => &self.push_requests,
                "emnify_push_rejected_total" => &self.push_rejected,
                "emnify_push_events_total" => {
                    self.push_events.inc_by(saved.value);
                    restored += 1;
                    continue;
                }
                "emnify_events_duplicate_total" => {
                    self.duplicates.inc_by(saved.value);
                    restored += 1;
                    continue;
                }
                other => {
                    tracing::warn!(metric = other, "the state file has a counter this version does not know; ignored");
                    continue;
                }
            };
            match vec.get_metric_with(&labels) {
                Ok(counter) => {
                    counter.inc_by(saved.value);
                    restored += 1;
                }
                Err(err) => tracing::warn!(metric = %saved.name, error = %err, "a saved counter does not fit; ignored"),
            }
        }
        self.publish();
        restored
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn event(id: u64, event_type: u32, org: Option<(u64, &'static str)>, description: &'static str) -> Event<'static> {
        Event {
            id,
            timestamp_millis: Some(1_700_000_000_000 + id as i64),
            alert: event_type == 0,
            description: Cow::Borrowed(description),
            event_type_id: event_type,
            source_id: Some(1),
            severity_id: Some(1),
            organisation_id: org.map(|o| o.0),
            organisation_name: org.map(|o| Cow::Borrowed(o.1)),
        }
    }

    fn text(m: &Metrics) -> String {
        m.publish();
        String::from_utf8(m.encode()).unwrap()
    }

    #[test]
    fn scrapes_see_only_published_values_and_counters_round_trip() {
        let m = Metrics::new();
        m.record_event(&event(1, 1, Some((7, "Org")), "x"));
        assert!(!String::from_utf8(m.encode()).unwrap().contains(r#"event_type="Update location""#));
        m.publish();
        assert!(String::from_utf8(m.encode()).unwrap().contains(r#"event_type="Update location""#));
        m.record_duplicate();
        let saved = m.counter_values();
        let restored = Metrics::new();
        assert_eq!(restored.restore_counters(&saved), saved.len());
        assert_eq!(restored.counter_values(), saved);
        assert_eq!(restored.status().events_counted, 1);
    }

    #[test]
    fn a_new_organisation_gets_zeroed_generic_series() {
        let m = Metrics::new();
        m.record_event(&event(1, 1, Some((7, "Org")), "Update location"));
        let t = text(&m);
        assert!(
            t.contains(r#"emnify_generic_events_total{cause="throttling",organisation="Org",organisation_id="7"} 0"#)
        );
        assert!(t.contains(
            r#"emnify_events_total{event_severity="Warn",event_source="Policy Control",event_type="Generic",event_type_id="0",organisation="Org",organisation_id="7"} 0"#
        ));
    }

    #[test]
    fn generic_events_count_by_cause_and_unknowns_get_stable_names() {
        let m = Metrics::new();
        m.record_event(&event(
            1,
            0,
            Some((7, "Org")),
            "Disconnecting data access for endpoint to apply throttling action.",
        ));
        m.record_event(&event(2, 0, Some((7, "Org")), "Disconnecting ... because quota has been updated."));
        m.record_event(&event(3, 999, None, "?"));
        m.record_event(&event(4, 1, Some((7, "Org renamed")), "Update location"));
        let t = text(&m);
        assert!(
            t.contains(r#"emnify_generic_events_total{cause="throttling",organisation="Org",organisation_id="7"} 1"#)
        );
        assert!(
            t.contains(r#"emnify_generic_events_total{cause="quota_update",organisation="Org",organisation_id="7"} 1"#)
        );
        assert!(t.contains(
            r#"event_type="unknown",event_type_id="999",organisation="unknown",organisation_id="unknown"} 1"#
        ));
        assert!(!t.contains("Org renamed"), "one organisation id keeps one name");
        assert!(t.contains(r#"emnify_alert_events_total{event_type="Generic",event_type_id="0",organisation="Org",organisation_id="7"} 2"#));
        assert_eq!(m.status().events_counted, 4);
    }

    #[test]
    fn labelled_families_encode_exactly_as_the_text_encoder_does() {
        let m = Metrics::new();
        for (i, org) in ["Org", "Quote\" Back\\slash\nNew line Ünïcode", "{a=\"b\"}, c"].into_iter().enumerate() {
            let id = i as u64 * 10;
            m.record_event(&event(id + 1, 0, Some((id, org)), "Disconnecting ... apply throttling action."));
            m.record_event(&event(id + 2, 999, Some((id, org)), "?"));
        }
        for family in [&m.alerts, &m.events, &m.generic] {
            let mut ours = Vec::new();
            family.encode(&mut ours);
            let reference = encode_families(&family.collect());
            let lines = |text: &[u8]| {
                let mut lines: Vec<String> =
                    String::from_utf8(text.to_vec()).unwrap().lines().map(str::to_owned).collect();
                lines.sort();
                lines
            };
            assert_eq!(lines(&ours), lines(&reference), "{}", family.name);
            assert!(ours.len() > 200);
        }
    }

    #[test]
    fn hostile_label_values_are_escaped() {
        let m = Metrics::new();
        m.record_event(&event(1, 1, Some((8, "Quote\" Back\\slash\nNew line Ünïcode")), "x"));
        assert!(text(&m).contains(r#"organisation="Quote\" Back\\slash\nNew line Ünïcode""#));
    }
}
