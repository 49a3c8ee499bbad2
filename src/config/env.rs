//! The environment variables: the secrets' (which have no flags), the renamed ones read under their
//! old names, the naming rule, and the variables cleared before clap reads the environment.

use super::args::Cli;

/// The variables secrets come from (they have no flags, so that they never show in process listings).
pub const TOKEN_ENV: &str = "EMNIFY_APPLICATION_TOKEN";
pub const WEBHOOK_SECRET_ENV: &str = "EMNIFY_EXPORTER_WEBHOOK_SECRET";
pub const WEBHOOK_PASSWORD_ENV: &str = "EMNIFY_EXPORTER_WEBHOOK_BASIC_AUTH_PASSWORD";

/// Environment variables named before the naming rule (`EMNIFY_EXPORTER_` and the flag), and their
/// names now. The old names are still read, with a warning, when the new one is not set.
pub const RENAMED_ENV: [(&str, &str); 11] = [
    ("EMNIFY_API_URL", "EMNIFY_EXPORTER_EMNIFY_API_URL"),
    ("EMNIFY_APPLICATION_TOKEN_FILE", "EMNIFY_EXPORTER_EMNIFY_APPLICATION_TOKEN_FILE"),
    ("EMNIFY_POLL_INTERVAL", "EMNIFY_EXPORTER_EMNIFY_POLL_INTERVAL"),
    ("EMNIFY_PAGE_SIZE", "EMNIFY_EXPORTER_EMNIFY_PAGE_SIZE"),
    ("EMNIFY_REQUEST_TIMEOUT", "EMNIFY_EXPORTER_EMNIFY_REQUEST_TIMEOUT"),
    ("EMNIFY_LOOKBACK", "EMNIFY_EXPORTER_EMNIFY_LOOKBACK"),
    ("EMNIFY_OVERLAP", "EMNIFY_EXPORTER_EMNIFY_OVERLAP"),
    ("EMNIFY_MAX_REMEMBERED_IDS", "EMNIFY_EXPORTER_EMNIFY_MAX_REMEMBERED_IDS"),
    ("EMNIFY_MIN_REQUEST_INTERVAL", "EMNIFY_EXPORTER_EMNIFY_MIN_REQUEST_INTERVAL"),
    ("EMNIFY_REQUEST_BUDGET_SHARE", "EMNIFY_EXPORTER_EMNIFY_REQUEST_BUDGET_SHARE"),
    ("EMNIFY_REQUESTS_IN_FLIGHT", "EMNIFY_EXPORTER_EMNIFY_REQUESTS_IN_FLIGHT"),
];

/// The environment variable a flag reads: `EMNIFY_EXPORTER_` and the flag's name in capitals, `.` and
/// `-` as `_` (the `simulate` subcommand's flags: `EMNIFY_SIMULATOR_`).
pub fn env_name(prefix: &str, long: &str) -> String {
    format!("{prefix}{}", long.replace(['.', '-'], "_").to_ascii_uppercase())
}

/// Variables to take out of the environment before clap reads it: those set to the empty string
/// (Compose and Helm leave unset settings empty; empty means unset, as for the secrets), and for a
/// subcommand the exporter's own, which it does not use (a container's exporter settings must not stop
/// `simulate` or `completions` from starting).
pub fn env_to_clear(argv: &[String], get: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let command = <Cli as clap::CommandFactory>::command();
    let subcommand = argv.get(1).is_some_and(|a| command.get_subcommands().any(|c| c.get_name() == a));
    let mut clear = Vec::new();
    let mut consider = |name: String, exporter_only: bool| {
        let value = get(&name);
        if value.as_deref() == Some("") || (value.is_some() && exporter_only && subcommand) {
            clear.push(name);
        }
    };
    for arg in command.get_arguments() {
        if let Some(env) = arg.get_env() {
            consider(env.to_string_lossy().into_owned(), !arg.is_global_set());
        }
    }
    for sub in command.get_subcommands() {
        for env in sub.get_arguments().filter_map(|a| a.get_env()) {
            consider(env.to_string_lossy().into_owned(), false);
        }
    }
    for (old, _) in RENAMED_ENV {
        consider(old.to_string(), true);
    }
    clear
}

/// Reads the renamed variables under their old names: for each old name that is set while its new
/// name is not, `set` is called with the new name and the value. Returns the warnings to log.
pub fn adopt_renamed_env(get: impl Fn(&str) -> Option<String>, mut set: impl FnMut(&str, &str)) -> Vec<String> {
    let mut warnings = Vec::new();
    for (old, new) in RENAMED_ENV {
        let Some(value) = get(old) else { continue };
        if get(new).is_some() {
            warnings.push(format!("{old} is ignored: {new}, its new name, is set too; unset {old}"));
        } else {
            set(new, &value);
            warnings.push(format!("{old} is an old name: rename it to {new} (read for now)"));
        }
    }
    warnings
}

/// The name under which a flag's `variable` is set in `env`: its own, or its old name.
pub(super) fn variable_set(variable: &str, env: &impl Fn(&str) -> Option<String>) -> Option<String> {
    let old = RENAMED_ENV.iter().find(|(_, new)| *new == variable).map(|(old, _)| *old);
    [Some(variable), old].into_iter().flatten().find(|name| env(name).is_some()).map(str::to_string)
}
