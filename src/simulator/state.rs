//! The simulator's state behind its lock, and event production: each event stored with the fields the
//! API filters on, and counted into the ground truth the way the exporter should count it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::events::{self, pick_profile, render, EventSpec, ENDPOINTS_PER_ORGANISATION, ORGANISATIONS};
use super::faults::FaultSchedule;
use super::limits;
use crate::catalogue::{generic_cause, severity_name, source_name, GENERIC_EVENT_TYPE};
use crate::rng::SplitMix64;
use crate::timefmt::now_millis;

/// One event as stored: the fields the API filters and sorts on, and its JSON.
#[derive(Debug, Clone)]
pub(super) struct StoredEvent {
    pub(super) id: u64,
    pub(super) timestamp_millis: i64,
    pub(super) event_type: u32,
    pub(super) source: u32,
    pub(super) severity: u32,
    pub(super) alert: bool,
    pub(super) endpoint: Option<u64>,
    pub(super) json: Arc<str>,
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

/// How long request times are kept for rate checks.
pub(super) const REQUEST_LOG_SPAN_MILLIS: i64 = 10 * 60 * 1000;

/// A test hook: when page `page` of the event list is served, add events (as if they arrived mid-walk).
#[derive(Debug, Clone)]
pub(crate) struct PagingInjection {
    pub(super) page: u32,
    pub(super) count: usize,
    pub(super) age: Duration,
    /// The oldest events (lowest ids) that expire once the page is served, as emnify's retention does.
    pub(super) expire: usize,
}

pub(super) struct State {
    pub(super) rng: SplitMix64,
    pub(super) events: Vec<StoredEvent>,
    pub(super) ids: HashSet<u64>,
    pub(super) truth: Truth,
    pub(super) tokens: HashMap<String, i64>,
    pub(super) stats: Stats,
    pub(super) injections: VecDeque<PagingInjection>,
    pub(super) faults: FaultSchedule,
    /// The application token is revoked: every login gets 401.
    pub(super) revoked: bool,
    /// Unix ms of recent API requests (logins included), oldest first.
    pub(super) request_log: VecDeque<i64>,
    pub(super) login_log: VecDeque<i64>,
    pub(super) hostile_names: bool,
    /// Replaces the generator's rate when set (`POST /simulator/rate`); 0 pauses it, bursts included.
    pub(super) rate_override: Option<f64>,
    /// The last event-list answer (see `list_events` in the `list` submodule).
    pub(super) list_cache: Option<ListCache>,
    /// Event types added since start (`Simulator::add_event_type`), served by `/api/v1/event/type`.
    pub(super) added_event_types: Vec<(u32, String)>,
    /// emnify's rate limits, when enforced.
    pub(crate) limits: Option<limits::Limits>,
    pub(super) ascending_ids: bool,
    pub(super) id_step_back_share: f64,
    /// The last id given out, with ascending ids.
    pub(super) last_id: u64,
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

    pub(super) fn fresh_id(&mut self) -> u64 {
        if self.ascending_ids {
            // One that steps back lands up to about 100 events (ids grow by 2 on average) below the last.
            if self.id_step_back_share > 0.0 && self.rng.chance(self.id_step_back_share) {
                let id = self.last_id.saturating_sub(1 + self.rng.below(200));
                if id > 1_000_000_000 && self.ids.insert(id) {
                    return id;
                }
            }
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
    pub(super) fn produce_typed(&mut self, time: i64, generic_for: Option<usize>, event_type: Option<u32>) {
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
