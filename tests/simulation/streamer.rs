//! `DataStreamer`: a pure, seeded model of emnify's Data Streamer (`RestAPI` webhook) in simulated time.
//!
//! Driving it:
//! 1. after advancing the [`Emnify`](crate::emnify::Emnify) model, `feed(emnify.events())` hands it the
//!    events that arrived (it keeps its own copy; feeding the same slice again adds only the new tail);
//! 2. `next_due_ms()` says when it next wants to send (for jumping simulated time);
//! 3. `next_delivery(now_ms)` gives the batch due at or before `now_ms`, if any; one batch is in flight
//!    at a time;
//! 4. `acknowledge(batch_id, accepted)` tells it the receiver's answer (2xx or not). A batch never
//!    acknowledged counts as refused after [`ACK_TIMEOUT_MS`].
//!
//! Faults (all from [`Params`]): varying delays between arrival and sending (reordering across batches),
//! shuffled batches, refused batches retried with doubling delays, answers lost after acceptance (the
//! batch comes again: at-least-once), accepted batches delivered again later, paused periods that keep a
//! backlog and send it oldest first on resume, and re-delivery of a whole old span (at most 7 days back).
//! An event is never sent before it arrived at emnify (`at_ms >= arrival_ms` for every event of a batch).

use std::collections::{BTreeMap, VecDeque};

use emnify_exporter::rng::SplitMix64;

use crate::emnify::Event;
use crate::seed::{Params, Seed, Subsystem, MINUTE, SECOND};

/// A batch left unanswered this long is treated as refused.
pub const ACK_TIMEOUT_MS: i64 = 30 * SECOND;
/// Longest wait between two attempts of a refused batch.
pub const RETRY_MAX_MS: i64 = 5 * MINUTE;

/// One HTTP POST of the Data Streamer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// When it was sent (at or before the `now_ms` it was asked for).
    pub at_ms: i64,
    /// The same for every attempt of one batch; re-deliveries of accepted events get new ids.
    pub batch_id: u64,
    /// 0 for the first attempt.
    pub attempt: u32,
    /// A JSON array of event objects (a bare object for a one-event batch when `push_bare_single`).
    pub body: Vec<u8>,
    /// The ids in `body`, in order.
    pub ids: Vec<i64>,
}

/// What the streamer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub deliveries: u64,
    pub retries: u64,
    pub lost_acks: u64,
    pub duplicates: u64,
    pub replayed_batches: u64,
}

