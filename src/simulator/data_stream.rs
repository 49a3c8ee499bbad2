//! The simulator's Data Streamer configurations, as emnify's `/api/v2/data_stream` serves them: a list
//! with each stream's name, type, destination and state, the state catalogue, and a restart.
//!
//! A streamer started with [`Simulator::run_streamer`] is one of these streams. It goes to Error after
//! [`super::Simulator::set_stream_error_after`] failed deliveries in a row, as emnify's does when the
//! destination was unreachable "for a longer period of time", and then sends nothing until it is
//! restarted or resumed; its cursor stays where delivery stopped, so the events not yet delivered are
//! sent first (history first) once it runs again.

/// A stream's state, with emnify's ids (`GET /api/v2/data_stream/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    Running,
    Paused,
    Error,
    Pending,
}

impl StreamStatus {
    pub const ALL: [StreamStatus; 4] =
        [StreamStatus::Running, StreamStatus::Paused, StreamStatus::Error, StreamStatus::Pending];

    pub fn id(self) -> u32 {
        match self {
            StreamStatus::Running => 1,
            StreamStatus::Paused => 2,
            StreamStatus::Error => 3,
            StreamStatus::Pending => 4,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            StreamStatus::Running => "Running",
            StreamStatus::Paused => "Paused",
            StreamStatus::Error => "Error",
            StreamStatus::Pending => "Pending",
        }
    }

    /// The state by its id or its description (any case), as a control route takes it.
    pub fn parse(text: &str) -> Option<StreamStatus> {
        StreamStatus::ALL.into_iter().find(|s| s.id().to_string() == text || s.description().eq_ignore_ascii_case(text))
    }
}

/// emnify's stream types: 1 usage data, 2 event data.
pub const USAGE_STREAM: u32 = 1;
pub const EVENT_STREAM: u32 = 2;

/// One stream configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataStream {
    pub id: u64,
    pub name: String,
    /// [`USAGE_STREAM`] or [`EVENT_STREAM`].
    pub stream_type: u32,
    /// The `RestAPI` destination's `credentials.url`.
    pub url: String,
    pub status: StreamStatus,
    /// Deliveries that failed in a row.
    pub failures: u32,
    /// Restarts asked for through the API.
    pub restarts: u64,
}

/// Every stream configuration, and after how many failed deliveries a stream goes to Error.
#[derive(Debug, Default)]
pub(super) struct DataStreams {
    pub(super) streams: Vec<DataStream>,
    pub(super) error_after: Option<u32>,
    /// Statuses to refuse the list and the restarts with (a token without the permission gets 403).
    pub(super) refuse_list: Option<u16>,
    pub(super) refuse_restart: Option<u16>,
}
