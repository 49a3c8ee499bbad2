//! Command-line flags (each also an environment variable; a flag wins) and their checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::emnify::TokenSource;
use crate::secret::Secret;

/// emnify's event retention: older events cannot be fetched.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The exporter's default port.
pub const DEFAULT_PORT: u16 = 9853;

/// Prometheus exporter for emnify IoT platform events.
///
/// Polls the emnify REST API for events and counts each event exactly once into
/// labelled counters served on /metrics. Without an emnify account, `--demo`
/// runs it against the built-in emnify API simulator.
///
/// The application token is read from EMNIFY_APPLICATION_TOKEN or from the file
/// named by --emnify.application-token-file (never from a flag, so it does not
/// show in process listings).
#[derive(Debug, Parser)]
#[command(name = "emnify-exporter", version, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub exporter: ExporterArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the emnify API simulator (for trying clients against it).
    Simulate(SimulateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Base URL of the emnify REST API.
    #[arg(long = "emnify.api-url", env = "EMNIFY_API_URL", default_value = "https://cdn.emnify.net", value_name = "URL", value_parser = parse_url)]
    pub api_url: String,

    /// File holding the emnify application token (re-read on every login; trailing newline ignored).
    /// Conflicts with EMNIFY_APPLICATION_TOKEN.
    #[arg(long = "emnify.application-token-file", env = "EMNIFY_APPLICATION_TOKEN_FILE", value_name = "PATH")]
    pub application_token_file: Option<PathBuf>,

    /// Time between polls of the event list (e.g. 30s, 1m). Default 60s; 5s with --demo.
    #[arg(long = "emnify.poll-interval", env = "EMNIFY_POLL_INTERVAL", value_name = "DURATION", value_parser = parse_poll_interval)]
    pub poll_interval: Option<Duration>,

    /// Events per page asked of emnify (emnify may serve fewer).
    #[arg(long = "emnify.page-size", env = "EMNIFY_PAGE_SIZE", default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,

    /// Limit for one request to emnify, body included.
    #[arg(long = "emnify.request-timeout", env = "EMNIFY_REQUEST_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// History to count at start-up (at most 30d, emnify's retention). 0 counts only events from now on.
    #[arg(long = "emnify.lookback", env = "EMNIFY_LOOKBACK", default_value = "0s", value_name = "DURATION", value_parser = parse_lookback)]
    pub lookback: Duration,

    /// How far each poll window reaches back into the previous one, to catch events that reach emnify late.
    #[arg(long = "emnify.overlap", env = "EMNIFY_OVERLAP", default_value = "10m", value_name = "DURATION", value_parser = parse_overlap)]
    pub overlap: Duration,

    /// Most event ids remembered for de-duplication (about 40 bytes each).
    #[arg(long = "emnify.max-remembered-ids", env = "EMNIFY_MAX_REMEMBERED_IDS", default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1000..))]
    pub max_remembered_ids: u64,

    /// Least time between two requests to emnify: 200ms keeps within both its 10 requests/s on the event
    /// list and its 2,000 requests per 5 minutes per IP.
    #[arg(long = "emnify.min-request-interval", env = "EMNIFY_MIN_REQUEST_INTERVAL", default_value = "200ms", value_name = "DURATION", value_parser = parse_duration)]
    pub min_request_interval: Duration,

    /// File to keep progress in (cursor, remembered event ids, counter values), so a restart resumes the
    /// counters instead of resetting them and counts what happened while the exporter was down.
    #[arg(long = "state.file", env = "EMNIFY_EXPORTER_STATE_FILE", value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Address to serve /metrics on; ":PORT" means every interface.
    #[arg(long = "web.listen-address", env = "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS", default_value = ":9853", value_name = "[HOST]:PORT", value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,

    /// Prometheus exporter-toolkit web configuration (YAML): TLS with certificate reload, mutual TLS
    /// (client_ca_file) and basic_auth_users with bcrypt hashes.
    #[arg(long = "web.config.file", env = "EMNIFY_EXPORTER_WEB_CONFIG_FILE", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", env = "EMNIFY_EXPORTER_WEB_TELEMETRY_PATH", default_value = "/metrics", value_name = "PATH", value_parser = parse_telemetry_path)]
    pub telemetry_path: String,

    /// Only log messages of this level or more severe.
    #[arg(long = "log.level", env = "EMNIFY_EXPORTER_LOG_LEVEL", default_value = "info", value_enum)]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(long = "log.format", env = "EMNIFY_EXPORTER_LOG_FORMAT", default_value = "logfmt", value_enum)]
    pub log_format: LogFormat,

    /// Run against the built-in emnify API simulator on a loopback port: no account or token needed.
    #[arg(long, env = "EMNIFY_EXPORTER_DEMO")]
    pub demo: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address the simulator listens on.
    #[arg(long, env = "EMNIFY_SIMULATOR_LISTEN", default_value = "127.0.0.1:9854", value_parser = parse_listen_address)]
    pub listen: SocketAddr,

    /// Seed of the event stream; the same seed gives the same events.
    #[arg(long, env = "EMNIFY_SIMULATOR_SEED", default_value_t = 1)]
    pub seed: u64,

    /// The application token the simulator accepts.
    #[arg(long, env = "EMNIFY_SIMULATOR_TOKEN", default_value = "demo-application-token", hide_env_values = true)]
    pub token: String,

    /// Average events produced per second.
    #[arg(long, env = "EMNIFY_SIMULATOR_EVENTS_PER_SECOND", default_value_t = 5.0)]
    pub events_per_second: f64,

    /// Faults to inject, e.g. `429=0.1,retry-after=2,5xx=0.05,reset=0.02,stall=0.02,truncate=0.02,malformed=0.02,
    /// html=0.02,401=0.02,login-5xx=0.1,login-429=0.1,no-paging=0.1,bad-paging=0.1,dup=0.1,late=0.1`
    /// (each a chance per request; also `stall-for=2s`, `5xx-burst=3`). Changeable at run time with
    /// `POST /simulator/faults?spec=...`.
    #[arg(long, env = "EMNIFY_SIMULATOR_FAULTS", default_value = "", value_parser = parse_faults)]
    pub faults: crate::simulator::faults::FaultConfig,

    /// Lifetime of the JWTs it issues.
    #[arg(long, env = "EMNIFY_SIMULATOR_JWT_LIFETIME", default_value = "240m", value_parser = parse_positive_duration)]
    pub jwt_lifetime: Duration,

    /// Only log messages of this level or more severe.
    #[arg(long = "log.level", env = "EMNIFY_EXPORTER_LOG_LEVEL", default_value = "info", value_enum)]
    pub log_level: LogLevel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Logfmt,
    Json,
}

