//! Pushes from emnify's Data Streamer: requests answered, records received, pushes refused, the last one accepted.

use prometheus::{Gauge, IntCounter, IntCounterVec};

use super::labels::{zero_series, PUSH_REJECT_REASONS};
use super::registrar::Registrar;

pub struct PushMetrics {
    requests: IntCounterVec,
    events: IntCounter,
    rejected: IntCounterVec,
    last_push: Gauge,
    /// The last push refused: when, and why (for the landing page).
    last_rejected: std::sync::Mutex<Option<(f64, String)>>,
}

impl PushMetrics {
    /// Registers the push metrics, with every reject reason at zero.
    pub(super) fn register(reg: &mut Registrar<'_>) -> Self {
        let requests = reg.counter_vec(
            "emnify_push_requests_total",
            "Requests to the Data Streamer receiver, by HTTP status code answered.",
            &["code"],
        );
        let events = reg.counter(
            "emnify_push_events_total",
            "Event records received by push (Data Streamer), new or not; counted ones are in emnify_events_total.",
        );
        let rejected = reg.counter_vec(
            "emnify_push_rejected_total",
            "Pushes refused as a whole, by reason; nothing of them was counted.",
            &["reason"],
        );
        zero_series(&rejected, &PUSH_REJECT_REASONS);
        let last_push = reg.gauge("emnify_last_push_timestamp_seconds", "Unix time of the last accepted push.");
        PushMetrics { requests, events, rejected, last_push, last_rejected: std::sync::Mutex::new(None) }
    }

    /// A push request answered with `code`.
    pub fn record_request(&self, code: u16) {
        self.requests.with_label_values(&[&code.to_string()]).inc();
    }

    /// A push accepted with `records` event records in it.
    pub fn record_accepted(&self, records: u64) {
        self.events.inc_by(records);
        self.last_push.set(crate::timefmt::now_millis() as f64 / 1000.0);
    }

    /// A push refused as a whole; `reason` is one of [`PUSH_REJECT_REASONS`].
    pub fn record_rejected(&self, reason: &str) {
        self.rejected.with_label_values(&[reason]).inc();
        let now = crate::timefmt::now_millis() as f64 / 1000.0;
        *self.last_rejected.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((now, reason.to_string()));
    }

    /// When the last push was accepted, if one was.
    pub(super) fn last_push_unix(&self) -> Option<f64> {
        let last = self.last_push.get();
        (last > 0.0).then_some(last)
    }

    /// When the last push was refused, and why, if one was.
    pub(super) fn last_rejected(&self) -> Option<(f64, String)> {
        self.last_rejected.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}
