//! The state file's health, read fresh at every scrape: a failing save freezes the published counts
//! (scrapes never see what a restart would take back), so its own signal must not wait for a save.

use std::sync::{Mutex, PoisonError};

use prometheus::{Gauge, IntCounter, Registry};

/// How saving the state file goes.
pub struct StateMetrics {
    save_failures: IntCounter,
    last_save_success: Gauge,
    /// The last save's error while saves fail, for the landing page.
    failing: Mutex<Option<String>>,
}

/// The state file's health as the landing page shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum StateHealth {
    /// No `--state.file`.
    NotUsed,
    /// The last save worked, at this Unix time (`None` before the first).
    Saved(Option<f64>),
    /// The last save failed with this error; counts stay unpublished until a save works.
    Failing { error: String, last_success_unix: Option<f64> },
}

impl StateMetrics {
    /// Registers into `live`, the registry encoded at every scrape (not the published one).
    pub(super) fn register(live: &Registry) -> Self {
        let save_failures = IntCounter::new(
            "emnify_state_save_failures_total",
            "Failed saves of --state.file (disk full, read-only, removed directory). While saves fail, the \
             published counts stay as of the last good save.",
        )
        .expect("static metric definition is valid");
        let last_save_success = Gauge::new(
            "emnify_state_last_save_success_timestamp_seconds",
            "Unix time of the last successful save of --state.file (0 before the first, or without one).",
        )
        .expect("static metric definition is valid");
        live.register(Box::new(save_failures.clone())).expect("metric names are unique");
        live.register(Box::new(last_save_success.clone())).expect("metric names are unique");
        StateMetrics { save_failures, last_save_success, failing: Mutex::new(None) }
    }

    pub fn record_save_success(&self, unix_secs: f64) {
        self.last_save_success.set(unix_secs);
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// A failed save; `error` names the path and the cause (never a secret).
    pub fn record_save_failure(&self, error: &str) {
        self.save_failures.inc();
        *self.failing.lock().unwrap_or_else(PoisonError::into_inner) = Some(error.to_string());
    }

    pub(super) fn health(&self, used: bool) -> StateHealth {
        let last = self.last_save_success.get();
        let last = (last > 0.0).then_some(last);
        match self.failing.lock().unwrap_or_else(PoisonError::into_inner).clone() {
            Some(error) => StateHealth::Failing { error, last_success_unix: last },
            None if used => StateHealth::Saved(last),
            None => StateHealth::NotUsed,
        }
    }
}
