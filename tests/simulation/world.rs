//! The exporter's counting core in one simulated process, driven one [`Action`] at a time: the poll planner,
//! the tally, emnify's clock estimate, a Data Streamer pushing into the same tally, and crashes that
//! restart everything from the state file. [`crate::core`] runs whole histories of it.

use std::collections::BTreeMap;
use std::sync::Arc;

use emnify_exporter::emnify::clock::ClockEstimate;
use emnify_exporter::emnify::{decode_event_list, decode_event_object_or_list};
use emnify_exporter::metrics::Metrics;
use emnify_exporter::poller::plan::{Headers, PageSeen, Plan, PlanSettings, Step};
use emnify_exporter::state::StateStore;
use emnify_exporter::tally::{checkpoint, lock, use_state, FirstSeen, Origin, SharedTally, Tally, TallySettings};

use crate::core::{Action, CrashPoint, Drive, Mode};
use crate::emnify::{Answer, Emnify};
use crate::seed::{Params, Seed};
use crate::streamer::DataStreamer;
use crate::truth::{parse_exposition, PushFate};

/// What a history cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    pub requests: u64,
    pub events: u64,
    pub polls: u64,
    pub deliveries: u64,
    pub crashes: u64,
}

/// How a poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEnd {
    Done,
    Failed,
    Crashed,
}

const API_URL: &str = "https://cdn.emnify.net";
const COUNTERS: [&str; 3] = ["emnify_events_total", "emnify_generic_events_total", "emnify_alert_events_total"];

/// The simulated world: emnify, the Data Streamer, and the exporter's process (which a crash replaces).
pub struct World {
    pub params: Params,
    pub drive: Drive,
    pub emnify: Emnify,
    pub streamer: Option<DataStreamer>,
    /// Simulated time (emnify's true clock, Unix ms); the monotonic clock reads the same.
    pub t: i64,
    /// The monotonic clock's origin: simulated time `t` is `mono_origin + (t - params.start_ms)`.
    mono_origin: std::time::Instant,
    pub cost: Cost,
    // ---- the process ----
    clock: ClockEstimate,
    pub metrics: Arc<Metrics>,
    pub tally: SharedTally,
    plan: Plan,
    // ---- what the driver knows about it ----
    state_dir: Option<tempfile::TempDir>,
    /// The start of counting as the first poll fixed it (Unix ms).
    pub floor_ms: Option<i64>,
    /// What the tally has read completely by polls (its `polled_until`, Unix ms), in memory and as saved.
    polled_until: Option<i64>,
    polled_until_saved: Option<i64>,
    /// When the last checkpoint was saved.
    saved_at: i64,
    /// The end of the last complete poll window (Unix s).
    pub last_until: Option<i64>,
    /// The furthest any window reached (Unix seconds).
    pub max_until: Option<i64>,
    /// Per event id, what acknowledged deliveries did (see [`PushFate`]).
    pub pushes: BTreeMap<i64, PushFate>,
    /// Violations found on the way (counters going down across a restart).
    pub violations: Vec<String>,
    /// Request times of the first poll (for the regression cases).
    pub first_poll_requests: Vec<i64>,
    /// How often each event id was counted (as the tally said: first seen), by whom (`true`: a push).
    pub counted: BTreeMap<i64, Vec<(i64, bool)>>,
    /// `Date` readings before 2020 (1970 and such), and the largest clock offset the process ever showed.
    pub epoch_readings: u64,
    /// `SIM_TRACE` set: every request and its answer on stderr.
    trace: bool,
    pub max_offset_ms: i64,
}

