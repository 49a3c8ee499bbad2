//! Wires the parts together and runs them until shutdown: simulator (demo only), poller loop, HTTP server.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::emnify::{ApiError, Client, ClientSettings, TokenSource};
use crate::metrics::Metrics;
use crate::poller::{PollOutcome, Poller, PollerSettings};
use crate::receiver::{self, Receiver};
use crate::rng::SplitMix64;
use crate::secret::Secret;
use crate::server::{serve, ServerState};
use crate::simulator::{Simulator, SimulatorConfig, StreamerConfig};
use crate::state::StateStore;
use crate::tally::{lock, Tally};
use crate::timefmt::now_millis;
use crate::webconfig::{WebConfig, WebSecurity};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot listen on --web.listen-address {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("cannot start the demo simulator: {0}")]
    Demo(std::io::Error),
    #[error("no emnify application token: set EMNIFY_APPLICATION_TOKEN or --emnify.application-token-file")]
    NoToken,
    #[error(transparent)]
    WebConfig(#[from] crate::webconfig::WebConfigError),
    #[error("cannot create the emnify client: {0}")]
    Client(#[from] ApiError),
}

/// Attempts per emnify request before a poll gives up and the loop backs off.
const REQUEST_ATTEMPTS: u32 = 3;

/// Runs the exporter until `shutdown` is cancelled. `on_listening` learns the bound address (port 0 in tests).
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_listening: impl FnOnce(SocketAddr),
) -> Result<(), AppError> {
    let metrics = Arc::new(Metrics::new());
    let listener = TcpListener::bind(config.listen_address)
        .await
        .map_err(|source| AppError::Listen { address: config.listen_address, source })?;
    let address =
        listener.local_addr().map_err(|source| AppError::Listen { address: config.listen_address, source })?;

    let security = match &config.web_config_file {
        Some(path) => Some(Arc::new(WebSecurity::new(path.clone(), WebConfig::load(path)?))),
        None => None,
    };

    // In the demo, the built-in simulator stands in for emnify: its API for polling, its streamer for pushes.
    let demo_api = if config.demo { Some(start_demo_simulator(&config, address, &shutdown).await?) } else { None };
    let api_url = demo_api.as_ref().map_or_else(|| config.api_url.clone(), |(url, _)| url.clone());

    let lookback = i64::try_from(config.lookback.as_millis()).unwrap_or(i64::MAX);
    let tally = Tally::new(metrics.clone(), now_millis(), lookback, config.max_remembered_ids).shared();
    if let Some(path) = &config.state_file {
        lock(&tally).use_state(StateStore::new(path, &api_url));
    }
    let receiver =
        config.receiver.clone().map(|settings| Arc::new(Receiver::new(settings, tally.clone(), metrics.clone())));
    let poller = if config.ingest_mode.polls() {
        // The simulator's own token in the demo: a real one from the environment is never sent to it.
        let token = match demo_api {
            Some((_, token)) => token,
            None => config.token.clone().ok_or(AppError::NoToken)?,
        };
        let settings = ClientSettings {
            api_url: api_url.clone(),
            token,
            request_timeout: config.request_timeout,
            min_request_interval: config.min_request_interval,
            max_attempts: REQUEST_ATTEMPTS,
            retry_base: Duration::from_millis(500),
        };
        let poller_settings = PollerSettings {
            page_size: config.page_size,
            overlap: config.overlap,
            lookback: config.lookback,
            max_remembered_ids: config.max_remembered_ids,
        };
        Some(Poller::with_tally(
            Client::new(settings, metrics.clone())?,
            metrics.clone(),
            poller_settings,
            tally.clone(),
        ))
    } else {
        // Nothing to poll: the exporter is up as long as it receives.
        metrics.polling.set_up(true);
        lock(&tally).checkpoint();
        None
    };
    if receiver.is_some() {
        // Without a poller, this also keeps the dedup memory to the overlap.
        let forget_after = poller.is_none().then_some(config.overlap);
        tokio::spawn(receiver::maintain(tally.clone(), forget_after, Duration::from_millis(100), shutdown.clone()));
    }

    tracing::info!(
        address = %address,
        metrics_path = %config.telemetry_path,
        mode = ?config.ingest_mode,
        webhook_path = receiver.as_ref().map(|r| r.path().to_string()),
        poll_interval = %humantime::format_duration(config.poll_interval),
        version = crate::VERSION,
        "emnify exporter listening"
    );
    on_listening(address);
    let state = Arc::new(ServerState { metrics, telemetry_path: config.telemetry_path.clone(), security, receiver });
    let server = tokio::spawn(serve(listener, state, shutdown.clone()));
    match poller {
        Some(poller) => run_poll_loop(poller, config.poll_interval, shutdown).await,
        None => {
            shutdown.cancelled().await;
            lock(&tally).checkpoint();
        }
    }
    let _ = server.await;
    tracing::info!("emnify exporter stopped");
    Ok(())
}

