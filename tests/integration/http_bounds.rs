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
