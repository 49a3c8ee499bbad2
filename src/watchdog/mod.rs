//! The Data Streamer watchdog (push and both modes): reads emnify's stream list at an interval, shows
//! each stream's state on `/metrics` and the landing page, and (only with `--watchdog.restart`)
//! restarts a stream of the exporter's that is in Error.
//!
//! A webhook stream whose destination was unreachable long enough exhausts its retries, goes to Error
//! and stays there until restarted; nothing arrives and nothing says why. The decisions are in
//! [`plan`] (no I/O, no clock); this shell reads the list, keeps the metrics and sends the restarts.

mod plan;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::emnify::{ApiError, Client, ClientSettings, TokenSource};
use crate::metrics::{Metrics, StreamRow};
pub use plan::{decode_list, Observation, Plan, PlanSettings, StreamKind, StreamState, StreamView};

/// Default time between two readings of the list: one request a minute, 0.25% of emnify's 2,000
/// requests per 5 minutes.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Attempts per watchdog request: the next reading is the retry, so one more is enough for a blip.
pub const REQUEST_ATTEMPTS: u32 = 2;

/// What the watchdog reads with, how often, and what it does.
#[derive(Debug, Clone)]
pub struct WatchdogSettings {
    pub api_url: String,
    pub token: TokenSource,
    pub interval: Duration,
    pub request_timeout: Duration,
    /// The request budget's share (see [`crate::emnify::budget`]); `None`: no budget.
    pub request_budget_share: Option<f64>,
    pub plan: PlanSettings,
}

/// The watchdog, set up; [`Watchdog::run`] runs it.
pub struct Watchdog {
    client: Client,
    plan: Plan,
    metrics: Arc<Metrics>,
    interval: Duration,
    started: Instant,
    /// The last reading failed (its error is logged once, then again when it changes).
    last_error: Option<String>,
}

impl Watchdog {
    /// `polling`: the poller's client in both mode (a [`Client::sibling`] of it, with
    /// [`REQUEST_ATTEMPTS`]), so the watchdog's requests come out of the same budget and JWT; in push
    /// mode the watchdog has a client of its own.
    pub fn new(
        settings: WatchdogSettings,
        metrics: Arc<Metrics>,
        polling: Option<Client>,
    ) -> Result<Watchdog, ApiError> {
        let client = match polling {
            Some(client) => client,
            None => Client::new(
                ClientSettings {
                    api_url: settings.api_url,
                    token: settings.token,
                    request_timeout: settings.request_timeout,
                    min_request_interval: Duration::ZERO,
                    request_budget_share: settings.request_budget_share,
                    max_attempts: REQUEST_ATTEMPTS,
                    retry_base: Duration::from_millis(500),
                },
                metrics.clone(),
            )?,
        };
        metrics.watchdog.set_enabled(settings.plan.restart);
        Ok(Watchdog {
            client,
            plan: Plan::new(settings.plan),
            metrics,
            interval: settings.interval,
            started: Instant::now(),
            last_error: None,
        })
    }

    /// Reads the list once, updates the metrics, and restarts what the plan says to.
    pub async fn check(&mut self) {
        let list = match self.client.data_stream_list().await {
            Ok(body) => decode_list(&body).map_err(|message| format!("GET /api/v2/data_stream: {message}")),
            Err(err) => Err(describe(&err)),
        };
        let list = match list {
            Ok(list) => list,
            Err(error) => {
                if self.last_error.as_ref() != Some(&error) {
                    tracing::warn!(error = %error, "cannot read emnify's data stream list; the watchdog shows the last states it read");
                }
                self.metrics.watchdog.record_failure(error.clone());
                self.last_error = Some(error);
                return;
            }
        };
        self.last_error = None;
        let now = self.started.elapsed();
        let observation = self.plan.observe(now, list);
        for id in &observation.changed {
            if let Some((stream, true, _)) = self.plan.stream(*id) {
                log_state(stream);
            }
        }
        self.publish(now);
        for id in observation.restart {
            match self.client.restart_data_stream(id).await {
                Ok(()) => {
                    self.metrics.watchdog.record_restart(id, "ok");
                    tracing::warn!(data_stream = id, "restarted the data stream in Error (--watchdog.restart)");
                }
                Err(err) => {
                    self.metrics.watchdog.record_restart(id, "failed");
                    let next =
                        self.plan.next_restart(id).map(|at| humantime::format_duration(secs(at.saturating_sub(now))));
                    tracing::error!(data_stream = id, error = %describe(&err), next_attempt_in = next.map(|n| n.to_string()), "restarting the data stream failed");
                }
            }
        }
    }

    /// The plan's streams into the metrics, their change times on the wall clock.
    fn publish(&self, now: Duration) {
        let wall = crate::timefmt::now_millis() as f64 / 1000.0;
        let rows = self
            .plan
            .streams()
            .map(|(stream, ours, since)| StreamRow {
                id: stream.id,
                name: stream.name.clone(),
                kind: stream.kind.label(),
                state: stream.state.label(),
                ours,
                since_unix: wall - now.saturating_sub(since).as_secs_f64(),
            })
            .collect();
        self.metrics.watchdog.record_streams(rows);
    }

    /// Reads the list now and then every interval, until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = self.check() => {}
                () = shutdown.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

/// The watchdog as the start-up line tells it where pushes are received (in poll mode there is no
/// stream to watch, and the line does not mention it): on and whether it restarts, or off and why.
pub fn describe_settings(settings: Option<&WatchdogSettings>, receives: bool) -> Option<&'static str> {
    match settings {
        Some(s) if s.plan.restart => Some("on, restarts streams in Error"),
        Some(_) => Some("on, watch only"),
        None if receives => Some("off (no application token, or --watchdog.interval=0s)"),
        None => None,
    }
}

/// A state change of a stream of the exporter's, at the level it deserves.
fn log_state(stream: &StreamView) {
    let (id, name, state) = (stream.id, stream.name.as_str(), stream.state.label());
    match stream.state {
        StreamState::Error => tracing::warn!(
            data_stream = id,
            name,
            state,
            "the Data Streamer stream is in Error: it sends nothing until restarted (--watchdog.restart, or the Portal)"
        ),
        StreamState::Paused => tracing::warn!(data_stream = id, name, state, "the Data Streamer stream is paused"),
        _ => tracing::info!(data_stream = id, name, state, "Data Streamer stream state"),
    }
}

/// An error as the watchdog reports it: a refusal names what the token needs.
fn describe(err: &ApiError) -> String {
    match err {
        ApiError::Status { status: 403, .. } => format!(
            "{err}: the application token may not read (or, to restart, change) data streams (it needs the Integrations / Data Streamer \
             permission of its role)"
        ),
        _ => err.to_string(),
    }
}

/// Whole seconds, for a log line.
fn secs(d: Duration) -> Duration {
    Duration::from_secs(d.as_secs())
}
