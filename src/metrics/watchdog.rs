//! The Data Streamer watchdog's metrics: each stream's state (a state set), its name and type (an info
//! series), when its state last changed, and the restarts asked for. Read fresh at every scrape, like
//! the state file's health: publishing them would publish event counts not yet saved with them.

use std::sync::{Mutex, PoisonError};

use prometheus::{Gauge, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// The `outcome`s of `emnify_data_stream_restarts_total`.
pub const RESTART_OUTCOMES: [&str; 2] = ["ok", "failed"];

/// The `state`s of `emnify_data_stream_state`: emnify's four (1 to 4), and one for a state it has not
/// documented.
pub const DATA_STREAM_STATES: [&str; 5] = ["running", "paused", "error", "pending", "unknown"];

/// Longest stream name shown as a label value, in characters (names are free text of the operator's).
const MAX_NAME_CHARS: usize = 128;

/// One stream as the landing page shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub id: u64,
    pub name: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub ours: bool,
    /// Unix time its state was first seen as it is.
    pub since_unix: f64,
}

/// The watchdog's view for the landing page: whether it runs, how the last reading went, the streams.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WatchdogStatus {
    pub enabled: bool,
    pub restart: bool,
    /// The last reading's error, while readings fail.
    pub failing: Option<String>,
    pub streams: Vec<StreamRow>,
}

pub struct WatchdogMetrics {
    state: IntGaugeVec,
    info: IntGaugeVec,
    changed: GaugeVec,
    restarts: IntCounterVec,
    up: Gauge,
    status: Mutex<WatchdogStatus>,
    /// Where `up` goes after the watchdog's first reading (before it, 0 would tell of a failure).
    live: Registry,
    up_registered: std::sync::Once,
}

fn valid<T>(metric: prometheus::Result<T>) -> T {
    metric.expect("static metric definition is valid")
}

