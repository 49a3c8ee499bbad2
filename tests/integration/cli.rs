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
        "EMNIFY_EXPORTER_EMNIFY_API_URL",
        "EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL",
        "EMNIFY_APPLICATION_TOKEN",
    ] {
        assert!(stdout.contains(flag), "--help lacks {flag}:\n{stdout}");
    }
}

/// `--version` as the Prometheus Go exporters print it: version, branch, revision, build date, compiler,
/// platform; `-V` only the version.
#[test]
fn version_names_the_build() {
    let (code, stdout, _) = run(&["--version"], &[]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = stdout.lines().collect();
    let head = format!("emnify-exporter {} (branch: ", emnify_exporter::VERSION);
    assert!(lines[0].starts_with(&head) && lines[0].contains(", revision: "), "{stdout}");
    let revision = lines[0].split("revision: ").nth(1).unwrap().trim_end_matches(')');
    assert_eq!(revision, emnify_exporter::REVISION);
    // A checkout (CI runs in a clone) knows its revision; a source tarball says `unknown`.
    if std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".git").exists() {
        assert!(revision.len() == 12 && revision.chars().all(|c| c.is_ascii_hexdigit()), "a git revision: {revision}");
    }
    let field = |name: &str| {
        let line =
            lines.iter().find(|l| l.trim_start().starts_with(name)).unwrap_or_else(|| panic!("{name}: {stdout}"));
        line.split_once(':').unwrap().1.trim().to_string()
    };
    let date = field("build date");
    assert!(date.len() == 20 && date.ends_with('Z') && date.as_bytes()[10] == b'T', "RFC 3339: {date}");
    assert!(field("rustc version").starts_with("rustc 1."), "{stdout}");
    assert!(field("platform").starts_with(&format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH)));
    let (code, stdout, _) = run(&["-V"], &[]);
    assert_eq!((code, stdout.trim()), (0, format!("emnify-exporter {}", emnify_exporter::VERSION).as_str()));
}

/// Common mistakes with the API URL are refused at start with the URL to use instead.
#[test]
fn api_url_mistakes_are_refused_with_the_fix() {
    for (url, fix) in [
        ("https://cdn.emnify.net/api/v1", "use https://cdn.emnify.net"),
        ("https://cdn.emnify.net/api/v1/", "use https://cdn.emnify.net"),
        ("https://cdn.emnify.net/api/v1/event", "use https://cdn.emnify.net"),
        ("https://proxy.example/emnify/api/v1", "use https://proxy.example/emnify"),
        ("https://user:secret@proxy.example", "must not hold a user name or password"),
        ("cdn.emnify.net", "has no scheme: use https://cdn.emnify.net"),
        ("cdn.emnify.net:443", "has no scheme: use https://cdn.emnify.net:443"),
        ("ftp://cdn.emnify.net", "http:// or https://"),
    ] {
        let (code, _, stderr) = run(&["--emnify.api-url", url], &[("EMNIFY_APPLICATION_TOKEN", "t")]);
        assert_eq!(code, 2, "{url}: {stderr}");
        assert!(stderr.contains("--emnify.api-url") && stderr.contains(fix), "{url}: {stderr}");
    }
}

/// On/off variables take true/false, 1/0 and yes/no; anything else is refused naming the variable and
/// the accepted values.
#[test]
fn boolean_variables_take_the_usual_spellings() {
    // A state file that cannot exist (its directory would be a device) fails after the flags are read:
    // reaching that error means the boolean was accepted, and the demo (needing no token) was on.
    for on in ["true", "1", "yes", "TRUE", "on"] {
        let (code, _, stderr) = run(&["--state.file", "/dev/null/state.json"], &[("EMNIFY_EXPORTER_DEMO", on)]);
        assert_eq!(code, 2, "{on}: {stderr}");
        assert!(stderr.contains("--state.file") && !stderr.contains("boolean"), "{on}: {stderr}");
    }
    for off in ["false", "0", "no"] {
        let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_DEMO", off)]);
        assert_eq!(code, 2, "{off}: {stderr}");
        assert!(stderr.contains("no emnify application token"), "the demo is off with {off}: {stderr}");
    }
    let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_DEMO", "maybe")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("EMNIFY_EXPORTER_DEMO") && stderr.contains("true or false, 1 or 0, yes or no"), "{stderr}");
}

