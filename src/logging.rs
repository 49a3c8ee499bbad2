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
    let _ = tracing_subscriber::registry().with(filter).with(LineLayer { format, sink: Sink::Stderr }).try_init();
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
    let layer = LineLayer { format: LogFormat::Logfmt, sink: Sink::Captured };
    let _ = tracing_subscriber::registry().with(filter).with(layer).try_init();
}

/// Where finished lines go.
#[derive(Debug, Clone, Copy)]
enum Sink {
    /// Straight to the process's stderr, one write per line (lines from threads never interleave).
    Stderr,
    /// Through `eprint!`, which the test harness captures.
    Captured,
}

/// Writes each event as one line: `ts`, `level`, `msg` first in logfmt; `time`, `level`, `msg` in a
/// flat JSON object. These are the keys Prometheus' own components and log pipelines (Loki, Vector)
/// expect; the fields of the event follow, then `component` (the module, for events outside the
/// crate's root).
struct LineLayer {
    format: LogFormat,
    sink: Sink,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LineLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: tracing_subscriber::layer::Context<'_, S>) {
        let line = format_line(self.format, crate::timefmt::now_millis(), event);
        match self.sink {
            Sink::Stderr => {
                use std::io::Write;
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Captured => eprint!("{line}"),
        }
    }
}

/// One event as a finished line, newline included.
fn format_line(format: LogFormat, now_millis: i64, event: &tracing::Event<'_>) -> String {
    let metadata = event.metadata();
    let mut fields = Fields::default();
    event.record(&mut fields);
    let component = component(metadata.target());
    let level = level_name(*metadata.level());
    let time = crate::timefmt::format_event_timestamp(now_millis);
    let mut line = String::with_capacity(160);
    match format {
        LogFormat::Logfmt => {
            line.push_str("ts=");
            line.push_str(&time);
            line.push_str(" level=");
            line.push_str(level);
            line.push_str(" msg=");
            push_logfmt_value(&mut line, &fields.message);
            for (key, value) in &fields.pairs {
                line.push(' ');
                line.push_str(key);
                line.push('=');
                push_logfmt_value(&mut line, value.as_text());
            }
            if let Some(component) = component {
                line.push_str(" component=");
                push_logfmt_value(&mut line, component);
            }
        }
        LogFormat::Json => {
            line.push_str("{\"time\":\"");
            line.push_str(&time);
            line.push_str("\",\"level\":\"");
            line.push_str(level);
            line.push_str("\",\"msg\":");
            push_json_string(&mut line, &fields.message);
            for (key, value) in &fields.pairs {
                line.push(',');
                push_json_string(&mut line, key);
                line.push(':');
                match value {
                    Value::Number(n) => line.push_str(n),
                    Value::Text(t) => push_json_string(&mut line, t),
                }
            }
            if let Some(component) = component {
                line.push_str(",\"component\":");
                push_json_string(&mut line, component);
            }
            line.push('}');
        }
    }
    line.push('\n');
    line
}

/// Lowercase, as Prometheus writes levels.
fn level_name(level: tracing::Level) -> &'static str {
    match level {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warn",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

/// The module an event comes from, without the crate's name (`poller`, `emnify::client`); none for
/// the crate's root (the binary's own lines). Libraries keep their full target.
fn component(target: &str) -> Option<&str> {
    match target.strip_prefix("emnify_exporter") {
        Some("") => None,
        Some(rest) => Some(rest.strip_prefix("::").unwrap_or(rest)),
        None => Some(target),
    }
}

/// A field's value: numbers and booleans stay bare in JSON, everything else is text.
enum Value {
    Number(String),
    Text(String),
}

impl Value {
    fn as_text(&self) -> &str {
        match self {
            Value::Number(t) | Value::Text(t) => t,
        }
    }
}

/// The fields of one event, in the order they were given.
#[derive(Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, Value)>,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.put(field, Value::Text(value.to_string()));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.put(field, Value::Number(value.to_string()));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.put(field, Value::Number(value.to_string()));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.put(field, Value::Number(value.to_string()));
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        // JSON has no NaN or infinity.
        let value = if value.is_finite() { Value::Number(value.to_string()) } else { Value::Text(value.to_string()) };
        self.put(field, value);
    }
    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, Value::Text(value.to_string()));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.put(field, Value::Text(format!("{value:?}")));
    }
}

