//! Logging in: the JWT reused until shortly before it expires, and a login within the login budget.

use std::collections::VecDeque;
use std::time::Instant;

use super::connection::{read_limited, Client, Failure};
use super::error::ApiError;
use super::session::{jwt_expiry, refresh_instant, Jwt, LOGIN_LIMIT, LOGIN_WINDOW};
use crate::emnify::budget::Endpoint;
use crate::secret::Secret;

impl Client {
    /// emnify's time now (Unix ms). Before any answer has told it, logs in (the login's answer
    /// carries a `Date`); an API that sends no `Date` at all leaves the host's clock as the only one.
    pub async fn emnify_now_millis(&self) -> Result<i64, ApiError> {
        if self.clock.now_millis().is_none() {
            self.jwt().await?;
        }
        Ok(self.clock.now_millis().unwrap_or_else(crate::timefmt::now_millis))
    }

    /// The current JWT, logging in first if there is none or it is about to expire.
    pub(super) async fn jwt(&self) -> Result<Secret, ApiError> {
        let mut session = self.session.lock().await;
        if let Some(jwt) = &session.jwt {
            if jwt.refresh_at.is_none_or(|at| Instant::now() < at) {
                return Ok(jwt.token.clone());
            }
            tracing::debug!("emnify JWT is about to expire; logging in again");
        }
        session.jwt = None;
        let jwt = self.login(&mut session.logins).await?;
        let token = jwt.token.clone();
        session.jwt = Some(jwt);
        Ok(token)
    }

    async fn login(&self, logins: &mut VecDeque<Instant>) -> Result<Jwt, ApiError> {
        let now = Instant::now();
        while logins.front().is_some_and(|t| now.duration_since(*t) > LOGIN_WINDOW) {
            logins.pop_front();
        }
        if logins.len() >= LOGIN_LIMIT {
            return Err(ApiError::LoginBudget { limit: LOGIN_LIMIT });
        }
        let application_token = self.settings.token.read()?;
        self.pace(Endpoint::Other).await;
        logins.push_back(Instant::now());
        let url = format!("{}/api/v1/authenticate", self.settings.api_url);
        let body = serde_json::json!({ "application_token": application_token.expose() }).to_string();
        let sent = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await;
        let response = match self.check("authenticate", sent) {
            Ok(r) => r,
            Err(Failure::Unauthorized(_)) => return Err(ApiError::Auth { status: 401 }),
            Err(Failure::Api(ApiError::Status { status: status @ (400 | 403 | 404), .. })) => {
                return Err(ApiError::Auth { status })
            }
            Err(Failure::Api(e)) => return Err(e),
        };
        let bytes = read_limited("authenticate", response, bytes::BytesMut::new()).await?;
        let decode_error = |message: &str| ApiError::Decode { endpoint: "authenticate", message: message.to_string() };
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|_| decode_error("the body is not JSON"))?;
        let token = value
            .get("auth_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| decode_error("no auth_token in the response"))?;
        // `exp` is on emnify's clock, which this answer just told.
        let now = self.clock.now_millis().unwrap_or_else(crate::timefmt::now_millis) / 1000;
        let refresh_at = jwt_expiry(token).map(|exp| refresh_instant(exp, now));
        tracing::info!(expires_in_s = jwt_expiry(token).map(|e| e - now), "logged in to emnify");
        Ok(Jwt { token: Secret::new(token), refresh_at })
    }
}
