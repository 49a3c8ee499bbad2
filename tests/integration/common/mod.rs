//! The integration tests' harness: a simulator and an exporter on loopback (`TestSimulator`,
//! `TestExporter`), a poller aimed at a simulator (`Rig`), an exposition parser, and the
//! exporter binary as a child process (`Process`).
#![allow(dead_code)]

pub mod artifacts;
pub mod prometheus;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use emnify_exporter::app::App;
use emnify_exporter::config::Config;
use emnify_exporter::emnify::{Client, ClientSettings, TokenSource};
use emnify_exporter::metrics::Metrics;
use emnify_exporter::poller::{Poller, PollerSettings};
use emnify_exporter::secret::Secret;
use emnify_exporter::simulator::{Simulator, SimulatorConfig, Truth};
use emnify_exporter::tally::{SharedTally, Tally, TallySettings};
use tokio_util::sync::CancellationToken;

/// Longest any `wait_for_*` helper waits for its condition.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Test logging: silent unless `TEST_LOG` is set (e.g. `TEST_LOG=debug`), then into the test's output.
pub fn init_logging() {
    emnify_exporter::logging::init_for_tests();
}

/// The simulator serving on 127.0.0.1:0; stops when dropped.
pub struct TestSimulator {
    pub sim: Simulator,
    /// `http://127.0.0.1:PORT`, the API base URL.
    pub url: String,
    pub shutdown: CancellationToken,
}

impl TestSimulator {
    pub async fn start(config: SimulatorConfig) -> TestSimulator {
        init_logging();
        let shutdown = CancellationToken::new();
        let sim = Simulator::new(config);
        let address = sim.start(shutdown.clone()).await.expect("the simulator binds 127.0.0.1:0");
        TestSimulator { sim, url: format!("http://{address}"), shutdown }
    }

    /// The demo settings with `seed`.
    pub async fn seeded(seed: u64) -> TestSimulator {
        TestSimulator::start(sim_config(seed)).await
    }

    /// An exporter configuration that polls this simulator (see [`Config::for_tests`]).
    pub fn exporter_config(&self) -> Config {
        Config::for_tests(&self.url, &self.sim.application_token())
    }
}

