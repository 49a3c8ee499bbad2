//! The simulator's `/api/v2/data_stream` routes and the Data Streamer's state changes: the stream
//! configurations themselves are in [`super::data_stream`].

use hyper::{Method, StatusCode};
use serde_json::json;

use super::data_stream::{DataStream, DataStreams, StreamStatus, USAGE_STREAM};
use super::reply::error;
use super::Simulator;
use crate::http::{empty, json, HttpResponse};

impl Simulator {
    fn streams(&self) -> std::sync::MutexGuard<'_, DataStreams> {
        self.data_streams.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds a stream configuration (one the tests watch, or one that is not the exporter's); its id.
    pub fn add_data_stream(&self, name: &str, stream_type: u32, url: &str, status: StreamStatus) -> u64 {
        let mut streams = self.streams();
        // Ids as emnify's look: small numbers, not from 1, so a test cannot confuse one with an index.
        let id = 4100 + streams.streams.len() as u64 * 7;
        streams.streams.push(DataStream {
            id,
            name: name.to_string(),
            stream_type,
            url: url.to_string(),
            status,
            failures: 0,
            restarts: 0,
        });
        id
    }

    /// Every stream configuration as it is now.
    pub fn data_streams(&self) -> Vec<DataStream> {
        self.streams().streams.clone()
    }

    /// Sets a stream's state (pausing or resuming it, as the Portal does); false if there is no such stream.
    pub fn set_data_stream_status(&self, id: u64, status: StreamStatus) -> bool {
        let mut streams = self.streams();
        let Some(stream) = streams.streams.iter_mut().find(|s| s.id == id) else { return false };
        stream.status = status;
        stream.failures = 0;
        true
    }

    /// Answers `GET /api/v2/data_stream` (`list`) and the restarts (`restart`) with these statuses
    /// instead, as emnify does for a token whose role may not read or change data streams; `None`: as usual.
    pub fn set_data_stream_refusals(&self, list: Option<u16>, restart: Option<u16>) {
        let mut streams = self.streams();
        streams.refuse_list = list;
        streams.refuse_restart = restart;
    }

    /// Streams go to Error after `failures` failed deliveries in a row; `None`: they retry for ever.
    pub fn set_stream_error_after(&self, failures: Option<u32>) {
        self.streams().error_after = failures;
    }

    /// Whether stream `id` may deliver now. A Pending one (just restarted) starts running here, as
    /// emnify's is Pending "for a very short time".
    pub(super) fn stream_may_send(&self, id: u64) -> bool {
        let mut streams = self.streams();
        let Some(stream) = streams.streams.iter_mut().find(|s| s.id == id) else { return true };
        if stream.status == StreamStatus::Pending {
            stream.status = StreamStatus::Running;
        }
        stream.status == StreamStatus::Running
    }

    /// A delivery of stream `id` ended; enough failures in a row put it in Error.
    pub(super) fn stream_delivered(&self, id: u64, accepted: bool) {
        let mut streams = self.streams();
        let error_after = streams.error_after;
        let Some(stream) = streams.streams.iter_mut().find(|s| s.id == id) else { return };
        if accepted {
            stream.failures = 0;
            return;
        }
        stream.failures = stream.failures.saturating_add(1);
        if error_after.is_some_and(|limit| stream.failures >= limit) && stream.status == StreamStatus::Running {
            stream.status = StreamStatus::Error;
            tracing::debug!(data_stream = id, failures = stream.failures, "simulated data stream went to Error");
        }
    }

    /// `POST /api/v2/data_stream/{id}/restart`: the stream becomes Pending, then runs at its next turn.
    fn restart_data_stream(&self, id: u64) -> bool {
        let mut streams = self.streams();
        let Some(stream) = streams.streams.iter_mut().find(|s| s.id == id) else { return false };
        stream.status = StreamStatus::Pending;
        stream.failures = 0;
        stream.restarts += 1;
        true
    }
}

/// `/api/v2/data_stream...` for an authorised request: `rest` is the path after `data_stream`.
pub(super) fn answer(sim: &Simulator, method: &Method, rest: &[&str]) -> HttpResponse {
    let (refuse_list, refuse_restart) = {
        let streams = sim.streams();
        (streams.refuse_list, streams.refuse_restart)
    };
    let refused = match (method, rest) {
        (&Method::POST, [_, "restart"]) => refuse_restart,
        _ => refuse_list,
    };
    if let Some(status) = refused {
        return error(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN), "refused as asked");
    }
    match (method, rest) {
        (&Method::GET, [] | [""]) => {
            let list: Vec<serde_json::Value> = sim.data_streams().iter().map(render).collect();
            json(StatusCode::OK, serde_json::Value::Array(list).to_string())
        }
        (&Method::GET, ["status"]) => {
            let states: Vec<serde_json::Value> =
                StreamStatus::ALL.iter().map(|s| json!({"id": s.id(), "description": s.description()})).collect();
            json(StatusCode::OK, serde_json::Value::Array(states).to_string())
        }
        (&Method::GET, [id]) => match id.parse::<u64>().ok().and_then(|id| find(sim, id)) {
            Some(stream) => json(StatusCode::OK, render(&stream).to_string()),
            None => error(StatusCode::NOT_FOUND, "data stream not found"),
        },
        (&Method::POST, [id, "restart"]) => match id.parse::<u64>() {
            Ok(id) if sim.restart_data_stream(id) => empty(StatusCode::OK),
            _ => error(StatusCode::NOT_FOUND, "data stream not found"),
        },
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn find(sim: &Simulator, id: u64) -> Option<DataStream> {
    sim.data_streams().into_iter().find(|s| s.id == id)
}

/// A stream as emnify's list shows it: custom headers masked, the state and type as id and description.
fn render(stream: &DataStream) -> serde_json::Value {
    let type_description = if stream.stream_type == USAGE_STREAM { "Usage Data" } else { "Event Data" };
    json!({
        "id": stream.id,
        "name": stream.name,
        "data_stream_type": {"id": stream.stream_type, "description": type_description},
        "status": {"id": stream.status.id(), "description": stream.status.description()},
        "destination": {
            "connection_type": {"id": 3, "description": "RestAPI"},
            "credentials": {"url": stream.url, "method": "POST", "headers": ["x-emnify-webhook-secret:***"]},
            "format": "Json"
        },
        "filters": []
    })
}
