//! Errors explained: clap's and the configuration's, with where a value came from when it was an
//! environment variable rather than a flag.

use super::args::Cli;
use super::env::variable_set;

/// A command-line error as clap words it, plus where the value came from when it was an environment
/// variable rather than a flag, so that the fix is clear in a container whose flags are all variables.
/// `env` reads the environment as the process was started with.
pub fn explain_error(err: &clap::Error, argv: &[String], env: impl Fn(&str) -> Option<String>) -> String {
    use clap::error::{ContextKind, ContextValue};
    let text = err.render().to_string();
    if let Some(ContextValue::String(word)) = err.get(ContextKind::InvalidSubcommand) {
        return match split_value(word, argv) {
            Some(hint) => text.replacen('\n', &format!("\n{hint}"), 1),
            None => text,
        };
    }
    let Some(ContextValue::String(arg)) = err.get(ContextKind::InvalidArg) else {
        return text;
    };
    let flag = arg.split([' ', '=']).next().unwrap_or(arg);
    let mut note = origin_note(flag, argv, &env);
    if matches!(err.kind(), clap::error::ErrorKind::ValueValidation) && text.contains("not a boolean") {
        note.push_str("  (on/off values: true or false, 1 or 0, yes or no)\n");
    }
    match text.split_once('\n') {
        Some((first, rest)) if !note.is_empty() => format!("{first}\n{note}{rest}"),
        _ => text,
    }
}

/// For a stray `word` that clap took for a subcommand: when it follows `--flag VALUE`, the value was
/// most likely meant to go on (`--emnify.poll-interval 1 min`, unquoted), and the note says how.
fn split_value(word: &str, argv: &[String]) -> Option<String> {
    let at = argv.iter().position(|a| a == word)?;
    let (flag, value) = (argv.get(at.checked_sub(2)?)?, argv.get(at - 1)?);
    if !flag.starts_with("--") || flag.contains('=') || value.starts_with('-') {
        return None;
    }
    Some(format!(
        "  ('{value} {word}' after {flag} is two words: quote it, {flag} '{value} {word}', or write it without the \
         space, {flag} {value}{word})\n"
    ))
}

/// A configuration or start-up error about `flag`, with where that flag's value came from when it
/// was an environment variable.
pub fn explain_flag_error(
    flag: Option<&str>,
    text: &str,
    argv: &[String],
    env: impl Fn(&str) -> Option<String>,
) -> String {
    let note = flag.map(|flag| origin_note(flag, argv, &env)).unwrap_or_default();
    format!("error: {text}\n{note}")
}

/// `  (the value comes from the environment variable X)` when `flag` (`--name`) was not on the
/// command line and its variable, or the variable's old name, is set; else empty.
fn origin_note(flag: &str, argv: &[String], env: &impl Fn(&str) -> Option<String>) -> String {
    let given = argv.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if given {
        return String::new();
    }
    let command = <Cli as clap::CommandFactory>::command();
    let variable = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
        .find(|a| a.get_long().is_some_and(|long| flag.strip_prefix("--") == Some(long)))
        .and_then(|a| a.get_env())
        .map(|name| name.to_string_lossy().into_owned());
    match variable.and_then(|variable| variable_set(&variable, env)) {
        Some(name) => format!("  (the value comes from the environment variable {name})\n"),
        None => String::new(),
    }
}
