//! Unit tests of the tally: restore, group commit, the handle, and what pushes of polled or pushed events count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{checkpoint, lock, NotSaved, Origin, Tally, TallySettings};
use crate::emnify::decode_event_list;
use crate::metrics::Metrics;
use crate::state::StateStore;
use crate::timefmt::now_millis;

fn exposition(metrics: &Metrics) -> String {
    String::from_utf8(metrics.encode()).unwrap()
}

/// Pushed events of a type the exporter has no name for are counted as `unknown`; once the name is
/// learned (the poller reads emnify's catalogue) it is saved, and after a restart the series is
/// named, its value kept.
#[test]
fn a_type_named_after_its_first_events_is_named_on_restore() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let first = Arc::new(Metrics::new());
    let tally = Tally::new(first.clone(), TallySettings::default()).shared();
    tally.use_state(StateStore::new(&path, "http://api")).unwrap();
    let body = br#"[{"id": 1, "event_type": {"id": 902}}, {"id": 2, "event_type": {"id": 902}}]"#;
    let events = decode_event_list(body).unwrap();
    let ingested = lock(&tally).ingest(events, Origin::Push { arrival_millis: now_millis() }, Instant::now());
    assert!(ingested.must_save && ingested.finish(&tally) && ingested.counts.counted == 2);
    assert!(exposition(&first).contains(r#"event_type="unknown",event_type_id="902""#));
    first.events.set_event_type_names([(902, "Added by emnify".to_string())]);
    assert!(checkpoint(&tally));

    let second = Arc::new(Metrics::new());
    let restarted = Tally::new(second.clone(), TallySettings::default()).shared();
    restarted.use_state(StateStore::new(&path, "http://api")).unwrap();
    let text = exposition(&second);
    let named = text.lines().find(|l| l.contains(r#"event_type="Added by emnify",event_type_id="902""#));
    assert!(named.is_some_and(|l| l.ends_with(" 2")), "{text}");
    assert!(!text.contains(r#"event_type="unknown",event_type_id="902""#), "{text}");
    assert_eq!(second.events.event_type_name(902), "Added by emnify");
}

/// Pushes that save concurrently (group commit, writes outside the count lock) are all saved before
/// they are acknowledged: a restart from the file has every one of them, and what scrapes saw is
/// never more than what was saved.
#[test]
fn concurrent_pushes_are_all_saved_before_they_are_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let metrics = Arc::new(Metrics::new());
    let tally = Tally::new(metrics.clone(), TallySettings::default()).shared();
    tally.use_state(StateStore::new(&path, "http://api")).unwrap();
    let pushers: Vec<_> = (0..8u64)
        .map(|pusher| {
            let tally = tally.clone();
            std::thread::spawn(move || {
                for batch in 0..20u64 {
                    let id = pusher * 1000 + batch + 1;
                    let body = format!(r#"[{{"id": {id}, "event_type": {{"id": 3}}}}]"#);
                    let events = decode_event_list(body.as_bytes()).unwrap();
                    let counted = tally.ingest(events, Origin::Push { arrival_millis: now_millis() });
                    assert!(counted.is_ok(), "push {id} not acknowledged");
                }
            })
        })
        .collect();
    for pusher in pushers {
        pusher.join().unwrap();
    }
    assert_eq!(metrics.status().events_counted, 160);

    let restored = Arc::new(Metrics::new());
    let restarted = Tally::new(restored.clone(), TallySettings::default()).shared();
    restarted.use_state(StateStore::new(&path, "http://api")).unwrap();
    assert_eq!(lock(&restarted).remembered(), 160);
    let text = exposition(&restored);
    let total: f64 = text
        .lines()
        .filter(|l| l.starts_with("emnify_events_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 160.0, "{text}");
}

fn events(ids: std::ops::Range<u64>, second: i64) -> String {
    let list: Vec<String> = ids
        .map(|id| {
            let stamp = crate::timefmt::format_event_timestamp(second * 1000);
            format!(r#"{{"id": {id}, "timestamp": "{stamp}", "event_type": {{"id": 3}}}}"#)
        })
        .collect();
    format!("[{}]", list.join(","))
}

fn skipped(metrics: &Metrics, reason: &str) -> f64 {
    let text = exposition(metrics);
    let line = format!(r#"emnify_events_skipped_total{{reason="{reason}"}} "#);
    text.lines().find_map(|l| l.strip_prefix(&line)?.parse().ok()).unwrap_or(-1.0)
}

/// `both` mode: events polled, forgotten once no window reaches them, then pushed again (a paused Data
/// Streamer's backlog, days later): never counted twice, each skipped once as `polled_already`.
#[test]
fn a_push_of_what_polling_read_completely_is_never_counted_again() {
    let metrics = Arc::new(Metrics::new());
    let mut tally = Tally::new(metrics.clone(), TallySettings::default());
    let t = 1_800_000_000;
    tally.floor_from(t * 1000 - 60_000);
    let body = events(1..5_001, t - 30);
    let poll = Origin::Poll { from_millis: (t - 60) * 1000, until_millis: t * 1000 + 999 };
    assert_eq!(tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll, Instant::now()).counts.counted, 5_000);
    // Later polls moved on: no window reaches back to these events, their ids are forgotten.
    tally.window_done(t + 600, (t + 10) * 1000, Some((t + 600) * 1000));
    assert_eq!(tally.remembered(), 0);
    let push = Origin::Push { arrival_millis: (t + 720) * 1000 };
    let again = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push, Instant::now()).counts;
    assert_eq!((again.counted, again.skipped), (0, 5_000), "{again:?}");
    let shared = tally.shared();
    assert!(checkpoint(&shared));
    assert_eq!(skipped(&metrics, "polled_already"), 5_000.0);
    let mut tally = lock(&shared);
    // Re-delivered once more: skipped events are not reported twice either.
    let third = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push, Instant::now()).counts;
    assert_eq!((third.counted, third.skipped), (0, 0), "{third:?}");
    // A pushed event stamped after what polling read is new, and counted.
    let fresh = events(9_000..9_003, t + 700);
    assert_eq!(tally.ingest(decode_event_list(fresh.as_bytes()).unwrap(), push, Instant::now()).counts.counted, 3);
}

/// `push` mode: the same batch delivered again 15 minutes later is a duplicate within
/// `--webhook.remember`; once that has passed, [`Tally::forget_before`] (run by the receiver's upkeep,
/// `Receiver::maintain`) lets go.
#[test]
fn a_push_delivered_again_within_the_remember_horizon_is_a_duplicate() {
    let metrics = Arc::new(Metrics::new());
    let settings = TallySettings { remember_pushed: Duration::from_secs(3600), ..TallySettings::default() };
    let mut tally = Tally::new(metrics, settings);
    let t = 1_800_000_000;
    let body = events(1..5_001, t);
    let first = tally.ingest(
        decode_event_list(body.as_bytes()).unwrap(),
        Origin::Push { arrival_millis: t * 1000 },
        Instant::now(),
    );
    assert_eq!(first.counts.counted, 5_000);
    // What the receiver's upkeep does 15 minutes later: forget what is older than now minus the horizon.
    tally.forget_before((t + 900 - 3600) * 1000);
    let push = Origin::Push { arrival_millis: (t + 900) * 1000 };
    let again = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), push, Instant::now()).counts;
    assert_eq!((again.counted, again.duplicates), (0, 5_000), "{again:?}");
}

/// `both` mode with emnify's `Date` (so the poll windows and the push arrivals) 2 h behind the events'
/// own times: a pushed id is remembered until polling has read past its payload time, not only until
/// `remember_pushed` after its arrival, so the poll that reads it 2 h later finds it a duplicate.
#[test]
fn with_a_poller_a_pushed_id_is_kept_until_polling_reaches_its_time() {
    let settings = TallySettings { remember_pushed: Duration::from_secs(900), polls: true, ..TallySettings::default() };
    let mut tally = Tally::new(Arc::new(Metrics::new()), settings);
    let t = 1_800_000_000;
    let behind = 7_200;
    tally.poll_start((t - behind) * 1000, 0, true);
    let body = events(1..11, t);
    let pushed = tally.ingest(
        decode_event_list(body.as_bytes()).unwrap(),
        Origin::Push { arrival_millis: (t - behind) * 1000 },
        Instant::now(),
    );
    assert_eq!(pushed.counts.counted, 10);
    // Polling's windows, on emnify's `Date`, reach the events' time 2 h later; meanwhile they forgot
    // everything up to 100 s before their own start, long after the push's arrival plus 15 min.
    tally.window_done(t - 10, (t - 110) * 1000, Some((t - 10) * 1000));
    let poll = Origin::Poll { from_millis: (t - 100) * 1000, until_millis: (t + 10) * 1000 };
    let polled = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll, Instant::now()).counts;
    assert_eq!((polled.counted, polled.duplicates), (0, 10), "{polled:?}");
}

/// The handle's one call: a push whose save fails is counted but refused (`NotSaved`, so the sender
/// sends it again, and it is then a duplicate); a poll page is never refused for a failed save. A
/// push's `counted` hook runs before its checkpoint, so what it records is published with the counts.
#[test]
fn the_handle_refuses_only_a_push_whose_save_failed() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    // Every batch asks for a checkpoint, polls included.
    let settings = TallySettings { save_every: Duration::ZERO, ..TallySettings::default() };
    let tally = Tally::new(metrics.clone(), settings).shared();
    tally.use_state(StateStore::new(dir.path().join("state.json"), "http://api")).unwrap();
    let body = br#"[{"id": 1, "event_type": {"id": 3}}, {"id": 2, "event_type": {"id": 3}}]"#;
    let mut hooked = None;
    let counts = tally.ingest_push(decode_event_list(body).unwrap(), |counts| {
        hooked = Some(*counts);
        metrics.push.record_accepted(counts.received);
    });
    assert_eq!(counts.as_ref().ok(), hooked.as_ref());
    assert!(exposition(&metrics).contains("emnify_push_events_total 2"), "published with the counts");

    // The state directory is gone: nothing can be saved any more.
    drop(dir);
    assert!(!tally.checkpoint());
    let again = tally.ingest_push(decode_event_list(body).unwrap(), |_| {});
    let Err(NotSaved(not_saved)) = again else { panic!("acknowledged unsaved: {again:?}") };
    assert_eq!((not_saved.received, not_saved.duplicates), (2, 2));
    let now = now_millis();
    let page = br#"[{"id": 3, "event_type": {"id": 3}}]"#;
    let poll = Origin::Poll { from_millis: now - 60_000, until_millis: now };
    let (counts, first_seen) = tally.ingest_noting(decode_event_list(page).unwrap(), poll).unwrap();
    assert_eq!((counts.counted, first_seen.ids), (1, vec![3]));
}

/// `both` mode: an event counted from a push is new to polling when a poll first reads it (so the
/// poll's walk can stop once it found what emnify's count says is new), and only then.
#[test]
fn a_pushed_event_is_new_to_polling_once() {
    let settings = TallySettings { polls: true, ..TallySettings::default() };
    let tally = Tally::new(Arc::new(Metrics::new()), settings).shared();
    let t = 1_800_000_000;
    let poll = Origin::Poll { from_millis: (t - 60) * 1000, until_millis: t * 1000 + 999 };
    tally.lock().floor_from((t - 60) * 1000);
    let earlier = events(500..501, t - 10);
    tally.ingest_noting(decode_event_list(earlier.as_bytes()).unwrap(), poll).unwrap();
    tally.lock().window_done(t - 10, (t - 60) * 1000, Some(t * 1000));
    let body = events(1..11, t - 5);
    let pushed = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), Origin::Push { arrival_millis: t * 1000 });
    assert_eq!(pushed.map(|c| c.counted).ok(), Some(10));
    let (counts, first) = tally.ingest_noting(decode_event_list(body.as_bytes()).unwrap(), poll).unwrap();
    assert_eq!((counts.duplicates, first.ids.len(), first.polled_after_push), (10, 0, 10));
    let (_, again) = tally.ingest_noting(decode_event_list(body.as_bytes()).unwrap(), poll).unwrap();
    assert_eq!(again.polled_after_push, 0, "read by a poll before");
}

