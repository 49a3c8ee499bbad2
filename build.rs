//! Records where the binary comes from (git revision and branch, build date, rustc) for `--version`
//! and `emnify_exporter_build_info`.

use std::process::Command;

/// The output of a command, trimmed, if it ran and succeeded.
fn output(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

/// An override from the environment (a build outside a checkout, e.g. from a source tarball), else `fallback`.
fn setting(name: &str, fallback: impl FnOnce() -> Option<String>) -> String {
    std::env::var(name).ok().filter(|v| !v.is_empty()).or_else(fallback).unwrap_or_else(|| "unknown".to_string())
}

fn main() {
    let revision = setting("EMNIFY_EXPORTER_REVISION", || output("git", &["rev-parse", "--short=12", "HEAD"]));
    let branch = setting("EMNIFY_EXPORTER_BRANCH", || {
        output("git", &["rev-parse", "--abbrev-ref", "HEAD"]).filter(|b| b != "HEAD")
    });
    // SOURCE_DATE_EPOCH (reproducible builds) wins over the time of the build.
    let build_date = setting("SOURCE_DATE_EPOCH", || {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs().to_string())
    });
    let build_date = match build_date.parse::<i64>() {
        Ok(secs) => rfc3339(secs),
        Err(_) => panic!("SOURCE_DATE_EPOCH must be Unix seconds, not {build_date:?}"),
    };
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_version = setting("EMNIFY_EXPORTER_RUSTC_VERSION", || output(&rustc, &["--version"]));
    println!("cargo:rustc-env=EMNIFY_EXPORTER_REVISION={revision}");
    println!("cargo:rustc-env=EMNIFY_EXPORTER_BRANCH={branch}");
    println!("cargo:rustc-env=EMNIFY_EXPORTER_BUILD_DATE={build_date}");
    println!("cargo:rustc-env=EMNIFY_EXPORTER_RUSTC_VERSION={rustc_version}");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").ok().filter(|e| !e.is_empty());
    let platform = match env {
        Some(env) => format!("{os}/{arch} ({env})"),
        None => format!("{os}/{arch}"),
    };
    println!("cargo:rustc-env=EMNIFY_EXPORTER_PLATFORM={platform}");
    for name in
        ["EMNIFY_EXPORTER_REVISION", "EMNIFY_EXPORTER_BRANCH", "SOURCE_DATE_EPOCH", "EMNIFY_EXPORTER_RUSTC_VERSION"]
    {
        println!("cargo:rerun-if-env-changed={name}");
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (days to a civil date as in Howard Hinnant's `civil_from_days`).
fn rfc3339(secs: i64) -> String {
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}
