//! Whole histories of the sans-IO counting core (the poll planner, the tally, emnify's clock estimate,
//! pushes into the same tally, crashes and restarts from the state file) against the model of emnify, in
//! simulated time: every history must count exactly, series by series, and no counter may go down.
//!
//! A history is a list of [`Action`]s (polls and deliveries at simulated instants, some of them crashing),
//! decided as it runs ([`run`]) and replayable alone ([`replay`]), so a failing one can be shortened.
//! After the list, a quiet phase (no more arrivals pushed; the streamer drains; time stands still for
//! polls until two succeed) must leave every countable event counted.

use crate::seed::{Params, Seed, Subsystem, HOUR, SECOND};
use crate::truth::{check, CountingRule, Truth};
use crate::world::{Cost, PollEnd, World};

/// Which sources count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The poller alone.
    Poll,
    /// The poller and the Data Streamer receiver, into one tally.
    Both,
    /// The receiver alone.
    Push,
}

/// Where a crash happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// In a poll, after this many requests (0: before the first).
    BeforeRequest(u32),
    /// After counting (a poll's window done, or a push) and before its checkpoint.
    BeforeCheckpoint,
}

/// One step of a history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Poll { at: i64, crash: Option<CrashPoint> },
    Push { at: i64, crash: Option<CrashPoint> },
}

/// How the driver runs the exporter (what [`Params`] does not say: the exporter's side).
#[derive(Debug, Clone, PartialEq)]
pub struct Drive {
    pub mode: Mode,
    /// Between the starts of two polls.
    pub interval_ms: i64,
    /// `--emnify.overlap`, seconds.
    pub overlap_secs: i64,
    /// How long one request takes.
    pub step_ms: i64,
    /// The host's clock minus emnify's (the fallback before any usable `Date`).
    pub host_skew_ms: i64,
    /// `--emnify.lookback`.
    pub lookback_ms: i64,
    /// The first poll, after the start of the history.
    pub first_poll_after_ms: i64,
    /// `--webhook.remember`.
    pub remember_pushed_ms: i64,
    /// Crashes at most (each with `Params::crash_share` per action); > 0 gives the process a state file.
    pub max_crashes: u32,
    /// How long a crashed process stays down.
    pub downtime_ms: i64,
    /// With a state file, a poll also checkpoints after every this many requests (`save_every`).
    pub save_every_requests: u32,
}

impl Drive {
    /// Polls every 10 s with a 100 s overlap, requests of 20 ms, no lookback, no crashes.
    pub fn calm(mode: Mode) -> Drive {
        Drive {
            mode,
            interval_ms: 10 * SECOND,
            overlap_secs: 100,
            step_ms: 20,
            host_skew_ms: 0,
            lookback_ms: 0,
            first_poll_after_ms: 10 * SECOND,
            remember_pushed_ms: HOUR,
            max_crashes: 0,
            downtime_ms: 0,
            save_every_requests: 5,
        }
    }
}

/// A failing history.
#[derive(Debug, Clone)]
pub struct Failure {
    pub diff: String,
    pub actions: Vec<Action>,
}

/// Runs one history, deciding its actions as it goes; `Err` holds the diff and the actions taken.
pub fn run(seed: u64, params: &Params, drive: &Drive) -> Result<Cost, Failure> {
    let mut world = World::new(seed, params.clone(), drive.clone());
    let mut crashes = Seed(seed).rng(Subsystem::Crashes);
    let end = params.start_ms + params.history_ms;
    let mut next_poll = (drive.mode != Mode::Push).then_some(params.start_ms + drive.first_poll_after_ms);
    let mut actions = Vec::new();
    for _ in 0..10_000_000 {
        let horizon = next_poll.unwrap_or(world.t + drive.interval_ms).min(end);
        let due = world.feed_until(horizon);
        let mut crash = None;
        if world.cost.crashes < u64::from(drive.max_crashes) && crashes.chance(params.crash_share) {
            crash = Some(match crashes.below(4) {
                0 => CrashPoint::BeforeCheckpoint,
                n => CrashPoint::BeforeRequest(n as u32 - 1),
            });
        }
        let action = match (due, next_poll) {
            (Some(due), _) if due <= horizon && due < end => {
                let crash = crash.map(|_| CrashPoint::BeforeCheckpoint);
                Action::Push { at: due.max(world.t), crash }
            }
            (_, Some(at)) if at < end => Action::Poll { at: at.max(world.t), crash },
            (_, None) if horizon < end => {
                world.t = horizon;
                continue;
            }
            _ => break,
        };
        let polls = world.cost.polls;
        world.apply(&action);
        actions.push(action);
        if let (Action::Poll { at, .. }, Some(next)) = (action, next_poll.as_mut()) {
            debug_assert_eq!(world.cost.polls, polls + 1);
            *next = (at + drive.interval_ms).max(world.t);
        }
    }
    finish(seed, &mut world).map_err(|diff| Failure { diff, actions })
}

/// Replays a list of actions (a whole history, or a shortened one), then the quiet phase.
pub fn replay(seed: u64, params: &Params, drive: &Drive, actions: &[Action]) -> Result<Cost, String> {
    let mut world = World::new(seed, params.clone(), drive.clone());
    for action in actions {
        world.apply(action);
    }
    finish(seed, &mut world)
}