impl World {
    pub fn new(seed: u64, params: Params, drive: Drive) -> World {
        let emnify = Emnify::new(Seed(seed), params.clone());
        let streamer = (drive.mode != Mode::Poll).then(|| DataStreamer::new(Seed(seed), params.clone()));
        let state_dir = (drive.max_crashes > 0).then(|| {
            let shm = std::path::Path::new("/dev/shm");
            let dir = if shm.is_dir() { tempfile::tempdir_in(shm) } else { tempfile::tempdir() };
            dir.expect("a temporary directory")
        });
        let metrics = Arc::new(Metrics::new());
        let tally = Tally::new(metrics.clone(), settings(&drive)).shared();
        let t = params.start_ms;
        let world = World {
            emnify,
            streamer,
            t,
            mono_origin: std::time::Instant::now(),
            cost: Cost::default(),
            clock: ClockEstimate::default(),
            metrics,
            tally,
            plan: Plan::new(plan_settings(&drive)),
            state_dir,
            floor_ms: None,
            polled_until: None,
            polled_until_saved: None,
            saved_at: i64::MIN,
            last_until: None,
            max_until: None,
            pushes: BTreeMap::new(),
            violations: Vec::new(),
            first_poll_requests: Vec::new(),
            counted: BTreeMap::new(),
            epoch_readings: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            max_offset_ms: 0,
            params,
            drive,
        };
        if let Some(store) = world.store() {
            use_state(&world.tally, store).expect("a fresh state file");
        }
        world
    }

    fn store(&self) -> Option<StateStore> {
        self.state_dir.as_ref().map(|d| StateStore::new(d.path().join("state.json"), API_URL))
    }

    /// Simulated time as an `Instant`, for the tally's pacing (checkpoints, log lines).
    fn mono(&self) -> std::time::Instant {
        let since = u64::try_from(self.t - self.params.start_ms).unwrap_or(0);
        self.mono_origin + std::time::Duration::from_millis(since)
    }

    fn host_ms(&self, t: i64) -> i64 {
        t + self.drive.host_skew_ms
    }

    fn observe(&mut self, date: Option<i64>, at: i64) {
        if let Some(date) = date {
            self.epoch_readings += u64::from(date < emnify_exporter::emnify::clock::PLAUSIBLE_FROM);
            self.clock.observe(date, at, self.host_ms(at));
            let offset = self.clock.offset_millis().unwrap_or(0).abs();
            self.max_offset_ms = self.max_offset_ms.max(offset);
        }
    }

    /// emnify's time as the process knows it (logging in first when no `Date` was usable yet, as the client
    /// does); the host's clock when still unknown.
    fn emnify_now(&mut self, log_in: bool) -> i64 {
        if log_in && self.clock.now_millis(self.t).is_none() {
            let date = self.emnify.log_in(self.t);
            self.observe(date, self.t);
        }
        self.clock.now_millis(self.t).unwrap_or_else(|| self.host_ms(self.t))
    }

    /// Checkpoints (saving the state when there is a state file).
    pub fn checkpoint(&mut self) -> bool {
        let saved = checkpoint(&self.tally);
        if saved {
            self.polled_until_saved = self.polled_until;
            self.saved_at = self.t;
        }
        saved
    }

    /// Hands the streamer what arrives at emnify until `horizon` (it sends nothing before its arrival);
    /// returns when the streamer next wants to send.
    pub fn feed_until(&mut self, horizon: i64) -> Option<i64> {
        let streamer = self.streamer.as_mut()?;
        self.emnify.advance_to(horizon);
        streamer.feed(self.emnify.events());
        streamer.next_due_ms()
    }

    /// Performs one action of the history.
    pub fn apply(&mut self, action: &Action) {
        match *action {
            Action::Poll { at, crash } => {
                self.t = self.t.max(at);
                self.poll(self.drive.step_ms, crash);
            }
            Action::Push { at, crash } => {
                self.t = self.t.max(at);
                self.push(true, crash);
            }
        }
    }

