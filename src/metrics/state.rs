//! The state file's health, read fresh at every scrape: a failing save freezes the published counts
//! (scrapes never see what a restart would take back), so its own signal must not wait for a save.

use std::sync::{Mutex, PoisonError};

use prometheus::{Gauge, IntCounter, IntGaugeVec, Opts, Registry};

/// The `reason`s of `emnify_state_set_aside`, each a series from the start (0 until it happens).
pub const SET_ASIDE_REASONS: [&str; 3] = ["corrupt", "other_version", "other_api"];

/// How saving the state file goes, and whether the one found at start-up had to be set aside.
pub struct StateMetrics {
    save_failures: IntCounter,
    last_save_success: Gauge,
    /// The last save's error while saves fail, for the landing page.
    failing: Mutex<Option<String>>,
    set_aside: IntGaugeVec,
    set_aside_at: Gauge,
    /// The file set aside at start-up, for the landing page.
    set_aside_note: Mutex<Option<StateSetAside>>,
}

/// A state file of ours that could not be used at start-up and was set aside: the counters restarted
/// from zero.
#[derive(Debug, Clone, PartialEq)]
pub struct StateSetAside {
    /// One of [`SET_ASIDE_REASONS`].
    pub reason: &'static str,
    /// Why the file could not be used.
    pub error: String,
    /// Where it was moved, or why it could not be.
    pub moved_to: Result<String, String>,
    pub at_unix: f64,
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
        let set_aside = IntGaugeVec::new(
            Opts::new(
                "emnify_state_set_aside",
                "1 if the --state.file found at start-up was the exporter's own but could not be used, and was \
                 moved aside as *.rejected: every counter restarted from zero (reason: corrupt, other_version, \
                 other_api); else 0.",
            ),
            &["reason"],
        )
        .expect("static metric definition is valid");
        let set_aside_at = Gauge::new(
            "emnify_state_set_aside_timestamp_seconds",
            "Unix time the --state.file was set aside at start-up (0 if it was not).",
        )
        .expect("static metric definition is valid");
        for reason in SET_ASIDE_REASONS {
            set_aside.with_label_values(&[reason]).set(0);
        }
        live.register(Box::new(save_failures.clone())).expect("metric names are unique");
        live.register(Box::new(last_save_success.clone())).expect("metric names are unique");
        live.register(Box::new(set_aside.clone())).expect("metric names are unique");
        live.register(Box::new(set_aside_at.clone())).expect("metric names are unique");
        StateMetrics {
            save_failures,
            last_save_success,
            failing: Mutex::new(None),
            set_aside,
            set_aside_at,
            set_aside_note: Mutex::new(None),
        }
    }

    /// The state file found at start-up was set aside for `reason` (one of [`SET_ASIDE_REASONS`]);
    /// `moved_to` is where it went, or why it could not be moved.
    pub fn record_set_aside(
        &self,
        reason: &'static str,
        error: &str,
        moved_to: Result<String, String>,
        unix_secs: f64,
    ) {
        debug_assert!(SET_ASIDE_REASONS.contains(&reason), "{reason} is not a set-aside reason");
        self.set_aside.with_label_values(&[reason]).set(1);
        self.set_aside_at.set(unix_secs);
        *self.set_aside_note.lock().unwrap_or_else(PoisonError::into_inner) =
            Some(StateSetAside { reason, error: error.to_string(), moved_to, at_unix: unix_secs });
    }

    /// The state file set aside at start-up, if one was.
    pub fn set_aside(&self) -> Option<StateSetAside> {
        self.set_aside_note.lock().unwrap_or_else(PoisonError::into_inner).clone()
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
