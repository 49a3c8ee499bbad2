//! The landing page at `/`: is the exporter working, and if not, why and what to check. Plain HTML, no
//! scripts; every row has an id (tests and people linking to it read them).

use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::StatusCode;

use super::demo::{BURST, BURST_PATH};
use super::state::{About, ServerState};
use crate::http::{respond, HttpResponse};
use crate::metrics::StateHealth;
use crate::timefmt::now_millis;

/// What is de-duplicated, exactly, in the running mode (docs/how-counting-works.md, "Exactly once").
fn dedup_promise(about: &About) -> String {
    match about.mode {
        "push" => format!(
            "each event id once while remembered: a push delivered again within {} of its arrival is not counted \
             twice, a later one is",
            humantime::format_duration(about.remember_pushed)
        ),
        "both" => "each event id once; a pushed event in a span polling has read is never counted again".into(),
        _ => "each event id once".into(),
    }
}

/// The landing page: is it working, and if not, why. Plain HTML, no scripts; every row has an id
/// (tests and people linking to it read them).
pub(super) fn landing_page(state: &ServerState) -> HttpResponse {
    let status = state.metrics.status();
    let about = &state.about;
    let now = now_millis() as f64 / 1000.0;
    let when = |t: f64| {
        format!("{} ({:.0}s ago)", crate::timefmt::format_event_timestamp((t * 1000.0) as i64), (now - t).max(0.0))
    };
    let esc = |text: &str| html_escape(text);
    let mut rows: Vec<(&str, &str, String)> = Vec::new();

    let saving_fails = matches!(status.state, StateHealth::Failing { .. });
    let polls = about.api.is_some();
    let overall = if saving_fails {
        "<strong class=\"bad\">NOT PUBLISHING</strong>: the state file cannot be saved, so the published counts \
         stay as they were (see State file)"
            .to_string()
    } else if polls && !status.up {
        match &status.last_poll.error {
            Some((_, reason, _)) => format!(
                "<strong class=\"bad\">POLLS FAIL</strong> ({}): {}; see Last poll error, and \
                 emnify_poll_errors_total",
                esc(reason),
                what_to_check(reason)
            ),
            None => "starting: no poll has finished yet (a failed request is tried again twice before the poll \
                     counts as failed here; the log shows each try)"
                .to_string(),
        }
    } else if status.state_set_aside.is_some() {
        // It works, but what Prometheus saw before this start was not continued: not a plain "working".
        "<strong class=\"good\">working</strong>, but <strong class=\"bad\">counters restarted from zero</strong>: \
         the state file was set aside at start (see State file set aside)"
            .to_string()
    } else {
        "<strong class=\"good\">working</strong>".to_string()
    };
    rows.push(("status", "Status", overall));
    let mode = match about.mode {
        "poll" => "poll (emnify REST API)",
        "push" => "push (emnify Data Streamer)",
        _ => "both (Data Streamer pushes, polls as the gap-filler)",
    };
    let demo = if about.demo_simulator.is_some() { ", demo: the built-in simulator stands in for emnify" } else { "" };
    rows.push(("mode", "Mode", format!("{mode}{demo}")));
    if let Some((url, interval)) = &about.api {
        rows.push(("api", "emnify API", format!("{} every {}", esc(url), humantime::format_duration(*interval))));
        let last = match status.last_poll.finished {
            // Counts that cannot be published are no success to report.
            Some((t, true)) if saving_fails => {
                format!(
                    "{}: read, but its counts are <strong class=\"bad\">not published</strong> (see State file)",
                    when(t)
                )
            }
            Some((t, true)) => format!("{}: succeeded", when(t)),
            Some((t, false)) => format!("{}: <strong class=\"bad\">failed</strong>", when(t)),
            None => "none finished yet".to_string(),
        };
        rows.push(("last-poll", "Last poll", last));
        let success = status.last_success_unix.map_or("none yet".to_string(), when);
        rows.push(("last-success", "Last successful poll", success));
        let error = match &status.last_poll.error {
            Some((t, reason, message)) => format!("{}: <code>{}</code>: {}", when(*t), esc(reason), esc(message)),
            None => "none since start".to_string(),
        };
        rows.push(("last-error", "Last poll error", error));
    }
    if let Some((path, auth)) = &about.webhook {
        rows.push(("webhook", "Push receiver", format!("<code>{}</code>, authenticated by {}", esc(path), esc(auth))));
        let push = status.last_push_unix.map_or("none yet".to_string(), when);
        rows.push(("last-push", "Last push accepted", push));
        let refused = match &status.last_push_rejected {
            Some((t, reason)) => format!("{}: <code>{}</code> (see emnify_push_rejected_total)", when(*t), esc(reason)),
            None => "none since start".to_string(),
        };
        rows.push(("last-push-refused", "Last push refused", refused));
        rows.push(("data-stream", "Data Streamer", data_streams(&state.metrics.watchdog.status(), &when)));
    }
    rows.push((
        "counted",
        "Events counted",
        format!("{} ({}, {})", status.events_counted, dedup_promise(about), counted_since(about)),
    ));
    let state_file = match (&about.state_file, &status.state) {
        (None, _) | (_, StateHealth::NotUsed) => "not used: counters start from zero at each start".to_string(),
        (Some(path), StateHealth::Saved(Some(t))) => format!("<code>{}</code>: last saved {}", esc(path), when(*t)),
        (Some(path), StateHealth::Saved(None)) => format!("<code>{}</code>: not saved yet", esc(path)),
        (Some(path), StateHealth::Failing { error, last_success_unix }) => format!(
            "<code>{}</code>: <strong class=\"bad\">saving FAILS</strong> ({}); the published counts stay as of \
             the last good save{} until a save works (see emnify_state_save_failures_total)",
            esc(path),
            esc(error),
            last_success_unix.map(|t| format!(", {}", when(t))).unwrap_or_default()
        ),
    };
    rows.push(("state-file", "State file", state_file));
    if let Some(aside) = &status.state_set_aside {
        let moved = match &aside.moved_to {
            Ok(path) => format!("moved to <code>{}</code>, kept for inspection", esc(path)),
            Err(error) => {
                format!("<strong class=\"bad\">not moved</strong> ({}): the next save overwrites it", esc(error))
            }
        };
        rows.push((
            "state-set-aside",
            "State file set aside",
            format!(
                "<strong class=\"bad\">set aside at start</strong>, {}: <code>{}</code> ({}); {moved}. Every \
                 counter restarted from zero, and the events between that file's last save and this start are \
                 missing (with --emnify.lookback, those within it are counted afresh, some a second time); see \
                 emnify_state_set_aside and docs/reliability.md",
                when(aside.at_unix),
                esc(aside.reason),
                esc(&aside.error),
            ),
        ));
    }
    let (organisations, limit, overflow) = status.organisations;
    let overflowing = if overflow > 0 {
        format!("; <strong class=\"bad\">{overflow} events</strong> counted under organisation_id=\"overflow\" (raise --metrics.max-organisations)")
    } else {
        String::new()
    };
    // Unnamed event types are capped like organisations (issue 25); said only once there are any, as
    // emnify's catalogue names every real type and most exporters never see one.
    let (types, type_limit, type_overflow) = status.event_types;
    let type_overflowing = if type_overflow > 0 {
        format!(
            "; <strong class=\"bad\">{type_overflow} events</strong> counted under event_type_id=\"overflow\" \
             (check who pushes, or raise --metrics.max-unknown-event-types)"
        )
    } else {
        String::new()
    };
    let event_types = if types > 0 || type_overflow > 0 {
        format!(
            "; {types} event types without a name with series of their own, of at most {type_limit}{type_overflowing}"
        )
    } else {
        String::new()
    };
    rows.push((
        "series",
        "Series",
        format!("{organisations} organisations with series of their own, of at most {limit}{overflowing}{event_types}"),
    ));
    let web = state.security.as_ref().map(|s| s.current());
    let tls = web.as_ref().map_or("off", |w| w.tls_mode());
    let auth = if web.as_ref().is_some_and(|w| w.requires_auth()) { "basic auth" } else { "no auth" };
    rows.push(("web", "Served on", format!("{}, TLS {tls}, {auth}", esc(&about.listen))));
    rows.push((
        "build",
        "Build",
        format!(
            "version {} (branch {}, revision {}), built {} with {}",
            crate::VERSION,
            esc(crate::BRANCH),
            esc(crate::REVISION),
            esc(crate::BUILD_DATE),
            esc(crate::RUSTC_VERSION)
        ),
    ));
    let path = esc(&state.telemetry_path);
    let mut links = format!(
        "<a href=\"{path}\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a>"
    );
    if about.demo_simulator.is_some() {
        // Paths on this server, which passes them to the simulator (its own port is loopback-only).
        links.push_str(
            " · <a href=\"/simulator/truth\">The simulator's truth</a> (what it produced, to compare with the \
             metrics) · <a href=\"/simulator/stats\">its request counts</a>",
        );
        let port = about.listen.rsplit(':').next().unwrap_or("9853");
        rows.push((
            "burst",
            "Try a burst",
            format!(
                "<form method=\"post\" action=\"{BURST_PATH}\"><button type=\"submit\">Send {BURST} Generic \
                 events</button></form> or <code>curl -X POST http://localhost:{}{BURST_PATH}</code>; the demo also \
                 makes one every 45 s",
                esc(port)
            ),
        ));
    }
    rows.push(("links", "Links", links));

    let mut table = String::new();
    for (id, name, value) in &rows {
        table.push_str(&format!("<tr id=\"{id}\"><th>{name}</th><td>{value}</td></tr>\n"));
    }
    let body = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>emnify exporter</title>\n\
         <style>body {{ font-family: sans-serif; margin: 0 1em; }} h1 {{ background: #e6522c; color: white; \
         padding: 0.3em; }} th {{ text-align: left; vertical-align: top; padding: 0.25em 1em 0.25em 0; \
         white-space: nowrap; }} td {{ padding: 0.25em 0; }} .bad {{ color: #b00020; }} .good {{ color: #1b7a1b; }} \
         form {{ display: inline; }}</style></head>\n<body>\n<h1>emnify exporter</h1>\n\
         <p>Prometheus exporter for emnify IoT platform events.</p>\n<table>\n{table}</table>\n</body></html>\n"
    );
    let mut response = respond(StatusCode::OK, "text/html; charset=utf-8", body);
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The watchdog's streams of the exporter's, each with its state and since when (issue 26).
fn data_streams(watchdog: &crate::metrics::WatchdogStatus, when: &dyn Fn(f64) -> String) -> String {
    if !watchdog.enabled {
        return "not watched: the watchdog needs an application token (docs/alerting.md, EmnifyDataStreamFailed)"
            .into();
    }
    let mut parts: Vec<String> = watchdog
        .streams
        .iter()
        .filter(|s| s.ours)
        .map(|s| {
            let (state, note) = match s.state {
                "error" => ("<strong class=\"bad\">Error</strong>".to_string(), ": sends nothing until restarted"),
                "paused" => ("<strong class=\"bad\">Paused</strong>".to_string(), ": holds events up to 7 days"),
                other => (other.to_string(), ""),
            };
            format!("stream {} <code>{}</code>: {state} since {}{note}", s.id, html_escape(&s.name), when(s.since_unix))
        })
        .collect();
    if parts.is_empty() {
        parts.push("no stream of emnify's list points at this receiver yet".into());
    }
    if let Some(error) = &watchdog.failing {
        parts.push(format!("<strong class=\"bad\">the list cannot be read</strong>: {}", html_escape(error)));
    }
    let restart = if watchdog.restart { "restarts a stream in Error" } else { "watch only" };
    format!("{} ({restart})", parts.join("; "))
}

/// Where the count starts: this start, or the counts restored from the state file.
fn counted_since(about: &About) -> &'static str {
    match about.state_file {
        Some(_) => "counts restored from the state file included",
        None => "since this start: without a state file, counters start from zero",
    }
}

/// What to check for a poll error `reason` (one of `emnify_poll_errors_total`'s), as the README's
/// troubleshooting table says it.
fn what_to_check(reason: &str) -> &'static str {
    match reason {
        "auth" => "emnify refused the token: it is wrong, revoked or expired; rotate it",
        "connection" | "timeout" => {
            "emnify cannot be reached: check egress from this host to the API URL (DNS, firewall, and the proxy \
             if HTTPS_PROXY is set)"
        }
        "http_5xx" => "emnify answers with server errors, usually for a short while: the exporter tries again",
        "http_4xx" => "emnify refuses the requests: check --emnify.api-url",
        "rate_limited" => "emnify's rate limits: other clients of the account share them, or another exporter polls",
        "decode" => "the answers are not emnify's JSON: something between (a proxy's error page) answers instead",
        _ => "see the log",
    }
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
