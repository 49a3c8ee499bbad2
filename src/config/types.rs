//! The checked configuration the exporter runs with ([`Config`], its poll part), the ingest mode, and
//! the error a configuration problem is reported as.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::ValueEnum;

use crate::emnify::TokenSource;
use crate::http::HttpLimits;
use crate::metrics::SeriesLimits;
use crate::poller::PollerSettings;
use crate::receiver::ReceiverSettings;
use crate::secret::Secret;
use crate::tally::TallySettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IngestMode {
    /// Poll the emnify REST API (needs the application token).
    Poll,
    /// Only receive Data Streamer pushes (no token, no API calls).
    Push,
    /// Receive pushes and poll as the gap-filler.
    Both,
}

impl IngestMode {
    /// The mode as `--ingest.mode` takes it.
    pub fn name(self) -> &'static str {
        match self {
            IngestMode::Poll => "poll",
            IngestMode::Push => "push",
            IngestMode::Both => "both",
        }
    }

    pub fn polls(self) -> bool {
        matches!(self, IngestMode::Poll | IngestMode::Both)
    }

    pub fn receives(self) -> bool {
        matches!(self, IngestMode::Push | IngestMode::Both)
    }
}

/// A checked configuration the exporter runs with: a poll part and a push part, each present or absent.
#[derive(Debug, Clone)]
pub struct Config {
    /// The emnify API polled, and the one a state file's progress belongs to. In the demo, the app
    /// points it at the simulator it starts.
    pub api_url: String,
    pub listen_address: SocketAddr,
    pub telemetry_path: String,
    pub web_config_file: Option<PathBuf>,
    /// What clients may hold of the HTTP server.
    pub http: HttpLimits,
    pub state_file: Option<PathBuf>,
    /// How events are counted, whichever way they arrive.
    pub tally: TallySettings,
    /// Bounds on the series payloads can create.
    pub series: SeriesLimits,
    /// Polling the emnify API (poll and both modes).
    pub poll: Option<PollConfig>,
    /// The Data Streamer receiver (push and both modes).
    pub push: Option<ReceiverSettings>,
    /// Run against the built-in simulator (its API, and its streamer when pushes are received).
    pub demo: bool,
    /// The Data Streamer watchdog (push and both modes, with a token).
    pub watchdog: Option<crate::watchdog::WatchdogSettings>,
}

/// Polling the emnify API.
#[derive(Debug, Clone)]
pub struct PollConfig {
    pub token: TokenSource,
    pub interval: Duration,
    /// Limit for one request to emnify, body included.
    pub request_timeout: Duration,
    /// Least time between two requests to emnify.
    pub min_request_interval: Duration,
    /// Share of emnify's rate limits to use; `None`: no budget.
    pub request_budget_share: Option<f64>,
    /// How each window is walked.
    pub walk: PollerSettings,
}

impl Config {
    /// A configuration for tests: polls `api_url` with `token` every second, 100 events a page,
    /// counting from an hour ago, listening on 127.0.0.1:0, with no state file and no receiver.
    pub fn for_tests(api_url: &str, token: &str) -> Config {
        Config {
            api_url: api_url.to_string(),
            listen_address: SocketAddr::from(([127, 0, 0, 1], 0)),
            telemetry_path: "/metrics".into(),
            web_config_file: None,
            http: HttpLimits::default(),
            state_file: None,
            tally: TallySettings {
                lookback: Duration::from_secs(3600),
                max_remembered_ids: 100_000,
                ..TallySettings::default()
            },
            series: SeriesLimits::default(),
            poll: Some(PollConfig {
                token: TokenSource::Value(Secret::new(token)),
                interval: Duration::from_secs(1),
                request_timeout: Duration::from_secs(5),
                min_request_interval: Duration::ZERO,
                request_budget_share: None,
                walk: PollerSettings {
                    page_size: 100,
                    overlap: Duration::from_secs(600),
                    requests_in_flight: crate::poller::DEFAULT_REQUESTS_IN_FLIGHT,
                },
            }),
            push: None,
            demo: false,
            watchdog: None,
        }
    }

    /// How the configuration reads in the start-up log line: `poll`, `push` or `both`.
    pub fn mode(&self) -> &'static str {
        match (&self.poll, &self.push) {
            (Some(_), Some(_)) => "both",
            (None, Some(_)) => "push",
            _ => "poll",
        }
    }
}

/// A configuration problem found before start-up, and the flag whose value it is about (whose
/// origin, a flag or a variable, the message then tells).
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError {
    flag: Option<&'static str>,
    message: String,
}

impl ConfigError {
    /// A problem with `flag`'s value; shown as `FLAG: MESSAGE`.
    pub(super) fn of(flag: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError { flag: Some(flag), message: message.into() }
    }

    /// A problem of how settings combine, or of a variable that has no flag.
    pub(super) fn general(message: impl Into<String>) -> ConfigError {
        ConfigError { flag: None, message: message.into() }
    }

    /// The flag (`--name`) the problem is about, if one.
    pub fn flag(&self) -> Option<&'static str> {
        self.flag
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.flag {
            Some(flag) => write!(f, "{flag}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}
