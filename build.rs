//! Records the git revision for `emnify_exporter_build_info`.

use std::process::Command;

fn main() {
    let revision = std::env::var("EMNIFY_EXPORTER_REVISION")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).output().ok()?;
            out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=EMNIFY_EXPORTER_REVISION={revision}");
    println!("cargo:rerun-if-env-changed=EMNIFY_EXPORTER_REVISION");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
