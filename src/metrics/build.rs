//! Which build is running (`emnify_exporter_build_info`), and the process's own `process_*` metrics.

use prometheus::{Opts, Registry};

use super::registrar::Registrar;

/// Registers the build info, set once, and the process metrics into `live` (read at every
/// scrape, not published: CPU and memory should be as of the scrape).
pub(super) fn register(reg: &mut Registrar<'_>, live: &Registry) {
    let info = reg.int_gauge_vec(
        Opts::new("emnify_exporter_build_info", "Build of the running exporter; the value is always 1."),
        &["version", "revision", "branch", "rustversion"],
    );
    // `rustc 1.95.0 (59807616e 2026-04-14)` → `1.95.0`, as the Go exporters' `goversion` holds `go1.22.1`.
    let rustversion = crate::RUSTC_VERSION.split(' ').nth(1).unwrap_or(crate::RUSTC_VERSION);
    info.with_label_values(&[crate::VERSION, crate::REVISION, crate::BRANCH, rustversion]).set(1);
    #[cfg(target_os = "linux")]
    live.register(Box::new(super::process::ProcessMetrics::new())).expect("process metrics register once");
    #[cfg(not(target_os = "linux"))]
    let _ = live;
}
