//! The command line's unit tests: the clap definition, variable names, renamed and cleared variables,
//! unused settings, the parsers, and the checks of `into_config`.

use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::args::*;
use super::env::*;
use super::parse::*;
use super::types::*;
use super::unused::*;
use crate::emnify::TokenSource;
use crate::logging::LogLevel;
use crate::timefmt::parse_duration;

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_flag_has_an_env_var_and_help() {
    let cmd = Cli::command();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if matches!(id, "help" | "version") {
            continue;
        }
        assert!(arg.get_env().is_some(), "--{id} has no env var");
        assert!(arg.get_help().is_some(), "--{id} has no help");
    }
}

/// One rule names every variable: `EMNIFY_EXPORTER_` (the simulator's: `EMNIFY_SIMULATOR_`) and the
/// flag's name in capitals; every old name maps onto a flag's variable.
#[test]
fn every_variable_follows_the_naming_rule() {
    let cmd = Cli::command();
    let check = |cmd: &clap::Command, prefix: &str| {
        for arg in cmd.get_arguments().filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version")) {
            let expected = env_name(prefix, arg.get_long().unwrap());
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(expected.as_str()), "--{}", arg.get_id());
        }
    };
    check(&cmd, "EMNIFY_EXPORTER_");
    check(cmd.find_subcommand("simulate").unwrap(), "EMNIFY_SIMULATOR_");
    let names: Vec<String> =
        cmd.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into()).collect();
    for (old, new) in RENAMED_ENV {
        assert!(names.iter().any(|n| n == new), "{old} → {new}, which no flag reads");
    }
}

#[test]
fn empty_variables_and_the_exporters_own_for_a_subcommand_are_cleared() {
    let env = |name: &str| match name {
        "EMNIFY_EXPORTER_DEMO" => Some(String::new()),
        "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS" | "EMNIFY_POLL_INTERVAL" | "EMNIFY_EXPORTER_LOG_LEVEL" => {
            Some("x".to_string())
        }
        _ => None,
    };
    let argv = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    assert_eq!(env_to_clear(&argv(&["x", "--demo"]), env), vec!["EMNIFY_EXPORTER_DEMO".to_string()]);
    let mut cleared = env_to_clear(&argv(&["x", "simulate"]), env);
    cleared.sort();
    assert_eq!(
        cleared,
        ["EMNIFY_EXPORTER_DEMO", "EMNIFY_EXPORTER_WEB_LISTEN_ADDRESS", "EMNIFY_POLL_INTERVAL"],
        "the log settings are shared with the subcommands; the rest is the exporter's"
    );
}

#[test]
fn old_variable_names_are_adopted_unless_the_new_one_is_set() {
    let given = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
    };
    let mut set = Vec::new();
    let warnings =
        adopt_renamed_env(given(&[("EMNIFY_POLL_INTERVAL", "30s")]), |n, v| set.push((n.to_string(), v.to_string())));
    assert_eq!(set, vec![("EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL".to_string(), "30s".to_string())]);
    assert!(warnings[0].contains("rename it to EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"), "{warnings:?}");
    let mut set = Vec::new();
    let both = given(&[("EMNIFY_OVERLAP", "5m"), ("EMNIFY_EXPORTER_EMNIFY_OVERLAP", "10m")]);
    let warnings = adopt_renamed_env(both, |n, v| set.push((n.to_string(), v.to_string())));
    assert!(set.is_empty(), "the new name wins");
    assert!(warnings[0].contains("EMNIFY_OVERLAP is ignored"), "{warnings:?}");
    assert!(adopt_renamed_env(no_env, |_, _| panic!("nothing to adopt")).is_empty());
}

