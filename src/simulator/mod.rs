//! A stand-alone emnify API simulator for `--demo`, `emnify-exporter simulate` and the tests.
//!
//! It speaks emnify's documented API over real HTTP (see [`http`]), produces a
//! deterministic, realistic event stream for a seed, and keeps the ground
//! truth: how many events it produced per label set, so tests can compare the
//! exporter's counters with it exactly. Nothing in the exporter's own path
//! calls into this module.

pub mod events;
pub mod faults;
mod http;
pub mod limits;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalogue::{generic_cause, severity_name, source_name, GENERIC_EVENT_TYPE};
use crate::rng::SplitMix64;
use crate::timefmt::now_millis;
use events::{pick_profile, render, render_unreadable, EventSpec, ENDPOINTS_PER_ORGANISATION, ORGANISATIONS};
use faults::{FaultConfig, FaultSchedule};

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
    /// Each event page is answered after a delay drawn uniformly from this range: a slow API.
    pub page_latency: Option<(Duration, Duration)>,
    /// Answer a descending `sort` (`-id`) with 422, as an API that does not take it for events might.
    pub refuse_descending_sort: bool,
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
            page_latency: None,
            refuse_descending_sort: false,
        }
    }
}

/// One event as stored: the fields the API filters and sorts on, and its JSON.
#[derive(Debug, Clone)]
struct StoredEvent {
    id: u64,
    timestamp_millis: i64,
    event_type: u32,
    source: u32,
    severity: u32,
    alert: bool,
    endpoint: Option<u64>,
    json: Arc<str>,
}

/// The labels of one `emnify_events_total` series, as the exporter should name them.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TruthKey {
    pub event_type_id: u32,
    pub event_source: &'static str,
    pub event_severity: &'static str,
    pub organisation_id: u64,
}

/// What the simulator produced, counted the way the exporter should count it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    pub events: BTreeMap<TruthKey, u64>,
    /// Generic events by `(cause, organisation id)`.
    pub generic: BTreeMap<(&'static str, u64), u64>,
    /// Alert-flagged events by `(event type id, organisation id)`.
    pub alerts: BTreeMap<(u32, u64), u64>,
    /// Well-formed but unreadable records served.
    pub unreadable: u64,
}

impl Truth {
    pub fn total(&self) -> u64 {
        self.events.values().sum()
    }
}

/// Requests the simulator answered, for tests that check the client's behaviour.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub logins: u64,
    pub failed_logins: u64,
    pub unauthorized: u64,
    pub event_pages: u64,
    /// Reads of the event-type catalogue (`GET /api/v1/event/type`).
    pub event_type_reads: u64,
    /// Requests to `/api/v1/...`, logins included.
    pub requests: u64,
    pub faults_injected: u64,
    /// Data Streamer pushes answered 2xx, answered otherwise (and sent again), and sent again on purpose.
    pub pushes: u64,
    pub push_failures: u64,
    pub duplicate_pushes: u64,
    /// Requests refused with 429 by the enforced rate limits (not injected faults).
    pub rate_limited: u64,
    /// Most event-list requests being answered at the same time.
    pub event_requests_peak: u64,
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

/// How long request times are kept for rate checks.
const REQUEST_LOG_SPAN_MILLIS: i64 = 10 * 60 * 1000;

/// A test hook: when page `page` of the event list is served, add events (as if they arrived mid-walk).
#[derive(Debug, Clone)]
pub(crate) struct PagingInjection {
    page: u32,
    count: usize,
    age: Duration,
    /// The oldest events (lowest ids) that expire once the page is served, as emnify's retention does.
    expire: usize,
}

struct State {
    rng: SplitMix64,
    events: Vec<StoredEvent>,
    ids: HashSet<u64>,
    truth: Truth,
    tokens: HashMap<String, i64>,
    stats: Stats,
    injections: VecDeque<PagingInjection>,
    faults: FaultSchedule,
    /// The application token is revoked: every login gets 401.
    revoked: bool,
    /// Unix ms of recent API requests (logins included), oldest first.
    request_log: VecDeque<i64>,
    login_log: VecDeque<i64>,
    hostile_names: bool,
    /// Replaces the generator's rate when set (`POST /simulator/rate`); 0 pauses it, bursts included.
    rate_override: Option<f64>,
    /// The last event-list answer (see `list_events` in the `http` submodule).
    list_cache: Option<ListCache>,
    /// Event types added since start (`Simulator::add_event_type`), served by `/api/v1/event/type`.
    added_event_types: Vec<(u32, String)>,
    /// emnify's rate limits, when enforced.
    pub(crate) limits: Option<limits::Limits>,
    ascending_ids: bool,
    /// The last id given out, with ascending ids.
    last_id: u64,
    /// Event-list requests being answered now.
    pub(crate) event_requests: u64,
    /// Added to every `X-Total-Count` (and `X-Total-Pages` follows): a count that lies while the
    /// pages stay what they are.
    pub(crate) total_count_offset: i64,
}

