//! A client for the parts of the emnify REST API the exporter needs.
//!
//! It logs in with the application token (`POST /api/v1/authenticate`), keeps
//! the JWT until shortly before its `exp` claim, logs in again once on a 401,
//! paces its requests, retries transient failures with jittered exponential
//! backoff, honours `Retry-After` on every refused answer (see [`MAX_SERVER_WAIT`]),
//! reports every request to its [`RequestObserver`], and reads emnify's
//! clock from the `Date` header of every answer (see [`EmnifyClock`](super::EmnifyClock)).
//!
//! The parts, each importing only those listed before it: `error` ([`ApiError`]), `retry`
//! (`Retry-After`, the hold on every request, the pacing state), `session` (the application token,
//! the JWT and the login budget), `connection` (the [`Client`] itself and how one answer is checked
//! and read), then `login` and `request` (the logins and the GETs, with retries). This file only
//! re-exports, so no part imports its parent.

mod connection;
mod data_stream;
mod error;
mod login;
mod request;
mod retry;
mod session;

pub use connection::{Client, ClientSettings, RequestObserver, MAX_BODY_BYTES};
pub use error::ApiError;
pub use request::{EventPage, PageQuery};
pub use retry::MAX_SERVER_WAIT;
pub use session::{jwt_expiry, TokenSource};

#[cfg(test)]
mod tests;
