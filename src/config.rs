//! Command-line flags (each also an environment variable; a flag wins) and their checks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use hyper::header::HeaderName;

use crate::emnify::{TokenSource, RETENTION};
use crate::http::HttpLimits;
use crate::logging::{LogFormat, LogLevel};
use crate::metrics::SeriesLimits;
use crate::poller::PollerSettings;
use crate::receiver::ReceiverSettings;
use crate::secret::Secret;
use crate::simulator::StandaloneSettings;
use crate::tally::TallySettings;
use crate::timefmt::parse_duration;

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

/// The variables secrets come from (they have no flags, so that they never show in process listings).
pub const TOKEN_ENV: &str = "EMNIFY_APPLICATION_TOKEN";
pub const WEBHOOK_SECRET_ENV: &str = "EMNIFY_EXPORTER_WEBHOOK_SECRET";
pub const WEBHOOK_PASSWORD_ENV: &str = "EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD";

/// Environment variables named before the naming rule (`EMNIFY_EXPORTER_` and the flag), and their
/// names now. The old names are still read, with a warning, when the new one is not set.
pub const RENAMED_ENV: [(&str, &str); 11] = [
    ("EMNIFY_API_URL", "EMNIFY_EXPORTER_EMNIFY_API_URL"),
    ("EMNIFY_APPLICATION_TOKEN_FILE", "EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE"),
    ("EMNIFY_POLL_INTERVAL", "EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"),
    ("EMNIFY_PAGE_SIZE", "EMNIFY_EXPORTER_EMNIFY_PAGE_SIZE"),
    ("EMNIFY_REQUEST_TIMEOUT", "EMNIFY_EXPORTER_EMNIFY_REQUEST_TIMEOUT"),
    ("EMNIFY_LOOKBACK", "EMNIFY_EXPORTER_EMNIFY_LOOKBACK"),
    ("EMNIFY_OVERLAP", "EMNIFY_EXPORTER_EMNIFY_OVERLAP"),
    ("EMNIFY_MAX_REMEMBERED_IDS", "EMNIFY_EXPORTER_EMNIFY_MAX_REMEMBERED_IDS"),
    ("EMNIFY_MIN_REQUEST_INTERVAL", "EMNIFY_EXPORTER_EMNIFY_MIN_REQUEST_INTERVAL"),
    ("EMNIFY_REQUEST_BUDGET_SHARE", "EMNIFY_EXPORTER_EMNIFY_REQUEST_BUDGET_SHARE"),
    ("EMNIFY_REQUESTS_IN_FLIGHT", "EMNIFY_EXPORTER_EMNIFY_REQUESTS_IN_FLIGHT"),
];

/// The environment variable a flag reads: `EMNIFY_EXPORTER_` and the flag's name in capitals, `.` and
/// `-` as `_` (the `simulate` subcommand's flags: `EMNIFY_SIMULATOR_`).
pub fn env_name(prefix: &str, long: &str) -> String {
    format!("{prefix}{}", long.replace(['.', '-'], "_").to_ascii_uppercase())
}

/// Variables to take out of the environment before clap reads it: those set to the empty string
/// (Compose and Helm leave unset settings empty; empty means unset, as for the secrets), and for a
/// subcommand the exporter's own, which it does not use (a container's exporter settings must not stop
/// `simulate` or `completions` from starting).
pub fn env_to_clear(argv: &[String], get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let command = <Cli as clap::CommandFactory>::command();
    let subcommand = argv.get(1).is_some_and(|a| command.get_subcommands().any(|c| c.get_name() == a));
    let mut clear = Vec::new();
    let mut consider = |name: String, exporter_only: bool| {
        let value = get(&name);
        if value.as_deref() == Some("") || (value.is_some() && exporter_only && subcommand) {
            clear.push(name);
        }
    };
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            consider(env.to_string_lossy().into_owned(), !arg.is_global_set());
        }
    }
    for sub in command.get_subcommands() {
        for env in sub.get_arguments().filter_map(|a| a.get_env()) {
            consider(env.to_string_lossy().into_owned(), false);
        }
    }
    for (old, _) in RENAMED_ENV {
        consider(old.to_string(), true);
    }
    clear
}

