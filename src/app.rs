//! Wires the parts together and runs them until shutdown: simulator (demo only), poller loop, HTTP server.
//!
//! [`App::build`] binds the listener and sets everything up; [`App::local_addr`] tells the bound
//! address (port 0 in tests); [`App::run`] runs until the shutdown token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, PollConfig};
use crate::emnify::{ApiError, Client, ClientSettings};
use crate::metrics::Metrics;
use crate::poller::{run_poll_loop, Poller};
use crate::receiver::{self, Receiver, ReceiverSettings};
use crate::rng::SplitMix64;
use crate::routes::{serve, About, ServerState};
use crate::secret::Secret;
use crate::simulator::{Simulator, SimulatorConfig, StreamerConfig};
use crate::state::StateStore;
use crate::supervise::{shutdown_on_signal, Supervisor, TaskFailed};
use crate::tally::{SharedTally, Tally};
use crate::watchdog::Watchdog;
use crate::webconfig::{WebConfig, WebSecurity};

/// Why the exporter did not start, or stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("--web.listen-address {address}: cannot listen: {source}{}", listen_hint(source))]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("cannot start the demo simulator: {0}")]
    Demo(std::io::Error),
    #[error(transparent)]
    WebConfig(#[from] crate::webconfig::WebConfigError),
    #[error("--state.file: {0}")]
    State(crate::state::StateError),
    #[error("--state.file: cannot create the directory {dir}: {source}; create it, writable by the user the exporter runs as: sudo install -d -o \"$USER\" {dir}")]
    StateDirectory { dir: String, source: std::io::Error },
    #[error("cannot create the emnify client: {0}")]
    Client(#[from] ApiError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

impl AppError {
    /// The flag whose value caused the error, for telling where that value came from.
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            AppError::Listen { .. } => Some("--web.listen-address"),
            AppError::WebConfig(_) => Some("--web.config.file"),
            AppError::State(_) | AppError::StateDirectory { .. } => Some("--state.file"),
            AppError::Demo(_) | AppError::Client(_) | AppError::Task(_) => None,
        }
    }

    /// 2 for what stops the exporter at start-up and the operator fixes in its settings or on the host
    /// (as for a wrong flag), 1 for a failure while it ran.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Task(_) => 1,
            _ => 2,
        }
    }
}

/// What to do about the usual reasons a port cannot be had.
fn listen_hint(err: &std::io::Error) -> &'static str {
    match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            " (another process holds the port, perhaps another exporter: stop it, or choose another port with \
             --web.listen-address)"
        }
        std::io::ErrorKind::PermissionDenied => " (ports below 1024 need privileges: choose a port above 1023)",
        std::io::ErrorKind::AddrNotAvailable => " (no interface of this host has that address: use :PORT for all)",
        _ => "",
    }
}

/// Attempts per emnify request before a poll gives up and the loop backs off.
const REQUEST_ATTEMPTS: u32 = 3;

/// The exporter, set up and bound, not yet running.
pub struct App {
    config: Config,
    listener: TcpListener,
    address: SocketAddr,
    metrics: Arc<Metrics>,
    tally: SharedTally,
    security: Option<Arc<WebSecurity>>,
    receiver: Option<Arc<Receiver>>,
    poller: Option<(Poller, Duration)>,
    demo: Option<Demo>,
    watchdog: Option<Watchdog>,
}

