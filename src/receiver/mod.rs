//! The Data Streamer receiver: events pushed by emnify (a `RestAPI` data stream), counted once.
//!
//! emnify's Data Streamer POSTs (or PUTs/PATCHes) one event object or a JSON array of up to
//! 10,000 of them. It can only send static headers, so a push is authenticated by a secret
//! header and/or HTTP basic auth. Pushed events go through the same [`Tally`](crate::tally::Tally)
//! as polled ones: an event that arrives both ways, or a batch sent again after a timeout, is
//! counted once. One unreadable record never fails its batch (the answer is still 2xx, so a
//! poison record cannot stall the stream); a body that is not JSON at all is refused with 400.
//!
//! The receiver owns its metrics and its upkeep ([`Receiver::maintain`]): it publishes what no push
//! checkpointed, and in push-only mode bounds the dedup memory and keeps `emnify_up` by push freshness.
//!
//! What one push may cost is bounded by its body: at most `--webhook.max-records` records (counted as
//! the body arrives, in `records`, so a body of millions of tiny records is refused before it is
//! decoded), and no body in an encoding it does not decode.

mod records;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ACCEPT_ENCODING, AUTHORIZATION, CONTENT_ENCODING, CONTENT_LENGTH, RETRY_AFTER,
};
use hyper::{Method, Request, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::emnify::decode_event_object_or_list;
use crate::http::{json as reply, HttpResponse};
use crate::loglimit::{LineGate, MINUTE};
use crate::metrics::Metrics;
use crate::secret::Secret;
use crate::tally::SharedTally;
use crate::timefmt::duration_millis;
use crate::webconfig::basic_credentials;
use records::RecordCounter;

/// The header a push secret is sent in unless configured otherwise.
pub const DEFAULT_SECRET_HEADER: &str = "X-Emnify-Webhook-Secret";

/// [`DEFAULT_SECRET_HEADER`] as a header name.
pub fn default_secret_header() -> HeaderName {
    HeaderName::from_static("x-emnify-webhook-secret")
}

/// How pushes are checked and limited.
#[derive(Debug, Clone)]
pub struct ReceiverSettings {
    pub path: String,
    /// `(header name, secret value)` every push must carry.
    pub secret_header: Option<(HeaderName, Secret)>,
    /// `(user, password)` for HTTP basic auth.
    pub basic_auth: Option<(String, Secret)>,
    /// Accept pushes without credentials (`--webhook.insecure-no-auth`): anyone who can reach the port adds counts.
    pub insecure_no_auth: bool,
    pub max_body_bytes: usize,
    /// Most event records in one push (`--webhook.max-records`; emnify sends at most 10,000); more get 413.
    pub max_records: usize,
    /// Longest a client may take to send its body (cuts off slow-body clients).
    pub read_timeout: Duration,
    /// Pushes decoded and counted at once; complete pushes beyond it wait for a slot until their
    /// read deadline, then get 503 with `Retry-After`.
    pub max_concurrent: usize,
}

impl ReceiverSettings {
    /// How pushes authenticate, as the start-up line and the landing page say it (never the secret).
    pub fn auth_description(&self) -> &'static str {
        match (&self.secret_header, &self.basic_auth) {
            (Some(_), Some(_)) => "secret header and basic auth",
            (Some(_), None) => "secret header",
            (None, Some(_)) => "basic auth",
            (None, None) => "none (--webhook.insecure-no-auth)",
        }
    }

    /// Body bytes all pushes may hold at once: as many full bodies as there are slots (the memory the
    /// slots alone allowed before bodies were read ahead of them). Beyond it a push gets 503.
    pub fn buffered_body_budget(&self) -> usize {
        let budget = self.max_body_bytes.max(1).saturating_mul(self.max_concurrent.max(1));
        budget.min(u32::MAX as usize).min(Semaphore::MAX_PERMITS)
    }
}

pub struct Receiver {
    settings: ReceiverSettings,
    tally: SharedTally,
    metrics: Arc<Metrics>,
    permits: Arc<Semaphore>,
    /// Body bytes buffered at once, over all pushes being read, queued or counted (one permit a byte).
    budget: Arc<Semaphore>,
    /// Asks the tally for a checkpoint without taking its lock.
    dirty_hint: Arc<AtomicBool>,
    /// When the last push was counted (or the receiver was made, before any): `emnify_up` in push-only mode.
    last_push: Arc<Mutex<Instant>>,
    refusals: Arc<RefusalLog>,
}

