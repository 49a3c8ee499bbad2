//! The two exposition formats `/metrics` speaks: the Prometheus text format 0.0.4 (the default, as it
//! always was) and OpenMetrics 1.0 text, which carries exemplars; and choosing between them from a
//! scrape's `Accept` header, as Prometheus' own servers do.

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposition {
    /// `text/plain; version=0.0.4`.
    Prometheus,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

/// The `Content-Type` of the Prometheus text format.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The `Content-Type` of OpenMetrics 1.0 text.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl Exposition {
    pub fn content_type(self) -> &'static str {
        match self {
            Exposition::Prometheus => TEXT_CONTENT_TYPE,
            Exposition::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// OpenMetrics when the `Accept` header prefers it (a higher `q` than any text format it accepts,
    /// `*/*` included), the Prometheus text format otherwise: a tie, no header, or one that cannot be
    /// read keeps the format clients have always had.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let Some(accept) = accept else { return Exposition::Prometheus };
        let mut openmetrics = 0.0f64;
        let mut text = 0.0f64;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0;
            let mut version = None;
            for param in parts {
                let Some((name, value)) = param.split_once('=') else { continue };
                match name.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.trim().parse::<f64>().ok().filter(|q| (0.0..=1.0).contains(q)).unwrap_or(0.0),
                    "version" => version = Some(value.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            match media.as_str() {
                // 0.0.1 is the draft Prometheus 2 also accepts; 1.0.0 is what is served.
                "application/openmetrics-text" if version.as_deref().is_none_or(|v| v == "1.0.0" || v == "0.0.1") => {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" | "*/*" | "text/*" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics > text {
            Exposition::OpenMetrics
        } else {
            Exposition::Prometheus
        }
    }
}

/// Rewrites families encoded in the Prometheus text format as OpenMetrics text (without `# EOF`):
/// a counter family is named without its `_total` (its samples keep it), `untyped` becomes
/// `unknown`, and `"` in help texts is escaped. Samples are the same in both formats.
pub(super) fn to_openmetrics(text: &[u8], out: &mut Vec<u8>) {
    out.reserve(text.len() + text.len() / 16);
    // A HELP line waits for its TYPE line, which says whether the family is a counter.
    let mut help: Option<(&[u8], &[u8])> = None;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let bare = line.strip_suffix(b"\n").unwrap_or(line);
        if let Some(rest) = bare.strip_prefix(b"# HELP ") {
            flush_help(&mut help, None, out);
            let (name, text) = split_once(rest);
            help = Some((name, text));
        } else if let Some(rest) = bare.strip_prefix(b"# TYPE ") {
            let (name, kind) = split_once(rest);
            let family = match kind {
                b"counter" => name.strip_suffix(b"_total").unwrap_or(name),
                _ => name,
            };
            let same = help.is_some_and(|(h, _)| h == name);
            flush_help(&mut help, same.then_some(family), out);
            out.extend_from_slice(b"# TYPE ");
            out.extend_from_slice(family);
            out.push(b' ');
            out.extend_from_slice(if kind == b"untyped" { b"unknown" } else { kind });
            out.push(b'\n');
        } else if !bare.is_empty() {
            flush_help(&mut help, None, out);
            out.extend_from_slice(bare);
            out.push(b'\n');
        }
    }
    flush_help(&mut help, None, out);
}

/// Writes a pending HELP line, under `family` when given (else its own name).
fn flush_help(help: &mut Option<(&[u8], &[u8])>, family: Option<&[u8]>, out: &mut Vec<u8>) {
    let Some((name, text)) = help.take() else { return };
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(family.unwrap_or(name));
    out.push(b' ');
    write_help_text(text, out);
    out.push(b'\n');
}

/// A help text as OpenMetrics escapes it: the Prometheus format's `\\` and `\n` stay, `"` gets one.
pub(super) fn write_help_text(text: &[u8], out: &mut Vec<u8>) {
    for &b in text {
        if b == b'"' {
            out.extend_from_slice(b"\\\"");
        } else {
            out.push(b);
        }
    }
}

fn split_once(line: &[u8]) -> (&[u8], &[u8]) {
    match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, b""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_default_accept_headers_get_openmetrics_and_curl_gets_text() {
        // Prometheus 2.x (scrape_config defaults) and 3.x (scrape_protocols defaults).
        let v2 = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,\
                  text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        let v3 = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8,application/openmetrics-text;\
                  version=0.0.1;q=0.9,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.8,text/plain;version=0.0.4;\
                  q=0.7,*/*;q=0.6";
        // A client that prefers the text format.
        let v2_text = "text/plain;version=0.0.4;q=1,*/*;q=0.1";
        assert_eq!(Exposition::from_accept(Some(v2)), Exposition::OpenMetrics);
        assert_eq!(Exposition::from_accept(Some(v3)), Exposition::OpenMetrics);
        assert_eq!(Exposition::from_accept(Some(v2_text)), Exposition::Prometheus);
        assert_eq!(Exposition::from_accept(Some("*/*")), Exposition::Prometheus, "curl");
        assert_eq!(Exposition::from_accept(None), Exposition::Prometheus);
        assert_eq!(Exposition::from_accept(Some("application/openmetrics-text")), Exposition::OpenMetrics);
        let tie = "application/openmetrics-text;q=0.5,text/plain;q=0.5";
        assert_eq!(Exposition::from_accept(Some(tie)), Exposition::Prometheus);
        let unknown_version = "application/openmetrics-text;version=2.0.0";
        assert_eq!(Exposition::from_accept(Some(unknown_version)), Exposition::Prometheus);
        assert_eq!(Exposition::from_accept(Some("application/openmetrics-text;q=0")), Exposition::Prometheus);
    }

    #[test]
    fn counter_families_lose_total_in_their_metadata_only() {
        let text = b"# HELP a_total Things \"quoted\" done.\n# TYPE a_total counter\na_total{x=\"1\"} 3\n\
                     # HELP b A gauge.\n# TYPE b gauge\nb 1\n# HELP c Untyped.\n# TYPE c untyped\nc 2\n";
        let mut out = Vec::new();
        to_openmetrics(text, &mut out);
        let expected = "# HELP a Things \\\"quoted\\\" done.\n# TYPE a counter\na_total{x=\"1\"} 3\n\
                        # HELP b A gauge.\n# TYPE b gauge\nb 1\n# HELP c Untyped.\n# TYPE c unknown\nc 2\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }
}
