//! What an operator meets when starting the binary on a fresh host: a state directory that does not
//! exist yet, one that cannot be made, a port another process holds.

use std::process::Command;
use std::time::Duration;

use crate::common::Process;

/// Runs the binary with no `EMNIFY_*` variables of the caller's; returns exit code and stderr.
fn run(args: &[&str]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emnify-exporter"));
    for (key, _) in std::env::vars() {
        if key.starts_with("EMNIFY_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd.args(args).output().expect("the binary runs");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The README's `--state.file /var/lib/emnify-exporter/state.json` on a host where that directory does
/// not exist yet: the exporter makes it (as Prometheus makes its data directory) and saves there.
#[test]
fn a_missing_state_directory_is_created() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("var/lib/emnify-exporter");
    let state = dir.join("state.json");
    let mut child = Process::start(
        &["--demo", "--web.listen-address", "127.0.0.1:0", "--state.file", state.to_str().unwrap()],
        &[],
    );
    let created = child.wait_for_log("created the state file's directory");
    assert_eq!(created["directory"], dir.to_str().unwrap());
    child.wait_for_log("emnify exporter listening");
    assert!(child.terminate(Duration::from_secs(15)).success());
    assert!(state.is_file(), "the state was saved in the new directory");
}

/// A directory that cannot be made fails at start with exit 2, the flag, and the command that makes it.
#[test]
fn a_state_directory_that_cannot_be_made_is_refused_with_the_fix() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("emnify-exporter");
    let state = dir.join("state.json");
    let (code, stderr) =
        run(&["--demo", "--web.listen-address", "127.0.0.1:0", "--state.file", state.to_str().unwrap()]);
    assert_eq!(code, 2, "{stderr}");
    let fix = format!("sudo install -d -o \"$USER\" {}", dir.display());
    assert!(stderr.starts_with("error: --state.file: cannot create the directory"), "{stderr}");
    assert!(stderr.contains(&fix), "{stderr}");
    assert_eq!(stderr.matches("cannot create").count(), 1, "said once: {stderr}");
}

/// Runs the binary with `args` and then `flag ADDRESS`, ADDRESS a loopback port held by the test, and
/// checks the refusal: exit 2 (as for any start-up problem), the flag and address and what to do, said
/// once. Returns stderr.
fn refused_for_a_held_port(args: &[&str], flag: &str) -> String {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let (code, stderr) = run(&[args, &[flag, &address]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("{flag} {address}: cannot listen")), "{stderr}");
    assert!(stderr.contains("another process holds the port"), "{stderr}");
    assert_eq!(stderr.matches("cannot listen").count(), 1, "said once: {stderr}");
    stderr
}

/// A port another process holds, and no IPv4 fallback that would hide it.
#[test]
fn a_port_in_use_exits_2_naming_the_address_with_a_hint() {
    let stderr = refused_for_a_held_port(&["--demo"], "--web.listen-address");
    assert!(!stderr.contains("no IPv6"), "{stderr}");
}

/// `simulate` on a port in use: the same, for the simulator's `--listen`.
#[test]
fn simulate_on_a_port_in_use_exits_2_with_a_hint() {
    refused_for_a_held_port(&["simulate"], "--listen");
}

/// `:PORT` (every interface, dual stack) with the port taken on a host that has IPv6: the same
/// refusal, never "no IPv6 on this host" and a second try on IPv4.
#[test]
fn a_port_in_use_on_every_interface_is_not_mistaken_for_a_host_without_ipv6() {
    let Ok(held) = std::net::TcpListener::bind("[::]:0") else {
        eprintln!("this host has no IPv6: the case cannot arise");
        return;
    };
    let port = held.local_addr().unwrap().port();
    let (code, stderr) = run(&["--demo", "--web.listen-address", &format!(":{port}")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains(&format!("[::]:{port}")) && stderr.contains("another process holds the port"), "{stderr}");
    assert!(!stderr.contains("no IPv6"), "{stderr}");
}

/// docs/configuration.md's example start-up line of the demo has the fields a real one has, in order:
/// an example that drifts from the binary misleads whoever greps their logs for it.
#[test]
fn the_documented_start_up_line_is_the_real_one() {
    let docs = std::fs::read_to_string(crate::common::artifacts::repo_path("docs/configuration.md")).unwrap();
    let documented = docs.lines().find(|l| l.contains("msg=\"emnify exporter listening\"")).expect("an example line");
    let keys = |line: &str| -> Vec<String> {
        // logfmt: key=value or key="quoted value"; the keys are what is compared.
        let mut keys = Vec::new();
        let mut rest = line;
        while let Some(eq) = rest.find('=') {
            keys.push(rest[..eq].rsplit(' ').next().unwrap_or("").to_string());
            rest = &rest[eq + 1..];
            rest = match rest.strip_prefix('"') {
                Some(quoted) => quoted.split_once('"').map_or("", |(_, after)| after),
                None => rest.split_once(' ').map_or("", |(_, after)| after),
            };
        }
        keys
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_emnify-exporter"));
    cmd.args(["--log.format=logfmt", "--demo", "--web.listen-address", "127.0.0.1:0"]);
    let child = Process::spawn(cmd);
    let real = loop {
        let line = child.logs.recv_timeout(Duration::from_secs(30)).expect("a start-up line");
        let raw = line["raw"].as_str().unwrap_or_default().to_string();
        if raw.contains("msg=\"emnify exporter listening\"") {
            break raw;
        }
    };
    assert_eq!(keys(documented), keys(&real), "documented:\n{documented}\nreal:\n{real}");
    child.kill();
}
