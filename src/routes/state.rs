//! What the handlers read: the shared state of the server, and the set-up as the landing page tells it.

use std::sync::Arc;

use crate::http::HttpLimits;
use crate::metrics::Metrics;
use crate::receiver::Receiver;
use crate::webconfig::WebSecurity;

/// What the handlers read.
pub struct ServerState {
    pub metrics: Arc<Metrics>,
    pub telemetry_path: String,
    /// TLS and basic auth from `--web.config.file`, if given.
    pub security: Option<Arc<WebSecurity>>,
    /// The Data Streamer receiver, in push and both modes.
    pub receiver: Option<Arc<Receiver>>,
    /// What clients may hold of the server.
    pub limits: HttpLimits,
    /// The set-up, as the landing page describes it.
    pub about: About,
}

/// The set-up as the landing page describes it, fixed at start. Never a secret: the API's URL, not
/// the token; how pushes authenticate, not with what.
#[derive(Debug, Clone, Default)]
pub struct About {
    /// `poll`, `push` or `both`.
    pub mode: &'static str,
    /// The emnify API polled, and every how often (poll and both modes).
    pub api: Option<(String, std::time::Duration)>,
    /// The receiver's path and how pushes authenticate (push and both modes).
    pub webhook: Option<(String, &'static str)>,
    /// The address served (TLS and basic auth are read from the web configuration as it is now: it
    /// reloads when its files change).
    pub listen: String,
    pub state_file: Option<String>,
    /// In the demo: the built-in simulator's base URL.
    pub demo_simulator: Option<String>,
    /// How long a pushed id is remembered in push mode (`--webhook.remember`).
    pub remember_pushed: std::time::Duration,
}
