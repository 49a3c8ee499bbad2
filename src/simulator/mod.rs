//! A stand-alone emnify API simulator for `--demo`, `emnify-exporter simulate` and the tests.
//!
//! It speaks emnify's documented API over real HTTP (see [`http`]), produces a
//! deterministic, realistic event stream for a seed, and keeps the ground
//! truth: how many events it produced per label set, so tests can compare the
//! exporter's counters with it exactly. Nothing in the exporter's own path
//! calls into this module.

mod background;
pub mod data_stream;
pub mod events;
pub mod faults;
mod http;
pub mod limits;
mod list;
mod reply;
mod state;
mod stream_api;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::rng::SplitMix64;
use crate::timefmt::now_millis;
use events::{render_unreadable, ORGANISATIONS};
use faults::{FaultConfig, FaultSchedule};
use state::{PagingInjection, State, StoredEvent};

pub use state::{Stats, Truth, TruthKey};

/// The application token the demo's simulator accepts (not a secret: it opens nothing but the simulator).
pub const DEMO_APPLICATION_TOKEN: &str = "demo-application-token";

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub seed: u64,
    /// The application token it accepts at `/api/v1/authenticate`.
    pub application_token: String,
    /// Lifetime of the JWTs it issues (emnify's: 240 minutes).
    pub jwt_lifetime: Duration,
    /// `per_page` is clamped to this.
    pub max_per_page: u32,
    /// `per_page` when absent or below 1.
    pub default_per_page: u32,
    /// Leave out the paging headers (`X-Total-Pages`, `Link`, ...), which clients must tolerate.
    pub omit_paging_headers: bool,
    /// Faults to inject from the start (see [`faults`]); changeable later with [`Simulator::set_faults`].
    pub faults: FaultConfig,
    /// Give the third organisation [`events::HOSTILE_ORGANISATION`]'s name, to test label escaping.
    pub hostile_names: bool,
    /// The simulator's clock minus the host's (ms): its event times, `q` filters, JWT lifetimes and
    /// `Date` headers follow it, as emnify's would on a host whose clock is wrong.
    pub clock_offset_millis: i64,
    /// Enforce emnify's documented rate limits (see [`limits`]): 429 without `Retry-After` beyond them.
    pub enforce_limits: bool,
    /// Share of the generator's events that reach the simulator late, stamped up to `late_max_age`
    /// in the past (uniformly).
    pub late_share: f64,
    pub late_max_age: Duration,
    /// Ids grow with arrival, as a database sequence's would (emnify does not say whether its do);
    /// random otherwise.
    pub ascending_ids: bool,
    /// With ascending ids, the share of ids that step back (up to about 100 events' worth of ids below
    /// the last one given out): ids that grow with arrival, but not strictly, as parallel writers' would.
    pub id_step_back_share: f64,
    /// Ignore the `sort` parameter of the event list silently (answer highest ids first, whatever was
    /// asked): an API that does not honour the documented `sort`.
    pub ignore_sort: bool,
    /// Each event page is answered after a delay drawn uniformly from this range: a slow API.
    pub page_latency: Option<(Duration, Duration)>,
}

impl SimulatorConfig {
    /// The settings `--demo` uses.
    pub fn demo() -> Self {
        SimulatorConfig {
            seed: 1,
            application_token: DEMO_APPLICATION_TOKEN.into(),
            jwt_lifetime: Duration::from_secs(240 * 60),
            max_per_page: 1000,
            default_per_page: 100,
            omit_paging_headers: false,
            faults: FaultConfig::none(),
            hostile_names: false,
            clock_offset_millis: 0,
            enforce_limits: false,
            late_share: 0.0,
            late_max_age: Duration::from_secs(60),
            ascending_ids: false,
            id_step_back_share: 0.0,
            ignore_sort: false,
            page_latency: None,
        }
    }
}

/// How the simulator acts as emnify's Data Streamer (a `RestAPI` event stream).
#[derive(Debug, Clone)]
pub struct StreamerConfig {
    /// Where to push, e.g. `http://127.0.0.1:9853/webhook/events`.
    pub url: String,
    /// Events per push; 1 sends a bare object, more an array (emnify: 1 to 10,000).
    pub batch_size: usize,
    /// Static headers sent with every push (how the Data Streamer authenticates).
    pub headers: Vec<(String, String)>,
    /// Chance that an accepted batch is sent once more anyway (emnify may deliver twice).
    pub duplicate_chance: f64,
    /// Pause when there is nothing (or less than a batch) to send.
    pub idle: Duration,
}

