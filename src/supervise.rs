//! Runs the exporter's long-lived tasks and stops all of them when one panics or ends before shutdown.
//!
//! Every task (the HTTP server, the poll loop, the receiver's upkeep, the demo's simulator) is meant to
//! run until the shutdown token is cancelled. One that ends sooner, or panics, leaves an exporter that
//! still answers probes but no longer counts, or counts but can no longer be scraped: worse than a
//! restart. So the first such task cancels the shutdown token, the others are waited for, and
//! [`Supervisor::wait`] returns which task it was and why, for `main` to exit non-zero.
//! [`shutdown_on_signal`] makes the token SIGTERM and SIGINT cancel.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

/// Why the exporter stopped other than by shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task {how}; the exporter stopped")]
pub struct TaskFailed {
    /// The task's name, as given to [`Supervisor::spawn`].
    pub task: &'static str,
    /// `ended before shutdown` or `panicked: <message>`.
    pub how: String,
}

/// A set of named tasks tied to one shutdown token.
pub struct Supervisor {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
}

impl Supervisor {
    pub fn new(shutdown: CancellationToken) -> Supervisor {
        Supervisor { tasks: JoinSet::new(), names: HashMap::new(), shutdown }
    }

    /// Runs `task`, which should return only once the shutdown token is cancelled.
    pub fn spawn(&mut self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(task);
        self.names.insert(handle.id(), name);
    }

    /// Waits for every task. The first to end while the shutdown token is not cancelled, or to
    /// panic at any time, is logged and returned, and it cancels the token so the others stop too.
    pub async fn wait(mut self) -> Result<(), TaskFailed> {
        let mut first: Option<TaskFailed> = None;
        while let Some(joined) = self.tasks.join_next_with_id().await {
            let failure = match joined {
                Ok((id, ())) if !self.shutdown.is_cancelled() => Some(self.failed(id, "ended before shutdown".into())),
                Ok(_) => None,
                Err(err) => Some(self.failed(err.id(), panic_text(err))),
            };
            if let Some(failure) = failure {
                tracing::error!(task = failure.task, reason = %failure.how, "a task failed; stopping the exporter");
                self.shutdown.cancel();
                first.get_or_insert(failure);
            }
        }
        first.map_or(Ok(()), Err)
    }

    fn failed(&self, id: Id, how: String) -> TaskFailed {
        TaskFailed { task: self.names.get(&id).copied().unwrap_or("unnamed"), how }
    }
}

/// `panicked: <message>` (the payload of `panic!`, a `&str` or a `String`), or `was cancelled`.
fn panic_text(err: JoinError) -> String {
    match err.try_into_panic() {
        Ok(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            format!("panicked: {message}")
        }
        Err(_) => "was cancelled".into(),
    }
}

/// A token cancelled on SIGTERM (Kubernetes, PID 1 in a container) or SIGINT (Ctrl-C).
pub fn shutdown_on_signal() -> CancellationToken {
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        token.cancel();
    });
    shutdown
}

async fn wait_for_signal() {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that waits for shutdown, as every real one does.
    fn until_shutdown(shutdown: &CancellationToken) -> impl Future<Output = ()> + Send + 'static {
        let shutdown = shutdown.clone();
        async move { shutdown.cancelled().await }
    }

    #[tokio::test]
    async fn tasks_that_stop_at_shutdown_are_success() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("server", until_shutdown(&shutdown));
        tasks.spawn("poller", until_shutdown(&shutdown));
        shutdown.cancel();
        assert_eq!(tasks.wait().await, Ok(()));
    }

    #[tokio::test]
    async fn a_panic_stops_the_others_and_is_named() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("server", until_shutdown(&shutdown));
        tasks.spawn("poller", async { panic!("index out of bounds") });
        let failed = tasks.wait().await.expect_err("the panic is reported");
        assert_eq!(failed.task, "poller");
        assert_eq!(failed.how, "panicked: index out of bounds");
        assert!(shutdown.is_cancelled(), "the server was told to stop");
        assert_eq!(failed.to_string(), "the poller task panicked: index out of bounds; the exporter stopped");
    }

    #[tokio::test]
    async fn a_task_that_ends_early_stops_the_others() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        tasks.spawn("server", until_shutdown(&shutdown));
        tasks.spawn("receiver upkeep", async {});
        let failed = tasks.wait().await.expect_err("the early end is reported");
        assert_eq!((failed.task, failed.how.as_str()), ("receiver upkeep", "ended before shutdown"));
    }

    #[tokio::test]
    async fn a_panic_during_shutdown_still_fails() {
        let shutdown = CancellationToken::new();
        let mut tasks = Supervisor::new(shutdown.clone());
        let token = shutdown.clone();
        tasks.spawn("final save", async move {
            token.cancelled().await;
            panic!("{}", String::from("disk gone"));
        });
        shutdown.cancel();
        let failed = tasks.wait().await.expect_err("reported");
        assert_eq!(failed.how, "panicked: disk gone");
    }
}