/// A push before any poll window has closed (the first one, on an unconfirmed clock, closes none) is
/// new to polling too when a poll first reads it: else the poll's `read` stays short of emnify's count
/// and every later walk goes to the end (long-run seed 325690).
#[test]
fn a_push_before_any_window_closed_is_new_to_polling() {
    let settings = TallySettings { polls: true, ..TallySettings::default() };
    let tally = Tally::new(Arc::new(Metrics::new()), settings).shared();
    let t = 1_800_000_000;
    tally.lock().floor_from((t - 60) * 1000);
    tally.lock().window_done(t - 60, (t - 60) * 1000, None);
    let body = events(1..4, t - 5);
    let pushed = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), Origin::Push { arrival_millis: t * 1000 });
    assert_eq!(pushed.map(|c| c.counted).ok(), Some(3));
    let poll = Origin::Poll { from_millis: (t - 60) * 1000, until_millis: t * 1000 + 999 };
    let (_, first) = tally.ingest_noting(decode_event_list(body.as_bytes()).unwrap(), poll).unwrap();
    assert_eq!(first.polled_after_push, 3);
}

/// Until emnify's clock is confirmed by readings that agree over time, a window that may have run ahead
/// of emnify's real time forgets nothing closer to the newest polled event than its own reach.
#[test]
fn a_window_on_an_unconfirmed_clock_forgets_only_behind_what_was_polled() {
    let mut tally = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    let t = 1_800_000_000;
    tally.floor_from((t - 60) * 1000);
    let poll = Origin::Poll { from_millis: (t - 60) * 1000, until_millis: t * 1000 + 999 };
    tally.ingest(decode_event_list(events(1..11, t - 5).as_bytes()).unwrap(), poll, Instant::now());
    // The clock ran two hours ahead: the window ended at t + 7200 and reached back 100 s.
    tally.window_done(t + 7_200, (t + 7_100) * 1000, None);
    assert_eq!(tally.remembered(), 10, "nothing polled is forgotten on a clock that may be wrong");
    // Confirmed, but stepped back to the real time since the window was planned: it ran ahead.
    tally.window_done(t + 7_200, (t + 7_100) * 1000, Some(t * 1000));
    assert_eq!(tally.remembered(), 10, "nothing is forgotten by a window that ends after the confirmed now");
    tally.window_done(t + 7_200, (t + 7_100) * 1000, Some((t + 7_200) * 1000));
    assert_eq!(tally.remembered(), 0, "a confirmed clock forgets as its windows say");
}

