//! Polling the emnify API: whether the last poll worked, how long polls take, why they fail, and each request.

use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge};

use super::labels::{zero_series, POLL_ERROR_REASONS};
use super::registrar::Registrar;

pub struct PollingMetrics {
    up: IntGauge,
    last_success: Gauge,
    duration: Histogram,
    errors: IntCounterVec,
    api_requests: IntCounterVec,
    clock_offset: Gauge,
    clock_ignored: IntCounterVec,
    budget_factor: Gauge,
    probes: IntCounter,
    rereads: IntCounter,
    walks_repeated: IntCounter,
    sort_honoured: IntGauge,
    /// How the last poll ended, and the last failure, for the landing page.
    last_poll: std::sync::Mutex<LastPoll>,
}

/// How polls went lately, for the landing page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LastPoll {
    /// When the last poll ended, and whether it succeeded.
    pub finished: Option<(f64, bool)>,
    /// The last failure, even when polls succeed again since: when, its reason (one of
    /// [`POLL_ERROR_REASONS`]) and the error as logged.
    pub error: Option<(f64, String, String)>,
}

impl PollingMetrics {
    /// Registers the polling metrics, with every poll error reason at zero.
    pub(super) fn register(reg: &mut Registrar<'_>) -> Self {
        let up = reg.int_gauge("emnify_up", "1 if the last poll of the emnify API fully succeeded, else 0.");
        let last_success = reg
            .gauge("emnify_last_poll_success_timestamp_seconds", "Unix time the last fully successful poll finished.");
        let duration = reg.histogram(
            HistogramOpts::new("emnify_poll_duration_seconds", "Time one poll of the emnify API took.")
                .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0]),
        );
        let errors = reg.counter_vec("emnify_poll_errors_total", "Failed polls, by reason.", &["reason"]);
        zero_series(&errors, &POLL_ERROR_REASONS);
        let api_requests = reg.counter_vec(
            "emnify_api_requests_total",
            "Requests made to the emnify API, by endpoint and HTTP status code (or timeout/error).",
            &["endpoint", "code"],
        );
        let clock_offset = reg.gauge(
            "emnify_clock_offset_seconds",
            "emnify's clock (the Date header of its answers) minus this host's clock. Windows and the start of \
             counting follow emnify's clock, so the host's need not be synchronised.",
        );
        let clock_ignored = reg.counter_vec(
            "emnify_clock_readings_ignored_total",
            "Date headers of emnify's answers not used for its clock: outlier (disagrees with the estimate, not \
             yet confirmed by agreeing readings over a minute) or implausible (before 2020 or after 2099).",
            &["reason"],
        );
        zero_series(&clock_ignored, &["outlier", "implausible"]);
        let budget_factor = reg.gauge(
            "emnify_api_request_budget_factor",
            "How much of its request budget (--emnify.request-budget-share of emnify's rate limits) the exporter \
             uses now: 1 normally; each 429 from emnify halves it (down to 0.1), each answered request wins \
             back 0.02.",
        );
        budget_factor.set(1.0);
        let probes = reg.counter(
            "emnify_poll_probes_total",
            "Requests that learned how many events the polled query holds: the first page of each walk of a \
             query read before, and the counts of a move of its start.",
        );
        let rereads = reg.counter(
            "emnify_poll_rereads_total",
            "Walks that went on past their first page because emnify's count showed events not yet read \
             (new ones, late ones included).",
        );
        let walks_repeated = reg.counter(
            "emnify_poll_walks_repeated_total",
            "Walks read again from the newest end because events arrived while their pages were read.",
        );
        let sort_honoured = reg.int_gauge(
            "emnify_poll_sort_honoured",
            "1 if emnify answers sort=id in ascending ids as asked, 0 if it answers highest ids first (pages \
             are then walked from the first one, which costs more requests; counting is not affected).",
        );
        sort_honoured.set(1);
        PollingMetrics {
            up,
            last_success,
            duration,
            errors,
            api_requests,
            clock_offset,
            clock_ignored,
            budget_factor,
            probes,
            rereads,
            walks_repeated,
            sort_honoured,
            last_poll: std::sync::Mutex::new(LastPoll::default()),
        }
    }

    pub fn record_success(&self, duration_secs: f64, finished_unix: f64) {
        self.duration.observe(duration_secs);
        self.up.set(1);
        self.last_success.set(finished_unix);
        self.last_poll_mut().finished = Some((finished_unix, true));
    }

    /// A failed poll; `reason` is one of [`POLL_ERROR_REASONS`], `message` the error as logged (it never
    /// holds the token).
    pub fn record_failure(&self, duration_secs: f64, reason: &str, message: &str) {
        self.duration.observe(duration_secs);
        self.up.set(0);
        self.errors.with_label_values(&[reason]).inc();
        let now = crate::timefmt::now_millis() as f64 / 1000.0;
        let mut last = self.last_poll_mut();
        last.finished = Some((now, false));
        last.error = Some((now, reason.to_string(), message.to_string()));
    }

    fn last_poll_mut(&self) -> std::sync::MutexGuard<'_, LastPoll> {
        self.last_poll.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How polls went lately.
    pub(super) fn last_poll(&self) -> LastPoll {
        self.last_poll_mut().clone()
    }

    /// One request to the emnify API; `code` is the HTTP status or `timeout`/`error`.
    pub fn record_api_request(&self, endpoint: &str, code: &str) {
        self.api_requests.with_label_values(&[endpoint, code]).inc();
    }

    /// What one poll's walk cost (see `crate::poller::PollReport`).
    pub fn record_poll_stats(&self, probes: u32, rereads: u32, repeated: bool) {
        self.probes.inc_by(u64::from(probes));
        self.rereads.inc_by(u64::from(rereads));
        if repeated {
            self.walks_repeated.inc();
        }
    }

    /// Whether emnify sorts by `-id` as asked.
    pub fn set_sort_honoured(&self, honoured: bool) {
        self.sort_honoured.set(i64::from(honoured));
    }

    /// The request budget's adaptive factor after the last answer.
    pub fn set_budget_factor(&self, factor: f64) {
        self.budget_factor.set(factor);
    }

    /// Brings `emnify_clock_readings_ignored_total` up to the clock's own totals.
    pub fn record_clock_ignored(&self, outlier: u64, implausible: u64) {
        for (reason, total) in [("outlier", outlier), ("implausible", implausible)] {
            let counter = self.clock_ignored.with_label_values(&[reason]);
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    /// emnify's clock minus the host's, as last measured.
    pub fn set_clock_offset(&self, seconds: f64) {
        self.clock_offset.set(seconds);
    }

    /// Marks the exporter up without polling (push-only mode: nothing to poll).
    pub fn set_up(&self, up: bool) {
        self.up.set(i64::from(up));
    }

    pub(super) fn is_up(&self) -> bool {
        self.up.get() == 1
    }

    /// When the last fully successful poll finished, if there was one.
    pub(super) fn last_success_unix(&self) -> Option<f64> {
        let last = self.last_success.get();
        (last > 0.0).then_some(last)
    }
}
