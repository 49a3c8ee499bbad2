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
use crate::rng::SplitMix64;
use crate::secret::Secret;
use crate::server::{serve, ServerState};
use crate::simulator::{Simulator, SimulatorConfig};
use crate::state::StateStore;
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

    let (api_url, token) = if config.demo {
        let sim = Simulator::new(SimulatorConfig::demo());
        let sim_listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(AppError::Demo)?;
        let sim_address = sim_listener.local_addr().map_err(AppError::Demo)?;
        tokio::spawn(sim.clone().serve(sim_listener, shutdown.clone()));
        tokio::spawn(sim.clone().run_generator(5.0, Duration::from_secs(45), shutdown.clone()));
        tracing::info!(
            simulator = %format!("http://{sim_address}"),
            truth = %format!("http://{sim_address}/simulator/truth"),
            "demo mode: polling the built-in emnify API simulator"
        );
        // The simulator's own token: a real one from the environment is never sent to it.
        let token = TokenSource::Value(Secret::new(sim.application_token()));
        (format!("http://{sim_address}"), token)
    } else {
        let token = config.token.clone().ok_or(AppError::NoToken)?;
        (config.api_url.clone(), token)
    };

    let client = Client::new(
        ClientSettings {
            api_url: api_url.clone(),
            token,
            request_timeout: config.request_timeout,
            min_request_interval: config.min_request_interval,
            max_attempts: REQUEST_ATTEMPTS,
            retry_base: Duration::from_millis(500),
        },
        metrics.clone(),
    )?;
    let mut poller = Poller::new(
        client,
        metrics.clone(),
        PollerSettings {
            page_size: config.page_size,
            overlap: config.overlap,
            lookback: config.lookback,
            max_remembered_ids: config.max_remembered_ids,
        },
        now_millis(),
    );
    if let Some(path) = &config.state_file {
        poller = poller.with_state(StateStore::new(path, &api_url));
    }
    tracing::info!(
        address = %address,
        metrics_path = %config.telemetry_path,
        poll_interval = %humantime::format_duration(config.poll_interval),
        version = crate::VERSION,
        "emnify exporter listening"
    );
    on_listening(address);
    let security = match &config.web_config_file {
        Some(path) => Some(Arc::new(WebSecurity::new(path.clone(), WebConfig::load(path)?))),
        None => None,
    };
    let state = Arc::new(ServerState { metrics, telemetry_path: config.telemetry_path.clone(), security });
    let server = tokio::spawn(serve(listener, state, shutdown.clone()));
    run_poll_loop(poller, config.poll_interval, shutdown).await;
    let _ = server.await;
    tracing::info!("emnify exporter stopped");
    Ok(())
}

/// Polls every `interval`; after a failure, retries sooner with jittered exponential backoff.
pub async fn run_poll_loop(mut poller: Poller, interval: Duration, shutdown: CancellationToken) {
    poll_until_cancelled(&mut poller, interval, &shutdown).await;
    // Whatever was counted before the stop is saved (with a state file) and published.
    poller.checkpoint();
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
