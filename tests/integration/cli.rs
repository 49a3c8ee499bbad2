//! The binary as a user runs it: flags, configuration errors, the demo, and shutdown on SIGTERM.

use crate::common;

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Process;

const BIN: &str = env!("CARGO_BIN_EXE_emnify-exporter");

/// The binary with a clean environment (no emnify variables leaking in from the caller).
fn exporter() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("EMNIFY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = exporter().args(args).envs(env.iter().copied()).output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_documents_every_flag_and_its_env_var() {
    let (code, stdout, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for flag in [
        "--emnify.api-url",
        "--emnify.application-token-file",
        "--emnify.poll-interval",
        "--emnify.page-size",
        "--emnify.request-timeout",
        "--emnify.lookback",
        "--emnify.overlap",
        "--emnify.max-remembered-ids",
        "--web.listen-address",
        "--web.telemetry-path",
        "--log.level",
        "--log.format",
        "--demo",
        "EMNIFY_API_URL",
        "EMNIFY_POLL_INTERVAL",
        "EMNIFY_APPLICATION_TOKEN",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!((code, stdout.trim()), (0, format!("emnify-exporter {}", emnify_exporter::VERSION).as_str()));
}

#[test]
fn bad_values_fail_at_start_naming_the_flag() {
    for (args, flag) in [
        (&["--emnify.poll-interval", "soon"][..], "--emnify.poll-interval"),
        (&["--emnify.poll-interval", "10ms"][..], "--emnify.poll-interval"),
        (&["--emnify.page-size", "0"][..], "--emnify.page-size"),
        (&["--emnify.lookback", "45d"][..], "--emnify.lookback"),
        (&["--emnify.api-url", "not a url"][..], "--emnify.api-url"),
        (&["--web.listen-address", "everywhere"][..], "--web.listen-address"),
        (&["--web.telemetry-path", "metrics"][..], "--web.telemetry-path"),
        (&["--log.format", "xml"][..], "--log.format"),
    ] {
        let (code, _, stderr) = run(args, &[("EMNIFY_APPLICATION_TOKEN", "t")]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} should name {flag}: {stderr}");
    }
    let (code, _, stderr) = run(&[], &[("EMNIFY_POLL_INTERVAL", "never")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--emnify.poll-interval"), "env values are checked too: {stderr}");
}

#[test]
fn token_configuration_errors_are_clear() {
    let (code, _, stderr) = run(&[], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("EMNIFY_APPLICATION_TOKEN"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "secret-from-file\n").unwrap();
    let file = file.to_string_lossy().to_string();
    let (code, _, stderr) =
        run(&["--emnify.application-token-file", &file], &[("EMNIFY_APPLICATION_TOKEN", "secret-from-env")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("set only one"), "{stderr}");
    assert!(!stderr.contains("secret-from-env") && !stderr.contains("secret-from-file"), "{stderr}");

    let (code, _, stderr) = run(&["--emnify.application-token-file", "/nonexistent/token"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--emnify.application-token-file"), "{stderr}");
}

fn get(url: &str) -> String {
    let (status, body) = common::blocking_get(url);
    assert_eq!(status, 200, "GET {url}");
    body
}

/// The README's demo: counters appear and grow, never above what the simulator produced; SIGTERM ends it cleanly.
#[test]
fn demo_serves_growing_counters_that_match_the_simulator_and_stops_on_sigterm() {
    let mut child =
        Process::start(&["--demo", "--web.listen-address", "127.0.0.1:0", "--emnify.poll-interval", "1s"], &[]);
    let demo = child.wait_for_log("demo mode");
    let truth_url = demo["fields"]["truth"].as_str().expect("the demo logs the truth URL").to_string();
    let metrics_url = format!("{}/metrics", child.exporter_base());

    let counted = || common::blocking_total(&metrics_url);
    let deadline = Instant::now() + Duration::from_secs(30);
    let first = loop {
        let n = counted();
        if n > 0.0 {
            break n;
        }
        assert!(Instant::now() < deadline, "no events counted within 30s");
        std::thread::sleep(Duration::from_millis(200));
    };
    let grown = loop {
        let n = counted();
        if n > first {
            break n;
        }
        assert!(Instant::now() < deadline, "counters did not grow");
        std::thread::sleep(Duration::from_millis(200));
    };
    let truth: serde_json::Value = serde_json::from_str(&get(&truth_url)).unwrap();
    let produced = truth["total"].as_f64().unwrap();
    assert!(grown <= produced, "counted {grown} but the simulator produced only {produced}");

    let status = child.terminate(Duration::from_secs(15));
    assert!(status.success(), "exit status after SIGTERM: {status}");
    child.wait_for_log("stopped");
}

#[test]
fn push_mode_refuses_to_start_without_credentials() {
    let (code, _, stderr) = run(&["--ingest.mode", "push"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--webhook.insecure-no-auth"), "{stderr}");
    let (code, _, stderr) = run(&["--ingest.mode", "push", "--webhook.max-body-size", "lots"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--webhook.max-body-size"), "{stderr}");
}

/// A `--state.file` that cannot hold the state fails at start, naming the flag, and what is at the
/// path is left exactly as it was.
#[test]
fn a_state_path_that_cannot_hold_the_state_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.json");
    std::fs::write(&foreign, "{\"someone else's\": true}").unwrap();
    let cases = [
        (dir.path().to_path_buf(), "directory"),
        (dir.path().join("missing/state.json"), "does not exist"),
        (foreign.clone(), "not an emnify-exporter state file"),
    ];
    for (path, why) in cases {
        let path = path.to_string_lossy().to_string();
        let (code, _, stderr) = run(&["--demo", "--state.file", &path], &[]);
        assert_eq!(code, 2, "{path}: {stderr}");
        assert!(stderr.contains("--state.file") && stderr.contains(why), "{path}: {stderr}");
    }
    assert_eq!(std::fs::read_to_string(&foreign).unwrap(), "{\"someone else's\": true}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("notes.json")], "nothing renamed or created");
}