/// A filtered, sorted event list, valid while `events` events exist.
pub(crate) struct ListCache {
    pub(crate) question: String,
    pub(crate) events: usize,
    pub(crate) selected: Arc<Vec<usize>>,
}

/// The simulator; clones share one state.
#[derive(Clone)]
pub struct Simulator {
    config: Arc<SimulatorConfig>,
    state: Arc<Mutex<State>>,
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
            last_id: 1_000_000_000,
            event_requests: 0,
            total_count_offset: 0,
        };
        Simulator { config: Arc::new(config), state: Arc::new(Mutex::new(state)) }
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

    /// Produces `count` events, [`SimulatorConfig::late_share`] of them stamped up to
    /// [`SimulatorConfig::late_max_age`] ago, the rest now.
    fn generate_with_late_share(&self, count: usize) {
        let now = self.now_millis();
        let max_age = crate::timefmt::duration_millis(self.config.late_max_age) as f64;
        let mut state = self.lock();
        for _ in 0..count {
            let late = self.config.late_share > 0.0 && state.rng.chance(self.config.late_share);
            let age = if late { (state.rng.unit() * max_age) as i64 } else { 0 };
            state.produce(now - age, None);
        }
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

    /// Pushes every produced event to `config.url`, batch by batch, until `shutdown` is cancelled.
    ///
    /// A batch answered with anything but 2xx (or not answered) is sent again, as the Data Streamer
    /// does, so the receiver sees retries; with `duplicate_chance` an accepted batch is sent twice.
    pub async fn run_streamer(self, config: StreamerConfig, shutdown: CancellationToken) {
        crate::install_crypto_provider();
        let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(10)).build() else {
            tracing::error!("the simulator's streamer cannot create its HTTP client");
            return;
        };
        let mut next = 0usize;
        let mut rng = SplitMix64::new(self.config.seed ^ 0x57EA);
        loop {
            let batch: Vec<Arc<str>> = {
                let state = self.lock();
                let end = state.events.len().min(next + config.batch_size.max(1));
                state.events[next.min(end)..end].iter().map(|e| e.json.clone()).collect()
            };
            if batch.len() < config.batch_size.max(1) {
                tokio::select! {
                    () = tokio::time::sleep(config.idle) => {}
                    () = shutdown.cancelled() => return,
                }
                if batch.is_empty() {
                    continue;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            let body = if config.batch_size == 1 {
                batch[0].to_string()
            } else {
                format!("[{}]", batch.iter().map(|e| &**e).collect::<Vec<_>>().join(","))
            };
            let mut request = client.post(&config.url).header("content-type", "application/json").body(body);
            for (name, value) in &config.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let accepted = request.send().await.is_ok_and(|r| r.status().is_success());
            if accepted {
                let duplicate = rng.chance(config.duplicate_chance);
                let mut state = self.lock();
                state.stats.pushes += 1;
                if duplicate {
                    state.stats.duplicate_pushes += 1;
                } else {
                    next += batch.len();
                }
            } else {
                self.lock().stats.push_failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(config.idle) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Produces about `events_per_second` events each second, and a Generic burst every `burst_every`.
    pub async fn run_generator(self, events_per_second: f64, burst_every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut since_burst = Duration::ZERO;
        let mut carry = 0.0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let rate = self.lock().rate_override.unwrap_or(events_per_second).max(0.0);
            if rate == 0.0 {
                continue;
            }
            carry += rate;
            let (count, burst_org) = {
                let mut state = self.lock();
                // Vary the per-second count around the rate so graphs look alive.
                let jitter = 0.5 + state.rng.unit();
                let count = (carry * jitter).floor();
                carry = (carry - count).max(0.0);
                (count as usize, state.rng.below(ORGANISATIONS.len() as u64) as usize)
            };
            self.generate_with_late_share(count);
            since_burst += Duration::from_secs(1);
            if !burst_every.is_zero() && since_burst >= burst_every {
                since_burst = Duration::ZERO;
                let size = 20 + self.lock().rng.below(40) as usize;
                self.generic_burst(burst_org, size);
                tracing::debug!(
                    size,
                    organisation = ORGANISATIONS[burst_org].name,
                    "simulated a Generic disconnect burst"
                );
            }
        }
    }
}

impl State {
    fn log(log: &mut VecDeque<i64>) {
        let now = now_millis();
        log.push_back(now);
        while log.front().is_some_and(|t| now - t > REQUEST_LOG_SPAN_MILLIS) {
            log.pop_front();
        }
    }

    pub(crate) fn note_request(&mut self) {
        self.stats.requests += 1;
        Self::log(&mut self.request_log);
    }

    pub(crate) fn note_login(&mut self) {
        self.note_request();
        Self::log(&mut self.login_log);
    }

    fn fresh_id(&mut self) -> u64 {
        if self.ascending_ids {
            self.last_id += 1 + self.rng.below(3);
            self.ids.insert(self.last_id);
            return self.last_id;
        }
        // Ids are 64-bit and random: nothing promises they grow with time.
        loop {
            let id = 1_000_000_000 + self.rng.below(9_000_000_000_000_000);
            if self.ids.insert(id) {
                return id;
            }
        }
    }

    /// Removes the `count` events with the lowest ids, as retention would (the truth keeps them: it
    /// says what was produced; tests of expiry compare ids).
    pub(crate) fn expire_lowest_ids(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        let mut ids: Vec<u64> = self.events.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        if let Some(&cut) = ids.get(count.min(ids.len()).saturating_sub(1)) {
            self.events.retain(|e| e.id > cut);
        }
    }

    /// Produces one event at `time`; `generic_for` forces a Generic event for that organisation.
    pub(crate) fn produce(&mut self, time: i64, generic_for: Option<usize>) {
        self.produce_typed(time, generic_for, None);
    }

    /// [`State::produce`], with the event's type replaced by `event_type` when given (no alert flag).
    fn produce_typed(&mut self, time: i64, generic_for: Option<usize>, event_type: Option<u32>) {
        let id = self.fresh_id();
        let (org_index, (mut profile_type, source, severity, mut alert, device, description)) = match generic_for {
            Some(org) => {
                let description = match self.rng.below(10) {
                    0..=5 => events::GENERIC_THROTTLING,
                    6..=8 => events::GENERIC_QUOTA,
                    _ => events::GENERIC_OTHER,
                };
                (org, (GENERIC_EVENT_TYPE, 1, 1, true, true, description))
            }
            None => (self.rng.below(ORGANISATIONS.len() as u64) as usize, pick_profile(&mut self.rng)),
        };
        if let Some(forced) = event_type {
            (profile_type, alert) = (forced, false);
        }
        let event_type = profile_type;
        let organisation = if self.hostile_names && org_index == 2 {
            &events::HOSTILE_ORGANISATION
        } else {
            &ORGANISATIONS[org_index]
        };
        let endpoint = device.then(|| organisation.id * 1000 + self.rng.below(ENDPOINTS_PER_ORGANISATION));
        let spec = EventSpec {
            id,
            timestamp_millis: time,
            event_type,
            source,
            severity,
            alert,
            description,
            organisation,
            endpoint,
        };
        let (json, rendered_time) = render(&spec, &mut self.rng);
        self.events.push(StoredEvent {
            id,
            timestamp_millis: rendered_time,
            event_type,
            source,
            severity,
            alert,
            endpoint,
            json: json.into(),
        });
        let key = TruthKey {
            event_type_id: event_type,
            event_source: source_name(Some(source)),
            event_severity: severity_name(Some(severity)),
            organisation_id: organisation.id,
        };
        *self.truth.events.entry(key).or_default() += 1;
        if event_type == GENERIC_EVENT_TYPE {
            *self.truth.generic.entry((generic_cause(description), organisation.id)).or_default() += 1;
        }
        if alert {
            *self.truth.alerts.entry((event_type, organisation.id)).or_default() += 1;
        }
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
    /// See [`SimulatorConfig::enforce_limits`].
    pub enforce_limits: bool,
    /// See [`SimulatorConfig::late_share`].
    pub late_share: f64,
    pub late_max_age: Duration,
    pub ascending_ids: bool,
    pub page_latency: Option<(Duration, Duration)>,
}

/// Runs the simulator alone, producing events until stopped.
pub async fn run_standalone(settings: StandaloneSettings, shutdown: CancellationToken) -> std::process::ExitCode {
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
        page_latency: settings.page_latency,
        ..SimulatorConfig::demo()
    });
    let listener = match TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("emnify-exporter simulate: cannot listen on --listen {}: {err}", settings.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let address = listener.local_addr().map_or_else(|_| settings.listen.to_string(), |a| a.to_string());
    let rate = settings.events_per_second;
    tracing::info!(address = %address, events_per_second = rate, "emnify API simulator listening");
    tokio::spawn(sim.clone().run_generator(rate, Duration::from_secs(45), shutdown.clone()));
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
