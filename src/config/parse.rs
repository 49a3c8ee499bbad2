//! The value parsers clap calls for the flags: sizes, durations with their bounds, URLs, addresses,
//! paths, shares, fault lists, latency ranges, log levels and formats.

use std::net::SocketAddr;
use std::time::Duration;

use crate::emnify::RETENTION;
use crate::logging::{LogFormat, LogLevel};
use crate::timefmt::parse_duration;

/// A duration as [`parse_duration`] reads it (`30s`, `5m`, `1h30m`, `0`). A bare number other than 0
/// is told the unit to add: the usual mistake is `60` meant as seconds, and the parser's own
/// message suggests units (`60ms`) the flags may not even allow.
pub(super) fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if !text.is_empty() && text != "0" && text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "'{text}' has no unit: write {text}s for seconds (units: s, m, h, d; e.g. 30s, 5m, 1h30m)"
        ));
    }
    parse_duration(text)
}

/// `MIN` or `MIN-MAX`, two durations.
pub(super) fn parse_latency_range(text: &str) -> Result<(Duration, Duration), String> {
    let (low, high) = text.split_once('-').unwrap_or((text, text));
    let (low, high) = (duration(low)?, duration(high)?);
    if high < low {
        return Err(format!("'{text}': the maximum is below the minimum"));
    }
    Ok((low, high))
}

/// On/off flags: `true/false`, `1/0`, `yes/no` (and `on/off`) from the environment; bare on the command line.
pub(super) fn boolish() -> clap::builder::BoolishValueParser {
    clap::builder::BoolishValueParser::new()
}

/// `--log.level`: the names [`LogLevel`] reads, listed in `--help`.
pub(super) fn log_level() -> impl clap::builder::TypedValueParser<Value = LogLevel> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(LogLevel::NAMES).map(|name| name.parse().unwrap_or(LogLevel::Info))
}

/// `--log.format`: the names [`LogFormat`] reads.
pub(super) fn log_format() -> impl clap::builder::TypedValueParser<Value = LogFormat> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(LogFormat::NAMES).map(|name| name.parse().unwrap_or(LogFormat::Logfmt))
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
pub(super) fn parse_signed_duration(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (sign, rest) = text.strip_prefix('-').map_or((1, text), |rest| (-1, rest));
    Ok(sign * crate::timefmt::duration_millis(duration(rest)?))
}

/// `--web.max-header-size`: hyper needs at least 8 KiB to read a request at all.
pub(super) fn parse_header_size(text: &str) -> Result<usize, String> {
    let size = parse_size(text)?;
    if !(8 * 1024..=1024 * 1024).contains(&size) {
        return Err("must be between 8KiB and 1MiB".into());
    }
    Ok(size)
}

pub(super) fn parse_share(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(share) if (0.0..=1.0).contains(&share) => Ok(share),
        _ => Err("must be a number from 0 to 1 (0.9 is 90% of each of emnify's limits; 0 turns the budget off)".into()),
    }
}

pub(super) fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

pub(super) fn parse_poll_interval(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d < Duration::from_secs(1) {
        return Err("must be at least 1s (emnify limits event requests to 10 per second)".into());
    }
    Ok(d)
}

pub(super) fn parse_lookback(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d > RETENTION {
        return Err("must be at most 30d, emnify's event retention".into());
    }
    Ok(d)
}

pub(super) fn parse_overlap(text: &str) -> Result<Duration, String> {
    let d = duration(text)?;
    if d < Duration::from_secs(1) || d > RETENTION {
        return Err("must be between 1s and 30d".into());
    }
    Ok(d)
}

pub(super) fn parse_url(text: &str) -> Result<String, String> {
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

pub(super) fn parse_faults(text: &str) -> Result<crate::simulator::faults::FaultConfig, String> {
    text.parse()
}

pub(super) fn parse_telemetry_path(text: &str) -> Result<String, String> {
    if !text.starts_with('/') || text.len() < 2 || text.contains(['?', '#', ' ']) {
        return Err("must be a path like /metrics".into());
    }
    if matches!(text, "/-/healthy" | "/-/ready") {
        return Err("must not be one of the health paths".into());
    }
    Ok(text.to_string())
}