/// The simulator; clones share one state.
#[derive(Clone)]
pub struct Simulator {
    config: Arc<SimulatorConfig>,
    state: Arc<Mutex<State>>,
    /// The Data Streamer's configurations, apart from the event state: a stream's state changes on
    /// every delivery, which must not wait for a page being served.
    data_streams: Arc<Mutex<data_stream::DataStreams>>,
}

impl Simulator {
    pub fn new(config: SimulatorConfig) -> Self {
        let state = State {
            rng: SplitMix64::new(config.seed),
            events: Vec::new(),
            ids: HashSet::new(),
            truth: Truth::default(),
            tokens: HashMap::new(),
            stats: Stats::default(),
            injections: VecDeque::new(),
            faults: FaultSchedule::new(config.faults.clone(), config.seed),
            revoked: false,
            request_log: VecDeque::new(),
            login_log: VecDeque::new(),
            hostile_names: config.hostile_names,
            rate_override: None,
            added_event_types: Vec::new(),
            list_cache: None,
            limits: config.enforce_limits.then(limits::Limits::default),
            ascending_ids: config.ascending_ids,
            id_step_back_share: config.id_step_back_share,
            last_id: 1_000_000_000,
            event_requests: 0,
            total_count_offset: 0,
        };
        Simulator { config: Arc::new(config), state: Arc::new(Mutex::new(state)), data_streams: Arc::default() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn application_token(&self) -> String {
        self.config.application_token.clone()
    }

    /// The simulator's time now (Unix ms): the host's, moved by [`SimulatorConfig::clock_offset_millis`].
    pub fn now_millis(&self) -> i64 {
        now_millis() + self.config.clock_offset_millis
    }

    /// Produces `count` events of the everyday mix, timestamped now.
    pub fn generate(&self, count: usize) {
        self.generate_aged(count, Duration::ZERO);
    }

    /// Makes `X-Total-Count` report `offset` more (or fewer) events than the list holds, pages unchanged.
    pub fn set_total_count_offset(&self, offset: i64) {
        self.lock().total_count_offset = offset;
    }

    /// Produces `count` events timestamped `age` ago: events that reach emnify late.
    pub fn generate_aged(&self, count: usize, age: Duration) {
        let time = self.now_millis() - crate::timefmt::duration_millis(age);
        let mut state = self.lock();
        for _ in 0..count {
            state.produce(time, None);
        }
    }

    /// Adds an event type, as emnify does from time to time: `GET /api/v1/event/type` lists it from now on.
    pub fn add_event_type(&self, id: u32, name: &str) {
        self.lock().added_event_types.push((id, name.to_string()));
    }

    /// Event types added since start.
    pub(crate) fn added_event_types(&self) -> Vec<(u32, String)> {
        self.lock().added_event_types.clone()
    }

    /// Produces `count` events of `event_type` (any id, known to the catalogue or not), timestamped now.
    pub fn generate_of_type(&self, count: usize, event_type: u32) {
        let time = self.now_millis();
        let mut state = self.lock();
        for _ in 0..count {
            state.produce_typed(time, None, Some(event_type));
        }
    }

    /// Produces `count` events at the simulator's now whose payload says `timestamp` instead (any JSON
    /// value: `"1970-01-01T00:00:00Z"`, `"garbage"`, `null`; `None` leaves the field out). emnify's
    /// filters still place them by their real time, as they would an event whose payload is wrong.
    pub fn generate_with_payload_timestamp(&self, count: usize, timestamp: Option<serde_json::Value>) {
        let time = self.now_millis();
        let mut state = self.lock();
        let start = state.events.len();
        for _ in 0..count {
            state.produce(time, None);
        }
        for event in &mut state.events[start..] {
            let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(&event.json) else {
                continue;
            };
            match &timestamp {
                Some(value) => fields.insert("timestamp".into(), value.clone()),
                None => fields.remove("timestamp"),
            };
            event.json = serde_json::Value::Object(fields).to_string().into();
        }
    }

    /// Produces a burst of `count` Generic disconnects for organisation `org_index` (0..3).
    pub fn generic_burst(&self, org_index: usize, count: usize) {
        let time = self.now_millis();
        let mut state = self.lock();
        for _ in 0..count {
            state.produce(time, Some(org_index % ORGANISATIONS.len()));
        }
    }

    /// Adds `count` well-formed records that are not readable events.
    pub fn insert_unreadable(&self, count: usize) {
        let time = self.now_millis();
        let mut state = self.lock();
        for _ in 0..count {
            let id = state.fresh_id();
            let kind = state.rng.next_u64();
            state.events.push(StoredEvent {
                id,
                timestamp_millis: time,
                event_type: 1,
                source: 0,
                severity: 0,
                alert: false,
                endpoint: None,
                json: render_unreadable(kind, id).into(),
            });
            state.truth.unreadable += 1;
        }
    }

    /// When page `page` of the event list is next served, add `count` events timestamped `age` ago.
    pub fn inject_while_paging(&self, page: u32, count: usize, age: Duration) {
        self.lock().injections.push_back(PagingInjection { page, count, age, expire: 0 });
    }

    /// When page `page` of the event list has been served, the `count` events with the lowest ids expire
    /// (emnify's 30-day retention, reached during a walk): the pages after it shift towards the start.
    pub fn expire_while_paging(&self, page: u32, count: usize) {
        self.lock().injections.push_back(PagingInjection { page, count: 0, age: Duration::ZERO, expire: count });
    }

    /// Invalidates every issued JWT, as if they had expired; the next request gets 401.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    /// Ids of the events of one device (what `/api/v1/endpoint/{id}/event` serves), oldest first.
    /// Every produced event as JSON arrays of at most `size` events: Data Streamer bodies.
    pub fn event_json_batches(&self, size: usize) -> Vec<String> {
        let state = self.lock();
        state
            .events
            .chunks(size.max(1))
            .map(|chunk| format!("[{}]", chunk.iter().map(|e| &*e.json).collect::<Vec<_>>().join(",")))
            .collect()
    }

    /// Ids of every event produced, in the order produced.
    pub fn event_ids(&self) -> Vec<u64> {
        self.lock().events.iter().map(|e| e.id).collect()
    }

    pub fn endpoint_event_ids(&self, endpoint: u64) -> Vec<u64> {
        let state = self.lock();
        state.events.iter().filter(|e| e.endpoint == Some(endpoint)).map(|e| e.id).collect()
    }

    pub fn truth(&self) -> Truth {
        self.lock().truth.clone()
    }

    pub fn stats(&self) -> Stats {
        let state = self.lock();
        Stats { faults_injected: state.faults.injected(), ..state.stats.clone() }
    }

    /// Sets the background generator's rate (events per second); 0 pauses it, bursts included.
    pub fn set_rate(&self, events_per_second: f64) {
        self.lock().rate_override = Some(events_per_second);
    }

    /// Replaces the fault configuration; the schedule's random stream goes on.
    pub fn set_faults(&self, config: FaultConfig) {
        self.lock().faults.config = config;
    }

    /// Revokes (or restores) the application token: logins get 401 while revoked.
    pub fn set_revoked(&self, revoked: bool) {
        let mut state = self.lock();
        state.revoked = revoked;
        if revoked {
            state.tokens.clear();
        }
    }

    /// Unix ms of the API requests (logins included) of the last ten minutes, and of the logins alone.
    pub fn request_times(&self) -> (Vec<i64>, Vec<i64>) {
        let state = self.lock();
        (state.request_log.iter().copied().collect(), state.login_log.iter().copied().collect())
    }
}

/// `emnify-exporter simulate`: the simulator alone, as its command line asks for it.
#[derive(Debug, Clone)]
pub struct StandaloneSettings {
    pub listen: SocketAddr,
    pub seed: u64,
    pub application_token: String,
    pub events_per_second: f64,
    pub faults: FaultConfig,
    pub jwt_lifetime: Duration,
    /// The simulator's clock minus the host's, ms (see [`SimulatorConfig::clock_offset_millis`]).
    pub clock_offset_millis: i64,
    /// Also act as emnify's Data Streamer, pushing every event here.
    pub push_url: Option<String>,
    pub push_batch_size: usize,
    /// Static headers sent with every push.
    pub push_headers: Vec<(String, String)>,
    /// Chance that an accepted batch is pushed once more anyway.
    pub push_duplicates: f64,
    /// Failed pushes in a row after which the stream goes to Error (see [`data_stream`]).
    pub push_error_after: Option<u32>,
    /// See [`SimulatorConfig::enforce_limits`].
    pub enforce_limits: bool,
    /// See [`SimulatorConfig::late_share`].
    pub late_share: f64,
    pub late_max_age: Duration,
    pub ascending_ids: bool,
    pub id_step_back_share: f64,
    pub ignore_sort: bool,
    pub page_latency: Option<(Duration, Duration)>,
}

/// Runs the simulator alone, producing events until stopped.
pub async fn run_standalone(settings: StandaloneSettings, shutdown: CancellationToken) -> std::process::ExitCode {
    // For the start-up line: the default token is a documented constant, safe to print; one given by
    // the operator is not repeated.
    let token = if settings.application_token == DEMO_APPLICATION_TOKEN { DEMO_APPLICATION_TOKEN } else { "(--token)" };
    let sim = Simulator::new(SimulatorConfig {
        seed: settings.seed,
        application_token: settings.application_token,
        jwt_lifetime: settings.jwt_lifetime,
        faults: settings.faults,
        clock_offset_millis: settings.clock_offset_millis,
        enforce_limits: settings.enforce_limits,
        late_share: settings.late_share,
        late_max_age: settings.late_max_age,
        ascending_ids: settings.ascending_ids,
        id_step_back_share: settings.id_step_back_share,
        ignore_sort: settings.ignore_sort,
        page_latency: settings.page_latency,
        ..SimulatorConfig::demo()
    });
    let listener = match TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(err) => {
            // As the exporter's own: a start-up problem of the settings or the host, exit 2, with a hint.
            let hint = match err.kind() {
                std::io::ErrorKind::AddrInUse => {
                    " (another process holds the port, perhaps a simulator already running: stop it, or choose \
                     another port with --listen)"
                }
                _ => "",
            };
            eprintln!("error: --listen {}: cannot listen: {err}{hint}", settings.listen);
            return std::process::ExitCode::from(2);
        }
    };
    let address = listener.local_addr().map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
    let rate = settings.events_per_second;
    // What a client needs to reach it, so that the exporter's real (non-demo) path can be tried
    // against it by copying the line.
    tracing::info!(
        address = %address,
        token,
        events_per_second = rate,
        try_it = %format!("EMNIFY_APPLICATION_TOKEN={token} emnify-exporter --emnify.api-url http://{address}"),
        "emnify API simulator listening"
    );
    tokio::spawn(sim.clone().run_generator(rate, Duration::from_secs(45), shutdown.clone()));
    sim.set_stream_error_after(settings.push_error_after);
    if let Some(url) = settings.push_url {
        let streamer = StreamerConfig {
            url,
            batch_size: settings.push_batch_size,
            headers: settings.push_headers,
            duplicate_chance: settings.push_duplicates,
            idle: Duration::from_millis(200),
        };
        tokio::spawn(sim.clone().run_streamer(streamer, shutdown.clone()));
    }
    sim.serve(listener, shutdown).await;
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_produces_the_same_stream() {
        let a = Simulator::new(SimulatorConfig { seed: 77, ..SimulatorConfig::demo() });
        let b = Simulator::new(SimulatorConfig { seed: 77, ..SimulatorConfig::demo() });
        let c = Simulator::new(SimulatorConfig { seed: 78, ..SimulatorConfig::demo() });
        for sim in [&a, &b, &c] {
            sim.generate(500);
            sim.generic_burst(2, 30);
        }
        assert_eq!(a.event_ids(), b.event_ids());
        assert_eq!(a.truth(), b.truth());
        assert_ne!(a.event_ids(), c.event_ids());
        assert_eq!(a.truth().total(), 530);
    }

    #[test]
    fn the_stream_covers_the_catalogue_and_every_generic_cause() {
        let sim = Simulator::new(SimulatorConfig::demo());
        sim.generate(20_000);
        sim.generic_burst(0, 200);
        let truth = sim.truth();
        let types: std::collections::BTreeSet<u32> = truth.events.keys().map(|k| k.event_type_id).collect();
        assert!(types.len() >= 30, "only {} event types", types.len());
        let organisations: std::collections::BTreeSet<u64> = truth.events.keys().map(|k| k.organisation_id).collect();
        assert_eq!(organisations.len(), ORGANISATIONS.len());
        for cause in crate::catalogue::GENERIC_CAUSES {
            assert!(truth.generic.keys().any(|(c, _)| *c == cause), "no Generic {cause}");
        }
    }
}
