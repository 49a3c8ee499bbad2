//! The Data Streamer's configurations: `GET /api/v2/data_stream` (the list, undecoded) and
//! `POST /api/v2/data_stream/{id}/restart`, for the watchdog (see `crate::watchdog`).

use bytes::Bytes;

use super::connection::{Client, Failure};
use super::error::ApiError;
use crate::emnify::budget::Endpoint;

impl Client {
    /// `GET /api/v2/data_stream`: the organisation's stream configurations, as emnify answers them
    /// (paced within the request budget, logged in, retried as every GET).
    pub async fn data_stream_list(&self) -> Result<Bytes, ApiError> {
        let url = format!("{}/api/v2/data_stream", self.settings.api_url);
        Ok(self.get("data_stream", &url).await?.body)
    }

    /// `POST /api/v2/data_stream/{id}/restart`. Sent once (and once more after a fresh login on 401):
    /// a restart is not repeated within a request, the watchdog decides when to ask again.
    pub async fn restart_data_stream(&self, id: u64) -> Result<(), ApiError> {
        let url = format!("{}/api/v2/data_stream/{id}/restart", self.settings.api_url);
        for relogin in [false, true] {
            if relogin {
                // The JWT expired early or was revoked: the next `jwt()` logs in again.
                self.session.lock().await.jwt = None;
            }
            let jwt = self.jwt().await?;
            self.pace(Endpoint::Other).await;
            let sent = self.http.post(&url).bearer_auth(jwt.expose()).header("accept", "application/json").send().await;
            match self.check("data_stream_restart", sent) {
                Ok(_) => return Ok(()),
                Err(Failure::Unauthorized(_)) if !relogin => continue,
                Err(Failure::Unauthorized(_)) => return Err(ApiError::Auth { status: 401 }),
                Err(Failure::Api(err)) => return Err(err),
            }
        }
        Err(ApiError::Auth { status: 401 })
    }
}
