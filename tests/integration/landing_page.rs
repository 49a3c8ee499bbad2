//! The landing page answers "is it working, and if not, why": one test per field, and the page as
//! headless Chromium renders it.

use std::time::Duration;

use emnify_exporter::simulator::faults::FaultConfig;

use crate::common::{self, wait_for, TestExporter, TestSimulator};

/// The landing page's rows, by id: `<tr id="ID"><th>Name</th><td>VALUE</td></tr>`, the value as HTML.
fn rows(html: &str) -> std::collections::BTreeMap<String, String> {
    let mut rows = std::collections::BTreeMap::new();
    for part in html.split("<tr id=\"").skip(1) {
        let (id, rest) = part.split_once('"').expect("an id");
        let value = rest.split_once("<td>").and_then(|(_, v)| v.split_once("</td></tr>")).map(|(v, _)| v);
        rows.insert(id.to_string(), value.expect("a value cell").to_string());
    }
    rows
}

async fn landing_html(running: &TestExporter) -> String {
    let response = common::http_client().get(&running.base).send().await.expect("GET /");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/html; charset=utf-8");
    let html = response.text().await.expect("a body");
    assert!(!html.contains("<script"), "plain HTML, no scripts");
    html
}

async fn landing(running: &TestExporter) -> std::collections::BTreeMap<String, String> {
    rows(&landing_html(running).await)
}

/// Polling: mode, the API (never the token), the last poll and its outcome, the last error with its
/// reason (kept after polls work again), counts, state file, series and cap, the server, build, links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_fields_say_what_runs_and_why_it_fails() {
    let test_sim = TestSimulator::seeded(31).await;
    let sim = &test_sim.sim;
    sim.generate(120);
    let running = TestExporter::start(test_sim.exporter_config()).await;
    running.wait_for_total(120).await;
    let page = landing(&running).await;
    assert!(page["status"].contains("working"), "{page:?}");
    assert!(page["mode"].starts_with("poll"), "{}", page["mode"]);
    assert_eq!(page["api"], format!("{} every 1s", test_sim.url));
    assert!(
        page["last-poll"].ends_with(": succeeded") && page["last-poll"].contains("s ago)"),
        "{}",
        page["last-poll"]
    );
    assert!(page["last-success"].contains("Z ("), "{}", page["last-success"]);
    assert_eq!(page["last-error"], "none since start");
    let counted: u64 = page["counted"].split(' ').next().unwrap().parse().unwrap();
    assert_eq!(counted, running.total().await as u64, "the page counts what /metrics does");
    assert!(page["state-file"].starts_with("not used"), "{}", page["state-file"]);
    let organisations = sim.truth().events.keys().map(|k| k.organisation_id).collect::<std::collections::BTreeSet<_>>();
    let series = format!("{} organisations with series of their own, of at most 2000", organisations.len());
    assert_eq!(page["series"], series);
    assert!(page["web"].starts_with("127.0.0.1:") && page["web"].ends_with("TLS off, no auth"), "{}", page["web"]);
    let build = &page["build"];
    assert!(build.contains(emnify_exporter::VERSION) && build.contains(emnify_exporter::REVISION), "{build}");
    assert!(build.contains(emnify_exporter::RUSTC_VERSION) && build.contains(emnify_exporter::BUILD_DATE), "{build}");
    for link in ["href=\"/metrics\"", "href=\"/-/healthy\"", "href=\"/-/ready\""] {
        assert!(page["links"].contains(link), "{}", page["links"]);
    }
    assert!(!page.contains_key("webhook") && !page.contains_key("burst"), "no push rows, no demo rows: {page:?}");
    assert!(!landing_html(&running).await.contains(&sim.application_token()), "never the token");

    // emnify fails every request: the page says so, with the reason and the error.
    sim.set_faults("5xx=1".parse::<FaultConfig>().unwrap());
    let failing = wait_for(common::PATIENCE, async || landing(&running).await["status"].contains("POLLS FAIL")).await;
    assert!(failing, "the failure shows");
    let page = landing(&running).await;
    assert!(page["status"].contains("(http_5xx)") && page["status"].contains("server errors"), "{}", page["status"]);
    assert!(page["last-poll"].contains("failed"), "{}", page["last-poll"]);
    assert!(page["last-error"].contains("<code>") && page["last-error"].contains("HTTP 5"), "{}", page["last-error"]);
    // It works again: the status says so, the last error stays on the page.
    sim.set_faults(FaultConfig::none());
    let recovered = wait_for(common::PATIENCE, async || landing(&running).await["status"].contains("working")).await;
    assert!(recovered);
    let page = landing(&running).await;
    assert!(page["last-poll"].ends_with("succeeded") && page["last-error"].contains("HTTP 5"), "{page:?}");
    running.stop().await;
}

