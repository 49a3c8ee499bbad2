//! emnify's error answers, as the simulator gives them.

use hyper::StatusCode;
use serde_json::json;

use crate::http::{empty, json, HttpResponse};

/// emnify's error body: `{error_code, error_token, message}`.
pub(super) fn error(status: StatusCode, message: &str) -> HttpResponse {
    let body = json!({
        "error_code": status.as_u16(),
        "error_token": status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_"),
        "message": message,
    });
    json(status, body.to_string())
}

/// 401 with an empty body, as emnify answers most authentication failures.
pub(super) fn unauthorized() -> HttpResponse {
    empty(StatusCode::UNAUTHORIZED)
}