/// Reads the renamed variables under their old names: for each old name that is set while its new
/// name is not, `set` is called with the new name and the value. Returns the warnings to log.
pub fn adopt_renamed_env(get: impl Fn(&str) -> Option<String>, mut set: impl FnMut(&str, &str)) -> Vec<String> {
    let mut warnings = Vec::new();
    for (old, new) in RENAMED_ENV {
        let Some(value) = get(old) else { continue };
        if get(new).is_some() {
            warnings.push(format!("{old} is ignored: {new}, its new name, is set too; unset {old}"));
        } else {
            set(new, &value);
            warnings.push(format!("{old} is an old name: rename it to {new} (read for now)"));
        }
    }
    warnings
}

/// A command-line error as clap words it, plus where the value came from when it was an environment
/// variable rather than a flag, so that the fix is clear in a container whose flags are all variables.
/// `env` reads the environment as the process was started with.
pub fn explain_error(err: &clap::Error, argv: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = err.render().to_string();
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return text;
    };
    let flag = arg.split([' ', '=']).next().unwrap_or(arg);
    let mut note = origin_note(flag, argv, &env);
    if matches!(err.kind(), clap::error::ErrorKind::ValueValidation) && text.contains("not a boolean") {
        note.push_str("  (on/off values: true or false, 1 or 0, yes or no)\n");
    }
    match text.split_once('\n') {
        Some((first, rest)) if !note.is_empty() => format!("{first}\n{note}{rest}"),
        _ => text,
    }
}

/// A configuration error (see [`ExporterArgs::into_config`]), with where the value of the first flag
/// it names came from when that was an environment variable.
pub fn explain_config_error(err: &ConfigError, argv: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    let text = err.to_string();
    let flag = text.split_whitespace().find(|w| w.starts_with("--")).map(|w| w.trim_end_matches([':', ',', ')']));
    let note = flag.map(|flag| origin_note(flag, argv, &env)).unwrap_or_default();
    format!("error: {text}\n{note}")
}

/// `  (the value comes from the environment variable X)` when `flag` (`--name`) was not on the
/// command line and its variable, or the variable's old name, is set; else empty.
fn origin_note(flag: &str, argv: &[String], env: &impl Fn(&str) -> Option<String>) -> String {
    let given = argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if given {
        return String::new();
    }
    let command = <Cli as clap::CommandFactory>::command();
    let variable = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
        .find(|a| a.get_long().is_some_and(|long| flag.strip_prefix("--") == Some(long)))
        .and_then(|a| a.get_env())
        .map(|name| name.to_string_lossy().into_owned());
    match variable.and_then(|variable| variable_set(&variable, env)) {
        Some(name) => format!("  (the value comes from the environment variable {name})\n"),
        None => String::new(),
    }
}

/// The name under which a flag's `variable` is set in `env`: its own, or its old name.
fn variable_set(variable: &str, env: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let old = RENAMED_ENV.iter().find(|(_, new)| *new == variable).map(|(old, _)| *old);
    [Some(variable), old].into_iter().flatten().find(|name| env(name).is_some()).map(str::to_string)
}

/// Flags that only one side uses: the emnify API's in poll and both modes, the receiver's in push and
/// both modes. Given for a mode that does not use them, they are warned about at start.
const POLL_ONLY_FLAGS: [&str; 8] = [
    "emnify.application-token-file",
    "emnify.poll-interval",
    "emnify.page-size",
    "emnify.request-timeout",
    "emnify.lookback",
    "emnify.min-request-interval",
    "emnify.request-budget-share",
    "emnify.requests-in-flight",
];

/// What the demo sets itself: its simulator's URL, and its token.
const DEMO_REPLACES: [&str; 2] = ["emnify.api-url", "emnify.application-token-file"];