/// The first poll fixed the start of counting on a clock two hours ahead; once emnify's clock is
/// corrected, the start of counting moves back by the monotonic time since, and the next window reads
/// from there, so nothing after the real start is left out.
#[test]
fn the_start_of_counting_follows_a_clock_stepped_back() {
    let mut tally = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    let t = 1_800_000_000_000;
    let ahead = 2 * 3600 * 1000;
    let (floor, cursor) = tally.poll_start(t + ahead, 0, false);
    assert_eq!((floor, cursor), ((t + ahead) / 1000, None));
    tally.window_done((t + ahead) / 1000, t + ahead - 100_000, None);
    // 70 s later the clock is right again.
    let (floor, cursor) = tally.poll_start(t + 70_000, 70_000, true);
    assert_eq!(floor, t / 1000, "back to the real start");
    assert_eq!(cursor, None, "the next window reads from the start of counting");
    // Once corrected, it stays.
    tally.window_done((t + 80_000) / 1000, t - 20_000, Some(t + 80_000));
    assert_eq!(tally.poll_start(t + 90_000, 90_000, true).0, t / 1000);
}

/// A start of counting fixed on a confirmed clock is settled: when the windows later run ahead (a
/// restart with no `Date` yet and a host clock ahead) and the clock is stepped back, it stays where it
/// was, even across a restart from the state file, and never reaches behind the dedup memory.
#[test]
fn a_settled_start_of_counting_never_moves() {
    let mut tally = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    let t = 1_800_000_000_000;
    assert_eq!(tally.poll_start(t, 0, true).0, t / 1000);
    // The dedup memory reaches 50 s behind the start (pushed ids), so only `settled` holds the start.
    tally.window_done(t / 1000 + 10, t - 50_000, Some(t + 10_000));
    let saved = tally.snapshot("http://emnify.test");
    assert!(saved.floor_settled);
    let mut restarted = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    restarted.resume(saved);
    // After the restart the host's clock, 300 s ahead, ran one window ahead.
    let (floor, _) = restarted.poll_start(t + 340_000, 0, false);
    assert_eq!(floor, t / 1000);
    restarted.window_done((t + 340_000) / 1000, t, None);
    let (floor, cursor) = restarted.poll_start(t + 50_000, 10_000, true);
    assert_eq!(floor, t / 1000, "settled: the start of counting stays");
    assert_eq!(cursor, Some((t + 340_000) / 1000), "the planner starts from now again");
}