#[test]
fn settings_a_mode_does_not_use_are_found() {
    let matches = |argv: &[&str]| Cli::command().try_get_matches_from(argv).unwrap();
    let poll = matches(&["x", "--webhook.path=/h", "--emnify.page-size=10"]);
    let warnings = unused_settings(&poll, no_env);
    assert_eq!(warnings, vec!["--webhook.path is ignored: --ingest.mode=poll does not use it".to_string()]);
    let push = matches(&["x", "--ingest.mode=push", "--emnify.poll-interval=1m", "--webhook.path=/h"]);
    let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "t".to_string());
    let warnings = unused_settings(&push, token);
    assert_eq!(
        warnings,
        ["--emnify.poll-interval is ignored: --ingest.mode=push does not use it"],
        "the watchdog reads with the token"
    );
    let push_unwatched = matches(&["x", "--ingest.mode=push", "--watchdog.interval=0s"]);
    let warnings = unused_settings(&push_unwatched, token);
    assert!(warnings[0].starts_with("EMNIFY_APPLICATION_TOKEN is ignored"), "{warnings:?}");
    let poll = matches(&["x", "--watchdog.restart"]);
    assert_eq!(unused_settings(&poll, no_env), ["--watchdog.restart is ignored: --ingest.mode=poll does not use it"]);
    assert!(unused_settings(&matches(&["x", "--ingest.mode=both", "--webhook.path=/h"]), token).is_empty());
    let demo = unused_settings(&matches(&["x", "--demo", "--emnify.api-url=https://cdn.emnify.net"]), token);
    assert_eq!(demo.len(), 2, "{demo:?}");
    assert!(demo[0].starts_with("--emnify.api-url is ignored: --demo"), "{demo:?}");
    assert!(demo[1].starts_with("EMNIFY_APPLICATION_TOKEN is ignored: --demo"), "the demo never sends it: {demo:?}");
}

#[test]
fn durations_and_addresses() {
    assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert!(parse_duration("soon").is_err());
    assert!(parse_poll_interval("100ms").is_err());
    // A bare number is told its unit, not units the flag refuses.
    let bare = parse_poll_interval("60").unwrap_err();
    assert!(bare.contains("write 60s") && !bare.contains("60ms"), "{bare}");
    assert_eq!(duration(" 0 "), Ok(Duration::ZERO));
    assert_eq!(parse_latency_range("2s-5s"), Ok((Duration::from_secs(2), Duration::from_secs(5))));
    assert!(parse_lookback("31d").is_err());
    assert_eq!(parse_signed_duration("-15m"), Ok(-900_000));
    assert_eq!(parse_signed_duration("1h"), Ok(3_600_000));
    assert_eq!(parse_listen_address(":9853"), Ok("[::]:9853".parse().unwrap()));
    assert_eq!(parse_listen_address("[::1]:0"), Ok("[::1]:0".parse().unwrap()));
    assert!(parse_listen_address("nonsense").is_err());
    assert_eq!(parse_url("http://127.0.0.1:8080/").as_deref(), Ok("http://127.0.0.1:8080"));
    assert!(parse_url("ftp://x").is_err());
    // A path prefix (a proxy) is kept; emnify's own /api/v1 is not.
    assert_eq!(parse_url("https://proxy.example/emnify").as_deref(), Ok("https://proxy.example/emnify"));
    assert!(parse_url("https://cdn.emnify.net/api/v1").unwrap_err().contains("use https://cdn.emnify.net"));
    let endpoint = parse_url("https://cdn.emnify.net/api/v1/event").unwrap_err();
    assert!(endpoint.contains("without /api/v1/event") && endpoint.ends_with("use https://cdn.emnify.net"));
    assert!(parse_url("https://cdn.emnify.net/api").unwrap_err().contains("use https://cdn.emnify.net"));
    assert_eq!(parse_url("https://proxy.example/api").as_deref(), Ok("https://proxy.example/api"), "a proxy's /api");
    assert!(parse_url("https://user:pw@proxy.example").unwrap_err().contains("user name or password"));
    let mistyped = parse_url("http:/cdn.emnify.net").unwrap_err();
    assert!(mistyped.contains("is not a URL") && !mistyped.contains("https://http"), "{mistyped}");
}

fn args(extra: &[&str]) -> ExporterArgs {
    let mut argv = vec!["emnify-exporter"];
    argv.extend_from_slice(extra);
    Cli::try_parse_from(argv).unwrap().exporter
}

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn push_mode_needs_credentials_or_an_explicit_opt_out() {
    let err = args(&["--ingest.mode=push"]).into_config(no_env).unwrap_err().to_string();
    assert!(err.contains("--webhook.insecure-no-auth"), "{err}");
    let open = args(&["--ingest.mode=push", "--webhook.insecure-no-auth"]).into_config(no_env).unwrap();
    assert!(open.poll.is_none(), "push mode needs no application token");
    let secret = |name: &str| (name == "EMNIFY_EXPORTER_WEBHOOK_SECRET").then(|| "s3cret".to_string());
    let config = args(&["--ingest.mode=push"]).into_config(secret).unwrap();
    let receiver = config.push.unwrap();
    assert_eq!(receiver.secret_header.unwrap().1.expose(), "s3cret");
    assert_eq!(receiver.max_body_bytes, 32 * 1024 * 1024);
    let both = args(&["--ingest.mode=both"]).into_config(secret).unwrap_err().to_string();
    assert!(both.contains("EMNIFY_APPLICATION_TOKEN"), "both mode still polls: {both}");
    let user_only = args(&["--ingest.mode=push", "--webhook.basic-auth-user=u"]).into_config(no_env);
    assert!(user_only.unwrap_err().to_string().contains("password"));
    // The demo's set-up gives its receiver a secret (see `app`); the configuration itself accepts none.
    assert!(args(&["--ingest.mode=push", "--demo"]).into_config(no_env).unwrap().push.is_some());
    assert_eq!(parse_size("10MB"), Ok(10_000_000));
    assert!(parse_size("10 parsecs").is_err());
}