/// A checked configuration the exporter runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub api_url: String,
    /// `None` only in demo mode, where the simulator's token is filled in.
    pub token: Option<TokenSource>,
    pub poll_interval: Duration,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub lookback: Duration,
    pub overlap: Duration,
    pub max_remembered_ids: usize,
    pub min_request_interval: Duration,
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub state_file: Option<PathBuf>,
    pub web_config_file: Option<PathBuf>,
    pub demo: bool,
}

/// A configuration problem found at start-up; the message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ExporterArgs {
    /// Checks what clap cannot: the token sources. `token_env` is `EMNIFY_APPLICATION_TOKEN`.
    pub fn into_config(self, token_env: Option<String>) -> Result<Config, ConfigError> {
        let token_env = token_env.filter(|t| !t.is_empty());
        let token = match (token_env, self.application_token_file) {
            (Some(_), Some(_)) => return Err(ConfigError(
                "both EMNIFY_APPLICATION_TOKEN and --emnify.application-token-file (EMNIFY_APPLICATION_TOKEN_FILE) \
                     are set; set only one"
                    .into(),
            )),
            (Some(t), None) => Some(TokenSource::Value(Secret::new(t))),
            (None, Some(path)) => {
                if let Err(e) = std::fs::metadata(&path) {
                    return Err(ConfigError(format!(
                        "--emnify.application-token-file: cannot read {}: {e}",
                        path.display()
                    )));
                }
                Some(TokenSource::File(path))
            }
            (None, None) if self.demo => None,
            (None, None) => {
                return Err(ConfigError(
                    "no emnify application token: set EMNIFY_APPLICATION_TOKEN or \
                     --emnify.application-token-file (or run with --demo)"
                        .into(),
                ))
            }
        };
        if let Some(path) = &self.web_config_file {
            crate::webconfig::WebConfig::load(path).map_err(|e| ConfigError(e.to_string()))?;
        }
        let default_interval = if self.demo { Duration::from_secs(5) } else { Duration::from_secs(60) };
        Ok(Config {
            api_url: self.api_url,
            token,
            poll_interval: self.poll_interval.unwrap_or(default_interval),
            page_size: self.page_size,
            request_timeout: self.request_timeout,
            lookback: self.lookback,
            overlap: self.overlap,
            max_remembered_ids: usize::try_from(self.max_remembered_ids).unwrap_or(usize::MAX),
            min_request_interval: self.min_request_interval,
            listen_address: self.listen_address,
            telemetry_path: self.telemetry_path,
            state_file: self.state_file,
            web_config_file: self.web_config_file,
            demo: self.demo,
        })
    }
}