impl Drop for TestSimulator {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The exporter app running in-process on the address its configuration names (127.0.0.1:0 in
/// tests); stops when dropped.
pub struct TestExporter {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
    http: reqwest::Client,
}

impl TestExporter {
    /// Builds the app, reads its bound port, and runs it in the background.
    pub async fn start(config: Config) -> TestExporter {
        init_logging();
        let app = App::build(config).await.expect("the exporter starts");
        let base = format!("http://{}", app.local_addr());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn({
            let shutdown = shutdown.clone();
            async move { app.run(shutdown).await.expect("the exporter runs") }
        });
        TestExporter { base, shutdown, task, http: http_client() }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /metrics` as text.
    pub async fn scrape_text(&self) -> String {
        let response = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        response.text().await.expect("a /metrics body")
    }

    /// `GET /metrics`, parsed.
    pub async fn scrape(&self) -> Vec<Sample> {
        parse_exposition(&self.scrape_text().await)
    }

    /// The sum of every `emnify_events_total` series.
    pub async fn total(&self) -> f64 {
        sum(&self.scrape().await, "emnify_events_total", &[])
    }

    /// Waits until `emnify_events_total` adds up to at least `total`; fails the test after [`PATIENCE`].
    pub async fn wait_for_total(&self, total: u64) {
        let reached = wait_for(PATIENCE, async || self.total().await >= total as f64).await;
        assert!(reached, "the exporter never counted {total} events");
    }

    /// POSTs `body` to `path` with `headers`; returns the status and the answer's body.
    pub async fn push(&self, path: &str, headers: &[(&str, &str)], body: impl Into<reqwest::Body>) -> (u16, String) {
        let mut request = self.http.post(self.url(path)).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("the push is answered");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Stops the app and waits until it has saved and exited.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let _ = (&mut self.task).await;
    }
}

impl Drop for TestExporter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A Data Streamer receiver at `/webhook/events` that takes pushes without credentials (the tests' own
/// pushes; the receiver's checks have tests of their own in `push`).
pub fn open_receiver() -> emnify_exporter::receiver::ReceiverSettings {
    emnify_exporter::receiver::ReceiverSettings {
        path: "/webhook/events".into(),
        secret_header: None,
        basic_auth: None,
        insecure_no_auth: true,
        max_body_bytes: 32 * 1024 * 1024,
        max_records: 10_000,
        read_timeout: Duration::from_secs(30),
        max_concurrent: 4,
    }
}

/// An exporter configuration that only receives pushes, at [`open_receiver`].
pub fn push_only_config() -> Config {
    Config { poll: None, push: Some(open_receiver()), ..Config::for_tests("http://127.0.0.1:9", "unused") }
}

/// Waits until events made now lie inside the next poll window: windows end at emnify's time as its
/// one-second `Date` headers tell it, up to two seconds behind the simulator's clock (here the host's).
pub async fn wait_until_windows_reach_now() {
    let now = emnify_exporter::timefmt::now_millis() / 1000;
    while emnify_exporter::timefmt::now_millis() / 1000 <= now + 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A plain HTTP client for the tests (the crypto provider installed, as the exporter's client needs it).
pub fn http_client() -> reqwest::Client {
    emnify_exporter::install_crypto_provider();
    reqwest::Client::new()
}

/// A simulator serving on 127.0.0.1 and a poller pointed at it.
pub struct Rig {
    pub sim: Simulator,
    pub url: String,
    pub metrics: Arc<Metrics>,
    pub tally: SharedTally,
    pub poller: Poller,
    pub shutdown: CancellationToken,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn sim_config(seed: u64) -> SimulatorConfig {
    SimulatorConfig { seed, ..SimulatorConfig::demo() }
}

pub fn client_settings(url: &str, token: &str) -> ClientSettings {
    ClientSettings {
        api_url: url.to_string(),
        token: TokenSource::Value(Secret::new(token)),
        request_timeout: Duration::from_secs(10),
        min_request_interval: Duration::ZERO,
        request_budget_share: None,
        max_attempts: 3,
        retry_base: Duration::from_millis(10),
    }
}

/// A tally counting everything from an hour ago on.
pub fn tally(metrics: &Arc<Metrics>) -> SharedTally {
    let settings = TallySettings { lookback: Duration::from_secs(3600), ..TallySettings::default() };
    Tally::new(metrics.clone(), settings).shared()
}

/// A poller that walks windows as `walk` says, counting into a tally of its own as `counting` says.
pub fn poller_with(client: Client, metrics: &Arc<Metrics>, walk: PollerSettings, counting: TallySettings) -> Poller {
    let tally = Tally::new(metrics.clone(), counting).shared();
    Poller::new(client, metrics.clone(), walk, tally)
}

/// A poller with the tests' settings (`page_size` events a page, ten minutes of overlap).
pub fn poller(client: Client, metrics: &Arc<Metrics>, page_size: u32) -> (Poller, SharedTally) {
    let tally = tally(metrics);
    let settings = PollerSettings { page_size, overlap: Duration::from_secs(600), requests_in_flight: 4 };
    (Poller::new(client, metrics.clone(), settings, tally.clone()), tally)
}

/// Starts a simulator and a poller that counts everything from an hour ago on, `page_size` events a page.
pub async fn rig(config: SimulatorConfig, page_size: u32) -> Rig {
    init_logging();
    let shutdown = CancellationToken::new();
    let sim = Simulator::new(config);
    let address = sim.start(shutdown.clone()).await.expect("simulator binds 127.0.0.1:0");
    let url = format!("http://{address}");
    let metrics = Arc::new(Metrics::new());
    let client = Client::new(client_settings(&url, &sim.application_token()), metrics.clone()).expect("client");
    let (poller, tally) = poller(client, &metrics, page_size);
    Rig { sim, url, metrics, tally, poller, shutdown }
}

/// One sample of the text exposition format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (enough of it for these tests, escapes included).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("bad line {line}"),
        };
        let mut labels = BTreeMap::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let mut key = String::new();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = i + 1;
                        break;
                    }
                    ',' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|x| x.1), Some('"'), "{line}");
                        let mut value = String::new();
                        loop {
                            let (_, c) = chars.next().expect("unterminated label value");
                            match c {
                                '\\' => match chars.next().expect("escape").1 {
                                    'n' => value.push('\n'),
                                    other => value.push(other),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end..];
        }
        let value = rest.split_whitespace().next().expect("value").parse().expect("numeric value");
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    samples
}

/// The sum of every sample of `name` whose labels include all of `want`.
pub fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && want.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
        .map(|s| s.value)
        .sum()
}

/// Asserts that the exporter's counters equal the simulator's ground truth, series by series.
pub fn assert_counts_match(metrics: &Metrics, truth: &Truth) -> u64 {
    assert_counts_match_text(&String::from_utf8(metrics.encode()).expect("utf-8 exposition"), truth)
}

/// [`assert_counts_match`] on a scraped exposition.
pub fn assert_counts_match_text(text: &str, truth: &Truth) -> u64 {
    let samples = parse_exposition(text);
    for (key, count) in &truth.events {
        let type_id = key.event_type_id.to_string();
        let org = key.organisation_id.to_string();
        let got = sum(
            &samples,
            "emnify_events_total",
            &[
                ("event_type_id", &type_id),
                ("event_source", key.event_source),
                ("event_severity", key.event_severity),
                ("organisation_id", &org),
            ],
        );
        assert_eq!(got, *count as f64, "emnify_events_total for {key:?}");
    }
    assert_eq!(sum(&samples, "emnify_events_total", &[]), truth.total() as f64, "total events");
    for ((cause, org), count) in &truth.generic {
        let org = org.to_string();
        let got = sum(&samples, "emnify_generic_events_total", &[("cause", cause), ("organisation_id", &org)]);
        assert_eq!(got, *count as f64, "Generic {cause} for organisation {org}");
    }
    for ((type_id, org), count) in &truth.alerts {
        let (type_id, org) = (type_id.to_string(), org.to_string());
        let got = sum(&samples, "emnify_alert_events_total", &[("event_type_id", &type_id), ("organisation_id", &org)]);
        assert_eq!(got, *count as f64, "alerts of type {type_id} for organisation {org}");
    }
    assert_eq!(sum(&samples, "emnify_events_unreadable_total", &[]), truth.unreadable as f64, "unreadable");
    truth.total()
}

/// Polls `check` until it is true or `limit` passes; the condition, not the time, is what a test waits for.
pub async fn wait_for(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A blocking HTTP/1.0 `GET http://host:port/path` over a plain TCP socket (1.0: no chunked bodies to decode).
pub fn try_get(url: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// [`try_get`] that must succeed.
pub fn blocking_get(url: &str) -> (u16, String) {
    try_get(url).unwrap_or_else(|| panic!("GET {url} failed"))
}

/// Whether `GET url` answers 200.
pub fn blocking_get_ok(url: &str) -> bool {
    try_get(url).is_some_and(|(status, _)| status == 200)
}

/// The sum of every `emnify_events_total` series at a `/metrics` URL, fetched without a runtime
/// (for tests of the binary as a child process).
pub fn blocking_total(metrics_url: &str) -> f64 {
    sum(&parse_exposition(&blocking_get(metrics_url).1), "emnify_events_total", &[])
}

/// Runs `promtool check metrics` (Debian package `prometheus`) on an exposition; it must report nothing.
pub fn assert_promtool_clean(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            panic!("promtool is not installed ({e}): run scripts/test, which installs the Debian package `prometheus`")
        }
    };
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("write to promtool");
    let output = child.wait_with_output().expect("promtool runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "promtool failed:\n{stdout}\n{stderr}");
    assert!(stdout.trim().is_empty() && stderr.trim().is_empty(), "promtool reported:\n{stdout}\n{stderr}");
}

/// A blocking HTTP/1.0 `POST` without a body; returns the status and body.
pub fn blocking_post(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_once('/').map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "POST {path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a header block");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status code");
    (status, body.to_string())
}

/// A child process of the exporter binary whose JSON log lines arrive on a channel; killed on drop.
pub struct Process {
    pub child: std::process::Child,
    pub logs: std::sync::mpsc::Receiver<serde_json::Value>,
    /// Lines already taken off `logs`.
    seen: std::cell::RefCell<Vec<String>>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `emnify-exporter --log.format json ARGS` with the given environment (no other `EMNIFY_*`).
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_emnify-exporter"));
        cmd.arg("--log.format=json").args(args).envs(env.iter().copied());
        Process::spawn(cmd)
    }

    /// Starts a prepared command (its `EMNIFY_*` environment cleared) and reads its JSON log lines.
    pub fn spawn(mut cmd: std::process::Command) -> Process {
        use std::io::BufRead;
        for (key, _) in std::env::vars() {
            if key.starts_with("EMNIFY_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stderr = child.stderr.take().expect("piped");
        let (tx, logs) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or_else(|_| serde_json::json!({"raw": line}));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Process { child, logs, seen: std::cell::RefCell::new(Vec::new()) }
    }

    /// The next log line whose message contains `text` (waits at most 30 s).
    pub fn wait_for_log(&self, text: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.logs.recv_timeout(left).unwrap_or_else(|_| panic!("no log line with {text:?}"));
            self.seen.borrow_mut().push(line.to_string());
            if line["msg"].as_str().is_some_and(|m| m.contains(text)) {
                return line;
            }
        }
    }

    /// Every log line received so far, as text.
    pub fn drain_logs(&self) -> Vec<String> {
        let mut seen = self.seen.borrow_mut();
        seen.extend(self.logs.try_iter().map(|v| v.to_string()));
        seen.clone()
    }

    /// Waits (at most `limit`) for the process to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM (what Kubernetes sends to PID 1) and waits at most `limit` for the exit.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
        assert!(sent.success(), "SIGTERM to {pid}");
        self.wait_exit(limit)
    }

    /// The `address` field of the next log line with `message` (waits for it): the bound `HOST:PORT`.
    pub fn listening_address(&self, message: &str) -> String {
        let line = self.wait_for_log(message);
        line["address"].as_str().expect("the line names the address").to_string()
    }

    /// The exporter's `http://HOST:PORT`, from its start-up line.
    pub fn exporter_base(&self) -> String {
        format!("http://{}", self.listening_address("emnify exporter listening"))
    }

    /// A `simulate` process's `http://HOST:PORT`, from its start-up line.
    pub fn simulator_base(&self) -> String {
        format!("http://{}", self.listening_address("simulator listening"))
    }

    /// Kills the process and returns every log line it wrote, up to its end.
    pub fn kill_and_collect(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut lines = std::mem::take(&mut *self.seen.borrow_mut());
        // The reader thread ends at EOF, which closes the channel.
        lines.extend(self.logs.iter().map(|v| v.to_string()));
        lines
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Series of `GET /simulator/truth` whose `emnify_events_total` in `samples` differs, as text lines.
pub fn truth_json_mismatches(samples: &[Sample], truth: &serde_json::Value) -> Vec<String> {
    let mut mismatches = Vec::new();
    for series in truth["events"].as_array().expect("truth events") {
        let labels = [
            ("event_type_id", series["event_type_id"].to_string()),
            ("event_source", series["event_source"].as_str().unwrap_or_default().to_string()),
            ("event_severity", series["event_severity"].as_str().unwrap_or_default().to_string()),
            ("organisation_id", series["organisation_id"].to_string()),
        ];
        let want: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = sum(samples, "emnify_events_total", &want);
        if got != series["count"].as_f64().unwrap_or(f64::NAN) {
            mismatches.push(format!("{series} counted {got}"));
        }
    }
    mismatches
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`, ...); 0 when the process is gone.
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
