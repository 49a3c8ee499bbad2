//! A bounded soak: the exporter runs for minutes against a simulator with a mixed fault schedule while
//! being scraped; its memory and file descriptors stay flat and, at the end, its counts are exact.
//!
//! Ignored by default (it takes about four minutes); `scripts/test` runs it with `--ignored`.
//! `SOAK_SECONDS` sets the measured phase (default 120).

use crate::common;

use std::time::{Duration, Instant};

use crate::common::{blocking_get, blocking_post, parse_exposition, sum, Process};

/// Every kind of fault at once. 401s and login failures are kept rare enough that re-logins stay within
/// the exporter's login budget (90 per 5 minutes, under emnify's 100): a budget spent on faults would
/// stall polling for minutes, by design.
const FAULTS: &str = "429=0.05,5xx=0.03,reset=0.02,stall=0.01,stall-for=2s,truncate=0.02,malformed=0.02,html=0.02,\
                      401=0.005,login-5xx=0.05,login-429=0.02,no-paging=0.1,bad-paging=0.1,dup=0.1,late=0.1";

/// `(resident set in KiB, open file descriptors)` of a process.
fn footprint(pid: u32) -> (u64, usize) {
    let rss = common::proc_status_kb(pid, "VmRSS:");
    assert!(rss > 0, "no VmRSS for {pid}");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("/proc fd").count();
    (rss, fds)
}

#[test]
#[ignore = "a soak of about four minutes; scripts/test runs it with --ignored"]
fn soak_under_mixed_faults_keeps_memory_flat_and_counts_exact() {
    let measured = Duration::from_secs(std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(120));
    let warm_up = Duration::from_secs(std::env::var("SOAK_WARMUP").ok().and_then(|s| s.parse().ok()).unwrap_or(100));
    let sim = Process::start(
        // Paused until the exporter runs: what happens before its first start is history it does not count.
        &["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--seed=11", &format!("--faults={FAULTS}")],
        &[],
    );
    let sim_url = sim.simulator_base();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json").to_string_lossy().into_owned();
    let exporter = Process::start(
        &[
            "--emnify.api-url",
            &sim_url,
            "--state.file",
            &state,
            "--emnify.poll-interval=1s",
            // Late events arrive up to a minute late; the overlap covers them, and the dedup memory
            // reaches its steady size within the warm-up.
            "--emnify.overlap=90s",
            // Late events can be stamped before the first start; the lookback counts them too.
            "--emnify.lookback=5m",
            "--emnify.request-timeout=1s",
            "--web.listen-address=127.0.0.1:0",
        ],
        &[("EMNIFY_APPLICATION_TOKEN", "demo-application-token")],
    );
    let address = exporter.listening_address("emnify exporter listening");
    let metrics_url = format!("http://{address}/metrics");
    let pid = exporter.child.id();
    blocking_post(&format!("{sim_url}/simulator/rate?events_per_second=100"));

    // Scrape like a busy Prometheus the whole time.
    let started = Instant::now();
    let mut start_footprint = None;
    let mut samples = Vec::new();
    let mut scrapes = 0u64;
    while started.elapsed() < warm_up + measured {
        let (status, _) = blocking_get(&metrics_url);
        assert_eq!(status, 200);
        scrapes += 1;
        if start_footprint.is_none() && started.elapsed() >= warm_up {
            start_footprint = Some(footprint(pid));
        }
        if scrapes % 50 == 0 {
            samples.push(footprint(pid));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let (rss_start, fds_start) = start_footprint.expect("measured after the warm-up");
    let (rss_end, fds_end) = footprint(pid);
    let rss_peak = samples.iter().map(|s| s.0).max().unwrap_or(rss_end);

    // Stop producing, clear the faults, and let the exporter catch up.
    blocking_post(&format!("{sim_url}/simulator/rate?events_per_second=0"));
    blocking_post(&format!("{sim_url}/simulator/faults?spec="));
    let truth: serde_json::Value =
        serde_json::from_str(&blocking_get(&format!("{sim_url}/simulator/truth")).1).unwrap();
    let produced = truth["total"].as_f64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let counted = sum(&parse_exposition(&blocking_get(&metrics_url).1), "emnify_events_total", &[]);
        if counted >= produced {
            assert_eq!(counted, produced, "nothing counted twice");
            break;
        }
        if Instant::now() >= deadline {
            let text = blocking_get(&metrics_url).1;
            let notes: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("emnify_events_skipped")
                        || l.starts_with("emnify_poll_errors")
                        || l.starts_with("emnify_api_requests_total{code=\"200\",endpoint=\"auth")
                        || l.starts_with("emnify_up")
                })
                .collect();
            let missing = common::truth_json_mismatches(&parse_exposition(&text), &truth);
            panic!("only {counted} of {produced} counted\n{}\n{}", notes.join("\n"), missing.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let final_samples = parse_exposition(&blocking_get(&metrics_url).1);
    let mismatches = common::truth_json_mismatches(&final_samples, &truth);
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    let stats: serde_json::Value =
        serde_json::from_str(&blocking_get(&format!("{sim_url}/simulator/stats")).1).unwrap();
    let failed_polls: f64 = sum(&final_samples, "emnify_poll_errors_total", &[]);
    println!(
        "soak: {:.0}s measured after {:.0}s warm-up; {produced} events exact under {} injected faults ({failed_polls} \
         failed polls, {scrapes} scrapes); RSS {rss_start} KiB -> {rss_end} KiB (peak {rss_peak}); fds {fds_start} -> {fds_end}",
        measured.as_secs_f64(),
        warm_up.as_secs_f64(),
        stats["faults_injected"]
    );
    // Flat: no growth beyond allocator noise over the measured phase.
    assert!(rss_end <= rss_start + (rss_start / 4).max(4096), "RSS grew from {rss_start} KiB to {rss_end} KiB");
    assert!(fds_end <= fds_start + 4, "open file descriptors grew from {fds_start} to {fds_end}");
    exporter.kill();
}
