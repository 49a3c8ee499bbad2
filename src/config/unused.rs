//! Warnings about settings given (as flags or variables) that the chosen ingest mode, or the demo,
//! does not use.

use super::args::Cli;
use super::env::{variable_set, TOKEN_ENV, WEBHOOK_PASSWORD_ENV, WEBHOOK_SECRET_ENV};
use super::types::IngestMode;

/// Flags that only one side uses: the emnify API's in poll and both modes, the receiver's in push and
/// both modes. Given for a mode that does not use them, they are warned about at start.
const POLL_ONLY_FLAGS: [&str; 7] = [
    "emnify.poll-interval",
    "emnify.page-size",
    "emnify.request-timeout",
    "emnify.lookback",
    "emnify.min-request-interval",
    "emnify.request-budget-share",
    "emnify.requests-in-flight",
];

/// What the demo sets itself: its simulator's URL, and its token.
const DEMO_REPLACES: [&str; 2] = ["emnify.api-url", "emnify.application-token-file"];

/// Warnings about settings given (as flags or variables) that the chosen ingest mode (or the demo)
/// does not use.
pub fn unused_settings(matches: &clap::ArgMatches, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let mode = matches.get_one::<IngestMode>("ingest_mode").copied().unwrap_or(IngestMode::Poll);
    let demo = matches.get_one::<bool>("demo").copied().unwrap_or(false);
    // The token reads the event list (poll, both) and the Data Streamer list (the watchdog: push, both).
    let watchdog_on =
        mode.receives() && matches.get_one::<std::time::Duration>("interval").is_none_or(|i| !i.is_zero());
    let token_used = mode.polls() || watchdog_on;
    let command = <Cli as clap::CommandFactory>::command();
    let mut warnings = Vec::new();
    for arg in command.get_arguments() {
        let (Some(long), id) = (arg.get_long(), arg.get_id().as_str()) else { continue };
        // Named as the user gave it: the flag, or the variable (under the name that is set).
        let given = match matches.value_source(id) {
            Some(clap::parser::ValueSource::CommandLine) => Some(format!("--{long}")),
            Some(clap::parser::ValueSource::EnvVariable) => {
                let variable = arg.get_env().map(|v| v.to_string_lossy().into_owned()).unwrap_or_default();
                Some(format!("{} (--{long})", variable_set(&variable, &env).unwrap_or(variable)))
            }
            _ => None,
        };
        let unused = if long.starts_with("webhook.") || long.starts_with("watchdog.") {
            !mode.receives()
        } else if long == "emnify.application-token-file" {
            !token_used
        } else {
            POLL_ONLY_FLAGS.contains(&long) && !mode.polls()
        };
        let Some(given) = given else { continue };
        if unused {
            warnings.push(format!("{given} is ignored: --ingest.mode={} does not use it", mode.name()));
        } else if demo && DEMO_REPLACES.contains(&long) {
            warnings.push(format!("{given} is ignored: --demo polls its built-in simulator"));
        }
    }
    let mode_unused = format!("--ingest.mode={} does not use it", mode.name());
    let token_unused = if token_used { "--demo uses its built-in simulator's own token" } else { &mode_unused };
    let secrets = [
        (TOKEN_ENV, token_used && !demo, token_unused),
        (WEBHOOK_SECRET_ENV, mode.receives(), mode_unused.as_str()),
        (WEBHOOK_PASSWORD_ENV, mode.receives(), mode_unused.as_str()),
    ];
    for (variable, used, why) in secrets {
        if !used && env(variable).is_some_and(|v| !v.is_empty()) {
            warnings.push(format!("{variable} is ignored: {why}"));
        }
    }
    warnings
}
