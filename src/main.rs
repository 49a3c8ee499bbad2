//! The `emnify-exporter` binary: reads the invocation, sets up logging, and runs the library.

use std::process::ExitCode;

use emnify_exporter::config::{print_completions, Invocation, Mode};
use emnify_exporter::supervise::shutdown_on_signal;
use emnify_exporter::{allocator, app, logging, simulator};

fn main() -> ExitCode {
    allocator::tune();
    // First, while this is the only thread: reading the invocation adjusts the environment.
    let invocation = match Invocation::read() {
        Ok(invocation) => invocation,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("emnify-exporter: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(invocation.log_level, invocation.log_format);
    match &invocation.mode {
        Mode::Completions(shell) => {
            print_completions(*shell);
            ExitCode::SUCCESS
        }
        Mode::Simulate(settings) => {
            runtime.block_on(async { simulator::run_standalone((**settings).clone(), shutdown_on_signal()).await })
        }
        Mode::Export(config, warnings) => {
            warnings.iter().for_each(|warning| tracing::warn!("{warning}"));
            match runtime.block_on(app::run_until_signal((**config).clone())) {
                Ok(()) => ExitCode::SUCCESS,
                // A task that failed while running has logged why (app::AppError::Task).
                Err(err @ app::AppError::Task(_)) => ExitCode::from(err.exit_code()),
                Err(err) => {
                    eprint!("{}", invocation.explain(err.flag(), &err.to_string()));
                    ExitCode::from(err.exit_code())
                }
            }
        }
    }
}