/// A tally whose start of counting was fixed at `t` (Unix s) on a confirmed clock, with a first window to
/// `t + 40` that counted three events of `t + 30`.
fn settled_with_three_polled(t: i64) -> Tally {
    let mut tally = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    assert_eq!(tally.poll_start(t * 1000, 0, true).0, t);
    let poll = Origin::Poll { from_millis: t * 1000, until_millis: (t + 40) * 1000 };
    let polled = tally.ingest(decode_event_list(events(1..4, t + 30).as_bytes()).unwrap(), poll, Instant::now());
    assert_eq!(polled.counts.counted, 3);
    tally.window_done(t + 40, t * 1000, Some((t + 40) * 1000));
    tally
}

/// When windows ran ahead of a settled start and the clock is stepped back, the next window goes back
/// from the newest event polled (what the windows that ran ahead really read up to), not from the
/// corrected now: an event that arrived late into that stretch is still read (long-run seed 115686).
#[test]
fn after_windows_ran_ahead_reading_resumes_from_the_newest_polled_event() {
    let t = 1_800_000_000;
    let mut tally = settled_with_three_polled(t);
    // A wrong `Date` ran the next window 2,000 s ahead; the clock is stepped back 50 s later.
    tally.window_done(t + 2050, (t + 1950) * 1000, None);
    let (floor, cursor) = tally.poll_start((t + 100) * 1000, 100_000, true);
    assert_eq!(floor, t, "settled: the start of counting stays");
    assert_eq!(cursor, Some(t + 30), "reading goes back from the newest event polled, not from now");
}