#[derive(Debug, Clone)]
struct Batch {
    id: u64,
    attempt: u32,
    /// Indices into `DataStreamer::events`.
    events: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Pushed {
    id: i64,
    arrival_ms: i64,
    json: String,
}

/// The model of one event Data Streamer pointed at the exporter.
pub struct DataStreamer {
    params: Params,
    rng: SplitMix64,
    events: Vec<Pushed>,
    /// Fed events not yet in any batch, by (ready time, feed order).
    pending: BTreeMap<(i64, usize), usize>,
    /// Batches to send again, by (due time, batch id).
    queued: BTreeMap<(i64, u64), Batch>,
    /// The batch in flight: when it was sent, when the driver took it (the answer timeout counts from then).
    in_flight: Option<(i64, i64, Batch)>,
    replays: VecDeque<crate::seed::Replay>,
    next_batch_id: u64,
    accepted: BTreeMap<i64, u32>,
    stats: Stats,
}

impl DataStreamer {
    pub fn new(seed: Seed, params: Params) -> DataStreamer {
        let mut replays: Vec<_> = params.replays.clone();
        replays.sort_by_key(|r| r.at_ms);
        DataStreamer {
            rng: seed.rng(Subsystem::Streamer),
            events: Vec::new(),
            pending: BTreeMap::new(),
            queued: BTreeMap::new(),
            in_flight: None,
            replays: replays.into(),
            next_batch_id: 1,
            accepted: BTreeMap::new(),
            stats: Stats::default(),
            params,
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// How often each event id was in an accepted batch (lost answers included: the receiver took them).
    pub fn accepted(&self) -> &BTreeMap<i64, u32> {
        &self.accepted
    }

    /// Nothing pending, queued, in flight or still to be replayed.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.queued.is_empty() && self.in_flight.is_none() && self.replays.is_empty()
    }

    /// Takes the events of `events` (emnify's arrival-ordered list) not fed before.
    pub fn feed(&mut self, events: &[Event]) {
        for e in events.iter().skip(self.events.len()) {
            let ready = e.arrival_ms + self.rng.below(self.params.push_delay_max_ms.max(0) as u64 + 1) as i64;
            let index = self.events.len();
            self.events.push(Pushed { id: e.id, arrival_ms: e.arrival_ms, json: e.json.clone() });
            self.pending.insert((ready, index), index);
        }
    }

    /// `t`, or the end of the pause `t` falls in.
    fn unpaused(&self, mut t: i64) -> i64 {
        while let Some(p) = self.params.pauses.iter().find(|p| p.start_ms <= t && t < p.end_ms) {
            t = p.end_ms;
        }
        t
    }

    /// When the next new batch would leave: when it is full, or `push_flush_ms` after its oldest event.
    fn new_batch_due(&self) -> Option<i64> {
        let first = self.pending.keys().next()?.0;
        let max = self.params.push_batch_max.max(1);
        let full = self.pending.keys().nth(max - 1).map_or(i64::MAX, |k| k.0);
        Some(self.unpaused(full.min(first + self.params.push_flush_ms.max(0))))
    }

    /// When the streamer next wants to act (send, retry after an unanswered batch, start a replay).
    pub fn next_due_ms(&self) -> Option<i64> {
        if let Some((_, taken, _)) = &self.in_flight {
            return Some(taken + ACK_TIMEOUT_MS);
        }
        let queued = self.queued.keys().next().map(|k| self.unpaused(k.0));
        let replay = self.replays.front().map(|r| r.at_ms);
        [queued, self.new_batch_due(), replay].into_iter().flatten().min()
    }

    fn start_replays(&mut self, now_ms: i64) {
        while self.replays.front().is_some_and(|r| r.at_ms <= now_ms) {
            let Some(r) = self.replays.pop_front() else { break };
            let span: Vec<usize> = (0..self.events.len())
                .filter(|&i| r.span_start_ms <= self.events[i].arrival_ms && self.events[i].arrival_ms < r.span_end_ms)
                .collect();
            for chunk in span.chunks(self.params.push_batch_max.max(1)) {
                let batch = self.new_batch(chunk.to_vec());
                self.stats.replayed_batches += 1;
                self.queued.insert((r.at_ms, batch.id), batch);
            }
        }
    }

    fn new_batch(&mut self, events: Vec<usize>) -> Batch {
        let id = self.next_batch_id;
        self.next_batch_id += 1;
        Batch { id, attempt: 0, events }
    }

    /// The batch due at or before `now_ms`, if any (and none is in flight).
    pub fn next_delivery(&mut self, now_ms: i64) -> Option<Delivery> {
        if let Some((_, taken, _)) = &self.in_flight {
            if now_ms < taken + ACK_TIMEOUT_MS {
                return None;
            }
            let (_, taken, batch) = self.in_flight.take()?;
            self.refused(taken + ACK_TIMEOUT_MS, batch);
        }
        self.start_replays(now_ms);
        let queued = self.queued.keys().next().map(|k| (self.unpaused(k.0), *k));
        let fresh = self.new_batch_due();
        let (at_ms, batch) = match (queued, fresh) {
            (Some((due, key)), fresh) if due <= now_ms && fresh.is_none_or(|f| due <= f) => {
                (due, self.queued.remove(&key)?)
            }
            (_, Some(due)) if due <= now_ms => {
                let max = self.params.push_batch_max.max(1);
                let keys: Vec<(i64, usize)> =
                    self.pending.keys().take_while(|k| k.0 <= due).take(max).copied().collect();
                let mut events: Vec<usize> = keys.iter().map(|k| self.pending.remove(k).unwrap_or(k.1)).collect();
                if self.params.push_shuffle_share > 0.0 && self.rng.chance(self.params.push_shuffle_share) {
                    for i in (1..events.len()).rev() {
                        events.swap(i, self.rng.below(i as u64 + 1) as usize);
                    }
                }
                (due, self.new_batch(events))
            }
            _ => return None,
        };
        let delivery = self.render(at_ms, &batch);
        self.stats.deliveries += 1;
        self.in_flight = Some((at_ms, now_ms, batch));
        Some(delivery)
    }

    fn render(&self, at_ms: i64, batch: &Batch) -> Delivery {
        let ids: Vec<i64> = batch.events.iter().map(|&i| self.events[i].id).collect();
        debug_assert!(batch.events.iter().all(|&i| self.events[i].arrival_ms <= at_ms), "sent before arrival");
        let mut body = String::new();
        let bare = self.params.push_bare_single && batch.events.len() == 1;
        if !bare {
            body.push('[');
        }
        for (n, &i) in batch.events.iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            body.push_str(&self.events[i].json);
        }
        if !bare {
            body.push(']');
        }
        Delivery { at_ms, batch_id: batch.id, attempt: batch.attempt, body: body.into_bytes(), ids }
    }

    fn refused(&mut self, at_ms: i64, mut batch: Batch) {
        let wait = (self.params.push_retry_base_ms.max(1) << batch.attempt.min(20)).min(RETRY_MAX_MS);
        batch.attempt += 1;
        self.stats.retries += 1;
        self.queued.insert((at_ms + wait, batch.id), batch);
    }

    /// The receiver's answer to the batch in flight. Returns false (and does nothing) for any other id.
    pub fn acknowledge(&mut self, batch_id: u64, accepted: bool) -> bool {
        if self.in_flight.as_ref().is_none_or(|(_, _, b)| b.id != batch_id) {
            return false;
        }
        let Some((sent, _, batch)) = self.in_flight.take() else { return false };
        if !accepted {
            self.refused(sent, batch);
            return true;
        }
        for &i in &batch.events {
            *self.accepted.entry(self.events[i].id).or_default() += 1;
        }
        let p = &self.params;
        if p.push_lost_ack_share > 0.0 && self.rng.chance(p.push_lost_ack_share) {
            self.stats.lost_acks += 1;
            self.refused(sent, batch);
        } else if p.push_duplicate_share > 0.0 && self.rng.chance(p.push_duplicate_share) {
            let later = sent + 1 + self.rng.below(self.params.push_duplicate_delay_max_ms.max(1) as u64) as i64;
            let copy = self.new_batch(batch.events);
            self.stats.duplicates += 1;
            self.queued.insert((later, copy.id), copy);
        }
        true
    }
}
