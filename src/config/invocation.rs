//! The process's invocation: the environment made ready for clap, the command line parsed, and what
//! to run with its logging, or the exit code and message when the command line is wrong.

use std::collections::HashMap;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use super::args::{Cli, Command};
use super::env::{adopt_renamed_env, env_to_clear};
use super::explain::{explain_error, explain_flag_error};
use super::types::Config;
use super::unused::unused_settings;
use crate::logging::{LogFormat, LogLevel};
use crate::simulator::StandaloneSettings;

/// What the command line asks for.
pub enum Mode {
    /// `completions SHELL`: print a completion script.
    Completions(clap_complete::Shell),
    /// `simulate`: the emnify API simulator alone.
    Simulate(Box<StandaloneSettings>),
    /// The exporter, with the warnings to log once logging is set up.
    Export(Box<Config>, Vec<String>),
}

/// A parsed invocation: the mode, the logging, and how the process was started (for explaining an
/// error found later, at start-up, with where its value came from).
pub struct Invocation {
    pub mode: Mode,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    argv: Vec<String>,
    started_with: HashMap<String, String>,
}

impl Invocation {
    /// Reads the command line and the environment. Call it before any other thread exists: it takes
    /// empty and foreign variables out of the environment and sets renamed ones under their new names
    /// (clap reads the environment itself, and changing it is not thread-safe). `Err` is the exit code,
    /// after `--help` or `--version` was printed, or an error with its fix.
    pub fn read() -> Result<Invocation, ExitCode> {
        let started_with: HashMap<String, String> = std::env::vars().collect();
        let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
        let env = |name: &str| std::env::var(name).ok();
        for name in env_to_clear(&argv, env) {
            std::env::remove_var(name);
        }
        let mut warnings = adopt_renamed_env(env, |name, value| std::env::set_var(name, value));
        let started = |name: &str| started_with.get(name).cloned();
        let parsed = Cli::command().try_get_matches_from(&argv).and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
        let (cli, matches) = match parsed {
            Ok(parsed) => parsed,
            Err(err) if !err.use_stderr() => err.exit(), // --help, --version
            Err(err) => {
                eprint!("{}", explain_error(&err, &argv, started));
                return Err(ExitCode::from(2));
            }
        };
        let (log_level, log_format) = (cli.exporter.log_level, cli.exporter.log_format);
        let mode = match cli.command {
            Some(Command::Completions { shell }) => Mode::Completions(shell),
            Some(Command::Simulate(args)) => Mode::Simulate(Box::new(args.settings())),
            None => {
                warnings.extend(unused_settings(&matches, started));
                match cli.exporter.into_config(env) {
                    Ok(config) => Mode::Export(Box::new(config), warnings),
                    Err(err) => {
                        eprint!("{}", explain_flag_error(err.flag(), &err.to_string(), &argv, started));
                        return Err(ExitCode::from(2));
                    }
                }
            }
        };
        Ok(Invocation { mode, log_level, log_format, argv, started_with })
    }

    /// A start-up error about `flag`, with where its value came from when that was a variable.
    pub fn explain(&self, flag: Option<&str>, text: &str) -> String {
        explain_flag_error(flag, text, &self.argv, |name| self.started_with.get(name).cloned())
    }
}

/// Prints a completion script for `shell`, generated from the same definitions as `--help`.
pub fn print_completions(shell: clap_complete::Shell) {
    clap_complete::generate(shell, &mut Cli::command(), "emnify-exporter", &mut std::io::stdout());
}
