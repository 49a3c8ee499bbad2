//! The container image: built from the static binary with buildah, checked, and run from its own root filesystem.

use crate::common;

use std::process::Command;

use crate::common::{blocking_get, Process};

fn buildah(args: &[&str]) -> String {
    let out = Command::new("buildah")
        .arg("--storage-driver=vfs")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("buildah is not installed ({e}): run scripts/test, which installs it"));
    assert!(out.status.success(), "buildah {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Builds the image, checks its configuration, and runs `--version` and a short `--demo` inside its
/// root filesystem (chroot: nothing of the host is visible), proving the binary needs nothing else.
#[test]
fn the_image_is_minimal_non_root_and_self_sufficient() {
    let tag = format!("emnify-exporter:test-{}", std::process::id());
    let script = common::artifacts::repo_path("scripts/build-image");
    let out = Command::new(&script).arg(&tag).output().expect("scripts/build-image runs");
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "scripts/build-image failed:\n{log}\n{}", String::from_utf8_lossy(&out.stderr));

    let inspect: serde_json::Value = serde_json::from_str(&buildah(&["inspect", "--type", "image", &tag])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532", "non-root");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/emnify-exporter"]));
    assert!(config["ExposedPorts"].get("9853/tcp").is_some(), "the metrics port is exposed");
    assert!(config["Cmd"].is_null(), "no shell command");
    assert_eq!(inspect["OCIv1"]["rootfs"]["diff_ids"].as_array().map(Vec::len), Some(1), "one layer, FROM scratch");

    let container = buildah(&["from", &tag]);
    let rootfs = buildah(&["mount", &container]);
    let mut files: Vec<String> = Vec::new();
    let mut stack = vec![std::path::PathBuf::from(&rootfs)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(&rootfs).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    assert_eq!(files, ["emnify-exporter", "etc/ssl/certs/ca-certificates.crt"], "the binary and CA certificates only");

    let version = Command::new("chroot").args([&rootfs, "/emnify-exporter", "--version"]).output().unwrap();
    assert!(version.status.success(), "{}", String::from_utf8_lossy(&version.stderr));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("emnify-exporter {}", env!("CARGO_PKG_VERSION"))
    );

    let mut cmd = Command::new("chroot");
    cmd.args([&rootfs, "/emnify-exporter", "--log.format=json", "--demo", "--web.listen-address=127.0.0.1:0"]);
    let mut demo = Process::spawn(cmd);
    let address = demo.listening_address("emnify exporter listening");
    assert_eq!(blocking_get(&format!("http://{address}/-/ready")).0, 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !blocking_get(&format!("http://{address}/metrics")).1.contains("emnify_up 1") {
        assert!(std::time::Instant::now() < deadline, "the demo in the image never polled successfully");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(demo.terminate(std::time::Duration::from_secs(15)).success(), "a clean exit after SIGTERM");
    let lines = demo.kill_and_collect().join("\n");
    assert!(lines.contains("emnify exporter stopped"), "SIGTERM shuts it down cleanly: {lines}");

    buildah(&["umount", &container]);
    buildah(&["rm", &container]);
    buildah(&["rmi", &tag]);
    println!("{}", log.trim());
}
