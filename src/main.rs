//! The `emnify-exporter` binary: parses flags, sets up logging and signals, and runs the library.

use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches};
use emnify_exporter::config::{self, Cli, Command};
use emnify_exporter::{app, logging, simulator};
use tokio_util::sync::CancellationToken;

/// Hard limit for shutdown after SIGTERM/SIGINT, well inside Kubernetes' default 30s grace.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    tune_malloc();
    let started_with: std::collections::HashMap<String, String> = std::env::vars().collect();
    let env = |name: &str| std::env::var(name).ok();
    let argv: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    // Before clap reads the environment, and before any other thread exists (set_var and remove_var are
    // not thread-safe).
    for name in config::env_to_clear(&argv, env) {
        std::env::remove_var(name);
    }
    let mut warnings = config::adopt_renamed_env(env, |name, value| std::env::set_var(name, value));
    let parsed = Cli::command().try_get_matches_from(&argv).and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, m)));
    let (cli, matches) = match parsed {
        Ok(parsed) => parsed,
        Err(err) if !err.use_stderr() => err.exit(), // --help, --version
        Err(err) => {
            eprint!("{}", config::explain_error(&err, &argv, |name| started_with.get(name).cloned()));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("emnify-exporter: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = CancellationToken::new();
    match cli.command {
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut Cli::command(), "emnify-exporter", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Some(Command::Simulate(args)) => {
            logging::init(cli.exporter.log_level, cli.exporter.log_format);
            runtime.block_on(async {
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                simulator::run_standalone(args.settings(), shutdown).await
            })
        }
        None => {
            logging::init(cli.exporter.log_level, cli.exporter.log_format);
            warnings.extend(config::unused_settings(&matches, |name| started_with.get(name).cloned()));
            for warning in &warnings {
                tracing::warn!("{warning}");
            }
            let config = match cli.exporter.into_config(|name| std::env::var(name).ok()) {
                Ok(config) => config,
                Err(err) => {
                    eprint!("{}", config::explain_config_error(&err, &argv, |name| started_with.get(name).cloned()));
                    return ExitCode::from(2);
                }
            };
            runtime.block_on(async {
                tokio::spawn(cancel_on_signal(shutdown.clone()));
                let deadline = async {
                    shutdown.cancelled().await;
                    tokio::time::sleep(SHUTDOWN_DEADLINE).await;
                };
                tokio::select! {
                    result = app::run(config, shutdown.clone()) => match result {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(err) => {
                            tracing::error!(error = %err, "emnify exporter failed");
                            eprintln!("emnify-exporter: {err}");
                            ExitCode::FAILURE
                        }
                    },
                    () = deadline => {
                        tracing::warn!("shutdown took too long; exiting anyway");
                        ExitCode::SUCCESS
                    }
                }
            })
        }
    }
}

/// Cancels `shutdown` on SIGTERM (Kubernetes, PID 1 in a container) or SIGINT (Ctrl-C).
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops the exporter");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    shutdown.cancel();
}

/// glibc malloc, tuned for a small sidecar: blocks over 512 KiB (dedup tables, big pages) are mapped
/// and unmapped instead of parking in arenas, and at most two arenas exist instead of one per
/// thread; together that kept several megabytes less resident after an ingest. Smaller buffers (HTTP
/// reads, decoded pages) are reused from the heap without page faults. musl's allocator returns
/// memory on its own and has no such knobs.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters; it is called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc() {}