/// The quiet phase, then the checks.
fn finish(seed: u64, world: &mut World) -> Result<Cost, String> {
    // The Data Streamer delivers what it still holds (retries, duplicates, replays); nothing new arrives.
    for _ in 0..1_000_000 {
        let Some(due) = world.streamer.as_ref().and_then(|s| s.next_due_ms()) else { break };
        world.t = world.t.max(due);
        world.push(false, None);
    }
    // Time stands still for the last polls; once two have succeeded (failures still come, as drawn: a
    // failed poll is tried again, as the loop would), every event must have been read.
    if world.drive.mode != Mode::Push {
        let mut succeeded = 0;
        for _ in 0..1_000 {
            succeeded += u32::from(world.poll(0, None) == PollEnd::Done);
            if succeeded == 2 {
                break;
            }
        }
        if succeeded < 2 {
            return Err(format!("seed {seed}: the last polls never succeeded"));
        }
    }
    if !world.checkpoint() {
        return Err(format!("seed {seed}: the last checkpoint failed"));
    }
    let truth = Truth::with_pushes(world.emnify.events(), &rule(world), &world.pushes);
    let floor = world.floor_ms.unwrap_or(i64::MAX);
    world.cost.events =
        world.emnify.events().iter().filter(|e| e.arrival_ms <= world.t && e.timestamp_ms >= floor).count() as u64
            + world.pushes.len() as u64;
    let text = String::from_utf8(world.metrics.encode()).map_err(|e| e.to_string())?;
    let mut diff = check(&text, &truth).err().into_iter().chain(world.violations.iter().cloned()).peekable();
    if diff.peek().is_none() {
        return Ok(world.cost);
    }
    let mut diff: Vec<String> = diff.collect();
    diff.extend(by_event(world, &truth));
    Err(format!("seed {seed} ({}):\n{}", describe(&world.params, &world.drive), diff.join("\n")))
}

/// The events counted twice, and countable events never counted (a few of each), as the tally noted them.
fn by_event(world: &World, truth: &Truth) -> Vec<String> {
    let rule = rule(world);
    let mut lines = Vec::new();
    let show = |id: i64| {
        let e = world.emnify.event(id).expect("a known event");
        format!(
            "id {id} stamped {} arrived {} ({:?}, pushes {:?}): counted at {:?}",
            e.timestamp_ms,
            e.arrival_ms,
            rule.classify(e),
            world.pushes.get(&id),
            world.counted.get(&id)
        )
    };
    let twice: Vec<i64> = world.counted.iter().filter(|(_, c)| c.len() > 1).map(|(id, _)| *id).collect();
    lines.extend(twice.iter().take(5).map(|id| format!("counted twice: {}", show(*id))));
    let never = world.emnify.events().iter().filter(|e| {
        let pushed = world.pushes.get(&e.id) == Some(&crate::truth::PushFate::Counts);
        (pushed || rule.classify(e) == crate::truth::Class::Countable) && !world.counted.contains_key(&e.id)
    });
    lines.extend(never.take(5).map(|e| format!("never counted: {}", show(e.id))));
    let _ = truth;
    lines
}

/// Which events the history must have counted (see [`crate::truth`]).
fn rule(world: &World) -> CountingRule {
    let (p, d) = (&world.params, &world.drive);
    // emnify's `Date` constantly ahead by S: windows run S ahead, so an event arriving later than the
    // overlap minus S after its time is behind every window that reads after its arrival.
    let ahead = if p.date.skew_window.is_none() { p.date.skew_ms.max(0) } else { 0 };
    CountingRule {
        overlap_ms: Some((d.overlap_secs - 1) * SECOND - d.interval_ms - ahead),
        // Behind: the last window ends before emnify's real now.
        stamp_horizon_ms: world.last_until.map(|u| (u + 1) * SECOND),
        // Stepped back: what only an earlier window reached may or may not have been read.
        reached_until_ms: world.max_until.map(|u| (u + 1) * SECOND),
        // Retention: what expired before the first walk was over may be gone before it was read.
        expired_before_ms: p.retention_ms.and(world.first_poll_requests.last().copied()),
        ..CountingRule::new(world.floor_ms.unwrap_or(i64::MAX), world.t)
    }
}

/// The parameters that shape a history, on one line.
pub fn describe(p: &Params, d: &Drive) -> String {
    let date = &p.date;
    format!(
        "{:?} mode, {} min, {} events/min, late {:.2} up to {} s, stride {}, step back {:.2}, sort {}, per_page {}, \
         counts absent {:.2}, 5xx {:.2}, token expiry {:.3}, retention {:?}; Date skew {} s window {:?}, outliers \
         {:.3} up to {} s, absent {:.2}; host skew {} s; pushes batch {} delay {} ms, lost acks {:.2}, duplicates \
         {:.2} after up to {} s, pauses {:?}, replays {:?}; crashes {:.3} (at most {}, down {} s); interval {} s, \
         overlap {} s, lookback {} s",
        d.mode,
        p.history_ms / 60_000,
        p.events_per_minute,
        p.late_share,
        p.late_max_ms / 1000,
        p.id_stride_max,
        p.step_back_share,
        p.sort_honoured,
        p.per_page_max,
        p.counts_absent_share,
        p.fail_5xx_share,
        p.token_expiry_share,
        p.retention_ms,
        date.skew_ms / 1000,
        date.skew_window,
        date.outlier_share,
        date.outlier_max_ms / 1000,
        date.absent_share,
        d.host_skew_ms / 1000,
        p.push_batch_max,
        p.push_delay_max_ms,
        p.push_lost_ack_share,
        p.push_duplicate_share,
        p.push_duplicate_delay_max_ms / 1000,
        p.pauses,
        p.replays,
        p.crash_share,
        d.max_crashes,
        d.downtime_ms / 1000,
        d.interval_ms / 1000,
        d.overlap_secs,
        d.lookback_ms / 1000,
    )
}