impl App {
    /// Binds the listener and sets up counting, the sources and (in the demo) the simulator.
    pub async fn build(mut config: Config) -> Result<App, AppError> {
        if let Some(path) = &config.state_file {
            // Before the port is taken: a path that cannot hold the state fails now, not as counts
            // that silently stop moving.
            create_state_directory(path)?;
            StateStore::new(path, &config.api_url).check().map_err(AppError::State)?;
        }
        let metrics = Arc::new(Metrics::with_limits(config.series));
        let security = match &config.web_config_file {
            Some(path) => Some(Arc::new(WebSecurity::new(path.clone(), WebConfig::load(path)?, &metrics.http.refused))),
            None => None,
        };
        let listener = bind(config.listen_address).await?;
        let address =
            listener.local_addr().map_err(|source| AppError::Listen { address: config.listen_address, source })?;
        let demo = if config.demo { Some(Demo::prepare(&mut config, address).await?) } else { None };

        let tally = Tally::new(metrics.clone(), config.tally.clone()).shared();
        if let Some(path) = &config.state_file {
            tally.use_state(StateStore::new(path, &config.api_url)).map_err(AppError::State)?;
        }
        let receiver =
            config.push.clone().map(|settings| Arc::new(Receiver::new(settings, tally.clone(), metrics.clone())));
        let (poller, polling) = match &config.poll {
            Some(poll) => {
                let (poller, client) = poller(&config.api_url, poll, &metrics, &tally)?;
                (Some((poller, poll.interval)), Some(client))
            }
            None => (None, None),
        };
        let watchdog = match config.watchdog.clone() {
            Some(settings) => Some(Watchdog::new(settings, metrics.clone(), polling)?),
            None => None,
        };
        Ok(App { config, listener, address, metrics, tally, security, receiver, poller, demo, watchdog })
    }

    /// The address the exporter listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Runs until `shutdown` is cancelled, then saves (with a state file) and publishes the last counts.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), AppError> {
        let App { config, listener, address, metrics, tally, security, receiver, poller, demo, watchdog } = self;
        if poller.is_none() {
            // Nothing to poll: the exporter is up as long as it receives.
            metrics.polling.set_up(true);
            tally.checkpoint_blocking().await;
        }
        let receiver_upkeep = receiver.clone();
        let web = security.as_ref().map(|s| s.current());
        tracing::info!(
            version = crate::VERSION,
            mode = config.mode(),
            address = %address,
            metrics_path = %config.telemetry_path,
            tls = web.as_ref().map_or("off", |w| w.tls_mode()),
            basic_auth = if web.as_ref().is_some_and(|w| w.requires_auth()) { "on" } else { "off" },
            api = config.poll.as_ref().map(|_| config.api_url.as_str()),
            poll_interval = config.poll.as_ref().map(|p| humantime::format_duration(p.interval).to_string()),
            webhook_path = receiver.as_ref().map(|r| r.path().to_string()),
            push_auth = config.push.as_ref().map(|p| p.auth_description()),
            state_file = config.state_file.as_ref().map(|p| p.display().to_string()),
            watchdog = crate::watchdog::describe_settings(config.watchdog.as_ref(), config.push.is_some()),
            "emnify exporter listening"
        );
        let state = Arc::new(ServerState {
            metrics,
            telemetry_path: config.telemetry_path.clone(),
            security,
            about: About {
                mode: config.mode(),
                api: config.poll.as_ref().map(|p| (config.api_url.clone(), p.interval)),
                webhook: config.push.as_ref().map(|p| (p.path.clone(), p.auth_description())),
                listen: address.to_string(),
                state_file: config.state_file.as_ref().map(|p| p.display().to_string()),
                demo_simulator: config.demo.then(|| config.api_url.clone()),
                remember_pushed: config.tally.remember_pushed,
            },
            receiver,
            limits: config.http.clone(),
        });
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("HTTP server", serve(listener, state, shutdown.clone()));
        if let Some(receiver) = receiver_upkeep {
            tasks.spawn("receiver upkeep", receiver.maintain(poller.is_none(), shutdown.clone()));
        }
        if let Some(demo) = demo {
            demo.start(&mut tasks, &shutdown);
        }
        if let Some(watchdog) = watchdog {
            tasks.spawn("Data Streamer watchdog", watchdog.run(shutdown.clone()));
        }
        match poller {
            Some((poller, interval)) => tasks.spawn("poller", run_poll_loop(poller, interval, shutdown)),
            None => {
                // Whatever was received before the stop is saved (with a state file) and published.
                tasks.spawn("final save", async move {
                    shutdown.cancelled().await;
                    tally.checkpoint_blocking().await;
                });
            }
        }
        tasks.wait().await?;
        tracing::info!("emnify exporter stopped");
        Ok(())
    }
}

