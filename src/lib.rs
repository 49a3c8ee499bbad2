//! emnify-exporter: counts emnify IoT platform events into Prometheus metrics.
//!
//! Data flows one way: [`config`] → [`emnify`] (API client and event model) →
//! [`poller`] (windows, cursor, dedup) → [`metrics`] → [`server`] (`/metrics`).
//! [`simulator`] is a stand-alone emnify API used by `--demo` and the tests; the
//! exporter's own path never calls into it.

pub mod app;
pub mod catalogue;
pub mod config;
pub mod dedup;
pub mod emnify;
pub mod logging;
pub mod metrics;
pub mod poller;
pub mod receiver;
pub mod rng;
pub mod secret;
pub mod http;
pub mod routes;
pub mod simulator;
pub mod state;
pub mod tally;
pub mod timefmt;
pub mod webconfig;

/// The exporter's version, as published in `emnify_exporter_build_info` and the `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("EMNIFY_EXPORTER_REVISION");

/// Installs ring as the process-wide rustls crypto provider; reqwest is built without one.
///
/// Idempotent: an already installed provider stays in place.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
