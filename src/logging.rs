//! Log set-up: logfmt or JSON lines on stderr, filtered by a level.

use std::str::FromStr;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The least severe level logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

/// How each log line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Logfmt,
    Json,
}

impl LogLevel {
    /// The names accepted, as `--log.level` lists them.
    pub const NAMES: [&'static str; 4] = ["debug", "info", "warn", "error"];
}

impl LogFormat {
    pub const NAMES: [&'static str; 2] = ["logfmt", "json"];
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "debug" => Ok(LogLevel::Debug),
            "info" => Ok(LogLevel::Info),
            "warn" => Ok(LogLevel::Warn),
            "error" => Ok(LogLevel::Error),
            _ => Err(format!("unknown log level {text:?} (use {})", LogLevel::NAMES.join(", "))),
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "logfmt" => Ok(LogFormat::Logfmt),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {text:?} (use {})", LogFormat::NAMES.join(", "))),
        }
    }
}

impl From<LogLevel> for LevelFilter {
    fn from(level: LogLevel) -> Self {
        match level {
            LogLevel::Debug => LevelFilter::DEBUG,
            LogLevel::Info => LevelFilter::INFO,
            LogLevel::Warn => LevelFilter::WARN,
            LogLevel::Error => LevelFilter::ERROR,
        }
    }
}

/// Installs the global logger; a second call (tests) leaves the first in place.
pub fn init(level: LogLevel, format: LogFormat) {
    let level = LevelFilter::from(level);
    // Libraries log at most warnings: their debug output is noise to an operator.
    let filter = Targets::new().with_default(level.min(LevelFilter::WARN)).with_target("emnify_exporter", level);
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Logfmt => registry
            .with(tracing_logfmt::builder().with_span_path(false).layer().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(std::io::stderr).with_current_span(false))
            .try_init(),
    };
}

/// Logs into the test harness's captured output (shown for failing tests), only when `TEST_LOG` is
/// set: `TEST_LOG=debug cargo test ...`. Idempotent, like [`init`].
pub fn init_for_tests() {
    let Some(level) = std::env::var("TEST_LOG").ok().filter(|v| !v.is_empty()) else {
        return;
    };
    let level = level.parse().unwrap_or(LogLevel::Debug);
    let filter =
        Targets::new().with_default(LevelFilter::WARN).with_target("emnify_exporter", LevelFilter::from(level));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_test_writer().with_ansi(false))
        .try_init();
}
