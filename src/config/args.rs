//! The clap definitions: the command line and the exporter's flags ([`ExporterArgs`]), each flag with
//! its variable; the `simulate` subcommand's are in `simulate.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use super::parse::*;
use super::simulate::SimulateArgs;
use super::types::IngestMode;
use crate::logging::{LogFormat, LogLevel};

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
#[command(name = "emnify-exporter", version, long_version = crate::LONG_VERSION, about, long_about, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub exporter: ExporterArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run only the emnify API simulator (for trying clients against it).
    Simulate(Box<SimulateArgs>),
    /// Print a shell completion script, e.g. `emnify-exporter completions bash > /etc/bash_completion.d/emnify-exporter`.
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ExporterArgs {
    /// Base URL of the emnify REST API.
    #[arg(long = "emnify.api-url", env = "EMNIFY_EXPORTER_EMNIFY_API_URL", default_value = "https://cdn.emnify.net", value_name = "URL", value_parser = parse_url)]
    pub api_url: String,

    /// File holding the emnify application token (re-read on every login; trailing newline ignored).
    /// Conflicts with EMNIFY_APPLICATION_TOKEN.
    #[arg(
        long = "emnify.application-token-file",
        env = "EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE",
        value_name = "PATH"
    )]
    pub application_token_file: Option<PathBuf>,

    /// Time between polls of the event list (e.g. 30s, 1m). Default 60s; 5s with --demo.
    #[arg(long = "emnify.poll-interval", env = "EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL", value_name = "DURATION", value_parser = parse_poll_interval)]
    pub poll_interval: Option<Duration>,

    /// Events per page asked of emnify (emnify may serve fewer).
    #[arg(long = "emnify.page-size", env = "EMNIFY_EXPORTER_EMNIFY_PAGE_SIZE", default_value_t = 1000, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub page_size: u32,

    /// Limit for one request to emnify, body included.
    #[arg(long = "emnify.request-timeout", env = "EMNIFY_EXPORTER_EMNIFY_REQUEST_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// History to count at start-up (at most 30d, emnify's retention). 0 counts only events from now on.
    #[arg(long = "emnify.lookback", env = "EMNIFY_EXPORTER_EMNIFY_LOOKBACK", default_value = "0s", value_name = "DURATION", value_parser = parse_lookback)]
    pub lookback: Duration,

    /// How far each poll window reaches back into the previous one, to catch events that reach emnify late.
    #[arg(long = "emnify.overlap", env = "EMNIFY_EXPORTER_EMNIFY_OVERLAP", default_value = "10m", value_name = "DURATION", value_parser = parse_overlap)]
    pub overlap: Duration,

    /// Most event ids remembered for de-duplication (about 27 bytes each: 26 MiB for the default 1,000,000).
    #[arg(long = "emnify.max-remembered-ids", env = "EMNIFY_EXPORTER_EMNIFY_MAX_REMEMBERED_IDS", default_value_t = 1_000_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1000..))]
    pub max_remembered_ids: u64,

    /// Least time between two requests to emnify, on top of the request budget (0s: the budget alone
    /// paces requests).
    #[arg(long = "emnify.min-request-interval", env = "EMNIFY_EXPORTER_EMNIFY_MIN_REQUEST_INTERVAL", default_value = "0s", value_name = "DURATION", value_parser = duration)]
    pub min_request_interval: Duration,

    /// Share of emnify's documented rate limits the exporter uses (10 requests/s with bursts of 5 on the
    /// event list, 2,000 requests per 5 minutes per IP), leaving the rest to the account's other clients.
    /// 429s slow it down further until emnify answers again. 0 turns the budget off (only for an API
    /// without emnify's limits).
    #[arg(long = "emnify.request-budget-share", env = "EMNIFY_EXPORTER_EMNIFY_REQUEST_BUDGET_SHARE", default_value_t = crate::emnify::budget::DEFAULT_SHARE, value_name = "SHARE", value_parser = parse_share)]
    pub request_budget_share: f64,

    /// Most requests to emnify one poll has in flight at once (pages sent ahead of the one being
    /// counted, probes of the overlap), all within the request budget: hides a slow API's latency.
    #[arg(long = "emnify.requests-in-flight", env = "EMNIFY_EXPORTER_EMNIFY_REQUESTS_IN_FLIGHT", default_value_t = crate::poller::DEFAULT_REQUESTS_IN_FLIGHT as u64, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=16))]
    pub requests_in_flight: u64,

    /// File to keep progress in (cursor, remembered event ids, counter values), so a restart resumes the
    /// counters instead of resetting them and counts what happened while the exporter was down.
    #[arg(long = "state.file", env = "EMNIFY_EXPORTER_STATE_FILE", value_name = "PATH")]
    pub state_file: Option<PathBuf>,

    /// Address to serve /metrics on; ":PORT" means every interface, IPv6 and IPv4 (IPv4 only on a host
    /// without IPv6).
    #[arg(long = "web.listen-address", env = "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS", default_value = ":9853", value_name = "[HOST]:PORT", value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,

    /// Connections served at once (scrapes, probes, pushes). At the limit the oldest connection between
    /// requests is closed to make room. Each holds at most --web.max-header-size of request headers.
    #[arg(long = "web.max-connections", env = "EMNIFY_EXPORTER_WEB_MAX_CONNECTIONS", default_value_t = 512, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub max_connections: u64,

    /// Largest request line and headers accepted, per connection; larger requests are refused.
    #[arg(long = "web.max-header-size", env = "EMNIFY_EXPORTER_WEB_MAX_HEADER_SIZE", default_value = "16KiB", value_name = "SIZE", value_parser = parse_header_size)]
    pub max_header_size: usize,

    /// TLS handshakes whose CPU (the server's signature) is spent at once, in arrival order; a ClientHello is
    /// read before a place is taken. An ECDSA key costs far less per handshake than RSA.
    #[arg(long = "web.max-tls-handshakes", env = "EMNIFY_EXPORTER_WEB_MAX_TLS_HANDSHAKES", default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_tls_handshakes: u64,

    /// Prometheus exporter-toolkit web configuration (YAML): TLS with certificate reload, mutual TLS
    /// (client_ca_file) and basic_auth_users with bcrypt hashes.
    #[arg(long = "web.config.file", env = "EMNIFY_EXPORTER_WEB_CONFIG_FILE", value_name = "PATH")]
    pub web_config_file: Option<PathBuf>,

    /// Path under which to expose metrics.
    #[arg(long = "web.telemetry-path", env = "EMNIFY_EXPORTER_WEB_TELEMETRY_PATH", default_value = "/metrics", value_name = "PATH", value_parser = parse_telemetry_path)]
    pub telemetry_path: String,

    /// Only log messages of this level or more severe.
    #[arg(long = "log.level", env = "EMNIFY_EXPORTER_LOG_LEVEL", default_value = "info", value_parser = log_level(), global = true)]
    pub log_level: LogLevel,

    /// Log line format.
    #[arg(long = "log.format", env = "EMNIFY_EXPORTER_LOG_FORMAT", default_value = "logfmt", value_parser = log_format(), global = true)]
    pub log_format: LogFormat,

    /// Where events come from: poll the emnify API, receive emnify Data Streamer pushes, or both
    /// (pushes in real time, polls as the gap-filler; each event counted once).
    #[arg(long = "ingest.mode", env = "EMNIFY_EXPORTER_INGEST_MODE", default_value = "poll", value_enum)]
    pub ingest_mode: IngestMode,

    /// Path of the Data Streamer receiver (push and both modes).
    #[arg(long = "webhook.path", env = "EMNIFY_EXPORTER_WEBHOOK_PATH", default_value = "/webhook/events", value_parser = parse_telemetry_path)]
    pub webhook_path: String,

    /// Header every push must carry, with the secret from EMNIFY_EXPORTER_WEBHOOK_SECRET or
    /// --webhook.secret-file (set it as a custom header of the data stream).
    #[arg(
        long = "webhook.secret-header",
        env = "EMNIFY_EXPORTER_WEBHOOK_SECRET_HEADER",
        default_value = crate::receiver::DEFAULT_SECRET_HEADER,
        value_name = "NAME"
    )]
    pub webhook_secret_header: String,

    /// File holding the push secret (trailing newline ignored). Conflicts with EMNIFY_EXPORTER_WEBHOOK_SECRET.
    #[arg(long = "webhook.secret-file", env = "EMNIFY_EXPORTER_WEBHOOK_SECRET_FILE", value_name = "PATH")]
    pub webhook_secret_file: Option<PathBuf>,

    /// User for HTTP basic auth on pushes; the password comes from
    /// EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD or --webhook.basic-auth-password-file.
    #[arg(long = "webhook.basic-auth-user", env = "EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_USER", value_name = "USER")]
    pub webhook_basic_auth_user: Option<String>,

    /// File holding the basic-auth password for pushes.
    #[arg(
        long = "webhook.basic-auth-password-file",
        env = "EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD_FILE",
        value_name = "PATH"
    )]
    pub webhook_basic_auth_password_file: Option<PathBuf>,

    /// Accept pushes without any credentials. Anyone who can reach the port can then add counts.
    #[arg(long = "webhook.insecure-no-auth", env = "EMNIFY_EXPORTER_WEBHOOK_INSECURE_NO_AUTH", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub webhook_insecure_no_auth: bool,

    /// Largest push body accepted (10,000 events are about 15 MB); larger ones get 413.
    #[arg(long = "webhook.max-body-size", env = "EMNIFY_EXPORTER_WEBHOOK_MAX_BODY_SIZE", default_value = "32MiB", value_name = "SIZE", value_parser = parse_size)]
    pub webhook_max_body_size: usize,

    /// Most event records in one push (emnify's Data Streamer sends at most 10,000); a push with more
    /// gets 413 as soon as its body shows it, before it is decoded.
    #[arg(long = "webhook.max-records", env = "EMNIFY_EXPORTER_WEBHOOK_MAX_RECORDS", default_value_t = 10_000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub webhook_max_records: u64,

    /// Longest a push may take to send its body; slower ones are cut off with 408.
    #[arg(long = "webhook.read-timeout", env = "EMNIFY_EXPORTER_WEBHOOK_READ_TIMEOUT", default_value = "30s", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub webhook_read_timeout: Duration,

    /// Pushes decoded and counted at once. Bodies are read before a slot is taken; complete ones wait
    /// for a slot until their read timeout, then get 503 with Retry-After. Also sets the body bytes
    /// buffered at once over all pushes: this many times --webhook.max-body-size.
    #[arg(long = "webhook.max-concurrent-requests", env = "EMNIFY_EXPORTER_WEBHOOK_MAX_CONCURRENT_REQUESTS", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub webhook_max_concurrent: u32,

    /// Most organisations with series of their own; events of later ones are counted under
    /// organisation_id="overflow" (never dropped). Each organisation has about 7 series (their cost in memory
    /// and /metrics bytes: docs/reliability.md, "Bounded series").
    #[arg(long = "metrics.max-organisations", env = "EMNIFY_EXPORTER_METRICS_MAX_ORGANISATIONS", default_value_t = 2000, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_organisations: u64,

    /// Longest organisation or event-type name used as a label value, in characters (longer ones are cut).
    #[arg(long = "metrics.max-label-length", env = "EMNIFY_EXPORTER_METRICS_MAX_LABEL_LENGTH", default_value_t = 128, value_name = "N", value_parser = clap::value_parser!(u64).range(8..=4096))]
    pub max_label_length: u64,

    /// Most event types without a name in the event-type catalogue (built in, or read from emnify) with series
    /// of their own; events of later ones are counted under event_type_id="overflow" (never dropped).
    #[arg(long = "metrics.max-unknown-event-types", env = "EMNIFY_EXPORTER_METRICS_MAX_UNKNOWN_EVENT_TYPES", default_value_t = 100, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_unknown_event_types: u64,

    /// Push mode: emnify_up turns 0 when no push was accepted for this long (the stream stopped, or points
    /// elsewhere). Set it above the longest quiet spell of the fleet.
    #[arg(long = "webhook.stale-after", env = "EMNIFY_EXPORTER_WEBHOOK_STALE_AFTER", default_value = "1h", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub webhook_stale_after: Duration,

    /// Push-only mode: how long a pushed event id is remembered, so the Data Streamer delivering it again
    /// within that time does not count it twice (about 27 bytes an id, within --emnify.max-remembered-ids).
    #[arg(long = "webhook.remember", env = "EMNIFY_EXPORTER_WEBHOOK_REMEMBER", default_value = "1h", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub webhook_remember: Duration,

    /// Run against the built-in emnify API simulator on a loopback port: no account or token needed.
    #[arg(long, env = "EMNIFY_EXPORTER_DEMO", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub demo: bool,

    #[command(flatten)]
    pub watchdog: super::watchdog::WatchdogArgs,
}
