//! The HTTP server's own figures: connections open and evicted, requests refused before a route saw them.

use prometheus::Registry;

use crate::http::ConnectionCounters;

/// The HTTP server's figures, in `live` (an attack shows while it lasts, not at the next checkpoint).
pub(super) fn register_connection_counters(live: &Registry) -> ConnectionCounters {
    let open = prometheus::IntGauge::new(
        "emnify_http_connections_open",
        "HTTP connections open now (scrapes, probes, pushes), at most --web.max-connections.",
    )
    .expect("static metric definition is valid");
    let evicted = prometheus::IntCounter::new(
        "emnify_http_connections_evicted_total",
        "Connections closed between requests to make room at --web.max-connections (unfinished headers, idle \
         keep-alives, clients not reading): a slowloris attack, or a limit too low for the clients.",
    )
    .expect("static metric definition is valid");
    let refused = prometheus::IntCounterVec::new(
        prometheus::Opts::new(
            "emnify_http_requests_refused_total",
            "Requests refused before they were handled, by reason: host (400: an HTTP/1.1 request without a Host \
             header, or any request with two), password_too_long (401: a basic-auth password over 72 bytes, which \
             bcrypt could not tell from others sharing its first 72).",
        ),
        &["reason"],
    )
    .expect("static metric definition is valid");
    for reason in crate::http::REFUSAL_REASONS {
        refused.with_label_values(&[reason]);
    }
    let metrics: [Box<dyn prometheus::core::Collector>; 3] =
        [Box::new(open.clone()), Box::new(evicted.clone()), Box::new(refused.clone())];
    for metric in metrics {
        live.register(metric).expect("each metric is registered once");
    }
    ConnectionCounters { open, evicted, refused }
}
