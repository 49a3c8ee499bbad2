//! Which build is running (`emnify_exporter_build_info`), and the process's own `process_*` metrics.

use prometheus::{Opts, Registry};

use super::registrar::Registrar;

/// Registers the build info, set once, and the process metrics into `live` (read at every
/// scrape, not published: CPU and memory should be as of the scrape).
pub(super) fn register(reg: &mut Registrar<'_>, live: &Registry) {
    let info = reg.int_gauge_vec(
        Opts::new("emnify_exporter_build_info", "Build of the running exporter; the value is always 1."),
        &["version", "revision"],
    );
    info.with_label_values(&[crate::VERSION, crate::REVISION]).set(1);
    #[cfg(target_os = "linux")]
    live.register(Box::new(super::process::ProcessMetrics::new())).expect("process metrics register once");
    #[cfg(not(target_os = "linux"))]
    let _ = live;
}