/// Warnings about settings given (as flags or variables) that the chosen ingest mode (or the demo)
/// does not use.
pub fn unused_settings(matches: &clap::ArgMatches, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mode = matches.get_one::<IngestMode>("ingest_mode").copied().unwrap_or(IngestMode::Poll);
    let demo = matches.get_one::<bool>("demo").copied().unwrap_or(false);
    let command = <Cli as clap::CommandFactory>::command();
    let mut warnings = Vec::new();
    for arg in command.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        // Named as the user gave it: the flag, or the variable (under the name that is set).
        let given = match matches.value_source(id) {
            Some(clap::parser::ValueSource::CommandLine) => Some(format!("--{long}")),
            Some(clap::parser::ValueSource::EnvVariable) => {
                let variable = arg.get_env().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
                Some(format!("{} (--{long})", variable_set(&variable, &env).unwrap_or(variable)))
            }
            _ => None,
        };
        let unused = if long.starts_with("webhook.") {
            !mode.receives()
        } else {
            POLL_ONLY_FLAGS.contains(&long) && !mode.polls()
        };
        let Some(given) = given else { continue };
        if unused {
            warnings.push(format!("{given} is ignored: --ingest.mode={} does not use it", mode.name()));
        } else if demo && DEMO_REPLACES.contains(&long) {
            warnings.push(format!("{given} is ignored: --demo polls its built-in simulator"));
        }
    }
    let mode_unused = format!("--ingest.mode={} does not use it", mode.name());
    let token_unused =
        if mode.polls() { "--demo polls its built-in simulator with its own token" } else { &mode_unused };
    let secrets = [
        (TOKEN_ENV, mode.polls() && !demo, token_unused),
        (WEBHOOK_SECRET_ENV, mode.receives(), mode_unused.as_str()),
        (WEBHOOK_PASSWORD_ENV, mode.receives(), mode_unused.as_str()),
    ];
    for (variable, used, why) in secrets {
        if !used && env(variable).is_some_and(|v| !v.is_empty()) {
            warnings.push(format!("{variable} is ignored: {why}"));
        }
    }
    warnings
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
    #[arg(long = "emnify.min-request-interval", env = "EMNIFY_EXPORTER_EMNIFY_MIN_REQUEST_INTERVAL", default_value = "0s", value_name = "DURATION", value_parser = parse_duration)]
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

    /// Also act as emnify's Data Streamer: push every event to this URL (the exporter's webhook).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_URL", value_name = "URL")]
    pub push_url: Option<String>,

    /// Events per push (1 sends a bare object).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub push_batch_size: u64,

    /// A static header sent with every push, as "Name: value" (repeatable).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_HEADER", value_name = "NAME: VALUE")]
    pub push_header: Vec<String>,

    /// Chance that an accepted batch is pushed once more anyway.
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_DUPLICATES", default_value_t = 0.0)]
    pub push_duplicates: f64,

    /// Run the simulator's clock this far from the host's, e.g. `-15m` or `1h` (its event times, `q`
    /// filters, JWT lifetimes and Date headers follow it), to try a client on a host with a wrong clock.
    #[arg(long, env = "EMNIFY_SIMULATOR_CLOCK_OFFSET", default_value = "0", value_name = "[-]DURATION", value_parser = parse_signed_duration, allow_hyphen_values = true)]
    pub clock_offset: i64,

    /// Enforce emnify's documented rate limits (event list 10/s with bursts of 5, 2,000 requests and 100
    /// logins per 5 minutes), answering 429 without Retry-After beyond them.
    #[arg(long, env = "EMNIFY_SIMULATOR_ENFORCE_LIMITS", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub enforce_limits: bool,

    /// Share of the generated events that arrive late, stamped up to --late-max-age in the past.
    #[arg(long, env = "EMNIFY_SIMULATOR_LATE_SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub late_share: f64,

    /// How late the late events are, at most.
    #[arg(long, env = "EMNIFY_SIMULATOR_LATE_MAX_AGE", default_value = "1m", value_parser = parse_positive_duration)]
    pub late_max_age: Duration,

    /// Give out ids that grow with arrival, as a database sequence would (random by default: emnify
    /// does not say whether its ids grow).
    #[arg(long, env = "EMNIFY_SIMULATOR_ASCENDING_IDS", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub ascending_ids: bool,

    /// Answer each event page after a delay drawn from this range, e.g. `2s-5s` (a slow API).
    #[arg(long, env = "EMNIFY_SIMULATOR_PAGE_LATENCY", value_name = "MIN[-MAX]", value_parser = parse_latency_range)]
    pub page_latency: Option<(Duration, Duration)>,

    /// Lifetime of the JWTs it issues.
    #[arg(long, env = "EMNIFY_SIMULATOR_JWT_LIFETIME", default_value = "240m", value_parser = parse_positive_duration)]
    pub jwt_lifetime: Duration,
}

