//! The simulator's background tasks: the event generator (a steady rate, late events, Generic
//! bursts) and the Data Streamer, pushing every produced event to a receiver.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::data_stream::{StreamStatus, EVENT_STREAM};
use super::events::ORGANISATIONS;
use super::{Simulator, StreamerConfig};
use crate::rng::SplitMix64;

impl Simulator {
    /// Produces `count` events, [`SimulatorConfig::late_share`] of them stamped up to
    /// [`SimulatorConfig::late_max_age`] ago, the rest now.
    fn generate_with_late_share(&self, count: usize) {
        let now = self.now_millis();
        let max_age = crate::timefmt::duration_millis(self.config.late_max_age) as f64;
        let mut state = self.lock();
        for _ in 0..count {
            let late = self.config.late_share > 0.0 && state.rng.chance(self.config.late_share);
            let age = if late { (state.rng.unit() * max_age) as i64 } else { 0 };
            state.produce(now - age, None);
        }
    }

    /// Pushes every produced event to `config.url`, batch by batch, until `shutdown` is cancelled.
    ///
    /// A batch answered with anything but 2xx (or not answered) is sent again, as the Data Streamer
    /// does, so the receiver sees retries; with `duplicate_chance` an accepted batch is sent twice.
    /// The streamer is a stream of `GET /api/v2/data_stream` (see [`super::data_stream`]): in Error or
    /// Paused it sends nothing, and sends what it holds, oldest first, once it runs again.
    pub async fn run_streamer(self, config: StreamerConfig, shutdown: CancellationToken) {
        // The stream this streamer is, as `GET /api/v2/data_stream` lists it: listed before the HTTP
        // client is built (which takes a while), so a watchdog starting beside it finds it.
        let stream = self.add_data_stream("emnify-exporter", EVENT_STREAM, &config.url, StreamStatus::Running);
        crate::install_crypto_provider();
        let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(10)).build() else {
            tracing::error!("the simulator's streamer cannot create its HTTP client");
            return;
        };
        let mut next = 0usize;
        let mut rng = SplitMix64::new(self.config.seed ^ 0x57EA);
        loop {
            if !self.stream_may_send(stream) {
                // Paused or in Error: nothing is sent, and the cursor stays where delivery stopped.
                tokio::select! {
                    () = tokio::time::sleep(config.idle) => {}
                    () = shutdown.cancelled() => return,
                }
                continue;
            }
            let batch: Vec<Arc<str>> = {
                let state = self.lock();
                let end = state.events.len().min(next + config.batch_size.max(1));
                state.events[next.min(end)..end].iter().map(|e| e.json.clone()).collect()
            };
            if batch.len() < config.batch_size.max(1) {
                tokio::select! {
                    () = tokio::time::sleep(config.idle) => {}
                    () = shutdown.cancelled() => return,
                }
                if batch.is_empty() {
                    continue;
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
            let body = if config.batch_size == 1 {
                batch[0].to_string()
            } else {
                format!("[{}]", batch.iter().map(|e| &**e).collect::<Vec<_>>().join(","))
            };
            let mut request = client.post(&config.url).header("content-type", "application/json").body(body);
            for (name, value) in &config.headers {
                request = request.header(name.as_str(), value.as_str());
            }
            let accepted = request.send().await.is_ok_and(|r| r.status().is_success());
            self.stream_delivered(stream, accepted);
            if accepted {
                let duplicate = rng.chance(config.duplicate_chance);
                let mut state = self.lock();
                state.stats.pushes += 1;
                if duplicate {
                    state.stats.duplicate_pushes += 1;
                } else {
                    next += batch.len();
                }
            } else {
                self.lock().stats.push_failures += 1;
                tokio::select! {
                    () = tokio::time::sleep(config.idle) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }

    /// Produces about `events_per_second` events each second, and a Generic burst every `burst_every`.
    pub async fn run_generator(self, events_per_second: f64, burst_every: Duration, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut since_burst = Duration::ZERO;
        let mut carry = 0.0;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let rate = self.lock().rate_override.unwrap_or(events_per_second).max(0.0);
            if rate == 0.0 {
                continue;
            }
            carry += rate;
            let (count, burst_org) = {
                let mut state = self.lock();
                // Vary the per-second count around the rate so graphs look alive.
                let jitter = 0.5 + state.rng.unit();
                let count = (carry * jitter).floor();
                carry = (carry - count).max(0.0);
                (count as usize, state.rng.below(ORGANISATIONS.len() as u64) as usize)
            };
            self.generate_with_late_share(count);
            since_burst += Duration::from_secs(1);
            if !burst_every.is_zero() && since_burst >= burst_every {
                since_burst = Duration::ZERO;
                let size = 20 + self.lock().rng.below(40) as usize;
                self.generic_burst(burst_org, size);
                tracing::debug!(
                    size,
                    organisation = ORGANISATIONS[burst_org].name,
                    "simulated a Generic disconnect burst"
                );
            }
        }
    }
}