impl WatchdogMetrics {
    /// Registers into `live`, the registry encoded at every scrape.
    pub(super) fn register(live: &Registry) -> Self {
        let state = valid(IntGaugeVec::new(
            Opts::new(
                "emnify_data_stream_state",
                "Data Streamer stream state as emnify lists it: 1 for the current state, 0 for the others.",
            ),
            &["data_stream_id", "state"],
        ));
        let info = valid(IntGaugeVec::new(
            Opts::new(
                "emnify_data_stream_info",
                "A Data Streamer stream (always 1): its name, type (events, usage) and whether it is the \
                 exporter's (ours: its destination ends in --webhook.path, or it is in --watchdog.stream-ids).",
            ),
            &["data_stream_id", "name", "type", "ours"],
        ));
        let changed = valid(GaugeVec::new(
            Opts::new(
                "emnify_data_stream_state_change_timestamp_seconds",
                "Unix time the stream's state was first seen as it is now (at the latest the exporter's start).",
            ),
            &["data_stream_id"],
        ));
        let restarts = valid(IntCounterVec::new(
            Opts::new(
                "emnify_data_stream_restarts_total",
                "Restarts of a stream in Error the watchdog asked emnify for (--watchdog.restart), by outcome of \
                 the request (ok, failed).",
            ),
            &["data_stream_id", "outcome"],
        ));
        let up = valid(Gauge::new(
            "emnify_data_stream_watch_up",
            "Whether the watchdog's last reading of GET /api/v2/data_stream worked (1) or failed (0).",
        ));
        for collector in [
            Box::new(state.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(info.clone()),
            Box::new(changed.clone()),
            Box::new(restarts.clone()),
        ] {
            live.register(collector).expect("metric names are unique");
        }
        let status = Mutex::new(WatchdogStatus::default());
        WatchdogMetrics {
            state,
            info,
            changed,
            restarts,
            up,
            status,
            live: live.clone(),
            up_registered: std::sync::Once::new(),
        }
    }

    /// The watchdog runs.
    pub fn set_enabled(&self, restart: bool) {
        let mut status = self.lock();
        status.enabled = true;
        status.restart = restart;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WatchdogStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reading of the list worked; `streams` is every stream listed, as it is now.
    pub fn record_streams(&self, streams: Vec<StreamRow>) {
        self.set_up(1.0);
        let mut status = self.lock();
        status.failing = None;
        for gone in status.streams.iter().filter(|old| !streams.iter().any(|s| s.id == old.id)) {
            self.remove(gone);
        }
        for row in &streams {
            let id = row.id.to_string();
            if let Some(old) = status.streams.iter().find(|old| old.id == row.id) {
                if old.name != row.name || old.kind != row.kind || old.ours != row.ours {
                    let _ =
                        self.info.remove_label_values(&[&id, &label_name(&old.name), old.kind, bool_label(old.ours)]);
                }
            }
            for state in DATA_STREAM_STATES {
                self.state.with_label_values(&[&id, state]).set(i64::from(state == row.state));
            }
            self.info.with_label_values(&[&id, &label_name(&row.name), row.kind, bool_label(row.ours)]).set(1);
            self.changed.with_label_values(&[&id]).set(row.since_unix);
            if row.ours {
                for outcome in RESTART_OUTCOMES {
                    self.restarts.with_label_values(&[&id, outcome]);
                }
            }
        }
        status.streams = streams;
    }

    fn remove(&self, row: &StreamRow) {
        let id = row.id.to_string();
        for state in DATA_STREAM_STATES {
            let _ = self.state.remove_label_values(&[&id, state]);
        }
        let _ = self.info.remove_label_values(&[&id, &label_name(&row.name), row.kind, bool_label(row.ours)]);
        let _ = self.changed.remove_label_values(&[&id]);
    }

    /// A reading of the list failed; the streams keep their last known state.
    pub fn record_failure(&self, error: String) {
        self.set_up(0.0);
        self.lock().failing = Some(error);
    }

    /// `emnify_data_stream_watch_up`, served from the first reading on.
    fn set_up(&self, value: f64) {
        self.up.set(value);
        self.up_registered.call_once(|| {
            let _ = self.live.register(Box::new(self.up.clone()));
        });
    }

    /// A restart of stream `id` was asked for; `outcome` is one of [`RESTART_OUTCOMES`].
    pub fn record_restart(&self, id: u64, outcome: &str) {
        self.restarts.with_label_values(&[&id.to_string(), outcome]).inc();
    }

    pub fn status(&self) -> WatchdogStatus {
        self.lock().clone()
    }
}

fn bool_label(value: bool) -> &'static str {
    if value {
        "true"
    } else {
        "false"
    }
}

fn label_name(name: &str) -> String {
    name.chars().take(MAX_NAME_CHARS).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: u64, name: &str, state: &'static str) -> StreamRow {
        StreamRow { id, name: name.into(), kind: "events", state, ours: true, since_unix: 1.7e9 }
    }

    /// The series of `family` in `live`, as `labels=value` lines.
    fn series(live: &Registry, family: &str) -> Vec<String> {
        live.gather()
            .iter()
            .filter(|f| f.name() == family)
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| {
                        let labels: Vec<String> =
                            m.get_label().iter().map(|l| format!("{}={}", l.name(), l.value())).collect();
                        format!("{} {}", labels.join(","), m.get_gauge().get_value())
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn a_renamed_or_vanished_stream_leaves_no_stale_series() {
        let live = Registry::new();
        let metrics = WatchdogMetrics::register(&live);
        metrics.set_enabled(false);
        assert!(series(&live, "emnify_data_stream_watch_up").is_empty(), "no reading yet, no health series");
        metrics.record_streams(vec![row(1, "old name", "running"), row(2, "other", "error")]);
        assert_eq!(series(&live, "emnify_data_stream_watch_up"), [" 1"]);
        metrics.record_streams(vec![row(1, "new name", "paused")]);
        assert_eq!(
            series(&live, "emnify_data_stream_info"),
            ["data_stream_id=1,name=new name,ours=true,type=events 1"]
        );
        let states = series(&live, "emnify_data_stream_state");
        assert_eq!(states.len(), DATA_STREAM_STATES.len(), "one state set, stream 2's removed: {states:?}");
        assert!(states.contains(&"data_stream_id=1,state=paused 1".to_string()), "{states:?}");
        assert_eq!(series(&live, "emnify_data_stream_state_change_timestamp_seconds").len(), 1);
        metrics.record_failure("refused".into());
        assert_eq!(series(&live, "emnify_data_stream_watch_up"), [" 0"]);
        assert_eq!(metrics.status().streams.len(), 1, "the last known states stay");
    }
}