/// An error in a value from the environment names the variable (and, for a renamed one, the name the
/// user set); the old names are still read.
#[test]
fn errors_name_the_environment_variable_and_old_names_still_work() {
    let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL", "never")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--emnify.poll-interval"), "{stderr}");
    assert!(stderr.contains("environment variable EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"), "{stderr}");
    let (code, _, stderr) = run(&[], &[("EMNIFY_POLL_INTERVAL", "never")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("environment variable EMNIFY_POLL_INTERVAL)"), "the old name is read: {stderr}");
    // On the command line, the flag is the whole story.
    let (code, _, stderr) =
        run(&["--emnify.poll-interval", "never"], &[("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL", "also-never")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid value 'never' for '--emnify.poll-interval"), "{stderr}");
    assert!(!stderr.contains("environment variable"), "{stderr}");
    // Errors found after parsing name the variable too.
    let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE", "/nonexistent/token")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("environment variable EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE"), "{stderr}");
}

/// The start-up line says what runs (version, mode, address, TLS, auth, the API), and settings the mode
/// does not use, or old variable names, are warned about.
#[test]
fn start_up_states_the_setup_and_warns_about_unused_settings() {
    let mut child = Process::start(
        &["--demo", "--web.listen-address", "127.0.0.1:0", "--webhook.path", "/hook"],
        &[("EMNIFY_POLL_INTERVAL", "2s"), ("EMNIFY_EXPORTER_WEBHOOK_SECRET", "unused-secret")],
    );
    let renamed = child.wait_for_log("EMNIFY_POLL_INTERVAL");
    assert_eq!(renamed["level"], "warn");
    assert!(renamed["msg"].as_str().unwrap().contains("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"), "{renamed}");
    let unused = child.wait_for_log("--webhook.path is ignored");
    assert_eq!(unused["level"], "warn");
    let secret = child.wait_for_log("EMNIFY_EXPORTER_WEBHOOK_SECRET is ignored");
    let renamed_unused = child.drain_logs().join("\n");
    assert!(!renamed_unused.contains("EMNIFY_POLL_INTERVAL (--emnify.poll-interval) is ignored"), "used in poll mode");
    assert!(!secret.to_string().contains("unused-secret"), "never the secret: {secret}");
    let up = child.wait_for_log("emnify exporter listening");
    assert_eq!(up["version"], emnify_exporter::VERSION);
    assert_eq!(up["mode"], "poll");
    assert_eq!((up["tls"].as_str(), up["basic_auth"].as_str()), (Some("off"), Some("off")));
    assert!(up["api"].as_str().is_some_and(|a| a.starts_with("http://127.0.0.1:")), "{up}");
    assert_eq!(up["poll_interval"], "2s", "the old name's value is used");
    assert!(up["time"].is_string() && up["component"] == "app", "flat JSON lines: {up}");
    assert!(child.terminate(Duration::from_secs(15)).success());
}

/// `completions` prints a completion script for each supported shell, knowing the flags.
#[test]
fn completions_are_printed_for_bash_zsh_and_fish() {
    for (shell, marker) in
        [("bash", "complete -F"), ("zsh", "#compdef emnify-exporter"), ("fish", "complete -c emnify-exporter")]
    {
        let (code, stdout, stderr) = run(&["completions", shell], &[]);
        assert_eq!(code, 0, "{shell}: {stderr}");
        assert!(stdout.contains(marker) && stdout.contains("emnify.poll-interval"), "{shell}:\n{stdout}");
    }
    let (code, _, stderr) = run(&["completions", "tcsh"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("bash"), "the error lists the shells: {stderr}");
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
    let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL", "never")]);
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
    let truth_url = demo["truth"].as_str().expect("the demo logs the truth URL").to_string();
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
/// path is left exactly as it was. (A missing directory is made: `start_up.rs`.)
#[test]
fn a_state_path_that_cannot_hold_the_state_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.json");
    std::fs::write(&foreign, "{\"someone else's\": true}").unwrap();
    let cases = [(dir.path().to_path_buf(), "directory"), (foreign.clone(), "not an emnify-exporter state file")];
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

/// Log lines say things in words and numbers: no Rust `Debug` forms (`Some(5)`, `None`, `Poll`,
/// `Report { .. }`), at any level.
#[test]
fn logs_never_show_rust_debug_forms() {
    let mut child = Process::start(
        &["--demo", "--web.listen-address", "127.0.0.1:0", "--emnify.poll-interval", "1s", "--log.level", "debug"],
        &[],
    );
    child.wait_for_log("poll succeeded");
    child.wait_for_log("walked");
    assert!(child.terminate(Duration::from_secs(15)).success());
    let lines = child.kill_and_collect(); // every line, to the end of the stream
    assert!(lines.iter().any(|l| l.contains("emnify exporter stopped")), "the last line is read: {lines:?}");
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(value.get("raw").is_none(), "a line that is not JSON: {line}");
        for (key, field) in value.as_object().expect("an object") {
            let text = field.to_string();
            for debug_form in ["Some(", "None", " { ", "\"Poll\"", "\"Push\"", "\"Both\""] {
                assert!(!text.contains(debug_form), "{key} shows {debug_form}: {line}");
            }
        }
    }
}

/// A container's exporter settings do not stop the subcommands, and an empty variable means unset.
#[test]
fn subcommands_ignore_the_exporters_variables_and_empty_means_unset() {
    let (code, stdout, stderr) = run(&["completions", "bash"], &[("EMNIFY_EXPORTER_DEMO", "maybe")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("complete -F"));
    let (code, _, stderr) = run(&[], &[("EMNIFY_EXPORTER_DEMO", ""), ("EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS", "")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no emnify application token") && !stderr.contains("boolean"), "{stderr}");
}
