//! The end-to-end load harness, run by `scripts/perf` (ignored by `cargo test`; use a release build):
//! poll ingest of a simulator backlog by the exporter and by the usual Python alternative, push
//! ingest in 10,000-event batches, scrape latency under load (wrk), and the idle footprint.

use crate::common;

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{blocking_post, blocking_total, Process};
use emnify_exporter::simulator::{Simulator, SimulatorConfig};

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11..13).map(|f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()).unwrap_or(0.0);
    ticks / 100.0
}

fn post_body(url: &str, body: &str) -> u16 {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').unwrap();
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(stream, "POST /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `wrk` against `url` for `seconds`; returns (p50 ms, p99 ms, requests/s).
fn wrk(url: &str, seconds: u32) -> (f64, f64, f64) {
    let out = Command::new("wrk")
        .args(["-t2", "-c8", &format!("-d{seconds}s"), "--latency", url])
        .output()
        .unwrap_or_else(|e| panic!("wrk is not installed ({e}): run scripts/perf, which installs it"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let millis = |label: &str| -> f64 {
        let value = text.lines().find_map(|l| l.trim().strip_prefix(label)).map(str::trim).unwrap_or("0ms");
        let number: f64 = value.trim_end_matches(|c: char| c.is_alphabetic()).parse().unwrap_or(0.0);
        match value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.') {
            "us" => number / 1000.0,
            "s" => number * 1000.0,
            _ => number,
        }
    };
    let rps =
        text.lines().find_map(|l| l.strip_prefix("Requests/sec:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0.0);
    (millis("50%"), millis("99%"), rps)
}

#[test]
#[ignore = "a load harness of about a minute; scripts/perf runs it in a release build"]
fn load_harness() {
    let n: u64 = std::env::var("PERF_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let sim = Process::start(&["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--seed=3"], &[]);
    let sim_url = sim.simulator_base();
    for _ in 0..n / 10_000 {
        blocking_post(&format!("{sim_url}/simulator/generate?count=10000"));
    }

    // (a) Poll ingest of the backlog by the exporter: wall time from start to every event counted.
    let started = Instant::now();
    let exporter = Process::start(
        &[
            "--emnify.api-url",
            &sim_url,
            "--emnify.poll-interval=1s",
            "--emnify.min-request-interval=0s",
            // The simulator has no rate limits: this measures the ingest engine, not emnify's budget.
            "--emnify.request-budget-share=0",
            "--emnify.lookback=1h",
            "--web.listen-address=127.0.0.1:0",
        ],
        &[("EMNIFY_APPLICATION_TOKEN", "demo-application-token")],
    );
    let address = exporter.listening_address("emnify exporter listening");
    let metrics_url = format!("http://{address}/metrics");
    let mut ours_anon = 0;
    while blocking_total(&metrics_url) < n as f64 {
        assert!(started.elapsed() < Duration::from_secs(300), "the exporter never counted {n} events");
        ours_anon = ours_anon.max(common::proc_status_kb(exporter.child.id(), "RssAnon:"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let ours_seconds = started.elapsed().as_secs_f64();
    let ours_rss = common::proc_status_kb(exporter.child.id(), "VmHWM:");
    let ours_file = common::proc_status_kb(exporter.child.id(), "RssFile:");
    let ours_cpu = cpu_seconds(exporter.child.id());
    ours_anon = ours_anon.max(common::proc_status_kb(exporter.child.id(), "RssAnon:"));
    exporter.kill();

    // The usual alternative against the same backlog.
    let python = common::artifacts::repo_path(".venv/bin/python");
    let started = Instant::now();
    let mut child = Command::new(&python)
        .arg(common::artifacts::repo_path("tests/perf/python_exporter.py"))
        .args(["--api-url", &sim_url, "--token", "demo-application-token", "--stop-after", &n.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} ({e}): run scripts/perf, which installs prometheus_client", python.display()));
    // Private memory sampled the same way as the exporter's (the Python process reports its own VmHWM).
    let mut python_anon = 0;
    while child.try_wait().expect("waiting for the Python exporter").is_none() {
        python_anon = python_anon.max(common::proc_status_kb(child.id(), "RssAnon:"));
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = child.wait_with_output().expect("the Python exporter's output");
    let python_seconds = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the Python exporter's JSON line");
    let python_rss = report["peak_rss_kb"].as_u64().unwrap_or(0);
    let python_cpu = report["cpu_seconds"].as_f64().unwrap_or(0.0);

    // (b) Push ingest in 10,000-event batches, and (c) scrape latency while it runs.
    let pusher = Simulator::new(SimulatorConfig { seed: 4, ..SimulatorConfig::demo() });
    pusher.generate(n as usize);
    let batches = pusher.event_json_batches(10_000);
    let receiver =
        Process::start(&["--ingest.mode=push", "--webhook.insecure-no-auth", "--web.listen-address=127.0.0.1:0"], &[]);
    let address = receiver.listening_address("emnify exporter listening");
    let webhook = format!("http://{address}/webhook/events");
    let metrics_url = format!("http://{address}/metrics");
    let idle_scrape = wrk(&metrics_url, 3);
    let scraper = {
        let url = metrics_url.clone();
        std::thread::spawn(move || wrk(&url, 4))
    };
    let started = Instant::now();
    let mut pushed = 0;
    while started.elapsed() < Duration::from_secs(4) {
        for body in &batches {
            assert_eq!(post_body(&webhook, body), 200);
            pushed += 10_000;
        }
    }
    let push_seconds = started.elapsed().as_secs_f64();
    let busy_scrape = scraper.join().unwrap();
    let push_rss = common::proc_status_kb(receiver.child.id(), "VmHWM:");
    receiver.kill();

    // (d) The idle footprint of the demo.
    let idle_seconds = std::env::var("PERF_IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let demo_started = Instant::now();
    let demo = Process::start(&["--demo", "--web.listen-address=127.0.0.1:0"], &[]);
    let address = demo.listening_address("emnify exporter listening");
    let ready = loop {
        if common::blocking_get_ok(&format!("http://{address}/-/ready")) {
            break demo_started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let idle_rss = common::proc_status_kb(demo.child.id(), "VmRSS:");
    let idle_cpu = cpu_seconds(demo.child.id());
    demo.kill();
    let binary = std::fs::metadata(env!("CARGO_BIN_EXE_emnify-exporter")).map(|m| m.len()).unwrap_or(0);

    let ours_rate = n as f64 / ours_seconds;
    let python_rate = n as f64 / python_seconds;
    println!("\n| Measure | emnify-exporter | Python alternative | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| Poll ingest, {n} events backlog (wall time from start) | {ours_rate:.0} events/s ({ours_seconds:.2} s) | {python_rate:.0} events/s ({python_seconds:.2} s) | {:.1}× |",
        ours_rate / python_rate
    );
    println!(
        "| CPU time for that ingest (user + system, whole process) | {ours_cpu:.2} s ({:.0} events per CPU second) | {python_cpu:.2} s ({:.0} events per CPU second) | 1/{:.1} |",
        n as f64 / ours_cpu.max(0.01),
        n as f64 / python_cpu.max(0.01),
        python_cpu / ours_cpu.max(0.01)
    );
    println!(
        "| Peak RSS during that ingest | {:.1} MiB ({:.1} MiB of it mapped code: binary, libc) | {:.1} MiB | 1/{:.1} |",
        ours_rss as f64 / 1024.0,
        ours_file as f64 / 1024.0,
        python_rss as f64 / 1024.0,
        python_rss as f64 / ours_rss.max(1) as f64
    );
    println!(
        "| Peak private memory (RssAnon, sampled every 5 ms) | {:.1} MiB | {:.1} MiB | 1/{:.1} |",
        ours_anon as f64 / 1024.0,
        python_anon as f64 / 1024.0,
        python_anon as f64 / ours_anon.max(1) as f64
    );
    println!(
        "| Push ingest, 10,000-event batches | {:.0} events/s ({pushed} events, peak RSS {:.1} MiB) | — | |",
        pushed as f64 / push_seconds,
        push_rss as f64 / 1024.0
    );
    println!(
        "| Scrape latency p50 / p99 (wrk, 8 connections): idle | {:.2} ms / {:.2} ms ({:.0} scrapes/s) | | |",
        idle_scrape.0, idle_scrape.1, idle_scrape.2
    );
    println!(
        "| Scrape latency p50 / p99 while pushing | {:.2} ms / {:.2} ms ({:.0} scrapes/s) | | |",
        busy_scrape.0, busy_scrape.1, busy_scrape.2
    );
    println!(
        "| Demo after {idle_seconds} s idle: RSS, CPU | {:.1} MiB, {idle_cpu:.2} s | | |",
        idle_rss as f64 / 1024.0
    );
    println!("| Start to ready (demo) | {:.0} ms | | |", ready.as_secs_f64() * 1000.0);
    println!("| Binary size | {:.1} MiB | | |", binary as f64 / 1048576.0);
}

/// Catch-up of a 60,000-event backlog (60 pages of 1,000) against a simulator that enforces emnify's
/// documented rate limits, by the exporter at its default request budget and by the Python alternative
/// (which ignores the limits): time against the limiter's minimum, and the 429s each drew.
#[test]
#[ignore = "a benchmark of about half a minute; scripts/perf runs it in a release build"]
fn catch_up_against_emnifys_rate_limits() {
    let pages: u64 = std::env::var("PERF_CATCH_UP_PAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let n = pages * 1000;
    let backlog = |seed: &str| {
        let (sim, url) = limited_simulator(&[seed]);
        for _ in 0..pages {
            blocking_post(&format!("{url}/simulator/generate?count=1000"));
        }
        (sim, url)
    };
    let refused = |url: &str| stat(&simulator_stats(url), "rate_limited") as u64;

    // At the default budget (90% of each limit), then at all of it (`--emnify.request-budget-share 1`).
    let mut ours = Vec::new();
    for (seed, share) in [("--seed=7", "0.9"), ("--seed=9", "1")] {
        let (sim, url) = backlog(seed);
        let started = Instant::now();
        let share_arg = format!("--emnify.request-budget-share={share}");
        let exporter = Process::start(
            &[
                "--emnify.api-url",
                &url,
                "--emnify.poll-interval=1s",
                "--emnify.page-size=1000",
                "--emnify.lookback=1h",
                "--web.listen-address=127.0.0.1:0",
                &share_arg,
            ],
            &[("EMNIFY_APPLICATION_TOKEN", "demo-application-token")],
        );
        let metrics_url = format!("http://{}/metrics", exporter.listening_address("emnify exporter listening"));
        while blocking_total(&metrics_url) < n as f64 {
            assert!(started.elapsed() < Duration::from_secs(300), "the exporter never counted {n} events");
            std::thread::sleep(Duration::from_millis(20));
        }
        ours.push((share, started.elapsed().as_secs_f64(), refused(&url)));
        exporter.kill();
        drop(sim);
    }

    let (sim, url) = backlog("--seed=8");
    let started = Instant::now();
    let out = Command::new(common::artifacts::repo_path(".venv/bin/python"))
        .arg(common::artifacts::repo_path("tests/perf/python_exporter.py"))
        .args(["--api-url", &url, "--token", "demo-application-token", "--stop-after", &n.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("the Python alternative ({e}): run scripts/perf, which installs it"));
    let python = started.elapsed().as_secs_f64();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python_refused = refused(&url);
    drop(sim);

    // A burst of 5, then 10 a second: the fastest the limiter allows the event pages (logins aside).
    let minimum = (pages.saturating_sub(5)) as f64 / 10.0;
    println!(
        "| Catch-up of {n} events ({pages} pages) against emnify's rate limits | emnify-exporter, share 0.9 | \
         emnify-exporter, share 1 | Python alternative |"
    );
    println!("|---|---|---|---|");
    let [(_, default, default_refused), (_, full, full_refused)] = ours[..] else { unreachable!("two runs") };
    println!(
        "| Wall time (limiter's minimum {minimum:.1} s) | {default:.1} s ({:.2} of the limit) | {full:.1} s ({:.2}) | \
         {python:.1} s |",
        minimum / default,
        minimum / full
    );
    println!("| 429 answers | {default_refused} | {full_refused} | {python_refused} |");
}

/// A simulator enforcing emnify's rate limits, producing nothing until told a rate.
fn limited_simulator(extra: &[&str]) -> (Process, String) {
    let mut args = vec!["simulate", "--listen=127.0.0.1:0", "--events-per-second=0", "--enforce-limits"];
    args.extend_from_slice(extra);
    let sim = Process::start(&args, &[]);
    let url = sim.simulator_base();
    (sim, url)
}

fn simulator_stats(url: &str) -> serde_json::Value {
    serde_json::from_str(&common::blocking_get(&format!("{url}/simulator/stats")).1).expect("the simulator's stats")
}

fn stat(stats: &serde_json::Value, name: &str) -> f64 {
    stats[name].as_f64().unwrap_or(0.0)
}

/// The exporter polling `url` at its defaults, with the poll interval and overlap given.
fn exporter_polling(url: &str, extra: &[&str]) -> (Process, String) {
    let mut args = vec!["--emnify.api-url", url, "--emnify.lookback=10m", "--web.listen-address=127.0.0.1:0"];
    args.extend_from_slice(extra);
    let exporter = Process::start(&args, &[("EMNIFY_APPLICATION_TOKEN", "demo-application-token")]);
    let metrics = format!("http://{}/metrics", exporter.listening_address("emnify exporter listening"));
    (exporter, metrics)
}

/// The Python alternative polling `url` like the exporter (sliding windows), serving its counters.
fn python_polling(url: &str, interval: &str, overlap: &str, seconds: u64) -> (Process, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port();
    let mut cmd = Command::new(common::artifacts::repo_path(".venv/bin/python"));
    cmd.arg(common::artifacts::repo_path("tests/perf/python_exporter.py")).args([
        "--api-url",
        url,
        "--token",
        "demo-application-token",
        "--port",
        &port.to_string(),
        "--lookback=600",
        &format!("--interval={interval}"),
        &format!("--overlap={overlap}"),
        &format!("--duration={seconds}"),
    ]);
    let python = Process::spawn(cmd);
    let metrics = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    while !common::blocking_get_ok(&metrics) {
        assert!(started.elapsed() < Duration::from_secs(30), "the Python alternative did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    (python, metrics)
}

/// What a sustained run measured.
struct Sustained {
    event_requests_per_1000: f64,
    worst_lag_seconds: f64,
    /// From the end of production until everything was counted; `None`: not within the limit.
    drained_seconds: Option<f64>,
    refused: f64,
    events: f64,
}

/// Produces `rate` events a second for `seconds` into the simulator at `sim_url`, sampling every
/// second how far the count at `metrics_url` lags behind (in seconds of production), then stops
/// producing and waits up to `drain_limit` for the count to catch up.
fn sustain(sim_url: &str, metrics_url: &str, rate: f64, seconds: u64, drain_limit: Duration) -> Sustained {
    let start = simulator_stats(sim_url);
    blocking_post(&format!("{sim_url}/simulator/rate?events_per_second={rate}"));
    let began = Instant::now();
    let mut worst = 0.0f64;
    while began.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let produced = stat(&simulator_stats(sim_url), "events") - stat(&start, "events");
        let counted = blocking_total(metrics_url);
        worst = worst.max((produced - counted) / rate);
    }
    blocking_post(&format!("{sim_url}/simulator/rate?events_per_second=0"));
    let produced = stat(&simulator_stats(sim_url), "events") - stat(&start, "events");
    let stopped = Instant::now();
    let mut drained = None;
    while stopped.elapsed() < drain_limit {
        if blocking_total(metrics_url) >= produced {
            drained = Some(stopped.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let end = simulator_stats(sim_url);
    let pages = stat(&end, "event_pages") - stat(&start, "event_pages");
    Sustained {
        event_requests_per_1000: pages * 1000.0 / produced.max(1.0),
        worst_lag_seconds: worst,
        drained_seconds: drained,
        refused: stat(&end, "rate_limited") - stat(&start, "rate_limited"),
        events: produced,
    }
}

/// Sustained ingest in issue 24's setting: a simulator enforcing emnify's limits, 5% of events up to
/// 60 s late, ids that grow with arrival but not strictly (one in ten steps back by up to ~100 events),
/// and the exporter at its defaults scaled 6x down (poll interval 10 s, overlap 100 s): at each rate
/// with `sort` honoured, then at the first rate with `sort` silently ignored, at the last rate with
/// `--emnify.request-budget-share 1`. After each run, the requests an idle poll costs. Figures go to docs/performance.md.
#[test]
#[ignore = "a benchmark of several minutes; scripts/perf runs it in a release build"]
fn sustained_ingest_against_emnifys_rate_limits() {
    let seconds: u64 = std::env::var("PERF_SUSTAINED_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60);
    let rates: Vec<f64> = std::env::var("PERF_SUSTAINED_RATES")
        .unwrap_or_else(|_| "3000,5400".to_string())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let world = ["--late-share=0.05", "--late-max-age=60s", "--ascending-ids", "--id-step-back-share=0.1"];
    let scaled = ["--emnify.poll-interval=10s", "--emnify.overlap=100s"];
    let drain = Duration::from_secs(120);
    let (first, last) = (rates[0], rates[rates.len() - 1]);
    // Who, at what rate, the simulator's extra flags, the exporter's extra flags.
    let mut runs: Vec<(&str, f64, Vec<&str>, Vec<&str>)> =
        rates.iter().map(|&r| ("emnify-exporter, sort honoured, share 0.9", r, vec![], vec![])).collect();
    runs.push(("emnify-exporter, sort ignored, share 0.9", first, vec!["--ignore-sort"], vec![]));
    let share_one = std::env::var("PERF_SHARE_ONE_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(last.max(6000.0));
    runs.push(("emnify-exporter, sort honoured, share 1", share_one, vec![], vec!["--emnify.request-budget-share=1"]));
    // Each row is printed as soon as it is measured: a run that fails later keeps the earlier ones.
    println!(
        "| Sustained ingest, {seconds} s, 5% late (up to 60 s), 1 in 10 ids steps back | Rate | Events | Event \
         requests per 1,000 events | Worst lag | Counted all after the load stopped | 429 answers | Requests per \
         idle poll |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (who, rate, sim_extra, exporter_extra) in runs {
        let mut sim_args = world.to_vec();
        sim_args.extend(sim_extra);
        let (sim, url) = limited_simulator(&sim_args);
        let mut args = scaled.to_vec();
        args.extend(exporter_extra);
        let (client, metrics) = exporter_polling(&url, &args);
        // The first poll has happened (the metrics are up); production starts now.
        std::thread::sleep(Duration::from_secs(2));
        let figures = sustain(&url, &metrics, rate, seconds, drain);
        let idle = idle_poll_requests(&url, &metrics);
        drop(client);
        drop(sim);
        let drained = figures
            .drained_seconds
            .map_or_else(|| format!("not within {} s", drain.as_secs()), |d| format!("{d:.0} s"));
        println!(
            "| {who} | {rate:.0}/s | {:.0} | {:.2} | {:.0} s ({:.1} intervals) | {drained} | {:.0} | {idle:.1} |",
            figures.events,
            figures.event_requests_per_1000,
            figures.worst_lag_seconds,
            figures.worst_lag_seconds / 10.0,
            figures.refused
        );
    }
}

/// Event-list requests per poll while nothing new arrives: three polls' worth (30 s at a 10 s interval).
fn idle_poll_requests(sim_url: &str, metrics_url: &str) -> f64 {
    let polls = || {
        let text = common::blocking_get(metrics_url).1;
        common::sum(&common::parse_exposition(&text), "emnify_poll_duration_seconds_count", &[])
    };
    // Let the poll running now, which may still read the last events, end first.
    std::thread::sleep(Duration::from_secs(12));
    let (pages, before) = (stat(&simulator_stats(sim_url), "event_pages"), polls());
    std::thread::sleep(Duration::from_secs(30));
    let (pages_after, after) = (stat(&simulator_stats(sim_url), "event_pages"), polls());
    (pages_after - pages) / (after - before).max(1.0)
}

/// Catch-up of a backlog from an API that takes 2-5 s per page: one request at a time (as before,
/// and as the Python alternative does) against `--emnify.requests-in-flight` at its default.
#[test]
#[ignore = "a benchmark of about three minutes; scripts/perf runs it in a release build"]
fn catch_up_against_a_slow_api() {
    let pages: u64 = std::env::var("PERF_SLOW_PAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    let n = pages * 1000;
    let backlog = || {
        let (sim, url) = limited_simulator(&["--page-latency=2s-5s", "--seed=11"]);
        for _ in 0..pages {
            blocking_post(&format!("{url}/simulator/generate?count=1000"));
        }
        (sim, url)
    };
    let until_counted = |metrics: &str, started: Instant| {
        while blocking_total(metrics) < n as f64 {
            assert!(started.elapsed() < Duration::from_secs(600), "{n} events were never counted");
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed().as_secs_f64()
    };
    let mut rows = Vec::new();
    for in_flight in ["1", "4"] {
        let (sim, url) = backlog();
        let started = Instant::now();
        let flag = format!("--emnify.requests-in-flight={in_flight}");
        let (exporter, metrics) = exporter_polling(&url, &["--emnify.poll-interval=1s", &flag]);
        let seconds = until_counted(&metrics, started);
        rows.push(format!("| emnify-exporter, {in_flight} request(s) in flight | {seconds:.0} s |"));
        drop(exporter);
        drop(sim);
    }
    let (sim, url) = backlog();
    let started = Instant::now();
    let (python, metrics) = python_polling(&url, "1", "0", 600);
    let seconds = until_counted(&metrics, started);
    rows.push(format!("| Python alternative | {seconds:.0} s |"));
    drop(python);
    drop(sim);
    println!("| Catch-up of {n} events ({pages} pages) from an API taking 2-5 s per page | Wall time |");
    println!("|---|---|");
    for row in rows {
        println!("{row}");
    }
}
