//! Every metric the exporter serves: [`Metrics`] owns the registry and holds one part per concern.
//!
//! Each part ([`EventMetrics`], [`PollingMetrics`], [`PushMetrics`], the build info) registers its
//! own metrics through a `Registrar` (`registrar.rs`) and offers domain verbs like
//! [`EventMetrics::record`]; nothing else registers metrics. Registering a counter also enters it in
//! the state file's table (`persist.rs`), so no counter can be left out of saving or restoring.
//! `Metrics` itself publishes: scrapes see the values of the last [`Metrics::publish`], plus
//! `process_*` read fresh.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::Registry;

use crate::http::ConnectionCounters;

mod build;
mod connections;
mod encode;
mod events;
mod exposition;
mod gzip;
mod labels;
mod persist;
mod polling;
#[cfg(target_os = "linux")]
mod process;
mod push;
mod registrar;
mod state;
mod watchdog;

use encode::{encode_families, LabelledFamily};
pub use events::{EventMetrics, EventRecorder};
pub use exposition::{Exposition, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
pub use labels::{SeriesLimits, OVERFLOW, POLL_ERROR_REASONS, PUSH_REJECT_REASONS};
use persist::CounterTable;
pub use persist::CounterValue;
pub use polling::{LastPoll, PollingMetrics};
pub use push::PushMetrics;
use registrar::Registrar;
pub use state::{StateHealth, StateMetrics, StateSetAside, SET_ASIDE_REASONS};
pub use watchdog::{StreamRow, WatchdogMetrics, WatchdogStatus, DATA_STREAM_STATES, RESTART_OUTCOMES};

/// How the last poll went, for the landing page.
#[derive(Debug, Clone, PartialEq)]
pub struct PollStatus {
    pub up: bool,
    pub last_success_unix: Option<f64>,
    /// How polls went lately (nothing in push mode).
    pub last_poll: LastPoll,
    /// When the last push was accepted, and when the last one was refused and why.
    pub last_push_unix: Option<f64>,
    pub last_push_rejected: Option<(f64, String)>,
    pub events_counted: u64,
    /// Organisations with series of their own, `--metrics.max-organisations`, and events counted under
    /// the overflow.
    pub organisations: (u64, u64, u64),
    /// The same of event types without a name, against `--metrics.max-unknown-event-types`.
    pub event_types: (u64, u64, u64),
    pub state: StateHealth,
    /// The state file found at start-up, if it had to be set aside (the counters restarted from zero).
    pub state_set_aside: Option<StateSetAside>,
}

/// The exposition of the exporter's own metrics at one moment; see [`Metrics::prepare_publication`].
pub struct Publication(Published);

/// The published exposition in both formats, and their gzip, made once by the first scrape that asks.
#[derive(Clone, Default)]
struct Published {
    prometheus: bytes::Bytes,
    openmetrics: bytes::Bytes,
    gzip: Arc<gzip::GzipCache>,
}

/// Every metric of the process: one, shared by the poller, the receiver and the server.
pub struct Metrics {
    /// The exporter's own metrics; scrapes see them as of the last [`Metrics::publish`].
    registry: Registry,
    /// `process_*` and the state file's health, read fresh at every scrape.
    live_registry: Registry,
    /// Families exposed from their own text rather than through `registry`, in name order.
    labelled: Vec<Arc<LabelledFamily>>,
    /// The exposition of `registry` and `labelled` at the last publication.
    published: Mutex<Published>,
    /// Every counter family, for the state file.
    counters: CounterTable,
    pub events: EventMetrics,
    pub polling: PollingMetrics,
    pub push: PushMetrics,
    /// Read fresh at every scrape: a failing save must show although it freezes the published counts.
    pub state: StateMetrics,
    /// The Data Streamer watchdog's, read fresh at every scrape.
    pub watchdog: WatchdogMetrics,
    /// The exporter's HTTP connections, read fresh at every scrape.
    pub http: ConnectionCounters,
    /// Whether a state file is used (set once at start-up), for the landing page.
    state_used: std::sync::atomic::AtomicBool,
    /// Compressions of a published exposition running at once: one (see `gzip`).
    gzip_compressions: Arc<tokio::sync::Semaphore>,
}

impl Metrics {
    /// Creates every metric with the default [`SeriesLimits`].
    pub fn new() -> Self {
        Self::with_limits(SeriesLimits::default())
    }

    /// Creates every metric, with the series that must exist from the start set to zero.
    pub fn with_limits(limits: SeriesLimits) -> Self {
        let registry = Registry::new();
        let live_registry = Registry::new();
        let mut labelled = Vec::new();
        let mut counters = CounterTable::default();
        let mut reg = Registrar::new(&registry, &mut labelled, &mut counters);
        let events = EventMetrics::register(&mut reg, limits);
        let polling = PollingMetrics::register(&mut reg);
        let push = PushMetrics::register(&mut reg);
        build::register(&mut reg, &live_registry);
        let state = StateMetrics::register(&live_registry);
        let watchdog = WatchdogMetrics::register(&live_registry);
        let http = connections::register_connection_counters(&live_registry);
        // The exposition lists the registry's families by name (`gather` sorts them), then these, by name too.
        labelled.sort_by_key(|family| family.name);
        let metrics = Metrics {
            registry,
            live_registry,
            labelled,
            published: Mutex::new(Published::default()),
            counters,
            events,
            polling,
            push,
            state,
            watchdog,
            http,
            state_used: std::sync::atomic::AtomicBool::new(false),
            gzip_compressions: Arc::new(tokio::sync::Semaphore::new(1)),
        };
        metrics.publish();
        metrics
    }

    pub fn status(&self) -> PollStatus {
        let [organisations, event_types] = self.events.series_usage();
        PollStatus {
            up: self.polling.is_up(),
            last_success_unix: self.polling.last_success_unix(),
            last_poll: self.polling.last_poll(),
            last_push_unix: self.push.last_push_unix(),
            last_push_rejected: self.push.last_rejected(),
            events_counted: self.events.counted(),
            organisations,
            event_types,
            state: self.state.health(self.state_used.load(std::sync::atomic::Ordering::Relaxed)),
            state_set_aside: self.state.set_aside(),
        }
    }

    /// Makes the current values visible to scrapes.
    ///
    /// Counting goes on between publications; scrapes see only published values. With a state file the
    /// poller publishes right after saving, so Prometheus never sees a value a restart could take back.
    pub fn publish(&self) {
        self.install_publication(self.prepare_publication());
    }

    /// The exposition of the current values, to be made visible by [`Metrics::install_publication`]
    /// (once what they count is saved).
    pub fn prepare_publication(&self) -> Publication {
        let mut text = encode_families(&self.registry.gather());
        let mut openmetrics = Vec::new();
        exposition::to_openmetrics(&text, &mut openmetrics);
        for family in &self.labelled {
            family.encode_both(&mut text, &mut openmetrics);
        }
        Publication(Published { prometheus: text.into(), openmetrics: openmetrics.into(), gzip: Arc::default() })
    }

    /// Makes a prepared exposition what scrapes see.
    pub fn install_publication(&self, publication: Publication) {
        *self.published.lock().unwrap_or_else(PoisonError::into_inner) = publication.0;
    }

    /// The text exposition (what `/metrics` serves): the published values, then fresh `process_*` metrics.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_as(Exposition::Prometheus)
    }

    /// The exposition in `format`.
    pub fn encode_as(&self, format: Exposition) -> Vec<u8> {
        let (published, live) = self.encode_parts(format);
        [&published[..], &live[..]].concat()
    }

    /// [`Metrics::encode`] in its two parts: the published values, shared (every scrape in flight
    /// references the one buffer, however large), and the fresh `process_*` and state-file metrics.
    pub fn encode_parts(&self, format: Exposition) -> (bytes::Bytes, bytes::Bytes) {
        let published = self.published.lock().unwrap_or_else(PoisonError::into_inner).clone();
        let published = match format {
            Exposition::Prometheus => published.prometheus,
            Exposition::OpenMetrics => published.openmetrics,
        };
        (published, self.encode_live(format))
    }

    /// The fresh `process_*` and state-file metrics in `format` (with OpenMetrics' `# EOF`).
    fn encode_live(&self, format: Exposition) -> bytes::Bytes {
        let live = encode_families(&self.live_registry.gather());
        match format {
            Exposition::Prometheus => live.into(),
            Exposition::OpenMetrics => {
                let mut text = Vec::with_capacity(live.len() + 64);
                exposition::to_openmetrics(&live, &mut text);
                text.extend_from_slice(b"# EOF\n");
                text.into()
            }
        }
    }

    /// [`Metrics::encode_parts`] as one gzip body in two parts: the published part compressed once per
    /// publication and format (by the first scrape that asks, one compression at a time; see `gzip`), and
    /// the live part appended for this scrape (stored, see `gzip::finish`). `None` if compressing failed.
    pub async fn encode_gzip(&self, format: Exposition) -> Option<(bytes::Bytes, bytes::Bytes)> {
        let (published, cache) = {
            let published = self.published.lock().unwrap_or_else(PoisonError::into_inner);
            let cache = published.gzip.clone();
            match format {
                Exposition::Prometheus => (published.prometheus.clone(), cache),
                Exposition::OpenMetrics => (published.openmetrics.clone(), cache),
            }
        };
        let index = usize::from(format == Exposition::OpenMetrics);
        let prefix = cache.prefix(index, published, &self.gzip_compressions).await?;
        gzip::finish(prefix, &self.encode_live(format))
    }

    /// Notes that progress is saved to a state file (for the landing page).
    pub fn use_state_file(&self) {
        self.state_used.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every counter series of the exporter's own metrics, for the state file.
    pub fn counter_values(&self) -> Vec<CounterValue> {
        self.counters.values()
    }

    /// Adds saved counter values (at start-up, before anything is counted), then publishes them; returns
    /// how many were restored.
    pub fn restore_counters(&self, values: &[CounterValue]) -> usize {
        // A series saved as `unknown` whose type has a name by now takes it (its value kept): one id,
        // one name, from here on.
        let named: Vec<CounterValue> = values
            .iter()
            .map(|saved| {
                let mut saved = saved.clone();
                let id = saved.labels.get("event_type_id").and_then(|id| id.parse::<u32>().ok());
                if let (Some(id), Some(name)) = (id, saved.labels.get_mut("event_type")) {
                    if name == "unknown" && self.events.knows_event_type(id) {
                        *name = self.events.event_type_name(id);
                    }
                }
                saved
            })
            .collect();
        let restored = self.counters.restore(&named);
        self.publish();
        restored
    }
}

impl crate::emnify::RequestObserver for Metrics {
    fn request_done(&self, endpoint: &'static str, code: &str) {
        self.polling.record_api_request(endpoint, code);
    }

    fn budget_factor(&self, factor: f64) {
        self.polling.set_budget_factor(factor);
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
    use crate::emnify::model::Event;
    use prometheus::proto::MetricType;
    use std::borrow::Cow;
    use std::collections::BTreeSet;

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
            endpoint_id: Some(7000 + id),
            iccid: Some(8_988_303_000_000_000_000 + id),
        }
    }

    fn text(m: &Metrics) -> String {
        m.publish();
        String::from_utf8(m.encode()).unwrap()
    }

    #[test]
    fn scrapes_see_only_published_values_and_counters_round_trip() {
        let m = Metrics::new();
        m.events.record(&event(1, 1, Some((7, "Org")), "x"));
        assert!(!String::from_utf8(m.encode()).unwrap().contains(r#"event_type="Update location""#));
        m.publish();
        assert!(String::from_utf8(m.encode()).unwrap().contains(r#"event_type="Update location""#));
        // Scrapes in flight share the published buffer (200 slow readers of a large /metrics must not
        // hold 200 copies of it).
        let (first, second) = (m.encode_parts(Exposition::Prometheus).0, m.encode_parts(Exposition::Prometheus).0);
        assert_eq!((first.as_ptr(), first.len()), (second.as_ptr(), second.len()));
        m.events.record_duplicate();
        let saved = m.counter_values();
        let restored = Metrics::new();
        assert_eq!(restored.restore_counters(&saved), saved.len());
        assert_eq!(restored.counter_values(), saved);
        assert_eq!(restored.status().events_counted, 1);
    }

    /// Something recorded through every verb, so every family has a series (`gather` leaves out empty ones).
    fn busy() -> Metrics {
        let m = Metrics::new();
        m.events.record(&event(1, 0, Some((7, "Org")), "Disconnecting ... apply throttling action."));
        m.events.record(&event(2, 1, Some((8, "Other")), "Update location"));
        m.events.record_duplicate();
        m.events.record_unreadable("missing_id");
        m.events.record_skipped("before_start");
        m.events.set_remembered_ids(2);
        m.polling.record_success(0.5, 1_700_000_000.0);
        m.polling.record_failure(0.5, "timeout", "the request timed out");
        m.polling.record_api_request("events", "200");
        m.push.record_request(200);
        m.push.record_accepted(3);
        m.push.record_rejected("malformed");
        m
    }

    fn sorted(mut values: Vec<CounterValue>) -> Vec<CounterValue> {
        values.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        values
    }

    #[test]
    fn every_counter_family_is_in_the_state_file_table() {
        let m = busy();
        let table: BTreeSet<&str> = m.counters.names().collect();
        let gathered = m.registry.gather();
        let mut exposed: BTreeSet<&str> = gathered
            .iter()
            .filter(|family| family.get_field_type() == MetricType::COUNTER)
            .map(|family| family.name())
            .collect();
        exposed.extend(m.labelled.iter().map(|family| family.name));
        for name in &exposed {
            assert!(
                table.contains(name),
                "{name} is not saved in the state file: register counters with Registrar::counter, counter_vec or labelled"
            );
        }
        assert_eq!(table, exposed, "only counter families that are exposed are saved");
        let values = m.counter_values();
        let saved: BTreeSet<&str> = values.iter().map(|value| value.name.as_str()).collect();
        assert_eq!(saved, table, "the series of every family are saved");
    }

    #[test]
    fn every_saved_counter_is_restored_and_foreign_entries_are_ignored() {
        let m = busy();
        let saved = m.counter_values();
        let mut file = saved.clone();
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        for (name, pairs) in [
            ("emnify_from_a_newer_version_total", &[][..]),
            ("emnify_poll_errors_total", &[("no_such_label", "x")][..]),
            ("emnify_events_total", &[("event_type", "Generic")][..]),
        ] {
            file.push(CounterValue { name: name.to_string(), labels: labels(pairs), value: 5 });
        }
        let restored = Metrics::new();
        assert_eq!(restored.restore_counters(&file), saved.len());
        assert_eq!(sorted(restored.counter_values()), sorted(saved));
        assert_eq!(restored.status().events_counted, 2);
        let counters = |m: &Metrics| {
            let text = text(m);
            let families: BTreeSet<&str> = m.counters.names().collect();
            let family = |line: &str| line.split(['{', ' ']).next().map(str::to_owned).unwrap_or_default();
            text.lines().filter(|line| families.contains(family(line).as_str())).map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(counters(&restored), counters(&m));
    }

    #[test]
    fn a_restored_organisation_keeps_its_name() {
        let m = Metrics::new();
        m.events.record(&event(1, 1, Some((7, "Org")), "Update location"));
        let restored = Metrics::new();
        restored.restore_counters(&m.counter_values());
        restored.events.record(&event(2, 1, Some((7, "Org renamed")), "Update location"));
        let t = text(&restored);
        assert!(
            t.contains(r#"event_type="Update location",event_type_id="1",organisation="Org",organisation_id="7"} 2"#),
            "{t}"
        );
        assert!(!t.lines().filter(|l| !l.starts_with("emnify_organisation_info")).any(|l| l.contains("Org renamed")));
    }

    #[test]
    fn a_new_organisation_gets_zeroed_generic_series() {
        let m = Metrics::new();
        m.events.record(&event(1, 1, Some((7, "Org")), "Update location"));
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
        m.events.record(&event(
            1,
            0,
            Some((7, "Org")),
            "Disconnecting data access for endpoint to apply throttling action.",
        ));
        m.events.record(&event(2, 0, Some((7, "Org")), "Disconnecting ... because quota has been updated."));
        m.events.record(&event(3, 999, None, "?"));
        m.events.record(&event(4, 1, Some((7, "Org renamed")), "Update location"));
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
        assert!(
            !t.lines().filter(|l| !l.starts_with("emnify_organisation_info")).any(|l| l.contains("Org renamed")),
            "one organisation id keeps one name"
        );
        assert!(t.contains(r#"emnify_alert_events_total{event_type="Generic",event_type_id="0",organisation="Org",organisation_id="7"} 2"#));
        assert_eq!(m.status().events_counted, 4);
    }

    #[test]
    fn labelled_families_encode_exactly_as_the_text_encoder_does() {
        let m = Metrics::new();
        for (i, org) in ["Org", "Quote\" Back\\slash\nNew line Ünïcode", "{a=\"b\"}, c"].into_iter().enumerate() {
            let id = i as u64 * 10;
            m.events.record(&event(id + 1, 0, Some((id, org)), "Disconnecting ... apply throttling action."));
            m.events.record(&event(id + 2, 999, Some((id, org)), "?"));
        }
        for family in &m.labelled {
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
        m.events.record(&event(1, 1, Some((8, "Quote\" Back\\slash\nNew line Ünïcode")), "x"));
        assert!(text(&m).contains(r#"organisation="Quote\" Back\\slash\nNew line Ünïcode""#));
    }
}
