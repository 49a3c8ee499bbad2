//! The watchdog's decisions, sans IO: which Data Streamer streams are the exporter's, what state each
//! is in and since when, and when one in Error is to be restarted. No clock, no requests: the shell
//! (`mod.rs`) passes the time (any monotonic origin) and emnify's list in, and carries restarts out.

use std::collections::BTreeMap;
use std::time::Duration;

/// A stream's state, as `GET /api/v2/data_stream/status` names them (1 to 4), or one it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum StreamState {
    Running,
    Paused,
    Error,
    Pending,
    /// A state id or name emnify has not documented: shown, never acted on.
    Unknown,
}

impl StreamState {
    /// Every state, in the order of the state-set series.
    pub const ALL: [StreamState; 5] =
        [StreamState::Running, StreamState::Paused, StreamState::Error, StreamState::Pending, StreamState::Unknown];

    /// The `state` label value.
    pub fn label(self) -> &'static str {
        match self {
            StreamState::Running => "running",
            StreamState::Paused => "paused",
            StreamState::Error => "error",
            StreamState::Pending => "pending",
            StreamState::Unknown => "unknown",
        }
    }

    /// From emnify's `status`: the id when there is one (ids are what the API documents), else the name.
    fn from_status(id: Option<u64>, description: Option<&str>) -> StreamState {
        match (id, description.map(str::trim).map(str::to_ascii_lowercase).as_deref()) {
            (Some(1), _) | (None, Some("running")) => StreamState::Running,
            (Some(2), _) | (None, Some("paused")) => StreamState::Paused,
            (Some(3), _) | (None, Some("error")) => StreamState::Error,
            (Some(4), _) | (None, Some("pending")) => StreamState::Pending,
            _ => StreamState::Unknown,
        }
    }
}

/// A stream's data: emnify's type 2 is events, 1 usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Events,
    Usage,
    Other,
}

impl StreamKind {
    /// The `type` label value.
    pub fn label(self) -> &'static str {
        match self {
            StreamKind::Events => "events",
            StreamKind::Usage => "usage",
            StreamKind::Other => "other",
        }
    }
}

/// One stream of emnify's list, as far as the watchdog reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamView {
    pub id: u64,
    pub name: String,
    pub kind: StreamKind,
    /// The destination's `credentials.url` (webhook streams only).
    pub url: Option<String>,
    pub state: StreamState,
}

/// Reads `GET /api/v2/data_stream`'s answer leniently: fields may be absent or null, a state or type
/// may be an object (`{id, description}`), a number or a name; an entry without an id is skipped.
pub fn decode_list(body: &[u8]) -> Result<Vec<StreamView>, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let serde_json::Value::Array(entries) = value else { return Err("not a list".into()) };
    Ok(entries.iter().filter_map(decode_stream).collect())
}

fn decode_stream(entry: &serde_json::Value) -> Option<StreamView> {
    let number = |v: &serde_json::Value| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok());
    let id = number(entry.get("id")?)?;
    // An id and a description in an object, or either alone.
    let id_and_name = |field: &str| match entry.get(field) {
        Some(v @ serde_json::Value::Object(_)) => {
            (v.get("id").and_then(number), v.get("description").or_else(|| v.get("name")).and_then(|d| d.as_str()))
        }
        Some(v) => (number(v), v.as_str()),
        None => (None, None),
    };
    let (status_id, status_name) = id_and_name("status");
    let kind = match id_and_name("data_stream_type") {
        (Some(2), _) => StreamKind::Events,
        (Some(1), _) => StreamKind::Usage,
        (None, Some(name)) if name.to_ascii_lowercase().contains("event") => StreamKind::Events,
        (None, Some(name)) if name.to_ascii_lowercase().contains("usage") => StreamKind::Usage,
        _ => StreamKind::Other,
    };
    let url = entry.pointer("/destination/credentials/url").and_then(|u| u.as_str()).map(str::to_string);
    let name = entry.get("name").and_then(|n| n.as_str()).unwrap_or("").to_string();
    Some(StreamView { id, name, kind, url, state: StreamState::from_status(status_id, status_name) })
}

/// What the watchdog watches and whether it mends.
#[derive(Debug, Clone)]
pub struct PlanSettings {
    /// The receiver's path: an event stream whose destination URL ends in it is the exporter's.
    pub webhook_path: String,
    /// Stream ids that are the exporter's; when given, only these are.
    pub stream_ids: Vec<u64>,
    /// Restart a stream of the exporter's that is in Error.
    pub restart: bool,
    /// Least time between two restarts of one stream; doubles with each restart that did not bring it
    /// back to Running, up to `max_restart_interval`.
    pub restart_interval: Duration,
    pub max_restart_interval: Duration,
}