/// Durations like `30s`, `1m30s`, `500ms`; a bare `0` is zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 30s, 5m, 1h30m)"))
}

fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s (emnify limits event requests to 10 per second)".into());
    }
    Ok(d)
}

fn parse_lookback(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d > RETENTION {
        return Err("must be at most 30d, emnify's event retention".into());
    }
    Ok(d)
}

fn parse_overlap(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < Duration::from_secs(1) || d > RETENTION {
        return Err("must be between 1s and 30d".into());
    }
    Ok(d)
}

fn parse_url(text: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `HOST:PORT`, `[V6]:PORT` or `:PORT` (every interface).
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = if text.starts_with(':') { format!("0.0.0.0{text}") } else { text.to_string() };
    if let Ok(addr) = full.parse() {
        return Ok(addr);
    }
    if let Some((host, port)) = full.rsplit_once(':') {
        if host == "localhost" {
            if let Ok(port) = port.parse::<u16>() {
                return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
            }
        }
    }
    Err("expected HOST:PORT or :PORT with a numeric IP address, e.g. :9853 or 127.0.0.1:9853".into())
}

fn parse_faults(text: &str) -> Result<crate::simulator::faults::FaultConfig, String> {
    text.parse()
}

fn parse_telemetry_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.len() < 2 || text.contains(['?', '#', ' ']) {
        return Err("must be a path like /metrics".into());
    }
    if matches!(text, "/-/healthy" | "/-/ready") {
        return Err("must not be one of the health paths".into());
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_flag_has_an_env_var_and_help() {
        let cmd = Cli::command();
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            assert!(arg.get_env().is_some(), "--{id} has no env var");
            assert!(arg.get_help().is_some(), "--{id} has no help");
        }
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_poll_interval("100ms").is_err());
        assert!(parse_lookback("31d").is_err());
        assert_eq!(parse_listen_address(":9853"), Ok("0.0.0.0:9853".parse().unwrap()));
        assert_eq!(parse_listen_address("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert!(parse_listen_address("nonsense").is_err());
        assert_eq!(parse_url("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
        assert!(parse_url("ftp://x").is_err());
    }

    fn args(extra: &[&str]) -> ExporterArgs {
        let mut argv = vec!["emnify-exporter"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().exporter
    }

    #[test]
    fn token_sources_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "x\n").unwrap();
        let file_flag = format!("--emnify.application-token-file={}", file.display());
        let err = args(&[&file_flag]).into_config(Some("tok".into())).unwrap_err();
        assert!(err.to_string().contains("set only one"), "{err}");
        assert!(args(&[]).into_config(None).unwrap_err().to_string().contains("EMNIFY_APPLICATION_TOKEN"));
        assert!(matches!(args(&[&file_flag]).into_config(None).unwrap().token, Some(TokenSource::File(_))));
        let demo = args(&["--demo"]).into_config(None).unwrap();
        assert!(demo.token.is_none());
        assert_eq!(demo.poll_interval, Duration::from_secs(5));
        let config = args(&[]).into_config(Some("secret-token".into())).unwrap();
        assert!(!format!("{config:?}").contains("secret-token"));
    }
}