    /// One poll at the current time, each request taking `step_ms`; crashes at `crash` if given.
    pub fn poll(&mut self, step_ms: i64, crash: Option<CrashPoint>) -> PollEnd {
        self.cost.polls += 1;
        let now = self.emnify_now(true);
        let (floor, cursor) = lock(&self.tally).poll_start(now, self.t, self.clock.confirmed());
        let floor = floor * 1000;
        // The start of counting can move back (a clock stepped back after a wrong first Date).
        self.floor_ms = Some(self.floor_ms.map_or(floor, |f| f.min(floor)));
        if self.trace {
            eprintln!("poll at {}: emnify now {now}, floor {floor}, cursor {cursor:?}", self.t);
        }
        self.plan.set_clock_confirmed(self.clock.confirmed());
        let mut step = self.plan.start((now + 999).div_euclid(1000), floor.div_euclid(1000), cursor);
        let mut walk_ids = std::collections::HashSet::new();
        let mut previous: Option<Vec<u64>> = None;
        let mut requests = 0u32;
        let first = self.cost.polls == 1;
        loop {
            let (query, counting) = match step {
                Step::Fetch(q) => (q, false),
                Step::Count(q) => (q, true),
                Step::Done { until, keep_from } => {
                    if self.trace {
                        eprintln!(
                            "  done: until {until}, keep from {keep_from}, clock confirmed {}",
                            self.clock.confirmed()
                        );
                    }
                    let confirmed_now = self.clock.confirmed().then(|| self.clock.now_millis(self.t)).flatten();
                    lock(&self.tally).window_done(until, keep_from * 1000, confirmed_now);
                    self.polled_until = self.polled_until.max(Some(keep_from * 1000));
                    self.last_until = Some(until);
                    self.max_until = self.max_until.max(Some(until));
                    if crash == Some(CrashPoint::BeforeCheckpoint) {
                        self.crash();
                        return PollEnd::Crashed;
                    }
                    if self.state_dir.is_some() {
                        self.checkpoint();
                    }
                    return PollEnd::Done;
                }
            };
            if crash == Some(CrashPoint::BeforeRequest(requests)) {
                self.crash();
                return PollEnd::Crashed;
            }
            requests += 1;
            self.cost.requests += 1;
            self.t += step_ms;
            if first {
                self.first_poll_requests.push(self.t);
            }
            let answer = self.emnify.answer(&query, self.t);
            // Whatever this page counts was reached, even if the poll fails before its window is done.
            self.max_until = self.max_until.max(Some(query.until));
            self.observe(answer.date_millis(), self.t);
            let page = match answer {
                Answer::Page { page, .. } => page,
                Answer::Failure { status, .. } => {
                    if status == 401 {
                        let date = self.emnify.log_in(self.t);
                        self.observe(date, self.t);
                    }
                    self.plan.abandon();
                    return PollEnd::Failed;
                }
            };
            let Ok(events) = decode_event_list(&page.body) else {
                self.plan.abandon();
                return PollEnd::Failed;
            };
            let ids: Vec<u64> = events.iter().filter_map(|e| e.as_ref().ok().map(|e| e.id)).collect();
            let len = events.len() as u32;
            let origin = Origin::Poll { from_millis: query.from * 1000, until_millis: query.until * 1000 + 999 };
            let mut first_seen = FirstSeen::default();
            let counts = lock(&self.tally).ingest_noting(events, origin, Some(&mut first_seen), self.mono());
            if self.trace {
                eprintln!("  counts {counts:?}");
            }
            for id in &first_seen.ids {
                self.counted.entry(*id as i64).or_default().push((self.t, false));
            }
            if self.trace {
                eprintln!(
                    "  {} {query:?} at {}: {} records {:?}, count {:?}, counted {:?}",
                    if counting { "count" } else { "page" },
                    self.t,
                    len,
                    (ids.first(), ids.last()),
                    page.total_count,
                    first_seen.ids
                );
            }
            // With a state file, a long poll saves as it goes (`save_every`): here after some pages.
            if self.state_dir.is_some() && requests % self.drive.save_every_requests.max(1) == 0 {
                self.checkpoint();
            }
            let seen = PageSeen {
                len,
                new_in_walk: ids.iter().filter(|id| walk_ids.insert(**id)).count() as u64,
                new_to_polling: first_seen.new_to_polling(),
                descending: match (ids.first(), ids.last()) {
                    (Some(a), Some(b)) if a != b => Some(a > b),
                    _ => None,
                },
                repeated: previous.as_ref() == Some(&ids),
            };
            previous = Some(ids);
            step = if counting {
                self.plan.count(page.total_count, seen.new_to_polling)
            } else {
                self.plan.page(
                    Headers {
                        total_count: page.total_count,
                        total_pages: page.total_pages,
                        current_page: page.current_page,
                    },
                    seen,
                )
            };
        }
    }

