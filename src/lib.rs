//! emnify-exporter: counts emnify IoT platform events into Prometheus metrics.
//!
//! # Layout
//! Data flows one way; no module imports one above it (`tests/integration/layering.rs` keeps it so):
//!
//! ```text
//! main ─► config (the command line; only config, app and main know it)
//!           └─► app (wiring: App::build → local_addr → run)
//!                 ├─► poller ────┐   sources: decode, call the tally's handle, map the result
//!                 ├─► receiver ──┤   (the receiver also keeps its own upkeep and push metrics)
//!                 │              ▼
//!                 │           tally (count once: dedup, cursor, save-then-publish; a folder, its
//!                 │              │   parts layered batch, report → count → checkpoint → handle)
//!                 │              ├─► metrics (the families, publication, the state-file counter table)
//!                 │              └─► state (the state file)
//!                 ├─► watchdog (the Data Streamer's states and restarts) ─► emnify, metrics
//!                 ├─► routes (/metrics, /, probes; the receiver's path) ─► http (accept loop, TLS, limits)
//!                 └─► simulator (demo only; never on the exporter's own path) ─► http
//! emnify (client, event model, page scanner), webconfig, dedup, catalogue, timefmt, secret, rng, loglimit: leaves
//! ```
//!
//! An event polled from emnify ([`poller`], through [`emnify::Client`] and the scanner in
//! [`emnify::scan`]) or pushed by the Data Streamer ([`receiver`]) is decoded into
//! [`emnify::Event`]s and handed to [`tally::SharedTally::ingest`], which counts each id once into
//! [`metrics`] and saves the progress to the [`state`] file and then publishes the counts when the
//! rules say so; `/metrics` ([`routes`]) serves only what was published. [`simulator`] is a stand-alone
//! emnify API used by `--demo` and the tests.

pub mod allocator;
pub mod app;
pub mod catalogue;
pub mod config;
pub mod dedup;
pub mod emnify;
pub mod http;
pub mod logging;
pub mod loglimit;
pub mod metrics;
pub mod poller;
pub mod receiver;
pub mod rng;
pub mod routes;
pub mod secret;
pub mod simulator;
pub mod state;
pub mod supervise;
pub mod tally;
pub mod timefmt;
pub mod watchdog;
pub mod webconfig;

/// The exporter's version, as published in `emnify_exporter_build_info` and the `User-Agent`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision the binary was built from (`unknown` outside a checkout).
pub const REVISION: &str = env!("EMNIFY_EXPORTER_REVISION");

/// The git branch the binary was built from (`unknown` outside a checkout or on a detached head).
pub const BRANCH: &str = env!("EMNIFY_EXPORTER_BRANCH");

/// The compiler that built the binary, as `rustc --version` prints itself.
pub const RUSTC_VERSION: &str = env!("EMNIFY_EXPORTER_RUSTC_VERSION");

/// When the binary was built (`SOURCE_DATE_EPOCH` when set), as RFC 3339 UTC.
pub const BUILD_DATE: &str = env!("EMNIFY_EXPORTER_BUILD_DATE");

/// What `--version` prints after the name, in the layout of the Prometheus Go exporters' `version.Print`.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (branch: ",
    env!("EMNIFY_EXPORTER_BRANCH"),
    ", revision: ",
    env!("EMNIFY_EXPORTER_REVISION"),
    ")\n  build date:       ",
    env!("EMNIFY_EXPORTER_BUILD_DATE"),
    "\n  rustc version:    ",
    env!("EMNIFY_EXPORTER_RUSTC_VERSION"),
    "\n  platform:         ",
    env!("EMNIFY_EXPORTER_PLATFORM"),
);

/// Installs ring as the process-wide rustls crypto provider; reqwest is built without one.
///
/// Idempotent: an already installed provider stays in place.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
