//! The login state: where the application token comes from, the JWT and when to renew it, and the
//! budget of logins.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine;

use super::error::ApiError;
use crate::secret::Secret;

/// Where the application token comes from.
#[derive(Debug, Clone)]
pub enum TokenSource {
    /// Given directly (`EMNIFY_APPLICATION_TOKEN`).
    Value(Secret),
    /// Read from a file on every login, so a rotated Kubernetes Secret is picked up.
    File(PathBuf),
}

impl TokenSource {
    pub(super) fn read(&self) -> Result<Secret, ApiError> {
        match self {
            TokenSource::Value(s) => Ok(s.clone()),
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| ApiError::TokenFile { path: path.display().to_string(), message: e.to_string() })?;
                let token = text.strip_suffix('\n').unwrap_or(&text);
                let token = token.strip_suffix('\r').unwrap_or(token);
                if token.is_empty() {
                    return Err(ApiError::TokenFile {
                        path: path.display().to_string(),
                        message: "the file is empty".to_string(),
                    });
                }
                Ok(Secret::new(token))
            }
        }
    }
}

/// A JWT and when to stop using it.
pub(super) struct Jwt {
    pub(super) token: Secret,
    pub(super) refresh_at: Option<Instant>,
}

/// At most this many logins in any 5 minutes: emnify allows 100 per IP.
pub(super) const LOGIN_LIMIT: usize = 90;
pub(super) const LOGIN_WINDOW: Duration = Duration::from_secs(300);

#[derive(Default)]
pub(super) struct Session {
    pub(super) jwt: Option<Jwt>,
    pub(super) logins: VecDeque<Instant>,
}

/// The `exp` claim of a JWT, Unix seconds; the signature is emnify's to check, not ours.
pub fn jwt_expiry(token: &str) -> Option<i64> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

/// When to log in again: a minute before `exp`, or a quarter of the lifetime for short-lived tokens.
pub(super) fn refresh_instant(exp: i64, now: i64) -> Instant {
    let lifetime = (exp - now).max(0) as u64;
    let margin = (lifetime / 4).min(60);
    Instant::now() + Duration::from_secs(lifetime - margin)
}