/// Before the first poll has finished (here: emnify accepts the connection and never answers), the
/// status says the exporter is starting, not that it works or fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_says_starting_until_a_poll_has_finished() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            open.push(connection); // held, never answered
        }
    });
    let mut config = emnify_exporter::config::Config::for_tests(&url, "token");
    config.poll.as_mut().unwrap().request_timeout = Duration::from_secs(3600);
    let running = TestExporter::start(config).await;
    let page = landing(&running).await;
    assert!(page["status"].starts_with("starting: no poll has finished yet"), "{}", page["status"]);
    assert!(page["status"].contains("the log shows each try"), "where to look meanwhile: {}", page["status"]);
    assert_eq!((page["last-poll"].as_str(), page["last-success"].as_str()), ("none finished yet", "none yet"));
    held.abort();
    running.stop().await;
}

/// Pushes: the receiver and how it authenticates (not with what), the last push, the last refusal and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_fields_show_the_last_push_and_the_last_refusal() {
    let mut config = common::push_only_config();
    let receiver = config.push.as_mut().unwrap();
    receiver.insecure_no_auth = false;
    let header = emnify_exporter::receiver::default_secret_header();
    receiver.secret_header = Some((header.clone(), emnify_exporter::secret::Secret::new("push-secret-value")));
    let running = TestExporter::start(config).await;
    let page = landing(&running).await;
    assert!(page["mode"].starts_with("push"), "{}", page["mode"]);
    assert!(!page.contains_key("api") && !page.contains_key("last-poll"), "nothing polled: {page:?}");
    assert_eq!(page["webhook"], "<code>/webhook/events</code>, authenticated by secret header");
    assert_eq!((page["last-push"].as_str(), page["last-push-refused"].as_str()), ("none yet", "none since start"));
    let event = r#"{"id": 1, "timestamp": "2026-12-01T10:00:00Z", "event_type": {"id": 0, "description": "Generic"}}"#;
    let (status, _) = running.push("/webhook/events", &[(header.as_str(), "wrong")], event).await;
    assert_eq!(status, 401);
    let page = landing(&running).await;
    assert!(page["last-push-refused"].contains("<code>unauthorized</code>"), "{}", page["last-push-refused"]);
    assert_eq!(page["last-push"], "none yet");
    let (status, _) = running.push("/webhook/events", &[(header.as_str(), "push-secret-value")], event).await;
    assert_eq!(status, 200);
    let page = landing(&running).await;
    assert!(page["last-push"].contains("s ago)"), "{}", page["last-push"]);
    assert!(page["counted"].starts_with("1 "), "{}", page["counted"]);
    // Push mode says exactly what is de-duplicated: re-deliveries within the remember horizon.
    assert!(page["counted"].contains("delivered again within 1h of its arrival"), "{}", page["counted"]);
    assert!(!landing_html(&running).await.contains("push-secret-value"), "never the secret");
    running.stop().await;
}

/// With a state file, the page names it and when it was last saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_file_row_names_the_file_and_the_last_save() {
    let test_sim = TestSimulator::seeded(32).await;
    test_sim.sim.generate(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let mut config = test_sim.exporter_config();
    config.state_file = Some(path.clone());
    let running = TestExporter::start(config).await;
    running.wait_for_total(10).await;
    let saved = wait_for(common::PATIENCE, async || landing(&running).await["state-file"].contains("last saved")).await;
    assert!(saved, "{:?}", landing(&running).await);
    assert!(landing(&running).await["state-file"].starts_with(&format!("<code>{}</code>", path.display())));
    running.stop().await;
}

/// A damaged state file of ours found at start is set aside loudly: the metric, the status, and a row
/// saying why, where the file went and that the counters restarted from zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_file_set_aside_at_start_says_why_and_where() {
    let test_sim = TestSimulator::seeded(33).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    std::fs::write(&path, b"{\"format\": \"emnify-exporter-state\", \"version\": 1, \"cur").unwrap();
    let mut config = test_sim.exporter_config();
    config.state_file = Some(path.clone());
    let running = TestExporter::start(config).await;
    let samples = running.scrape().await;
    assert_eq!(common::sum(&samples, "emnify_state_set_aside", &[("reason", "corrupt")]), 1.0);
    assert_eq!(common::sum(&samples, "emnify_state_set_aside", &[]), 1.0, "one reason");
    assert!(common::sum(&samples, "emnify_state_set_aside_timestamp_seconds", &[]) > 1.6e9);
    let page = landing(&running).await;
    let row = &page["state-set-aside"];
    assert!(row.contains("<code>corrupt</code>") && row.contains("not a valid state file"), "{row}");
    let rejected = dir.path().join("state.rejected");
    assert!(row.contains(&format!("moved to <code>{}</code>", rejected.display())), "{row}");
    assert!(row.contains("restarted from zero"), "{row}");
    assert!(rejected.exists());
    // Once polls work, the status says it works, but not plainly.
    let noted =
        wait_for(common::PATIENCE, async || landing(&running).await["status"].contains("working</strong>, but")).await;
    assert!(noted, "{}", landing(&running).await["status"]);
    assert!(landing(&running).await["status"].contains("counters restarted from zero"));
    running.stop().await;
}

