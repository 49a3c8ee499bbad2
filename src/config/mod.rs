//! Command-line flags (each also an environment variable; a flag wins) and their checks.
//!
//! The parts, each importing only those listed before it: `parse` (the value parsers clap calls),
//! `types` (the checked [`Config`] the exporter runs with), `watchdog` (the Data Streamer watchdog's
//! flags and settings), `simulate` (the `simulate` subcommand's
//! [`SimulateArgs`]), `args` (the clap definitions: [`Cli`], [`ExporterArgs`]), `env` (the variables:
//! secrets, renamed ones, what to clear), `check` ([`ExporterArgs::into_config`]: what clap cannot
//! check), `explain` (errors with where a value came from), `unused` (warnings about settings the mode
//! does not use) and `invocation` (the process's command line and environment read into a [`Mode`]).
//! This file only re-exports.

mod args;
mod check;
mod env;
mod explain;
mod invocation;
mod parse;
mod simulate;
mod types;
mod unused;
mod watchdog;

pub use args::{Cli, Command, ExporterArgs, DEFAULT_PORT};
pub use env::{
    adopt_renamed_env, env_name, env_to_clear, RENAMED_ENV, TOKEN_ENV, WEBHOOK_PASSWORD_ENV, WEBHOOK_SECRET_ENV,
};
pub use explain::{explain_error, explain_flag_error};
pub use invocation::{print_completions, Invocation, Mode};
pub use parse::{parse_listen_address, parse_size};
pub use simulate::SimulateArgs;
pub use types::{Config, ConfigError, IngestMode, PollConfig};
pub use unused::unused_settings;
pub use watchdog::WatchdogArgs;

#[cfg(test)]
mod tests;