impl SimulateArgs {
    /// The simulator's own settings: it knows nothing of the command line.
    pub fn settings(&self) -> StandaloneSettings {
        let push_headers = self
            .push_header
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        StandaloneSettings {
            listen: self.listen,
            seed: self.seed,
            application_token: self.token.clone(),
            events_per_second: self.events_per_second,
            faults: self.faults.clone(),
            push_url: self.push_url.clone(),
            push_batch_size: usize::try_from(self.push_batch_size).unwrap_or(usize::MAX),
            push_headers,
            push_duplicates: self.push_duplicates,
            jwt_lifetime: self.jwt_lifetime,
            clock_offset_millis: self.clock_offset,
            enforce_limits: self.enforce_limits,
            late_share: self.late_share,
            late_max_age: self.late_max_age,
            ascending_ids: self.ascending_ids,
            page_latency: self.page_latency,
        }
    }
}

/// `MIN` or `MIN-MAX`, two durations.
fn parse_latency_range(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (low, high) = (parse_duration(low.trim())?, parse_duration(high.trim())?);
    if high < low {
        return Err(format!("'{text}': the maximum is below the minimum"));
    }
    Ok((low, high))
}

/// On/off flags: `true/false`, `1/0`, `yes/no` (and `on/off`) from the environment; bare on the command line.
fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// `--log.level`: the names [`LogLevel`] reads, listed in `--help`.
fn log_level() -> impl clap::builder::TypedValueParser<Value = LogLevel> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(LogLevel::NAMES).map(|name| name.parse().unwrap_or(LogLevel::Info))
}

/// `--log.format`: the names [`LogFormat`] reads.
fn log_format() -> impl clap::builder::TypedValueParser<Value = LogFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(LogFormat::NAMES).map(|name| name.parse().unwrap_or(LogFormat::Logfmt))
}

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

