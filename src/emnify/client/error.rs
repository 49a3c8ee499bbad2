//! The client's error type: what went wrong, its metric reason, and the wait the server asked for.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("emnify rejected the application token (HTTP {status}); check that it is valid and not revoked")]
    Auth { status: u16 },
    #[error("cannot read the application token file {path}: {message}")]
    TokenFile { path: String, message: String },
    #[error("the login budget (at most {limit} logins per 5 minutes) is used up; waiting before logging in again")]
    LoginBudget { limit: usize },
    #[error("emnify rate-limited {endpoint} (HTTP 429){}", wait_note(*.retry_after))]
    RateLimited { endpoint: &'static str, retry_after: Option<Duration> },
    /// `retry_after`: the wait its `Retry-After` asked for, already cut to [`MAX_SERVER_WAIT`](super::MAX_SERVER_WAIT).
    #[error("emnify answered {endpoint} with HTTP {status}{}", wait_note(*.retry_after))]
    Status { endpoint: &'static str, status: u16, retry_after: Option<Duration> },
    #[error("request to {endpoint} timed out")]
    Timeout { endpoint: &'static str },
    #[error("connection to emnify failed on {endpoint}: {message}")]
    Connection { endpoint: &'static str, message: String },
    #[error("response from {endpoint} could not be read: {message}")]
    Decode { endpoint: &'static str, message: String },
}

impl ApiError {
    /// The `reason` label of `emnify_poll_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Auth { .. } | ApiError::TokenFile { .. } => "auth",
            ApiError::LoginBudget { .. } | ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Status { status, .. } if *status >= 500 => "http_5xx",
            ApiError::Status { .. } => "http_4xx",
            ApiError::Timeout { .. } => "timeout",
            ApiError::Connection { .. } => "connection",
            ApiError::Decode { .. } => "decode",
        }
    }

    /// A wait the server asked for (`Retry-After`), if any, at most [`MAX_SERVER_WAIT`](super::MAX_SERVER_WAIT). The poll
    /// loop waits at least this long before its next poll.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub(super) fn is_transient(&self) -> bool {
        matches!(self, ApiError::RateLimited { .. } | ApiError::Timeout { .. } | ApiError::Connection { .. })
            || matches!(self, ApiError::Status { status, .. } if *status >= 500)
    }
}

pub(super) fn transport_error(endpoint: &'static str, e: &reqwest::Error) -> ApiError {
    if e.is_timeout() {
        ApiError::Timeout { endpoint }
    } else if e.is_decode() || e.is_body() {
        ApiError::Connection { endpoint, message: format!("reading the body failed: {}", error_chain(e)) }
    } else {
        ApiError::Connection { endpoint, message: error_chain(e) }
    }
}

/// The error and its causes (URLs carry no secret: the token travels in the body and the JWT in a header).
fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The end of a failed request's message: the wait emnify asked for, if it did.
fn wait_note(retry_after: Option<Duration>) -> String {
    retry_after.map(|w| format!(", asked to wait {} s (Retry-After)", w.as_secs())).unwrap_or_default()
}
