//! Log set-up: logfmt or JSON lines on stderr, filtered by `--log.level`.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogLevel};

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