/// A configuration problem found at start-up; the message names the flag.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ExporterArgs {
    /// Checks what clap cannot: the secrets and how they combine. `env` reads an environment
    /// variable (the secrets are never flags, so they never show in process listings).
    pub fn into_config(self, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let push = if self.ingest_mode.receives() { Some(self.receiver_settings(&env)?) } else { None };
        let poll = if self.ingest_mode.polls() { Some(self.poll_config(&env)?) } else { None };
        if let Some(path) = &self.web_config_file {
            crate::webconfig::WebConfig::load(path).map_err(|e| ConfigError(e.to_string()))?;
        }
        if let Some(path) = &self.state_file {
            // A path that cannot hold the state fails now, not as counts that silently stop moving.
            crate::state::StateStore::new(path, &self.api_url)
                .check()
                .map_err(|e| ConfigError(format!("--state.file: {e}")))?;
        }
        Ok(Config {
            api_url: self.api_url,
            listen_address: self.listen_address,
            telemetry_path: self.telemetry_path,
            web_config_file: self.web_config_file,
            http: HttpLimits {
                max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
                max_header_bytes: self.max_header_size,
                ..HttpLimits::default()
            },
            state_file: self.state_file,
            tally: TallySettings {
                lookback: self.lookback,
                max_remembered_ids: usize::try_from(self.max_remembered_ids).unwrap_or(usize::MAX),
                // With a poller, a pushed id is kept as long as polled ones (what polling read completely
                // is never counted again when pushed); without one, as long as asked.
                remember_pushed: if self.ingest_mode.polls() { self.overlap } else { self.webhook_remember },
                push_stale_after: self.webhook_stale_after,
                ..TallySettings::default()
            },
            series: SeriesLimits {
                max_organisations: usize::try_from(self.max_organisations).unwrap_or(usize::MAX),
                max_label_length: usize::try_from(self.max_label_length).unwrap_or(usize::MAX),
            },
            poll,
            push,
            demo: self.demo,
        })
    }

    /// The poll part: an application token is needed, except in the demo, which polls its own simulator.
    fn poll_config(&self, env: &impl Fn(&str) -> Option<String>) -> Result<PollConfig, ConfigError> {
        let token_env = env(TOKEN_ENV).filter(|t| !t.is_empty());
        let token = match (token_env, &self.application_token_file) {
            // The simulator's own token in the demo: a real one from the environment is never sent to it.
            _ if self.demo => TokenSource::Value(Secret::new(crate::simulator::DEMO_APPLICATION_TOKEN)),
            (Some(_), Some(_)) => {
                return Err(ConfigError(
                    "both EMNIFY_APPLICATION_TOKEN and --emnify.application-token-file \
                     (EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE) are set; set only one"
                        .into(),
                ))
            }
            (Some(t), None) => TokenSource::Value(Secret::new(t)),
            (None, Some(path)) => {
                if let Err(e) = std::fs::metadata(path) {
                    return Err(ConfigError(format!(
                        "--emnify.application-token-file: cannot read {}: {e}",
                        path.display()
                    )));
                }
                TokenSource::File(path.clone())
            }
            (None, None) => {
                return Err(ConfigError(
                    "no emnify application token: set EMNIFY_APPLICATION_TOKEN or \
                     --emnify.application-token-file (or run with --demo)"
                        .into(),
                ))
            }
        };
        let default_interval = if self.demo { Duration::from_secs(5) } else { Duration::from_secs(60) };
        Ok(PollConfig {
            token,
            interval: self.poll_interval.unwrap_or(default_interval),
            request_timeout: self.request_timeout,
            min_request_interval: self.min_request_interval,
            request_budget_share: (self.request_budget_share > 0.0).then_some(self.request_budget_share),
            walk: PollerSettings {
                page_size: self.page_size,
                overlap: self.overlap,
                requests_in_flight: self.requests_in_flight as usize,
            },
        })
    }

    fn receiver_settings(&self, env: &impl Fn(&str) -> Option<String>) -> Result<ReceiverSettings, ConfigError> {
        let from_env_or_file = |var: &str, file: &Option<PathBuf>, flag: &str| -> Result<Option<Secret>, ConfigError> {
            match (env(var).filter(|v| !v.is_empty()), file) {
                (Some(_), Some(_)) => Err(ConfigError(format!("both {var} and {flag} are set; set only one"))),
                (Some(v), None) => Ok(Some(Secret::new(v))),
                (None, Some(path)) => {
                    let text = std::fs::read_to_string(path)
                        .map_err(|e| ConfigError(format!("{flag}: cannot read {}: {e}", path.display())))?;
                    let value = text.strip_suffix('\n').unwrap_or(&text).to_string();
                    if value.is_empty() {
                        return Err(ConfigError(format!("{flag}: {} is empty", path.display())));
                    }
                    Ok(Some(Secret::new(value)))
                }
                (None, None) => Ok(None),
            }
        };
        let secret = from_env_or_file(WEBHOOK_SECRET_ENV, &self.webhook_secret_file, "--webhook.secret-file")?;
        let password = from_env_or_file(
            WEBHOOK_PASSWORD_ENV,
            &self.webhook_basic_auth_password_file,
            "--webhook.basic-auth-password-file",
        )?;
        let basic_auth = match (&self.webhook_basic_auth_user, password) {
            (Some(user), Some(password)) => Some((user.clone(), password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "--webhook.basic-auth-user needs a password (EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD or \
                     --webhook.basic-auth-password-file)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError("a webhook basic-auth password needs --webhook.basic-auth-user".into()))
            }
        };
        // The demo's set-up makes up a secret for its own streamer when none is given.
        if secret.is_none() && basic_auth.is_none() && !self.webhook_insecure_no_auth && !self.demo {
            return Err(ConfigError(
                "--ingest.mode push/both needs push credentials: EMNIFY_EXPORTER_WEBHOOK_SECRET (or \
                 --webhook.secret-file) and/or --webhook.basic-auth-user; or --webhook.insecure-no-auth to accept \
                 pushes from anyone"
                    .into(),
            ));
        }
        let header = HeaderName::from_bytes(self.webhook_secret_header.as_bytes()).map_err(|_| {
            ConfigError(format!("--webhook.secret-header: {:?} is not a header name", self.webhook_secret_header))
        })?;
        if self.webhook_path == self.telemetry_path {
            return Err(ConfigError("--webhook.path must differ from --web.telemetry-path".into()));
        }
        Ok(ReceiverSettings {
            path: self.webhook_path.clone(),
            secret_header: secret.map(|s| (header, s)),
            basic_auth,
            insecure_no_auth: self.webhook_insecure_no_auth,
            max_body_bytes: self.webhook_max_body_size,
            read_timeout: self.webhook_read_timeout,
            max_concurrent: self.webhook_max_concurrent as usize,
        })
    }
}

/// Sizes like `32MiB`, `10MB`, `65536`.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number.parse().map_err(|_| "expected a size like 32MiB or 1000000".to_string())?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        other => return Err(format!("unknown unit {other:?} (use B, KB, KiB, MB or MiB)")),
    };
    let size = number.checked_mul(factor).ok_or("too large")?;
    if size < 1024 {
        return Err("must be at least 1KiB".into());
    }
    Ok(size)
}