/// Starts the demo's simulator on a loopback port (and, when the exporter receives pushes, its
/// Data Streamer aimed at the exporter's own webhook); returns its API URL and token.
async fn start_demo_simulator(
    config: &Config,
    exporter: SocketAddr,
    shutdown: &CancellationToken,
) -> Result<(String, TokenSource), AppError> {
    let sim = Simulator::new(SimulatorConfig::demo());
    let sim_listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(AppError::Demo)?;
    let sim_address = sim_listener.local_addr().map_err(AppError::Demo)?;
    tokio::spawn(sim.clone().serve(sim_listener, shutdown.clone()));
    tokio::spawn(sim.clone().run_generator(5.0, Duration::from_secs(45), shutdown.clone()));
    if let Some(receiver) = &config.receiver {
        let mut headers = Vec::new();
        if let Some((name, secret)) = &receiver.secret_header {
            headers.push((name.to_string(), secret.expose().to_string()));
        }
        if let Some((user, password)) = &receiver.basic_auth {
            headers.push(("authorization".to_string(), receiver::basic_authorization(user, password)));
        }
        let host = if exporter.ip().is_unspecified() { "127.0.0.1".to_string() } else { exporter.ip().to_string() };
        let streamer = StreamerConfig {
            url: format!("http://{host}:{}{}", exporter.port(), receiver.path),
            batch_size: 20,
            headers,
            duplicate_chance: 0.05,
            idle: Duration::from_millis(500),
        };
        tokio::spawn(sim.clone().run_streamer(streamer, shutdown.clone()));
    }
    tracing::info!(
        simulator = %format!("http://{sim_address}"),
        truth = %format!("http://{sim_address}/simulator/truth"),
        mode = ?config.ingest_mode,
        "demo mode: the built-in emnify API simulator stands in for emnify"
    );
    Ok((format!("http://{sim_address}"), TokenSource::Value(Secret::new(sim.application_token()))))
}

/// Polls every `interval`; after a failure, retries sooner with jittered exponential backoff.
pub async fn run_poll_loop(mut poller: Poller, interval: Duration, shutdown: CancellationToken) {
    poll_until_cancelled(&mut poller, interval, &shutdown).await;
    // Whatever was counted before the stop is saved (with a state file) and published.
    poller.checkpoint().await;
}

async fn poll_until_cancelled(poller: &mut Poller, interval: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        _ = poller.load_event_types() => {}
        () = shutdown.cancelled() => return,
    }
    let mut failures = 0u32;
    let mut jitter = SplitMix64::from_time();
    loop {
        let outcome = tokio::select! {
            outcome = poller.poll_once() => outcome,
            () = shutdown.cancelled() => return,
        };
        let wait = match &outcome {
            PollOutcome::Success(_) => {
                failures = 0;
                interval
            }
            PollOutcome::Failed { error, .. } => {
                failures += 1;
                retry_delay(failures, interval, error, jitter.unit())
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Wait after the `failures`-th failed poll in a row; `unit` is a random number in `[0, 1)`.
///
/// Transient errors retry within the poll interval; a rejected token backs off to
/// five minutes so a revoked token never hammers emnify's login limit.
pub fn retry_delay(failures: u32, interval: Duration, error: &ApiError, unit: f64) -> Duration {
    let cap = if error.reason() == "auth" { interval.max(Duration::from_secs(300)) } else { interval };
    let exp = Duration::from_secs(1).saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    let wait = exp.min(cap).mul_f64(0.75 + 0.5 * unit);
    wait.max(error.retry_after().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let err = ApiError::Status { endpoint: "event", status: 503 };
        let minute = Duration::from_secs(60);
        assert_eq!(retry_delay(1, minute, &err, 0.5), Duration::from_secs(1));
        assert_eq!(retry_delay(3, minute, &err, 0.5), Duration::from_secs(4));
        assert_eq!(retry_delay(30, minute, &err, 0.5), minute);
        let auth = ApiError::Auth { status: 401 };
        assert_eq!(retry_delay(30, minute, &auth, 0.5), Duration::from_secs(300));
        let limited = ApiError::RateLimited { endpoint: "event", retry_after: Some(Duration::from_secs(90)) };
        assert_eq!(retry_delay(1, minute, &limited, 0.0), Duration::from_secs(90));
    }
}
