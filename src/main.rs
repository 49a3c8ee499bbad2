//! The `emnify-exporter` binary: reads the invocation, sets up logging, and runs the library.

use std::process::ExitCode;

use emnify_exporter::config::{print_completions, Invocation, Mode};
use emnify_exporter::supervise::shutdown_on_signal;
use emnify_exporter::{app, logging, simulator};

fn main() -> ExitCode {
    tune_malloc();
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
