//! `/metrics` in both exposition formats: the Prometheus text format for clients that do not ask for
//! more, OpenMetrics 1.0 when the `Accept` header prefers it, as Prometheus' does.

use crate::common::{
    assert_promtool_clean, http_client, parse_exposition, sim_config, sum, TestExporter, TestSimulator,
};

const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;\
                            q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// Parses an OpenMetrics exposition with the official Python client's strict parser (installed into
/// .venv by scripts/test), which rejects anything the format does not allow.
fn assert_openmetrics_valid(exposition: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let python = crate::common::artifacts::repo_path(".venv/bin/python");
    let check =
        "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as parse\n\
                 print(len(list(parse(sys.stdin.read()))))";
    let mut child = Command::new(python)
        .args(["-c", check])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("the OpenMetrics parser ({e}): run scripts/test, which installs it"));
    child.stdin.take().expect("stdin").write_all(exposition.as_bytes()).expect("write");
    let output = child.wait_with_output().expect("python runs");
    assert!(output.status.success(), "not valid OpenMetrics: {}", String::from_utf8_lossy(&output.stderr));
    let families: usize = String::from_utf8_lossy(&output.stdout).trim().parse().expect("a count");
    assert!(families > 20, "{families} families");
}

async fn scrape(exporter: &TestExporter, accept: Option<&str>) -> (String, String) {
    let mut request = http_client().get(exporter.url("/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("GET /metrics");
    let content_type = response.headers()["content-type"].to_str().unwrap().to_string();
    (content_type, response.text().await.expect("a body"))
}

/// Prometheus' default `Accept` gets OpenMetrics 1.0 (`# EOF`, counter families without `_total`),
/// curl the unchanged text format; both hold the same samples and pass `promtool check metrics`.
#[tokio::test]
async fn openmetrics_for_prometheus_and_the_text_format_for_curl() {
    let sim = TestSimulator::start(sim_config(31)).await;
    sim.sim.generate(200);
    let exporter = TestExporter::start(sim.exporter_config()).await;
    exporter.wait_for_total(200).await;
    let (text_type, text) = scrape(&exporter, Some("*/*")).await;
    let (om_type, om) = scrape(&exporter, Some(PROMETHEUS_2)).await;
    assert_eq!(text_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(om_type, "application/openmetrics-text; version=1.0.0; charset=utf-8");
    assert_eq!(scrape(&exporter, None).await.0, text_type, "no Accept header: the text format");

    assert!(!text.contains("# EOF"));
    assert!(text.contains("# TYPE emnify_events_total counter\n"));
    assert!(om.ends_with("# EOF\n"), "{}", &om[om.len().saturating_sub(200)..]);
    assert_eq!(om.matches("# EOF").count(), 1);
    assert!(om.contains("# TYPE emnify_events counter\n"));
    assert!(om.contains("# HELP emnify_events "));
    assert!(!om.contains("# TYPE emnify_events_total"), "counter families are named without _total");
    assert!(om.lines().all(|l| !l.starts_with("# TYPE ") || !l.ends_with(" untyped")));
    // The same samples, counters keeping their _total.
    let (text_samples, om_samples) = (parse_exposition(&text), parse_exposition(&om));
    assert_eq!(sum(&om_samples, "emnify_events_total", &[]), 200.0);
    assert_eq!(sum(&text_samples, "emnify_events_total", &[]), 200.0);
    let names = |samples: &[crate::common::Sample]| {
        let mut names: Vec<String> = samples.iter().map(|s| s.name.clone()).collect();
        names.sort();
        names.dedup();
        names
    };
    assert_eq!(names(&om_samples), names(&text_samples));
    // Each event series carries its newest event as an exemplar, in OpenMetrics only: an event the
    // simulator produced, with the device it concerns.
    assert!(!text.contains(" # {"));
    let known: std::collections::HashSet<u64> = sim.sim.event_ids().into_iter().collect();
    let (mut exemplars, mut with_device) = (0, 0);
    for line in
        om.lines().filter(|l| l.starts_with("emnify_events_total{") || l.starts_with("emnify_generic_events_total{"))
    {
        let Some((_, exemplar)) = line.split_once(" # ") else { continue };
        exemplars += 1;
        let field = |name: &str| -> Option<u64> {
            let start = exemplar.find(&format!("{name}=\""))? + name.len() + 2;
            exemplar[start..].split('"').next()?.parse().ok()
        };
        let event = field("event_id").expect("an event id");
        assert!(known.contains(&event), "{line}");
        // Events about an organisation or a user concern no device.
        if let Some(endpoint) = field("endpoint_id") {
            with_device += 1;
            assert!(sim.sim.endpoint_event_ids(endpoint).contains(&event), "{line}: not that device's event");
            // The simulator's SIM of endpoint n carries the ICCID 898830000 followed by n in 10 digits.
            let iccid = field("iccid").expect("the device's ICCID");
            assert_eq!(iccid, 8_988_300_000_000_000_000 + endpoint % 1_000_000, "{line}");
        }
        assert!(exemplar.split('}').next().unwrap().len() <= 128, "{line}: over OpenMetrics' 128 characters");
        let value_and_time: Vec<&str> = exemplar.rsplit('}').next().unwrap().split_whitespace().collect();
        assert_eq!(value_and_time[0], "1", "{line}");
        assert!(value_and_time[1].parse::<f64>().unwrap() > 1.7e9, "{line}");
    }
    assert!(exemplars >= 5 && with_device >= 3, "{exemplars} exemplars, {with_device} with a device");
    // promtool reads the Prometheus text format only; OpenMetrics goes through a strict parser of its own.
    assert_promtool_clean(&text);
    assert_openmetrics_valid(&om);
    exporter.shutdown.cancel();
}

/// `Accept-Encoding: gzip` gets the exposition gzip-compressed (in either format), `q=0` or no header
/// the plain one; both hold the same samples.
#[tokio::test]
async fn gzip_when_asked_for() {
    use std::io::Read;
    let sim = TestSimulator::start(sim_config(32)).await;
    sim.sim.generate(300);
    let exporter = TestExporter::start(sim.exporter_config()).await;
    exporter.wait_for_total(300).await;
    let get = async |encoding: Option<&str>, accept: &str| {
        let mut request = http_client().get(exporter.url("/metrics")).header("accept", accept);
        if let Some(encoding) = encoding {
            request = request.header("accept-encoding", encoding);
        }
        let response = request.send().await.expect("GET /metrics");
        let coding = response.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(response.headers()["vary"], "Accept, Accept-Encoding");
        (coding, response.bytes().await.expect("a body").to_vec())
    };
    let (plain_coding, plain) = get(None, "*/*").await;
    assert_eq!(plain_coding, None);
    assert_eq!(get(Some("gzip;q=0"), "*/*").await.0, None, "refused at q=0");
    for accept in ["*/*", PROMETHEUS_2] {
        let (coding, compressed) = get(Some("gzip, deflate"), accept).await;
        assert_eq!(coding.as_deref(), Some("gzip"));
        let mut text = String::new();
        flate2::read::GzDecoder::new(&compressed[..]).read_to_string(&mut text).expect("valid gzip");
        assert!(compressed.len() * 3 < text.len(), "{} bytes compressed to {}", text.len(), compressed.len());
        assert_eq!(sum(&parse_exposition(&text), "emnify_events_total", &[]), 300.0);
        assert_eq!(text.ends_with("# EOF\n"), accept == PROMETHEUS_2);
    }
    let plain = String::from_utf8(plain).unwrap();
    assert_eq!(sum(&parse_exposition(&plain), "emnify_events_total", &[]), 300.0);
    exporter.shutdown.cancel();
}
