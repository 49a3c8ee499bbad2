//! What one push may cost (issue 25): records per push, encodings the receiver does not decode, and the
//! refusals' reasons. Real HTTP on loopback; the raw-socket tests send what a client library would not.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{self, parse_exposition, sum, TestExporter};
use emnify_exporter::config::Config;
use emnify_exporter::receiver::ReceiverSettings;

fn settings(max_records: usize) -> ReceiverSettings {
    ReceiverSettings { max_records, ..common::open_receiver() }
}

async fn start(receiver: ReceiverSettings) -> TestExporter {
    TestExporter::start(Config { push: Some(receiver), ..common::push_only_config() }).await
}

/// The exposition once `n` refusals for `reason` are published (within a checkpoint period).
async fn published(running: &TestExporter, reason: &str, n: f64) -> Vec<common::Sample> {
    let mut samples = Vec::new();
    let seen = common::wait_for(Duration::from_secs(10), async || {
        samples = parse_exposition(&running.scrape_text().await);
        sum(&samples, "emnify_push_rejected_total", &[("reason", reason)]) == n
    })
    .await;
    assert!(seen, "{n} refusals for {reason} published");
    samples
}

/// `n` events with distinct ids, as one JSON array.
fn events(n: usize) -> String {
    let one = |i: usize| format!(r#"{{"id":{},"event_type":{{"id":1}}}}"#, i + 1);
    format!("[{}]", (0..n).map(one).collect::<Vec<_>>().join(","))
}

/// A push of exactly `--webhook.max-records` is counted; one more record is refused whole with 413 and
/// the reason `too_many_records`, tiny records (`1,`) included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_beyond_the_cap_get_413_and_count_nothing() {
    let running = start(settings(100)).await;
    let url = running.url("/webhook/events");
    let client = common::http_client();
    let post = |body: String| client.post(&url).body(body).send();
    assert_eq!(post(events(100)).await.unwrap().status(), 200);
    let refused = post(events(101)).await.unwrap();
    assert_eq!(refused.status(), 413);
    assert!(refused.text().await.unwrap().contains("--webhook.max-records"));
    let tiny = format!("[{}]", vec!["1"; 101].join(","));
    assert_eq!(post(tiny).await.unwrap().status(), 413);
    // Nesting and commas inside strings are not records.
    let nested =
        format!(r#"[{{"id":500,"event_type":{{"id":1}},"x":[{}],"d":"{}"}}]"#, "1,".repeat(500) + "1", ",".repeat(500));
    assert_eq!(post(nested).await.unwrap().status(), 200);
    running.wait_for_total(101).await;
    let samples = published(&running, "too_many_records", 2.0).await;
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 101.0, "only the accepted pushes are counted");
    running.shutdown.cancel();
}

/// A push whose records pass the cap is refused as soon as that part of its body has arrived: it is never
/// buffered whole (nor decoded), so a body of millions of tiny records costs the bytes up to the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_over_the_cap_is_refused_before_its_body_is_read_whole() {
    let running = start(settings(1_000)).await;
    let address = running.base.trim_start_matches("http://").to_string();
    let answer = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        // 2 MB declared (a million tiny records); 1,001 of them sent, then nothing.
        let declared = 2 * 1024 * 1024;
        let sent = format!("[{}", "1,".repeat(1_001));
        write!(stream, "POST /webhook/events HTTP/1.1\r\nHost: x\r\nContent-Length: {declared}\r\n\r\n{sent}").unwrap();
        let mut answer = vec![0u8; 512];
        let n = stream.read(&mut answer).unwrap_or(0);
        String::from_utf8_lossy(&answer[..n]).into_owned()
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "refused while the body is still coming: {answer}");
    running.shutdown.cancel();
}

/// The receiver decodes no content coding: a body labelled with one (gzip, or anything but identity) is
/// refused with 415 and `Accept-Encoding: identity`, and nothing of it is counted, even plain JSON
/// labelled gzip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_pushes_get_415() {
    let running = start(settings(10_000)).await;
    let url = running.url("/webhook/events");
    let client = common::http_client();
    for coding in ["gzip", "br", "deflate, identity", "x-unknown"] {
        let r = client.post(&url).header("content-encoding", coding).body(events(3)).send().await.unwrap();
        assert_eq!(r.status(), 415, "{coding}");
        assert_eq!(r.headers()["accept-encoding"], "identity");
    }
    let plain = client.post(&url).header("content-encoding", "identity").body(events(3)).send().await.unwrap();
    assert_eq!(plain.status(), 200);
    running.wait_for_total(3).await;
    let samples = published(&running, "unsupported_encoding", 4.0).await;
    assert_eq!(sum(&samples, "emnify_events_total", &[]), 3.0);
    running.shutdown.cancel();
}