impl Receiver {
    pub fn new(settings: ReceiverSettings, tally: SharedTally, metrics: Arc<Metrics>) -> Self {
        let permits = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        let budget = Arc::new(Semaphore::new(settings.buffered_body_budget()));
        let dirty_hint = tally.lock().dirty_hint();
        let last_push = Arc::new(Mutex::new(Instant::now()));
        Receiver { settings, tally, metrics, permits, budget, dirty_hint, last_push, refusals: Arc::default() }
    }

    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// Answers one push.
    pub async fn handle(&self, req: Request<Incoming>) -> HttpResponse {
        let response = self.answer(req).await;
        self.metrics.push.record_request(response.status().as_u16());
        // The answer's code is known only now, after the push's own checkpoint: the next one publishes
        // it. A flag, not the count lock: refusals (401 floods) must not queue on it.
        self.dirty_hint.store(true, Ordering::Relaxed);
        response
    }

    async fn answer(&self, req: Request<Incoming>) -> HttpResponse {
        if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
            let mut r = self.refuse("method", StatusCode::METHOD_NOT_ALLOWED, "use POST, PUT or PATCH");
            r.headers_mut().insert("allow", HeaderValue::from_static("POST, PUT, PATCH"));
            return r;
        }
        if !self.authenticated(&req) {
            return self.refuse("unauthorized", StatusCode::UNAUTHORIZED, "missing or wrong credentials");
        }
        // The decoder reads JSON as sent: a body in any other coding would be read as garbage (or, for
        // plain JSON labelled gzip, counted although the label says otherwise). RFC 9110 §15.5.16.
        if req.headers().get_all(CONTENT_ENCODING).iter().any(|v| !is_identity(v)) {
            let mut r = self.refuse(
                "unsupported_encoding",
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the body without Content-Encoding",
            );
            r.headers_mut().insert(ACCEPT_ENCODING, HeaderValue::from_static("identity"));
            return r;
        }
        let declared =
            req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.settings.max_body_bytes as u64) {
            return self.too_large();
        }
        // The body is read before a processing slot is taken, so slow uploaders hold only their
        // connection and the bytes they really sent, never a slot a complete push needs.
        let deadline = tokio::time::Instant::now() + self.settings.read_timeout;
        let paced = crate::http::ClientPaced::of(&req);
        let (bytes, buffered) = match self.read_body(req.into_body(), deadline, paced).await {
            Ok(read) => read,
            Err(refusal) => return refusal,
        };
        // Complete pushes queue for a slot (they are in memory already, within the budget) until the
        // read deadline, rather than being refused at once when all slots are busy.
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await;
        let Ok(Ok(permit)) = permit else { return self.overloaded("too many pushes at once") };
        // Decoding up to 10,000 events and saving the state file are not for the runtime's workers.
        let (tally, metrics, last_push) = (self.tally.clone(), self.metrics.clone(), self.last_push.clone());
        let refusals = self.refusals.clone();
        tokio::task::spawn_blocking(move || {
            let response = count(&tally, &metrics, &refusals, &last_push, &bytes);
            drop((permit, buffered));
            response
        })
        .await
        .unwrap_or_else(|_| reply(StatusCode::INTERNAL_SERVER_ERROR, r#"{"error":"counting the push failed"}"#))
    }

    /// Reads a body whole, under the size and record limits, by `deadline`, each chunk paid for from the
    /// shared budget of buffered body bytes (returned with the bytes, to be held until they are counted).
    async fn read_body(
        &self,
        mut body: Incoming,
        deadline: tokio::time::Instant,
        paced: Option<crate::http::ClientPaced>,
    ) -> Result<(Bytes, OwnedSemaphorePermit), HttpResponse> {
        let mut buffered = self.budget.clone().try_acquire_many_owned(0).map_err(|_| self.overloaded("closing"))?;
        let mut bytes = BytesMut::new();
        let mut records = RecordCounter::default();
        loop {
            // Waiting for the client's bytes, the connection may be closed to make room for a probe.
            let next = tokio::time::timeout_at(deadline, body.frame());
            let next = match &paced {
                Some(paced) => paced.wait(next).await,
                None => next.await,
            };
            let frame = match next {
                Ok(Some(Ok(frame))) => frame,
                Ok(None) => return Ok((bytes.freeze(), buffered)),
                Ok(Some(Err(_))) => {
                    return Err(self.refuse("malformed", StatusCode::BAD_REQUEST, "the body could not be read"));
                }
                Err(_) => {
                    return Err(self.refuse("timeout", StatusCode::REQUEST_TIMEOUT, "the body took too long"));
                }
            };
            let Ok(data) = frame.into_data() else { continue };
            if bytes.len() + data.len() > self.settings.max_body_bytes {
                return Err(self.too_large());
            }
            records.feed(&data);
            if records.records() > self.settings.max_records as u64 {
                return Err(self.too_many_records());
            }
            let cost = u32::try_from(data.len()).unwrap_or(u32::MAX);
            let Ok(more) = self.budget.clone().try_acquire_many_owned(cost) else {
                return Err(self.overloaded("too many push bytes in flight"));
            };
            buffered.merge(more);
            bytes.extend_from_slice(&data);
        }
    }

    /// A refusal: counted by `reason`, logged at most once a minute for each, answered with `message`.
    fn refuse(&self, reason: &'static str, status: StatusCode, message: &str) -> HttpResponse {
        self.metrics.push.record_rejected(reason);
        self.refusals.note(reason, status, message);
        reply(status, serde_json::json!({ "error": message }).to_string())
    }

    fn overloaded(&self, why: &str) -> HttpResponse {
        let mut r = self.refuse("overloaded", StatusCode::SERVICE_UNAVAILABLE, why);
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from_static("1"));
        r
    }

    fn too_large(&self) -> HttpResponse {
        let message = format!("the body is larger than {} bytes", self.settings.max_body_bytes);
        self.refuse("too_large", StatusCode::PAYLOAD_TOO_LARGE, &message)
    }

    fn too_many_records(&self) -> HttpResponse {
        let message = format!("the push has more than {} records (--webhook.max-records)", self.settings.max_records);
        self.refuse("too_many_records", StatusCode::PAYLOAD_TOO_LARGE, &message)
    }

    fn authenticated(&self, req: &Request<Incoming>) -> bool {
        let header_ok = self.settings.secret_header.as_ref().is_none_or(|(name, secret)| {
            req.headers().get(name).is_some_and(|v| constant_time_eq(v.as_bytes(), secret.expose().as_bytes()))
        });
        let basic_ok = self.settings.basic_auth.as_ref().is_none_or(|(user, password)| {
            let expected = basic_authorization(user, password);
            let expected = expected.strip_prefix("Basic ").unwrap_or(&expected);
            // The scheme is case-insensitive (RFC 7235); the credentials are compared in constant time.
            let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(basic_credentials);
            given.is_some_and(|given| constant_time_eq(given.as_bytes(), expected.as_bytes()))
        });
        header_ok && basic_ok
    }
}

