//! The `simulate` subcommand's flags ([`SimulateArgs`], each with an `EMNIFY_SIMULATOR_` variable)
//! and the simulator's settings made from them.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use super::parse::*;
use crate::simulator::StandaloneSettings;

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address the simulator listens on.
    #[arg(long, env = "EMNIFY_SIMULATOR_LISTEN", default_value = "127.0.0.1:9854", value_parser = parse_listen_address)]
    pub listen: SocketAddr,

    /// Seed of the event stream; the same seed gives the same events.
    #[arg(long, env = "EMNIFY_SIMULATOR_SEED", default_value_t = 1)]
    pub seed: u64,

    /// The application token the simulator accepts.
    #[arg(long, env = "EMNIFY_SIMULATOR_TOKEN", default_value = "demo-application-token", hide_env_values = true)]
    pub token: String,

    /// Average events produced per second.
    #[arg(long, env = "EMNIFY_SIMULATOR_EVENTS_PER_SECOND", default_value_t = 5.0)]
    pub events_per_second: f64,

    /// Faults to inject, e.g. `429=0.1,retry-after=2,5xx=0.05,reset=0.02,stall=0.02,truncate=0.02,malformed=0.02,
    /// html=0.02,401=0.02,login-5xx=0.1,login-429=0.1,no-paging=0.1,bad-paging=0.1,dup=0.1,late=0.1`
    /// (each a chance per request; also `stall-for=2s`, `5xx-burst=3`). Changeable at run time with
    /// `POST /simulator/faults?spec=...`.
    #[arg(long, env = "EMNIFY_SIMULATOR_FAULTS", default_value = "", value_parser = parse_faults)]
    pub faults: crate::simulator::faults::FaultConfig,

    /// Also act as emnify's Data Streamer: push every event to this URL (the exporter's webhook).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_URL", value_name = "URL")]
    pub push_url: Option<String>,

    /// Events per push (1 sends a bare object).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_BATCH_SIZE", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub push_batch_size: u64,

    /// A static header sent with every push, as "Name: value" (repeatable).
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_HEADER", value_name = "NAME: VALUE")]
    pub push_header: Vec<String>,

    /// Chance that an accepted batch is pushed once more anyway.
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_DUPLICATES", default_value_t = 0.0)]
    pub push_duplicates: f64,

    /// The data stream goes to Error after this many failed pushes in a row, as emnify's does, and
    /// pushes nothing until restarted (POST /api/v2/data_stream/{id}/restart). 0: it retries for ever.
    #[arg(long, env = "EMNIFY_SIMULATOR_PUSH_ERROR_AFTER", default_value_t = 0, value_name = "N")]
    pub push_error_after: u32,

    /// Run the simulator's clock this far from the host's, e.g. `-15m` or `1h` (its event times, `q`
    /// filters, JWT lifetimes and Date headers follow it), to try a client on a host with a wrong clock.
    #[arg(long, env = "EMNIFY_SIMULATOR_CLOCK_OFFSET", default_value = "0", value_name = "[-]DURATION", value_parser = parse_signed_duration, allow_hyphen_values = true)]
    pub clock_offset: i64,

    /// Enforce emnify's documented rate limits (event list 10/s with bursts of 5, 2,000 requests and 100
    /// logins per 5 minutes), answering 429 without Retry-After beyond them.
    #[arg(long, env = "EMNIFY_SIMULATOR_ENFORCE_LIMITS", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub enforce_limits: bool,

    /// Share of the generated events that arrive late, stamped up to --late-max-age in the past.
    #[arg(long, env = "EMNIFY_SIMULATOR_LATE_SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub late_share: f64,

    /// How late the late events are, at most.
    #[arg(long, env = "EMNIFY_SIMULATOR_LATE_MAX_AGE", default_value = "1m", value_parser = parse_positive_duration)]
    pub late_max_age: Duration,

    /// Give out ids that grow with arrival, as a database sequence would (random by default: emnify
    /// does not say whether its ids grow).
    #[arg(long, env = "EMNIFY_SIMULATOR_ASCENDING_IDS", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub ascending_ids: bool,

    /// With --ascending-ids, the share of ids that step back, up to about 100 events below the last
    /// (ids that grow with arrival, but not strictly).
    #[arg(long, env = "EMNIFY_SIMULATOR_ID_STEP_BACK_SHARE", default_value_t = 0.0, value_parser = parse_share)]
    pub id_step_back_share: f64,

    /// Ignore the event list's `sort` parameter silently (answer highest ids first whatever is asked).
    #[arg(long, env = "EMNIFY_SIMULATOR_IGNORE_SORT", action = clap::ArgAction::SetTrue, value_parser = boolish())]
    pub ignore_sort: bool,

    /// Answer each event page after a delay drawn from this range, e.g. `2s-5s` (a slow API).
    #[arg(long, env = "EMNIFY_SIMULATOR_PAGE_LATENCY", value_name = "MIN[-MAX]", value_parser = parse_latency_range)]
    pub page_latency: Option<(Duration, Duration)>,

    /// Lifetime of the JWTs it issues.
    #[arg(long, env = "EMNIFY_SIMULATOR_JWT_LIFETIME", default_value = "240m", value_parser = parse_positive_duration)]
    pub jwt_lifetime: Duration,
}

impl SimulateArgs {
    /// The simulator's own settings: it knows nothing of the command line.
    pub fn settings(&self) -> StandaloneSettings {
        let push_headers = self
            .push_header
            .iter()
            .filter_map(|h| h.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        StandaloneSettings {
            listen: self.listen,
            seed: self.seed,
            application_token: self.token.clone(),
            events_per_second: self.events_per_second,
            faults: self.faults.clone(),
            push_url: self.push_url.clone(),
            push_batch_size: usize::try_from(self.push_batch_size).unwrap_or(usize::MAX),
            push_headers,
            push_duplicates: self.push_duplicates,
            push_error_after: (self.push_error_after > 0).then_some(self.push_error_after),
            jwt_lifetime: self.jwt_lifetime,
            clock_offset_millis: self.clock_offset,
            enforce_limits: self.enforce_limits,
            late_share: self.late_share,
            late_max_age: self.late_max_age,
            ascending_ids: self.ascending_ids,
            id_step_back_share: self.id_step_back_share,
            ignore_sort: self.ignore_sort,
            page_latency: self.page_latency,
        }
    }
}