/// Binds `address`; `[::]` (every interface, dual stack) falls back to `0.0.0.0` only on a host
/// without IPv6. Any other failure (the port taken, no permission) is reported as it is: a fallback
/// would hide it behind a second, misleading error, or listen where the operator did not ask.
async fn bind(address: SocketAddr) -> Result<TcpListener, AppError> {
    match listen(address) {
        Ok(listener) => Ok(listener),
        Err(err) if address.ip() == std::net::Ipv6Addr::UNSPECIFIED && host_lacks_ipv6(&err) => {
            let v4 = SocketAddr::from(([0, 0, 0, 0], address.port()));
            tracing::info!(error = %err, "no IPv6 on this host; listening on IPv4 only");
            listen(v4).map_err(|source| AppError::Listen { address: v4, source })
        }
        Err(source) => Err(AppError::Listen { address, source }),
    }
}

/// Whether a failure to open or bind an IPv6 socket means the host has no IPv6: the kernel has no
/// IPv6 at all (`EAFNOSUPPORT`), or has it switched off so that `::` is no address of its own.
fn host_lacks_ipv6(err: &std::io::Error) -> bool {
    err.kind() == std::io::ErrorKind::AddrNotAvailable
        || matches!(err.raw_os_error(), Some(code) if code == libc::EAFNOSUPPORT || code == libc::EPROTONOSUPPORT)
}

/// Connections the kernel completes and holds for `accept` (capped by `net.core.somaxconn`): a flood
/// that fills a short backlog makes the kernel drop SYNs, and a dropped SYN costs a probe a second.
const LISTEN_BACKLOG: u32 = 4096;

fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    // As std's bind does: a restarted exporter can take its port back while old connections linger.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Creates the state file's directory when it is missing, as Prometheus does for its data directory,
/// so that a first start on a fresh host needs no step before it.
fn create_state_directory(path: &std::path::Path) -> Result<(), AppError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) else { return Ok(()) };
    std::fs::create_dir_all(dir)
        .map_err(|source| AppError::StateDirectory { dir: dir.display().to_string(), source })?;
    tracing::info!(directory = %dir.display(), "created the state file's directory");
    Ok(())
}

/// Builds and runs the exporter until `shutdown` is cancelled.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), AppError> {
    App::build(config).await?.run(shutdown).await
}

/// Hard limit for shutdown after SIGTERM/SIGINT, well inside Kubernetes' default 30s grace.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

/// Builds and runs the exporter until SIGTERM or SIGINT, giving the shutdown [`SHUTDOWN_DEADLINE`].
pub async fn run_until_signal(config: Config) -> Result<(), AppError> {
    let shutdown = shutdown_on_signal();
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_DEADLINE).await;
    };
    tokio::select! {
        result = run(config, shutdown.clone()) => result,
        () = deadline => {
            tracing::warn!("shutdown took too long; exiting anyway");
            Ok(())
        }
    }
}

/// The poller, and a sibling of its client for the watchdog (one budget, one JWT).
fn poller(
    api_url: &str,
    poll: &PollConfig,
    metrics: &Arc<Metrics>,
    tally: &SharedTally,
) -> Result<(Poller, Client), AppError> {
    let settings = ClientSettings {
        api_url: api_url.to_string(),
        token: poll.token.clone(),
        request_timeout: poll.request_timeout,
        min_request_interval: poll.min_request_interval,
        request_budget_share: poll.request_budget_share,
        max_attempts: REQUEST_ATTEMPTS,
        retry_base: Duration::from_millis(500),
    };
    let client = Client::new(settings, metrics.clone())?;
    tally.lock().use_clock(client.clock().clone());
    let sibling = client.sibling(crate::watchdog::REQUEST_ATTEMPTS);
    Ok((Poller::new(client, metrics.clone(), poll.walk.clone(), tally.clone()), sibling))
}

/// The demo's set-up: the built-in simulator stands in for emnify, its API for polling and its
/// Data Streamer for pushes (aimed at the exporter's own webhook).
struct Demo {
    sim: Simulator,
    listener: TcpListener,
    streamer: Option<StreamerConfig>,
}

