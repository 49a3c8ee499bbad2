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

/// `--version` succeeded and its first line is `emnify-exporter VERSION`, the version Cargo.toml gives
/// (the lines after it name the revision, build date and toolchain, which differ between builds).
fn assert_version_output(output: &std::process::Output) {
    assert!(output.status.success(), "--version: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    let expected = format!("emnify-exporter {}", env!("CARGO_PKG_VERSION"));
    assert!(
        first == expected || first.starts_with(&format!("{expected} ")),
        "--version must start with `{expected}`:\n{stdout}"
    );
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
    let rootfs_path = std::path::PathBuf::from(&rootfs);
    let files = relative_files(&rootfs_path, &rootfs_path);
    assert_eq!(files, ["emnify-exporter", "etc/ssl/certs/ca-certificates.crt"], "the binary and CA certificates only");

    let version = Command::new("chroot").args([&rootfs, "/emnify-exporter", "--version"]).output().unwrap();
    assert_version_output(&version);

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

/// Every file below `start`, as a path relative to `root`, sorted.
fn relative_files(root: &std::path::Path, start: &std::path::Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![start.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    files.sort();
    files
}

/// A tarball unpacked into a scratch directory, and its files with their contents, sorted by path.
fn unpack(tarball: &std::path::Path) -> (tempfile::TempDir, Vec<(String, Vec<u8>)>) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("tar").arg("-xzf").arg(tarball).arg("-C").arg(dir.path()).status().unwrap();
    assert!(status.success(), "tar -xzf {}", tarball.display());
    let mut files = Vec::new();
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir.path()).unwrap().display().to_string();
                files.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    (dir, files)
}

/// scripts/release: the checksum file verifies, the tarball holds exactly the binary and the files an
/// operator installs beside it (each as in the repository), owned by root with the commit's time, the
/// binary runs and says its version, and packaging the same build again gives the same bytes.
#[test]
fn the_release_tarball_verifies_and_holds_the_binary_docs_rules_and_unit() {
    let script = common::artifacts::repo_path("scripts/release");
    let release = |dir: &std::path::Path| {
        let out = Command::new(&script).arg(dir).output().expect("scripts/release runs");
        let log = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "scripts/release failed:\n{log}\n{}", String::from_utf8_lossy(&out.stderr));
        log
    };
    let head = || Command::new("git").args(["rev-parse", "HEAD"]).output().map(|o| o.stdout).ok();
    // The last commit's time in UTC, as `tar --utc --full-time` lists it; read before and after the run,
    // as a commit in a shared checkout may come in between.
    let commit_time = || {
        let out = Command::new("git")
            .args(["log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%d %H:%M:%S"])
            .env("TZ", "UTC")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (head_before, time_before) = (head(), commit_time());
    let dist = tempfile::tempdir().unwrap();
    let log = release(dist.path());
    let commit_times = [time_before, commit_time()];
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("emnify-exporter-{version}-x86_64-unknown-linux-musl");
    let tarball = format!("{name}.tar.gz");

    let mut written: Vec<String> = std::fs::read_dir(dist.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    assert_eq!(written, ["SHA256SUMS".to_string(), tarball.clone()]);
    let sums = std::fs::read_to_string(dist.path().join("SHA256SUMS")).unwrap();
    assert_eq!(sums.lines().count(), 1, "one checksum line: {sums}");
    let check = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(dist.path()).output().unwrap();
    assert!(check.status.success(), "sha256sum -c SHA256SUMS: {}", String::from_utf8_lossy(&check.stderr));
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), format!("{tarball}: OK"));

    // The expected contents: what `scripts/release --list` names (release_links.rs checks that the packed
    // Markdown's links all resolve among them), the named ones there whatever the globs find.
    let expected = crate::release_links::release_list();
    for must in [
        "dashboards/emnify-events.json",
        "dashboards/README.md",
        "deploy/prometheus/README.md",
        "deploy/prometheus/emnify-alert-rules.yml",
        "deploy/kubernetes/README.md",
        "deploy/grafana/provisioning/dashboards/emnify.yml",
        "deploy/grafana/provisioning/datasources/emnify-prometheus.yml",
        "deploy/systemd/emnify-exporter.service",
        "deploy/systemd/README.md",
    ] {
        assert!(expected.iter().any(|f| f == must), "{must} is not packed");
    }
    let mut expected: Vec<String> = expected.into_iter().map(|f| format!("{name}/{f}")).collect();
    expected.push(format!("{name}/emnify-exporter"));
    expected.sort();

    // `tar -tv` lines: mode, owner/group, size, date, time, path.
    let listing =
        Command::new("tar").args(["--utc", "--full-time", "-tvzf"]).arg(dist.path().join(&tarball)).output().unwrap();
    assert!(listing.status.success(), "tar -tvzf: {}", String::from_utf8_lossy(&listing.stderr));
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    let entries: Vec<Vec<&str>> = listing.lines().map(|l| l.split_whitespace().collect()).collect();
    let mut files: Vec<String> = Vec::new();
    for entry in &entries {
        let [mode, owner, _size, date, time, path] = entry[..] else { panic!("tar entry: {entry:?}") };
        assert_eq!(owner, "0/0", "{path}: owned by root");
        let mtime = format!("{date} {time}");
        assert!(commit_times.contains(&mtime), "{path}: time {mtime}, not the last commit's {commit_times:?}");
        assert!(path == format!("{name}/") || path.starts_with(&format!("{name}/")), "{path}: outside {name}/");
        match mode.chars().next() {
            Some('d') => assert_eq!(mode, "drwxr-xr-x", "{path}"),
            Some('-') => {
                let executable = path == format!("{name}/emnify-exporter");
                assert_eq!(mode, if executable { "-rwxr-xr-x" } else { "-rw-r--r--" }, "{path}");
                files.push(path.to_string());
            }
            _ => panic!("{path}: neither a file nor a directory ({mode})"),
        }
    }
    files.sort();
    assert_eq!(files, expected, "the tarball's files");

    let (unpacked, contents) = unpack(&dist.path().join(&tarball));
    for (file, packed) in &contents {
        let relative = file.strip_prefix(&format!("{name}/")).unwrap();
        if relative != "emnify-exporter" {
            let original = std::fs::read(common::artifacts::repo_path(relative)).unwrap();
            assert!(*packed == original, "{relative} in the tarball differs from the repository's");
        }
    }
    let binary = unpacked.path().join(&name).join("emnify-exporter");
    assert_version_output(&Command::new(&binary).arg("--version").output().expect("the packed binary runs"));

    // Reproducible: packing the same files again gives the same bytes. Only when nothing changed in
    // between: in a shared checkout a commit (the archive's time, the binary's revision), a rebuild or an
    // edit between the two runs changes the inputs, and then there is nothing to compare.
    let again = tempfile::tempdir().unwrap();
    release(again.path());
    let (_first, first_files) = unpack(&dist.path().join(&tarball));
    let (_second, second_files) = unpack(&again.path().join(&tarball));
    if head() == head_before && first_files == second_files {
        assert_eq!(
            std::fs::read_to_string(again.path().join("SHA256SUMS")).unwrap(),
            sums,
            "the same files, other bytes"
        );
    } else {
        println!("reproducibility not compared: the inputs changed between the two runs");
    }
    println!("{}", log.trim());
}