/// What the watchdog knows of one stream.
#[derive(Debug, Clone)]
struct Tracked {
    view: StreamView,
    ours: bool,
    /// When its state was first seen as it is now.
    since: Duration,
    /// Restarts asked for since it was last seen running (or paused: stopped on purpose).
    restarts: u32,
    last_restart: Option<Duration>,
}

/// What one reading of the list changed, and what to do about it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Observation {
    /// Streams seen for the first time or in another state than before.
    pub changed: Vec<u64>,
    /// Streams no longer listed.
    pub gone: Vec<u64>,
    /// Streams to restart now.
    pub restart: Vec<u64>,
}

/// The watchdog's state machine.
#[derive(Debug)]
pub struct Plan {
    settings: PlanSettings,
    streams: BTreeMap<u64, Tracked>,
}

impl Plan {
    pub fn new(settings: PlanSettings) -> Plan {
        Plan { settings, streams: BTreeMap::new() }
    }

    /// Whether `stream` is the exporter's: one of the ids given, or (none given) an event stream whose
    /// destination's path ends in the webhook path.
    pub fn is_ours(&self, stream: &StreamView) -> bool {
        if !self.settings.stream_ids.is_empty() {
            return self.settings.stream_ids.contains(&stream.id);
        }
        let wanted = self.settings.webhook_path.trim_end_matches('/');
        stream.kind == StreamKind::Events
            && !wanted.is_empty()
            && stream.url.as_deref().is_some_and(|url| url_path(url).trim_end_matches('/').ends_with(wanted))
    }

    /// Takes in emnify's list read at `now`: which streams changed or went, and which to restart now.
    pub fn observe(&mut self, now: Duration, list: Vec<StreamView>) -> Observation {
        let mut observation = Observation::default();
        let listed: std::collections::BTreeSet<u64> = list.iter().map(|s| s.id).collect();
        observation.gone = self.streams.keys().filter(|id| !listed.contains(id)).copied().collect();
        self.streams.retain(|id, _| listed.contains(id));
        for view in list {
            let ours = self.is_ours(&view);
            let id = view.id;
            let tracked = self.streams.entry(id).or_insert_with(|| {
                observation.changed.push(id);
                Tracked { view: view.clone(), ours, since: now, restarts: 0, last_restart: None }
            });
            if tracked.view.state != view.state {
                observation.changed.push(id);
                tracked.since = now;
            }
            if matches!(view.state, StreamState::Running | StreamState::Paused) {
                tracked.restarts = 0;
            }
            tracked.view = view;
            tracked.ours = ours;
            if self.settings.restart && ours && tracked.view.state == StreamState::Error {
                let due =
                    tracked.last_restart.is_none_or(|last| now >= last + backoff(&self.settings, tracked.restarts));
                if due {
                    tracked.restarts = tracked.restarts.saturating_add(1);
                    tracked.last_restart = Some(now);
                    observation.restart.push(id);
                }
            }
        }
        observation
    }

    /// When stream `id` may next be restarted, if it is one the watchdog would restart.
    pub fn next_restart(&self, id: u64) -> Option<Duration> {
        let tracked = self.streams.get(&id)?;
        let eligible = self.settings.restart && tracked.ours && tracked.view.state == StreamState::Error;
        eligible.then(|| {
            tracked.last_restart.map_or(Duration::ZERO, |last| last + backoff(&self.settings, tracked.restarts))
        })
    }

    /// Every stream known, with whether it is the exporter's and since when it is in its state.
    pub fn streams(&self) -> impl Iterator<Item = (&StreamView, bool, Duration)> {
        self.streams.values().map(|t| (&t.view, t.ours, t.since))
    }

    pub fn stream(&self, id: u64) -> Option<(&StreamView, bool, Duration)> {
        self.streams.get(&id).map(|t| (&t.view, t.ours, t.since))
    }
}

/// The least time after a restart before the next one, when `restarts` were asked for since the
/// stream last ran: the interval, doubled for each restart after the first, up to the maximum.
fn backoff(settings: &PlanSettings, restarts: u32) -> Duration {
    let doublings = restarts.saturating_sub(1).min(20);
    settings.restart_interval.saturating_mul(1 << doublings).min(settings.max_restart_interval)
}

/// The path of `url` (what follows the host), without query or fragment.
fn url_path(url: &str) -> &str {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    path.split(['?', '#']).next().unwrap_or("")
}
