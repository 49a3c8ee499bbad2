//! What goes into counting a batch and what comes out: the settings, where a batch came from, its counts.

use std::time::Duration;

/// How events are counted, whichever way they arrive.
#[derive(Debug, Clone)]
pub struct TallySettings {
    /// History to count at start-up; zero means only events from now on.
    pub lookback: Duration,
    /// Upper bound of the dedup memory.
    pub max_remembered_ids: usize,
    /// Longest new counts wait unpublished when nothing needs saving.
    pub publish_every: Duration,
    /// With a state file: longest new counts wait unsaved (so unpublished) during a long poll.
    pub save_every: Duration,
    /// Without a poller (push only): how long a pushed id is remembered; no poll window forgets it, the
    /// receiver's upkeep does.
    pub remember_pushed: Duration,
    /// Without a poller (push only): `emnify_up` turns 0 when no push was accepted for this long (the
    /// receiver's upkeep watches it).
    pub push_stale_after: Duration,
    /// A poller counts into this tally too (`both` mode): a pushed id is then remembered until polling
    /// has read past its payload time, however far emnify's `Date` runs behind its event times (up to
    /// [`PUSH_REACH_WITH_POLLING`]).
    pub polls: bool,
}

/// With a poller, how far after its arrival a pushed id's payload time is believed for remembering it:
/// polling reaches that time only as emnify's `Date` does, which may run behind the events' own times
/// (a proxy with a wrong clock). Beyond it a payload time is absurd (a year 2099), and must not pin the
/// dedup memory for good.
pub const PUSH_REACH_WITH_POLLING: Duration = Duration::from_secs(24 * 3600);

impl Default for TallySettings {
    fn default() -> Self {
        TallySettings {
            lookback: Duration::ZERO,
            max_remembered_ids: 1_000_000,
            publish_every: Duration::from_millis(100),
            save_every: Duration::from_secs(1),
            remember_pushed: Duration::from_secs(3600),
            push_stale_after: Duration::from_secs(3600),
            polls: false,
        }
    }
}

/// What [`Tally::ingest`](super::Tally::ingest) did with a batch, and what the caller must do next
/// (after letting go of the count lock); [`SharedTally::ingest`](super::SharedTally::ingest) does it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingested {
    pub counts: BatchCounts,
    /// True when the batch must be saved before it is acknowledged (a push, with a state file): if
    /// [`checkpoint`](super::checkpoint) then fails, the sender must not be told it arrived. It sends again, and the ids
    /// counted now are remembered, so nothing is counted twice.
    pub must_save: bool,
    /// True when a [`checkpoint`](super::checkpoint) is due now (always when `must_save`).
    pub checkpoint_due: bool,
}

/// What counting one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub received: u64,
    pub counted: u64,
    pub duplicates: u64,
    pub unreadable: u64,
    pub skipped: u64,
    /// Records never received before: counted events and unreadable records seen for the first time
    /// (records that leave no fingerprint are not among them: they cannot be told apart).
    pub first_seen: u64,
}

impl BatchCounts {
    pub fn add(&mut self, other: BatchCounts) {
        self.received += other.received;
        self.counted += other.counted;
        self.duplicates += other.duplicates;
        self.unreadable += other.unreadable;
        self.skipped += other.skipped;
        self.first_seen += other.first_seen;
    }
}

/// Records a batch held that were received for the first time: event ids, and fingerprints of
/// unreadable records (see [`Tally::ingest_noting`](super::Tally::ingest_noting)).
#[derive(Debug, Default)]
pub struct FirstSeen {
    pub ids: Vec<u64>,
    pub unreadable: Vec<u64>,
    /// Polled events counted before from a push, read by a poll for the first time.
    pub polled_after_push: u64,
}

impl FirstSeen {
    /// Records of a page no poll had read before: new ids, new unreadable records, and ids only pushed
    /// so far (what a walk counts towards emnify's count).
    pub fn new_to_polling(&self) -> u64 {
        (self.ids.len() + self.unreadable.len()) as u64 + self.polled_after_push
    }
}

/// Where a batch came from; it decides how event times are treated.
///
/// An event's time decides how long its id is remembered and moves
/// `emnify_last_event_timestamp_seconds`; it is never the payload's timestamp alone, which can be
/// absent, garbled or absurd (1970, 2099).
#[derive(Debug, Clone, Copy)]
pub enum Origin {
    /// A page of the poll window `[from_millis, until_millis]` (emnify's clock). emnify put the event
    /// in that window by its own notion of time, so its time is the payload's when that lies in the
    /// window, else the window's end (the latest it can be).
    Poll { from_millis: i64, until_millis: i64 },
    /// A Data Streamer push arriving at `arrival_millis` (emnify's clock where known, else the host's):
    /// every new id counts. Its id is remembered from its payload time clamped to at least its arrival
    /// and at most [`TallySettings::remember_pushed`] after it (with a poller, at least
    /// [`PUSH_REACH_WITH_POLLING`]); its time is at most its arrival.
    Push { arrival_millis: i64 },
}
