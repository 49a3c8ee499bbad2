//! What the HTTP plumbing refuses or bounds for every route (issue 25): requests without exactly one
//! `Host`. Raw sockets on loopback, as a client library would not send such requests.

use std::io::{Read, Write};
use std::time::Duration;

use crate::common::{self, parse_exposition, sum, TestExporter};

/// Sends `request` on a fresh connection and returns the status line of the answer.
fn status_line(base: &str, request: &str) -> String {
    let mut stream = std::net::TcpStream::connect(base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer.lines().next().unwrap_or("").to_string()
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or any request with two, gets 400 before a route
/// sees it (counted by reason); HTTP/1.0 may leave it out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_exactly_one_host_get_400() {
    let running = TestExporter::start(common::push_only_config()).await;
    let base = running.base.clone();
    let answers = tokio::task::spawn_blocking(move || {
        [
            "GET /-/healthy HTTP/1.1\r\nConnection: close\r\n\r\n",
            "GET /-/healthy HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            "GET /-/healthy HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n",
            "POST /webhook/events HTTP/1.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]",
            "GET /-/healthy HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
            "GET /-/healthy HTTP/1.0\r\n\r\n",
        ]
        .map(|request| status_line(&base, request))
    })
    .await
    .unwrap();
    for answer in &answers[..4] {
        assert!(answer.starts_with("HTTP/1.") && answer.contains(" 400 "), "{answers:?}");
    }
    for answer in &answers[4..] {
        assert!(answer.contains(" 200 "), "{answers:?}");
    }
    let samples = parse_exposition(&running.scrape_text().await);
    assert_eq!(sum(&samples, "emnify_http_requests_refused_total", &[("reason", "host")]), 4.0);
    assert_eq!(sum(&samples, "emnify_push_requests_total", &[]), 0.0, "the receiver never saw the push");
    running.shutdown.cancel();
}

/// Authenticated pushes that sent their headers and one body byte, one in every slot (with a read
/// timeout too long to free them), do not lock out probes and scrapes: a connection whose handler waits
/// for the client's body may be closed to make room, as an unfinished header may.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_do_not_lock_out_probes() {
    const SLOTS: usize = 8;
    let mut config = common::push_only_config();
    config.http.max_connections = SLOTS;
    if let Some(receiver) = config.push.as_mut() {
        receiver.read_timeout = Duration::from_secs(3600);
    }
    let running = TestExporter::start(config).await;
    let address = running.base.trim_start_matches("http://").to_string();
    let (probes, text, first_answer) = tokio::task::spawn_blocking({
        let (healthy, metrics) = (running.url("/-/healthy"), running.url("/metrics"));
        move || {
            let mut slow = Vec::new();
            for _ in 0..SLOTS {
                let mut stream = std::net::TcpStream::connect(&address).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let head =
                    "POST /webhook/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n";
                stream.write_all(head.as_bytes()).unwrap();
                // `100 Continue` comes once the receiver reads the body: the push is inside its handler.
                let mut continue_line = [0u8; 25];
                stream.read_exact(&mut continue_line).unwrap();
                assert!(continue_line.starts_with(b"HTTP/1.1 100 Continue"), "{continue_line:?}");
                stream.write_all(b"[").unwrap();
                slow.push(stream);
            }
            let probes: Vec<bool> = (0..5).map(|_| common::blocking_get_ok(&healthy)).collect();
            let text = common::try_get(&metrics).map(|(_, text)| text).unwrap_or_default();
            // The oldest slow push was closed to make room, without an answer.
            let mut answer = Vec::new();
            let _ = slow[0].read_to_end(&mut answer);
            (probes, text, answer)
        }
    })
    .await
    .unwrap();
    assert_eq!(probes, [true; 5], "every probe is answered");
    let samples = parse_exposition(&text);
    // A probe that closes hands its slot on, so later probes need no eviction of their own.
    assert!(sum(&samples, "emnify_http_connections_evicted_total", &[]) >= 1.0, "{text}");
    // At most the limit, and for a moment the evicted connection that is closing.
    assert!(sum(&samples, "emnify_http_connections_open", &[]) <= SLOTS as f64 + 1.0, "{text}");
    assert!(first_answer.is_empty(), "closed without an answer: {}", String::from_utf8_lossy(&first_answer));
    running.shutdown.cancel();
}