/// The newest event polled is saved: after a restart, windows that ran ahead on a host clock ahead
/// (no `Date` yet) still go back from it once the clock is stepped back, so events that arrived late
/// into the stretch they did not really read are read (long-run seed 267018: lost in `both` mode, their
/// pushes skipped as polled already).
#[test]
fn the_newest_polled_event_survives_a_restart() {
    let t = 1_800_000_000;
    let tally = settled_with_three_polled(t);
    // Restarted with the host's clock 195 s ahead and no `Date`: one window runs ahead, and again.
    let mut restarted = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    restarted.resume(tally.snapshot("http://emnify.test"));
    restarted.poll_start((t + 245) * 1000, 0, false);
    restarted.window_done(t + 245, (t + 145) * 1000, None);
    let mut again = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    again.resume(restarted.snapshot("http://emnify.test"));
    let (floor, cursor) = again.poll_start((t + 90) * 1000, 0, true);
    assert_eq!(floor, t, "settled: the start of counting stays");
    assert_eq!(cursor, Some(t + 30), "reading goes back from the newest event polled before the restarts");
}

/// A pushed id kept with a time on a clock that was wrong then (a first outlying `Date`) is kept as
/// long as polling still reads it: a poll that reads it again keeps it until its polled time
/// (long-run seed 241454: it was forgotten and counted again once the clock was corrected).
#[test]
fn an_id_polled_again_is_kept_until_its_polled_time() {
    let settings = TallySettings { polls: true, ..TallySettings::default() };
    let mut tally = Tally::new(Arc::new(Metrics::new()), settings);
    let t = 1_800_000_000;
    let body = events(1..4, t);
    // The push arrived while emnify's clock, as estimated, was 200 days behind.
    let wrong = (t - 200 * 86_400) * 1000;
    tally.poll_start(wrong, 0, false);
    let pushed = tally.ingest(
        decode_event_list(body.as_bytes()).unwrap(),
        Origin::Push { arrival_millis: wrong },
        Instant::now(),
    );
    assert_eq!(pushed.counts.counted, 3);
    let poll = || Origin::Poll { from_millis: (t - 100) * 1000, until_millis: (t + 10) * 1000 };
    let polled = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll(), Instant::now()).counts;
    assert_eq!(polled.duplicates, 3);
    // The clock is corrected; windows now forget everything before 100 s ago.
    tally.window_done(t + 10, (t - 90) * 1000, Some((t + 10) * 1000));
    let again = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll(), Instant::now()).counts;
    assert_eq!((again.counted, again.duplicates), (0, 3), "{again:?}");
}