impl Demo {
    /// Binds the simulator on a loopback port and points the configuration at it; a receiver
    /// without credentials gets a secret made up for this run, which the demo's streamer sends.
    async fn prepare(config: &mut Config, exporter: SocketAddr) -> Result<Demo, AppError> {
        let sim = Simulator::new(SimulatorConfig::demo());
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.map_err(AppError::Demo)?;
        let sim_address = listener.local_addr().map_err(AppError::Demo)?;
        config.api_url = format!("http://{sim_address}");
        if let Some(watchdog) = config.watchdog.as_mut() {
            watchdog.api_url = config.api_url.clone();
        }
        let streamer = config.push.as_mut().map(|receiver| demo_streamer(receiver, exporter));
        tracing::info!(
            simulator = %config.api_url,
            truth = %format!("{}/simulator/truth", config.api_url),
            mode = config.mode(),
            "demo mode: the built-in emnify API simulator stands in for emnify"
        );
        Ok(Demo { sim, listener, streamer })
    }

    fn start(self, tasks: &mut Supervisor, shutdown: &CancellationToken) {
        let Demo { sim, listener, streamer } = self;
        tasks.spawn("demo simulator", sim.clone().serve(listener, shutdown.clone()));
        tasks.spawn("demo generator", sim.clone().run_generator(5.0, Duration::from_secs(45), shutdown.clone()));
        if let Some(streamer) = streamer {
            tasks.spawn("demo streamer", sim.run_streamer(streamer, shutdown.clone()));
        }
    }
}

/// The demo streamer's target and credentials; gives `receiver` a made-up secret if it has none.
fn demo_streamer(receiver: &mut ReceiverSettings, exporter: SocketAddr) -> StreamerConfig {
    if receiver.secret_header.is_none() && receiver.basic_auth.is_none() && !receiver.insecure_no_auth {
        let mut rng = SplitMix64::from_time();
        let secret = Secret::new(format!("demo-{:016x}{:016x}", rng.next_u64(), rng.next_u64()));
        receiver.secret_header = Some((receiver::default_secret_header(), secret));
    }
    let mut headers = Vec::new();
    if let Some((name, secret)) = &receiver.secret_header {
        headers.push((name.to_string(), secret.expose().to_string()));
    }
    if let Some((user, password)) = &receiver.basic_auth {
        headers.push(("authorization".to_string(), receiver::basic_authorization(user, password)));
    }
    let host = if exporter.ip().is_unspecified() { "127.0.0.1".to_string() } else { exporter.ip().to_string() };
    StreamerConfig {
        url: format!("http://{host}:{}{}", exporter.port(), receiver.path),
        batch_size: 20,
        headers,
        duplicate_chance: 0.05,
        idle: Duration::from_millis(500),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cli;
    use clap::Parser;

    #[test]
    fn only_a_host_without_ipv6_falls_back_to_ipv4() {
        use std::io::{Error, ErrorKind};
        assert!(host_lacks_ipv6(&Error::from_raw_os_error(libc::EAFNOSUPPORT)));
        assert!(host_lacks_ipv6(&Error::from(ErrorKind::AddrNotAvailable)));
        for other in [ErrorKind::AddrInUse, ErrorKind::PermissionDenied, ErrorKind::Other] {
            assert!(!host_lacks_ipv6(&Error::from(other)), "{other:?}");
        }
    }

    #[test]
    fn the_demo_gives_an_unprotected_receiver_a_secret_and_sends_it() {
        let cli = Cli::try_parse_from(["emnify-exporter", "--ingest.mode=push", "--demo"]).unwrap();
        let mut receiver = cli.exporter.into_config(|_| None).unwrap().push.unwrap();
        assert!(receiver.secret_header.is_none());
        let streamer = demo_streamer(&mut receiver, "0.0.0.0:9853".parse().unwrap());
        let (name, secret) = receiver.secret_header.expect("a made-up secret");
        assert!(streamer.headers.contains(&(name.to_string(), secret.expose().to_string())));
        assert_eq!(streamer.url, "http://127.0.0.1:9853/webhook/events");
        // One asked to accept anyone stays open.
        let cli =
            Cli::try_parse_from(["emnify-exporter", "--ingest.mode=push", "--demo", "--webhook.insecure-no-auth"]);
        let mut open = cli.unwrap().exporter.into_config(|_| None).unwrap().push.unwrap();
        demo_streamer(&mut open, "127.0.0.1:1".parse().unwrap());
        assert!(open.secret_header.is_none());
    }
}