/// The demo's page links the simulator's truth and its burst form makes a burst, both on the exporter's
/// own port (the simulator's is loopback-only, out of reach of a browser on another machine), and the
/// button leads back to the page.
#[test]
fn the_demo_page_links_the_truth_and_makes_bursts() {
    let mut child = common::Process::start(&["--demo", "--web.listen-address", "127.0.0.1:0"], &[]);
    let base = child.exporter_base();
    let html = common::blocking_get(&format!("{base}/")).1;
    let page = rows(&html);
    assert!(page["mode"].contains("demo"), "{}", page["mode"]);
    assert!(!html.contains("=\"http://"), "no link or form to the simulator's own port: {html}");
    let truth = page["links"].split("href=\"").find(|l| l.contains("/simulator/truth")).expect("a truth link");
    let truth = format!("{base}{}", truth.split('"').next().unwrap());
    let (status, body) = common::blocking_get(&truth);
    assert_eq!(status, 200, "{truth}");
    let total = |body: &str| serde_json::from_str::<serde_json::Value>(body).unwrap()["total"].as_u64().unwrap_or(0);
    let before = total(&body);
    let action = page["burst"].split("action=\"").nth(1).and_then(|a| a.split('"').next()).expect("a form");
    let (status, location) = post_for_location(&format!("{base}{action}"));
    assert_eq!((status, location.as_str()), (303, "/#burst"), "back to the page");
    assert!(total(&common::blocking_get(&truth).1) >= before + 200, "the form's burst reached the simulator");
    assert!(page["counted"].contains("since this start"), "no state file: {}", page["counted"]);
    assert!(child.terminate(Duration::from_secs(15)).success());
}

/// POSTs to `url` and returns the status and the `Location` header, without following it.
fn post_for_location(url: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_once('/').expect("a path");
    let mut stream = std::net::TcpStream::connect(host).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    write!(stream, "POST /{path} HTTP/1.0\r\nHost: {host}\r\nContent-Length: 0\r\n\r\n").expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let head = response.split("\r\n\r\n").next().unwrap_or("");
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let location = head.lines().find_map(|l| l.strip_prefix("location: ").or_else(|| l.strip_prefix("Location: ")));
    (status, location.unwrap_or("").to_string())
}

/// The page as a browser shows it: headless Chromium draws every field (the text of the page printed
/// to PDF, which holds only what is drawn, names each one), and takes a screenshot of the size asked
/// (its presence, not its pixels, is checked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_every_field() {
    let test_sim = TestSimulator::seeded(33).await;
    test_sim.sim.generate(20);
    let running = TestExporter::start(test_sim.exporter_config()).await;
    running.wait_for_total(20).await;
    let dir = tempfile::tempdir().unwrap();
    let screenshot = dir.path().join("landing.png");
    let pdf = dir.path().join("landing.pdf");
    let chromium = |output: String| {
        // `timeout`: a Chromium that hangs fails the test instead of holding it.
        let mut cmd = std::process::Command::new("timeout");
        cmd.args([
            "120",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--no-pdf-header-footer",
        ])
        .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
        .arg(output)
        .arg(&running.base);
        cmd
    };
    let commands = [
        chromium(format!("--print-to-pdf={}", pdf.display())),
        chromium(format!("--screenshot={}", screenshot.display())),
    ];
    let pdf_text = pdf.clone();
    let (outputs, text) = tokio::task::spawn_blocking(move || {
        let outputs: Vec<_> = commands
            .into_iter()
            .map(|mut cmd| cmd.output().expect("timeout and chromium run (scripts/test installs chromium)"))
            .collect();
        let text = std::process::Command::new("pdftotext")
            .args(["-layout"])
            .arg(&pdf_text)
            .arg("-")
            .output()
            .expect("pdftotext runs (scripts/test installs poppler-utils)");
        (outputs, text)
    })
    .await
    .unwrap();
    for output in &outputs {
        assert!(output.status.success(), "chromium: {}", String::from_utf8_lossy(&output.stderr));
    }
    let text = String::from_utf8_lossy(&text.stdout);
    for label in [
        "Status",
        "Mode",
        "emnify API",
        "Last poll",
        "Last successful poll",
        "Last poll error",
        "Events counted",
        "State file",
        "Series",
        "Served on",
        "Build",
        "Links",
    ] {
        assert!(text.contains(label), "the page as drawn has no {label:?}:\n{text}");
    }
    assert!(
        text.contains("working") && text.contains(emnify_exporter::VERSION) && text.contains(&test_sim.url),
        "{text}"
    );
    let png = std::fs::read(&screenshot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let (width, height) =
        (u32::from_be_bytes(png[16..20].try_into().unwrap()), u32::from_be_bytes(png[20..24].try_into().unwrap()));
    assert_eq!((width, height), (1280, 900), "the window asked for");
    running.stop().await;
}