/// Push mode remembers pushed ids for `--webhook.remember` (an hour unless set), not for the overlap
/// (10 minutes): a re-delivery 15 minutes later is a duplicate. With a poller, the overlap still.
#[test]
fn the_push_remember_horizon_is_its_own_setting() {
    let open = ["--ingest.mode=push", "--webhook.insecure-no-auth"];
    let push = args(&open).into_config(no_env).unwrap();
    assert_eq!(push.tally.remember_pushed, Duration::from_secs(3600));
    let set = args(&[&open[..], &["--webhook.remember=3h"]].concat()).into_config(no_env).unwrap();
    assert_eq!(set.tally.remember_pushed, Duration::from_secs(3 * 3600));
    let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "tok".to_string());
    let both = args(&["--ingest.mode=both", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
    assert_eq!(both.tally.remember_pushed, Duration::from_secs(600));
}

#[test]
fn each_mode_has_exactly_its_parts() {
    let token = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| "tok".to_string());
    let poll = args(&[]).into_config(token).unwrap();
    assert!(poll.poll.is_some() && poll.push.is_none());
    assert_eq!(poll.mode(), "poll");
    let both = args(&["--ingest.mode=both", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
    assert!(both.poll.is_some() && both.push.is_some());
    assert_eq!(both.mode(), "both");
    let push = args(&["--ingest.mode=push", "--webhook.insecure-no-auth"]).into_config(token).unwrap();
    assert!(push.poll.is_none() && push.push.is_some());
    assert_eq!(push.mode(), "push");
    let level = Cli::try_parse_from(["emnify-exporter", "--log.level=warn"]).unwrap().exporter.log_level;
    assert_eq!(level, LogLevel::Warn);
    assert!(Cli::try_parse_from(["emnify-exporter", "--log.level=loud"]).is_err());
}

#[test]
fn token_sources_are_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t");
    std::fs::write(&file, "x\n").unwrap();
    let file_flag = format!("--emnify.application-token-file={}", file.display());
    let token = |value: &'static str| move |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| value.to_string());
    let err = args(&[&file_flag]).into_config(token("tok")).unwrap_err();
    assert!(err.to_string().contains("set only one"), "{err}");
    assert!(args(&[]).into_config(no_env).unwrap_err().to_string().contains("EMNIFY_APPLICATION_TOKEN"));
    let poll = |config: Config| config.poll.unwrap();
    assert!(matches!(poll(args(&[&file_flag]).into_config(no_env).unwrap()).token, TokenSource::File(_)));
    let demo = poll(args(&["--demo"]).into_config(token("real-token")).unwrap());
    assert!(matches!(&demo.token, TokenSource::Value(t) if t.expose() == crate::simulator::DEMO_APPLICATION_TOKEN));
    assert_eq!(demo.interval, Duration::from_secs(5));
    let config = args(&[]).into_config(token("secret-token")).unwrap();
    assert!(!format!("{config:?}").contains("secret-token"));
}

/// `--emnify.poll-interval 1 min`, unquoted: clap takes `min` for a subcommand; the error says the value
/// was split and how to write it.
#[test]
fn a_value_split_by_a_space_is_explained() {
    let argv: Vec<String> = ["emnify-exporter", "--emnify.poll-interval", "1", "min"].map(String::from).to_vec();
    let err = Cli::try_parse_from(&argv).unwrap_err();
    let text = super::explain_error(&err, &argv, |_| None);
    assert!(text.contains("unrecognized subcommand 'min'"), "{text}");
    assert!(text.contains("quote it, --emnify.poll-interval '1 min'"), "{text}");
    assert!(text.contains("--emnify.poll-interval 1min)"), "{text}");
    // A stray word that follows no flag's value gets clap's message alone.
    let argv: Vec<String> = ["emnify-exporter", "simulat"].map(String::from).to_vec();
    let err = Cli::try_parse_from(&argv).unwrap_err();
    assert!(!super::explain_error(&err, &argv, |_| None).contains("quote it"));
}