    /// Takes the Data Streamer's next delivery due now, if any: counts it into the tally, checkpoints (a push
    /// is saved before it is acknowledged), acknowledges it. `feed`: hand the streamer what arrived first.
    pub fn push(&mut self, feed: bool, crash: Option<CrashPoint>) -> bool {
        if feed {
            self.feed_until(self.t);
        }
        let Some(streamer) = self.streamer.as_mut() else { return false };
        let Some(delivery) = streamer.next_delivery(self.t) else { return false };
        self.cost.deliveries += 1;
        let arrival = self.emnify_now(false);
        let events = decode_event_object_or_list(&delivery.body).expect("the streamer sends JSON");
        let mut first_seen = FirstSeen::default();
        lock(&self.tally).ingest_noting(
            events,
            Origin::Push { arrival_millis: arrival },
            Some(&mut first_seen),
            self.mono(),
        );
        for id in &first_seen.ids {
            self.counted.entry(*id as i64).or_default().push((self.t, true));
        }
        if self.trace {
            eprintln!("push at {}: arrival {arrival}, ids {:?}, counted {:?}", self.t, delivery.ids, first_seen.ids);
        }
        if crash.is_some() {
            // Counted, not saved, not acknowledged: the streamer sends it again after its answer timeout.
            self.crash();
            return true;
        }
        if self.state_dir.is_some() && !self.checkpoint() {
            return true;
        }
        let polled_until = self.polled_until;
        for id in &delivery.ids {
            let stamp = self.emnify.event(*id).map_or(i64::MIN, |e| e.timestamp_ms);
            let fate = if polled_until.is_none_or(|p| stamp >= p) { PushFate::Counts } else { PushFate::PolledAlready };
            let entry = self.pushes.entry(*id).or_insert(fate);
            *entry = (*entry).max(fate);
        }
        if let Some(streamer) = self.streamer.as_mut() {
            streamer.acknowledge(delivery.batch_id, true);
        }
        true
    }

    /// The published counters, by series (name and labels).
    pub fn published(&self) -> BTreeMap<String, f64> {
        let text = String::from_utf8(self.metrics.encode()).expect("UTF-8 exposition");
        let samples = parse_exposition(&text).expect("a valid exposition");
        samples
            .into_iter()
            .filter(|s| COUNTERS.contains(&s.name.as_str()))
            .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
            .collect()
    }

    /// The process dies (what it did not save is lost) and starts again from the state file, after a
    /// downtime; counters must not go down.
    pub fn crash(&mut self) {
        self.cost.crashes += 1;
        let before = self.published();
        let metrics = Arc::new(Metrics::new());
        let tally = Tally::new(metrics.clone(), settings(&self.drive)).shared();
        self.metrics = metrics;
        self.tally = tally;
        self.plan = Plan::new(plan_settings(&self.drive));
        self.counted.retain(|_, times| {
            times.retain(|(at, _)| *at <= self.saved_at);
            !times.is_empty()
        });
        self.clock = ClockEstimate::default();
        self.polled_until = self.polled_until_saved;
        self.t += self.drive.downtime_ms;
        let store = self.store().expect("crashes only with a state file");
        if let Err(e) = use_state(&self.tally, store) {
            self.violations.push(format!("restart at {}: the state file cannot be used: {e}", self.t));
            return;
        }
        // Counting starts where the saved state says, the counters being those saved with it: a start
        // fixed by a run that died before saving it is forgotten with what that run counted.
        self.floor_ms = lock(&self.tally).snapshot("").floor_millis;
        self.checkpoint();
        let after = self.published();
        for (series, value) in &before {
            let now = after.get(series).copied().unwrap_or(0.0);
            if now < *value {
                self.violations.push(format!("restart at {}: {series} went down from {value} to {now}", self.t));
            }
        }
    }
}

fn settings(drive: &Drive) -> TallySettings {
    TallySettings {
        lookback: std::time::Duration::from_millis(drive.lookback_ms as u64),
        remember_pushed: std::time::Duration::from_millis(drive.remember_pushed_ms as u64),
        polls: drive.mode != Mode::Push,
        ..TallySettings::default()
    }
}

fn plan_settings(drive: &Drive) -> PlanSettings {
    PlanSettings { page_size: 1000, overlap_secs: drive.overlap_secs, max_pages: 100_000, newest_first: false }
}