/// A push while emnify's clock is unconfirmed (its arrival read on a first `Date` 68 days behind) is
/// kept at least to its payload time: once the clock is corrected and the windows forget what lies
/// behind them, polling still finds the id and does not count it again (long-run seed 226558).
#[test]
fn a_push_on_an_unconfirmed_clock_is_kept_to_its_payload_time() {
    let settings = TallySettings { polls: true, ..TallySettings::default() };
    let mut tally = Tally::new(Arc::new(Metrics::new()), settings);
    let t = 1_800_000_000;
    let wrong = (t - 68 * 86_400) * 1000;
    tally.poll_start(wrong, 0, false);
    let body = events(1..4, t);
    let pushed = tally.ingest(
        decode_event_list(body.as_bytes()).unwrap(),
        Origin::Push { arrival_millis: wrong },
        Instant::now(),
    );
    assert_eq!(pushed.counts.counted, 3);
    // The clock is corrected; the windows forget everything before 100 s before now.
    tally.poll_start((t - 20) * 1000, 10_000, true);
    tally.window_done(t - 20, (t - 120) * 1000, Some((t - 20) * 1000));
    let poll = Origin::Poll { from_millis: (t - 120) * 1000, until_millis: (t + 10) * 1000 };
    let polled = tally.ingest(decode_event_list(body.as_bytes()).unwrap(), poll, Instant::now()).counts;
    assert_eq!((polled.counted, polled.duplicates), (0, 3), "{polled:?}");
}

/// An unsettled start moves back no further than the dedup memory reaches.
#[test]
fn an_unsettled_start_moves_back_no_further_than_the_dedup_memory() {
    let mut tally = Tally::new(Arc::new(Metrics::new()), TallySettings::default());
    let t = 1_800_000_000_000;
    let mut saved = tally.snapshot("http://emnify.test");
    (saved.cursor, saved.floor_millis, saved.floor_settled, saved.horizon_millis) =
        (Some((t + 600_000) / 1000), Some(t + 300_000), false, t + 200_000);
    tally.resume(saved);
    let (floor, cursor) = tally.poll_start(t, 0, true);
    assert_eq!(floor, (t + 200_000) / 1000, "lowered to the horizon, not by the whole 600 s");
    assert_eq!(cursor, None);
}

/// When a checkpoint is due is decided from the time passed in, not read from a clock: the first batch
/// asks for one, a batch within `publish_every` of the last checkpoint does not, one after it does.
#[test]
fn a_checkpoint_is_due_by_the_time_given() {
    let settings = TallySettings { publish_every: Duration::from_millis(100), ..TallySettings::default() };
    let mut tally = Tally::new(Arc::new(Metrics::new()), settings);
    let t0 = Instant::now();
    let t = 1_800_000_000;
    let push = |s: i64| Origin::Push { arrival_millis: s * 1000 };
    let batch = |ids: std::ops::Range<u64>| events(ids, t);
    let first = tally.ingest(decode_event_list(batch(1..2).as_bytes()).unwrap(), push(t), t0);
    assert!(first.checkpoint_due, "the first batch");
    let _ = tally.prepare_checkpoint(t0);
    let soon =
        tally.ingest(decode_event_list(batch(2..3).as_bytes()).unwrap(), push(t), t0 + Duration::from_millis(50));
    assert!(!soon.checkpoint_due, "50 ms after the last checkpoint");
    let later =
        tally.ingest(decode_event_list(batch(3..4).as_bytes()).unwrap(), push(t), t0 + Duration::from_millis(150));
    assert!(later.checkpoint_due, "150 ms after it");
}