/// Counts a push that was read whole; with a state file it is saved before it is acknowledged.
fn count(
    tally: &SharedTally,
    metrics: &Metrics,
    refusals: &RefusalLog,
    last_push: &Mutex<Instant>,
    body: &[u8],
) -> HttpResponse {
    let events = match decode_event_object_or_list(body) {
        Ok(events) => events,
        Err(err) => {
            metrics.push.record_rejected("malformed");
            let detail = err.to_string();
            refusals.note("malformed", StatusCode::BAD_REQUEST, &detail);
            return reply(StatusCode::BAD_REQUEST, serde_json::json!({ "error": detail }).to_string());
        }
    };
    let counted = tally.ingest_push(events, |counts| {
        // Under the count lock, before the push's checkpoint: its own metrics are published with its counts.
        metrics.push.record_accepted(counts.received);
        *last_push.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    });
    let Ok(counts) = counted else {
        return reply(StatusCode::SERVICE_UNAVAILABLE, r#"{"error":"the state could not be saved"}"#);
    };
    let body = serde_json::json!({
        "received": counts.received,
        "counted": counts.counted,
        "duplicates": counts.duplicates,
        "unreadable": counts.unreadable,
    });
    reply(StatusCode::OK, body.to_string())
}

/// Whether a `Content-Encoding` value says the body is as sent (`identity`, or nothing).
fn is_identity(value: &HeaderValue) -> bool {
    let text = value.to_str().unwrap_or("?");
    text.split(',').map(str::trim).all(|coding| coding.is_empty() || coding.eq_ignore_ascii_case("identity"))
}

/// When each refusal reason was last logged: a flood of refusals makes one line a minute per reason,
/// with how many there were since (never the body, the credentials or the client's address).
#[derive(Default)]
struct RefusalLog(Mutex<std::collections::HashMap<&'static str, LineGate>>);

impl RefusalLog {
    fn note(&self, reason: &'static str, status: StatusCode, message: &str) {
        let mut logged = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(refused) = logged.entry(reason).or_default().note(Instant::now(), MINUTE) else { return };
        drop(logged);
        tracing::warn!(
            reason,
            status = status.as_u16(),
            refused_since_last_line = refused,
            "refused a push: {message} (at most one line a minute per reason; see emnify_push_rejected_total)"
        );
    }
}

impl Receiver {
    /// Keeps what pushes need until `shutdown`: every [`TallySettings::publish_every`] it publishes what
    /// no push checkpointed (refused pushes, the counts of the last push before a quiet spell). In
    /// push-only mode (`push_only`: no poller to do it) it also forgets pushed ids older than
    /// [`TallySettings::remember_pushed`], so the dedup memory stays bounded, and keeps `emnify_up` at 1
    /// only while pushes arrive (within [`TallySettings::push_stale_after`] of the last one).
    ///
    /// [`TallySettings::publish_every`]: crate::tally::TallySettings::publish_every
    /// [`TallySettings::remember_pushed`]: crate::tally::TallySettings::remember_pushed
    /// [`TallySettings::push_stale_after`]: crate::tally::TallySettings::push_stale_after
    pub async fn maintain(self: Arc<Self>, push_only: bool, shutdown: CancellationToken) {
        let (period, remember_millis, stale_after) = {
            let tally = self.tally.lock();
            let settings = tally.settings();
            (settings.publish_every, duration_millis(settings.remember_pushed), settings.push_stale_after)
        };
        let mut up = None;
        loop {
            tokio::select! {
                () = tokio::time::sleep(period) => {}
                () = shutdown.cancelled() => return,
            }
            if push_only {
                self.push_only_upkeep(remember_millis, stale_after, &mut up);
            }
            self.tally.publish_pending().await;
        }
    }

    /// Forgets pushed ids older than `remember_millis` and sets `emnify_up` by push freshness (`up`: as
    /// last set); asks for a checkpoint when either changed what is published.
    fn push_only_upkeep(&self, remember_millis: i64, stale_after: Duration, up: &mut Option<bool>) {
        let mut tally = self.tally.lock();
        let (now, before) = (tally.emnify_now_millis(), tally.remembered());
        tally.forget_before(now.saturating_sub(remember_millis));
        // `emnify_dedup_remembered_ids` is published at checkpoints: one is due when it changed.
        let mut changed = tally.remembered() != before;
        let fresh = self.last_push.lock().unwrap_or_else(PoisonError::into_inner).elapsed() < stale_after;
        if *up != Some(fresh) {
            if up.is_some() {
                match fresh {
                    true => tracing::info!("pushes arrive again; emnify_up is 1"),
                    false => tracing::warn!(
                        stale_after = %humantime::format_duration(stale_after),
                        "no push accepted for --webhook.stale-after; emnify_up is 0 (is the data stream \
                         running, and pointed here?)"
                    ),
                }
            }
            *up = Some(fresh);
            self.metrics.polling.set_up(fresh);
            changed = true;
        }
        if changed {
            // The flag, not the tally's own mark: the same checkpoint follows at once, by `publish_pending`.
            self.dirty_hint.store(true, Ordering::Relaxed);
        }
    }
}

/// The `Authorization` header value of HTTP basic auth.
pub fn basic_authorization(user: &str, password: &Secret) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{}", password.expose())))
}

/// Compares without an early exit, so the time taken tells nothing about the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn secrets_compare_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
