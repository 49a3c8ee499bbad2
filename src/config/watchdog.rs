//! The Data Streamer watchdog's flags ([`WatchdogArgs`], flattened into the exporter's) and how they
//! become its settings: on in push and both modes whenever an application token is there to read the
//! stream list with.

use std::time::Duration;

use clap::Args;

use super::parse::{boolish, duration, parse_positive_duration};
use crate::emnify::TokenSource;
use crate::watchdog::{PlanSettings, WatchdogSettings};

#[derive(Debug, Clone, Args)]
pub struct WatchdogArgs {
    /// Push and both modes: time between two readings of emnify's Data Streamer list (one request each,
    /// with the application token), which show each stream's state on /metrics and the landing page.
    /// 0s turns the watchdog off.
    #[arg(long = "watchdog.interval", env = "EMNIFY_EXPORTER_WATCHDOG_INTERVAL", default_value = "1m", value_name = "DURATION", value_parser = duration)]
    pub interval: Duration,

    /// Ids of the Data Streamer streams that are the exporter's (comma-separated). Without it, the event
    /// streams whose destination URL ends in --webhook.path are.
    #[arg(
        long = "watchdog.stream-ids",
        env = "EMNIFY_EXPORTER_WATCHDOG_STREAM_IDS",
        value_name = "ID,...",
        value_delimiter = ','
    )]
    pub stream_ids: Vec<u64>,

    /// Restart a stream of the exporter's that is in Error (POST /api/v2/data_stream/{id}/restart); never
    /// a running, paused or pending one, never another's.
    #[arg(long = "watchdog.restart", env = "EMNIFY_EXPORTER_WATCHDOG_RESTART", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub restart: bool,

    /// Least time between two restarts of one stream; doubled after each restart that did not bring it
    /// back to running, up to 8 times this.
    #[arg(long = "watchdog.restart-interval", env = "EMNIFY_EXPORTER_WATCHDOG_RESTART_INTERVAL", default_value = "15m", value_name = "DURATION", value_parser = parse_positive_duration)]
    pub restart_interval: Duration,
}

/// What the watchdog's settings are made from besides its own flags.
pub(super) struct WatchdogContext<'a> {
    pub receives: bool,
    pub api_url: &'a str,
    pub webhook_path: &'a str,
    /// The application token, checked as the poll part's (`check.rs`).
    pub token: Option<TokenSource>,
    pub request_timeout: Duration,
    pub request_budget_share: Option<f64>,
}

impl WatchdogArgs {
    /// The watchdog's settings, or `None` when it is off: a mode that receives nothing, an interval of
    /// 0, or no application token (push mode needs none for anything else).
    pub(super) fn settings(&self, context: WatchdogContext<'_>) -> Option<WatchdogSettings> {
        if !context.receives || self.interval.is_zero() {
            return None;
        }
        let token = context.token?;
        Some(WatchdogSettings {
            api_url: context.api_url.to_string(),
            token,
            interval: self.interval,
            request_timeout: context.request_timeout,
            request_budget_share: context.request_budget_share,
            plan: PlanSettings {
                webhook_path: context.webhook_path.to_string(),
                stream_ids: self.stream_ids.clone(),
                restart: self.restart,
                restart_interval: self.restart_interval,
                max_restart_interval: self.restart_interval.saturating_mul(8),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::config::Cli;

    fn watchdog(argv: &[&str], token: Option<&str>) -> Option<crate::watchdog::WatchdogSettings> {
        let argv = [&["emnify-exporter", "--webhook.insecure-no-auth"], argv].concat();
        let cli = Cli::try_parse_from(argv).unwrap();
        let env = |name: &str| (name == "EMNIFY_APPLICATION_TOKEN").then(|| token.map(str::to_string)).flatten();
        cli.exporter.into_config(env).unwrap().watchdog
    }

    #[test]
    fn the_watchdog_runs_where_pushes_are_received_and_a_token_can_read_the_list() {
        let push = watchdog(&["--ingest.mode=push", "--webhook.path=/in"], Some("t")).expect("on with a token");
        assert_eq!(push.plan.webhook_path, "/in");
        assert!(!push.plan.restart, "restarts are opt-in");
        assert_eq!(push.interval, crate::watchdog::DEFAULT_INTERVAL);
        assert!(watchdog(&["--ingest.mode=push"], None).is_none(), "push mode without a token: off");
        assert!(watchdog(&[], Some("t")).is_none(), "poll mode has no stream to watch");
        assert!(watchdog(&["--ingest.mode=both", "--watchdog.interval=0s"], Some("t")).is_none(), "0s: off");
        let both = watchdog(
            &[
                "--ingest.mode=both",
                "--watchdog.stream-ids=41,42",
                "--watchdog.restart",
                "--watchdog.restart-interval=5m",
            ],
            Some("t"),
        )
        .expect("on");
        assert_eq!(both.plan.stream_ids, [41, 42]);
        assert!(both.plan.restart);
        assert_eq!(both.plan.max_restart_interval, std::time::Duration::from_secs(40 * 60));
    }
}