/// A duration with an optional leading `-`, as signed milliseconds.
fn parse_signed_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (sign, rest) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
    Ok(sign * crate::timefmt::duration_millis(parse_duration(rest)?))
}

/// `--web.max-header-size`: hyper needs at least 8 KiB to read a request at all.
fn parse_header_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if !(8 * 1024..=1024 * 1024).contains(&size) {
        return Err("must be between 8KiB and 1MiB".into());
    }
    Ok(size)
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("must be a number from 0 to 1 (0.9 is 90% of each of emnify's limits; 0 turns the budget off)".into()),
    }
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
    let text = text.trim();
    if !text.contains("://") {
        // `cdn.emnify.net` or `cdn.emnify.net:443`: a host, missing its scheme. Anything else with a
        // colon (`http:/cdn.emnify.net`) is a mistyped scheme, where a guess would mislead.
        let host = text.split('/').next().unwrap_or(text);
        let port_only =
            host.split_once(':').is_none_or(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        if port_only && !host.is_empty() && !text.contains(' ') {
            return Err(format!("'{text}' has no scheme: use https://{text}"));
        }
        return Err(format!("'{text}' is not a URL: expected https://HOST, e.g. https://cdn.emnify.net"));
    }
    let url = reqwest::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host, e.g. https://cdn.emnify.net".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        // They would show in the start-up line and on the landing page; the token is the credential.
        return Err("must not hold a user name or password".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    // The exporter adds /api/v1/... itself: a URL copied from emnify's API documentation (the base, or
    // an endpoint) would double it. A proxy's own path prefix is kept.
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let version = |s: &str| s.strip_prefix('v').is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let api_at = segments.windows(2).position(|w| w[0] == "api" && version(w[1]));
    let bare_api = segments.last() == Some(&"api") && url.host_str().is_some_and(|h| h.ends_with("emnify.net"));
    if let Some(at) = api_at.or(bare_api.then(|| segments.len() - 1)) {
        let mut fixed = url.clone();
        fixed.set_path(&segments[..at].join("/"));
        return Err(format!(
            "the base URL without /{} (the exporter adds /api/v1/... itself): use {}",
            segments[at..].join("/"),
            fixed.as_str().trim_end_matches('/')
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// `HOST:PORT`, `[V6]:PORT` or `:PORT`: every interface, IPv6 and IPv4 (`[::]`, dual stack; the app
/// falls back to `0.0.0.0` where the host has no IPv6).
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = if text.starts_with(':') { format!("[::]{text}") } else { text.to_string() };
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

    /// One rule names every variable: `EMNIFY_EXPORTER_` (the simulator's: `EMNIFY_SIMULATOR_`) and the
    /// flag's name in capitals; every old name maps onto a flag's variable.
    #[test]
    fn every_variable_follows_the_naming_rule() {
        let cmd = Cli::command();
        let check = |cmd: &clap::Command, prefix: &str| {
            for arg in cmd.get_arguments().filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version")) {
                let expected = env_name(prefix, arg.get_long().unwrap());
                assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(expected.as_str()), "--{}", arg.get_id());
            }
        };
        check(&cmd, "EMNIFY_EXPORTER_");
        check(cmd.find_subcommand("simulate").unwrap(), "EMNIFY_SIMULATOR_");
        let names: Vec<String> =
            cmd.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into()).collect();
        for (old, new) in RENAMED_ENV {
            assert!(names.iter().any(|n| n == new), "{old} → {new}, which no flag reads");
        }
    }

    #[test]
    fn empty_variables_and_the_exporters_own_for_a_subcommand_are_cleared() {
        let env = |name: &str| match name {
            "EMNIFY_EXPORTER_DEMO" => Some(String::new()),
            "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS" | "EMNIFY_POLL_INTERVAL" | "EMNIFY_EXPORTER_LOG_LEVEL" => {
                Some("x".to_string())
            }
            _ => None,
        };
        let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        assert_eq!(env_to_clear(&argv(&["x", "--demo"]), env), vec!["EMNIFY_EXPORTER_DEMO".to_string()]);
        let mut cleared = env_to_clear(&argv(&["x", "simulate"]), env);
        cleared.sort();
        assert_eq!(
            cleared,
            ["EMNIFY_EXPORTER_DEMO", "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS", "EMNIFY_POLL_INTERVAL"],
            "the log settings are shared with the subcommands; the rest is the exporter's"
        );
    }

    #[test]
    fn old_variable_names_are_adopted_unless_the_new_one_is_set() {
        let given = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        let mut set = Vec::new();
        let warnings = adopt_renamed_env(given(&[("EMNIFY_POLL_INTERVAL", "30s")]), |n, v| {
            set.push((n.to_string(), v.to_string()))
        });
        assert_eq!(set, vec![("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL".to_string(), "30s".to_string())]);
        assert!(warnings[0].contains("rename it to EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"), "{warnings:?}");
        let mut set = Vec::new();
        let both = given(&[("EMNIFY_OVERLAP", "5m"), ("EMNIFY_EXPORTER_EMNIFY_OVERLAP", "10m")]);
        let warnings = adopt_renamed_env(both, |n, v| set.push((n.to_string(), v.to_string())));
        assert!(set.is_empty(), "the new name wins");
        assert!(warnings[0].contains("EMNIFY_OVERLAP is ignored"), "{warnings:?}");
        assert!(adopt_renamed_env(no_env, |_, _| panic!("nothing to adopt")).is_empty());
    }

    #[test]
    fn settings_a_mode_does_not_use_are_found() {
        let matches = |argv: &[&str]| Cli::command().try_get_matches_from(argv).unwrap();
        let poll = matches(&["x", "--webhook.path=/h", "--emnify.page-size=10"]);
        let warnings = unused_settings(&poll, no_env);
        assert_eq!(warnings, vec!["--webhook.path is ignored: --ingest.mode=poll does not use it".to_string()]);
        let push = matches(&["x", "--ingest.mode=push", "--emnify.poll-interval=1m", "--webhook.path=/h"]);
        let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "t".to_string());
        let warnings = unused_settings(&push, token);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].starts_with("--emnify.poll-interval is ignored: --ingest.mode=push"), "{warnings:?}");
        assert!(warnings[1].starts_with("EMNIFY_APPLICATION_TOKEN is ignored"), "{warnings:?}");
        assert!(unused_settings(&matches(&["x", "--ingest.mode=both", "--webhook.path=/h"]), token).is_empty());
        let demo = unused_settings(&matches(&["x", "--demo", "--emnify.api-url=https://cdn.emnify.net"]), token);
        assert_eq!(demo.len(), 2, "{demo:?}");
        assert!(demo[0].starts_with("--emnify.api-url is ignored: --demo"), "{demo:?}");
        assert!(
            demo[1].starts_with("EMNIFY_APPLICATION_TOKEN is ignored: --demo"),
            "the demo never sends it: {demo:?}"
        );
    }

    #[test]
    fn durations_and_addresses() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
        assert!(parse_poll_interval("100ms").is_err());
        assert!(parse_lookback("31d").is_err());
        assert_eq!(parse_signed_duration("-15m"), Ok(-900_000));
        assert_eq!(parse_signed_duration("1h"), Ok(3_600_000));
        assert_eq!(parse_listen_address(":9853"), Ok("[::]:9853".parse().unwrap()));
        assert_eq!(parse_listen_address("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
        assert!(parse_listen_address("nonsense").is_err());
        assert_eq!(parse_url("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
        assert!(parse_url("ftp://x").is_err());
        // A path prefix (a proxy) is kept; emnify's own /api/v1 is not.
        assert_eq!(parse_url("https://proxy.example/emnify").as_deref(), Ok("https://proxy.example/emnify"));
        assert!(parse_url("https://cdn.emnify.net/api/v1").unwrap_err().contains("use https://cdn.emnify.net"));
        let endpoint = parse_url("https://cdn.emnify.net/api/v1/event").unwrap_err();
        assert!(endpoint.contains("without /api/v1/event") && endpoint.ends_with("use https://cdn.emnify.net"));
        assert!(parse_url("https://cdn.emnify.net/api").unwrap_err().contains("use https://cdn.emnify.net"));
        assert_eq!(
            parse_url("https://proxy.example/api").as_deref(),
            Ok("https://proxy.example/api"),
            "a proxy's /api"
        );
        assert!(parse_url("https://user:pw@proxy.example").unwrap_err().contains("user name or password"));
        let mistyped = parse_url("http:/cdn.emnify.net").unwrap_err();
        assert!(mistyped.contains("is not a URL") && !mistyped.contains("https://http"), "{mistyped}");
    }

    fn args(extra: &[&str]) -> ExporterArgs {
        let mut argv = vec!["emnify-exporter"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().exporter
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn push_mode_needs_credentials_or_an_explicit_opt_out() {
        let err = args(&["--ingest.mode=push"]).into_config(no_env).unwrap_err().to_string();
        assert!(err.contains("--webhook.insecure-no-auth"), "{err}");
        let open = args(&["--ingest.mode=push", "--webhook.insecure-no-auth"]).into_config(no_env).unwrap();
        assert!(open.poll.is_none(), "push mode needs no application token");
        let secret = |name: &str| (name == "EMNIFY_EXPORTER_WEBHOOK_SECRET").then(|| "s3cret".to_string());
        let config = args(&["--ingest.mode=push"]).into_config(secret).unwrap();
        let receiver = config.push.unwrap();
        assert_eq!(receiver.secret_header.unwrap().1.expose(), "s3cret");
        assert_eq!(receiver.max_body_bytes, 32 * 1024 * 1024);
        let both = args(&["--ingest.mode=both"]).into_config(secret).unwrap_err().to_string();
        assert!(both.contains("EMNIFY_APPLICATION_TOKEN"), "both mode still polls: {both}");
        let user_only = args(&["--ingest.mode=push", "--webhook.basic-auth-user=u"]).into_config(no_env);
        assert!(user_only.unwrap_err().to_string().contains("password"));
        // The demo's set-up gives its receiver a secret (see `app`); the configuration itself accepts none.
        assert!(args(&["--ingest.mode=push", "--demo"]).into_config(no_env).unwrap().push.is_some());
        assert_eq!(parse_size("10MB"), Ok(10_000_000));
        assert!(parse_size("10 parsecs").is_err());
    }

    /// Push mode remembers pushed ids for `--webhook.remember` (an hour unless set), not for the overlap
    /// (10 minutes): a re-delivery 15 minutes later is a duplicate. With a poller, the overlap still.
    #[test]
    fn the_push_remember_horizon_is_its_own_setting() {
        let open = ["--ingest.mode=push", "--webhook.insecure-no-auth"];
        let push = args(&open).into_config(no_env).unwrap();
        assert_eq!(push.tally.remember_pushed, Duration::from_secs(3600));
        let set = args(&[&open[..], &["--webhook.remember=3h"]].concat()).into_config(no_env).unwrap();
        assert_eq!(set.tally.remember_pushed, Duration::from_secs(3 * 3600));
        let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "tok".to_string());
        let both = args(&["--ingest.mode=both", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
        assert_eq!(both.tally.remember_pushed, Duration::from_secs(600));
    }

    #[test]
    fn each_mode_has_exactly_its_parts() {
        let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "tok".to_string());
        let poll = args(&[]).into_config(token).unwrap();
        assert!(poll.poll.is_some() && poll.push.is_none());
        assert_eq!(poll.mode(), "poll");
        let both = args(&["--ingest.mode=both", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
        assert!(both.poll.is_some() && both.push.is_some());
        assert_eq!(both.mode(), "both");
        let push = args(&["--ingest.mode=push", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
        assert!(push.poll.is_none() && push.push.is_some());
        assert_eq!(push.mode(), "push");
        let level = Cli::try_parse_from(["emnify-exporter", "--log.level=warn"]).unwrap().exporter.log_level;
        assert_eq!(level, LogLevel::Warn);
        assert!(Cli::try_parse_from(["emnify-exporter", "--log.level=loud"]).is_err());
    }

    #[test]
    fn token_sources_are_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "x\n").unwrap();
        let file_flag = format!("--emnify.application-token-file={}", file.display());
        let token =
            |value: &'static str| move |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| value.to_string());
        let err = args(&[&file_flag]).into_config(token("tok")).unwrap_err();
        assert!(err.to_string().contains("set only one"), "{err}");
        assert!(args(&[]).into_config(no_env).unwrap_err().to_string().contains("EMNIFY_APPLICATION_TOKEN"));
        let poll = |config: Config| config.poll.unwrap();
        assert!(matches!(poll(args(&[&file_flag]).into_config(no_env).unwrap()).token, TokenSource::File(_)));
        let demo = poll(args(&["--demo"]).into_config(token("real-token")).unwrap());
        assert!(matches!(&demo.token, TokenSource::Value(t) if t.expose() == crate::simulator::DEMO_APPLICATION_TOKEN));
        assert_eq!(demo.interval, Duration::from_secs(5));
        let config = args(&[]).into_config(token("secret-token")).unwrap();
        assert!(!format!("{config:?}").contains("secret-token"));
    }
}