impl Fields {
    fn put(&mut self, field: &tracing::field::Field, value: Value) {
        // A field named like one of the line's own keys would give a JSON object two of them.
        let name = match field.name() {
            "message" => {
                self.message = match value {
                    Value::Number(t) | Value::Text(t) => t,
                };
                return;
            }
            "time" => "field.time",
            "ts" => "field.ts",
            "level" => "field.level",
            "msg" => "field.msg",
            "component" => "field.component",
            name => name,
        };
        self.pairs.push((name, value));
    }
}

/// A logfmt value: bare when it is one plain word, else quoted with `"`, `\\`, control characters
/// and Unicode line separators escaped as Go's logfmt does (`\n`, `\u2028`), so one event is
/// always one line for every reader.
fn push_logfmt_value(line: &mut String, value: &str) {
    let plain = |c: char| !c.is_whitespace() && !c.is_control() && c != '"' && c != '=' && c != '\\';
    if !value.is_empty() && value.chars().all(plain) {
        line.push_str(value);
        return;
    }
    line.push('"');
    for c in value.chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            '\t' => line.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                line.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => line.push(c),
        }
    }
    line.push('"');
}

/// A JSON string literal.
fn push_json_string(line: &mut String, value: &str) {
    match serde_json::to_string(value) {
        Ok(text) => line.push_str(&text),
        Err(_) => line.push_str("\"\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::Context;

    /// Collects the lines a [`LineLayer`]-like layer makes, at a fixed time.
    struct Collect(LogFormat, Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Collect {
        fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
            self.1.lock().unwrap().push(format_line(self.0, 1_796_176_218_412, event));
        }
    }

    fn lines(format: LogFormat, emit: impl FnOnce()) -> Vec<String> {
        let out = Arc::new(Mutex::new(Vec::new()));
        let subscriber = tracing_subscriber::registry().with(Collect(format, out.clone()));
        tracing::subscriber::with_default(subscriber, emit);
        let lines = out.lock().unwrap().clone();
        lines
    }

    fn emit() {
        tracing::info!(count = 3u64, ok = true, share = 0.5, url = "http://x/a b", "polled \"emnify\"\nagain");
        tracing::warn!(target: "hyper::proto", "library line");
    }

    #[test]
    fn logfmt_lines_start_with_ts_level_msg_and_stay_one_line() {
        let lines = lines(LogFormat::Logfmt, emit);
        assert_eq!(
            lines[0],
            "ts=2026-12-02T01:50:18.412Z level=info msg=\"polled \\\"emnify\\\"\\nagain\" count=3 ok=true share=0.5 \
             url=\"http://x/a b\" component=logging::tests\n"
        );
        assert_eq!(lines[1], "ts=2026-12-02T01:50:18.412Z level=warn msg=\"library line\" component=hyper::proto\n");
    }

    #[test]
    fn odd_text_stays_one_logfmt_value_and_own_keys_are_not_shadowed() {
        let logfmt = lines(LogFormat::Logfmt, || {
            tracing::info!(a = "\u{1b}[31m", b = "x\u{2028}y", c = "x\u{85}y", level = "loud", "m");
        });
        assert_eq!(
            logfmt[0],
            "ts=2026-12-02T01:50:18.412Z level=info msg=m a=\"\\u001b[31m\" b=\"x\\u2028y\" c=\"x\\u0085y\" \
             field.level=loud component=logging::tests\n"
        );
        let json = lines(LogFormat::Json, || tracing::info!(level = "loud", "m")).remove(0);
        assert_eq!(json.matches("\"level\":").count(), 1, "one level key: {json}");
        let json: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!((json["level"].as_str(), json["field.level"].as_str()), (Some("info"), Some("loud")));
    }

    #[test]
    fn json_lines_are_flat_with_time_level_msg() {
        let lines = lines(LogFormat::Json, emit);
        let first: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(
            first,
            serde_json::json!({"time": "2026-12-02T01:50:18.412Z", "level": "info", "msg": "polled \"emnify\"\nagain",
                "count": 3, "ok": true, "share": 0.5, "url": "http://x/a b", "component": "logging::tests"})
        );
        assert!(lines[0].starts_with("{\"time\":"), "time comes first: {}", lines[0]);
        assert_eq!(lines[0].matches('\n').count(), 1, "one line: {}", lines[0]);
        let second: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
        assert_eq!(second["level"], "warn");
    }
}
