//! Named regression cases of issue 23's table that concern the counting core, each a history with
//! explicit parameters (from [`Params::calm`]) that must count exactly.

use crate::core::{run, Drive, Mode};
use crate::emnify::Emnify;
use crate::seed::{Params, Replay, Seed, DAY, HOUR, MINUTE, SECOND};
use crate::world::Cost;

fn exact(seed: u64, params: &Params, drive: &Drive) -> Cost {
    match run(seed, params, drive) {
        Ok(cost) => cost,
        Err(failure) => panic!("{}\nactions: {:?}", failure.diff, &failure.actions[..failure.actions.len().min(20)]),
    }
}

/// A proxy or CDN edge with a clock 2 h ahead answers every request for 5 s (polls every second): the
/// windows never move ahead, and all 600 events of the 10 minutes are counted.
#[test]
fn date_two_hours_ahead_on_every_answer_for_five_seconds() {
    let mut p = Params::calm();
    p.history_ms = 10 * MINUTE;
    p.events_per_minute = 60.0;
    p.late_share = 0.2;
    p.late_max_ms = 30 * SECOND;
    p.date.skew_ms = 2 * HOUR;
    p.date.skew_window = Some((p.start_ms + 2 * MINUTE, p.start_ms + 2 * MINUTE + 5 * SECOND));
    for mode in [Mode::Poll, Mode::Both] {
        let drive = Drive { interval_ms: SECOND, ..Drive::calm(mode) };
        let cost = exact(1, &p, &drive);
        assert!(cost.events > 500, "{cost:?}");
    }
}

/// One answer (or a few) says `Date: Thu, 01 Jan 1970`: never used, never shown as the offset, nothing
/// lost.
#[test]
fn a_date_in_1970_is_ignored() {
    let mut p = Params::calm();
    p.history_ms = 10 * MINUTE;
    p.date.outlier_share = 0.02;
    p.date.outlier_max_ms = 0;
    let drive = Drive::calm(Mode::Poll);
    let seed = (1..200)
        .find(|&seed| {
            let mut world = crate::world::World::new(seed, p.clone(), drive.clone());
            while world.t < p.start_ms + p.history_ms && world.epoch_readings == 0 {
                world.t += drive.interval_ms;
                world.poll(drive.step_ms, None);
            }
            world.epoch_readings > 0
        })
        .expect("a seed with a 1970 reading");
    exact(seed, &p, &drive);
    let mut world = crate::world::World::new(seed, p.clone(), drive.clone());
    while world.t < p.start_ms + p.history_ms {
        world.t += drive.interval_ms;
        world.poll(drive.step_ms, None);
    }
    assert!(world.epoch_readings > 0);
    assert!(world.max_offset_ms < 2 * SECOND, "the offset showed {} ms", world.max_offset_ms);
}

/// `both` mode: a paused Data Streamer keeps its backlog and delivers it on resume, historic data first:
/// 5,000 events polled as they came are pushed again up to 12.5 minutes later (and, with a 1-minute
/// overlap, 2,000 up to 150 s later). Each is counted once.
#[test]
fn both_mode_a_paused_streams_backlog_is_not_counted_again() {
    for (overlap_secs, pause_ms, per_minute) in [(100, 12 * MINUTE + 30 * SECOND, 400.0), (60, 150 * SECOND, 800.0)] {
        let mut p = Params::calm();
        p.history_ms = pause_ms + 2 * MINUTE;
        p.events_per_minute = per_minute;
        p.pauses.push(crate::seed::Pause { start_ms: p.start_ms, end_ms: p.start_ms + pause_ms });
        let drive = Drive { overlap_secs, ..Drive::calm(Mode::Both) };
        let cost = exact(2, &p, &drive);
        assert!(cost.deliveries > 10, "{cost:?}");
    }
}

/// `push` mode (the tally alone, `--webhook.remember` 1 h): the same 5,000 events delivered again 15 to 20
/// minutes later are counted once.
#[test]
fn push_mode_a_re_delivery_fifteen_minutes_later_is_not_counted_again() {
    let mut p = Params::calm();
    p.history_ms = 25 * MINUTE;
    p.events_per_minute = 1000.0;
    let span_end = p.start_ms + 5 * MINUTE;
    p.replays.push(Replay { at_ms: p.start_ms + 20 * MINUTE, span_start_ms: p.start_ms, span_end_ms: span_end });
    let drive = Drive { remember_pushed_ms: HOUR, ..Drive::calm(Mode::Push) };
    let cost = exact(3, &p, &drive);
    assert!(cost.events > 4_000 + 5_000, "{cost:?}");
}

/// `--emnify.lookback 30d` with emnify's 30-day retention: 300 and more records stamped at the floor
/// expire between the first walk's first and second page. Every survivor is counted, whether emnify
/// honours `sort` or not.
#[test]
fn records_expiring_mid_walk_lose_no_survivor() {
    for sort_honoured in [true, false] {
        let mut p = Params::calm();
        p.retention_ms = Some(30 * DAY);
        p.events_per_minute = 0.1;
        p.burst_share = 0.002;
        p.burst_max = 600;
        p.ingest_lag_max_ms = 0;
        p.whole_second_share = 1.0;
        p.per_page_max = 250;
        p.sort_honoured = sort_honoured;
        p.history_ms = 30 * DAY + 10 * MINUTE;
        // A seed whose first arrival, at the start, is a burst of at least 300.
        let seed = (0..20_000)
            .find(|&s| {
                let mut emnify = Emnify::new(Seed(s), p.clone());
                emnify.advance_to(p.start_ms);
                emnify.events().len() >= 300
            })
            .expect("a seed with a burst at the start");
        // The first request is answered 10 ms before they expire, the second 10 ms after.
        let drive = Drive { lookback_ms: 30 * DAY, first_poll_after_ms: 30 * DAY - 30, ..Drive::calm(Mode::Poll) };
        let mut world = crate::world::World::new(seed, p.clone(), drive.clone());
        world.t = p.start_ms + drive.first_poll_after_ms;
        world.poll(drive.step_ms, None);
        let expiry = p.start_ms + 30 * DAY;
        let requests = &world.first_poll_requests;
        assert!(requests.len() >= 2 && requests[0] < expiry && expiry <= requests[1], "{requests:?}");
        exact(seed, &p, &drive);
    }
}
