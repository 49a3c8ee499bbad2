//! Tests of the Data Streamer model: never before arrival, at-least-once, backlog oldest first.

use crate::emnify::Emnify;
use crate::ids_of;
use crate::seed::{Params, Pause, Seed, HOUR, MINUTE, SECOND};
use crate::streamer::DataStreamer;

#[test]
fn streamer_never_delivers_before_arrival_and_eventually_delivers_everything() {
    for s in 0..20 {
        let seed = Seed(s);
        let mut p = seed.params();
        p.history_ms = p.history_ms.min(HOUR);
        p.replays.retain(|r| r.at_ms < p.start_ms + p.history_ms);
        let mut emnify = Emnify::new(seed, p.clone());
        let mut streamer = DataStreamer::new(seed, p.clone());
        let end = p.start_ms + p.history_ms;
        emnify.advance_to(end);
        streamer.feed(emnify.events());
        let mut now = p.start_ms;
        let mut steps = 0;
        while let Some(due) = streamer.next_due_ms() {
            now = now.max(due);
            while let Some(d) = streamer.next_delivery(now) {
                assert!(d.at_ms <= now);
                assert_eq!(ids_of(&d.body), d.ids);
                for id in &d.ids {
                    let e = emnify.event(*id).expect("a known event");
                    assert!(e.arrival_ms <= d.at_ms, "seed {s}: event {id} pushed before arrival");
                }
                assert!(p.pauses.iter().all(|pause| d.at_ms < pause.start_ms || d.at_ms >= pause.end_ms));
                // Refuse some batches once or twice, and answer some only by timing out.
                match (d.batch_id % 5, d.attempt) {
                    (0, 0) => {}
                    (1, 0 | 1) => assert!(streamer.acknowledge(d.batch_id, false)),
                    _ => assert!(streamer.acknowledge(d.batch_id, true)),
                }
            }
            steps += 1;
            assert!(steps < 1_000_000, "seed {s} does not settle");
        }
        assert!(streamer.is_idle());
        let missing = emnify.events().iter().filter(|e| !streamer.accepted().contains_key(&e.id)).count();
        assert_eq!(missing, 0, "seed {s}: events never accepted");
    }
}

#[test]
fn streamer_retries_refused_batches_and_sends_the_backlog_oldest_first() {
    let mut p = Params::calm();
    p.push_batch_max = 10;
    p.push_retry_base_ms = 2 * SECOND;
    p.pauses = vec![Pause { start_ms: p.start_ms + 10 * MINUTE, end_ms: p.start_ms + 40 * MINUTE }];
    let mut emnify = Emnify::new(Seed(13), p.clone());
    let mut streamer = DataStreamer::new(Seed(13), p.clone());
    emnify.advance_to(p.start_ms + HOUR);
    streamer.feed(emnify.events());
    let first = streamer.next_delivery(p.start_ms + MINUTE).expect("a batch is due");
    assert!(streamer.next_delivery(p.start_ms + MINUTE).is_none(), "one batch in flight");
    assert!(!streamer.acknowledge(first.batch_id + 1, true), "unknown batch");
    assert!(streamer.acknowledge(first.batch_id, false));
    let again = streamer.next_delivery(first.at_ms + 2 * SECOND).expect("a retry");
    assert_eq!((again.batch_id, again.attempt, &again.ids), (first.batch_id, 1, &first.ids));
    assert!(streamer.acknowledge(again.batch_id, true));
    let mut after_pause = Vec::new();
    let mut now = again.at_ms;
    while let Some(due) = streamer.next_due_ms() {
        now = now.max(due);
        let d = streamer.next_delivery(now).expect("due");
        assert!(d.at_ms < p.pauses[0].start_ms || d.at_ms >= p.pauses[0].end_ms);
        if d.at_ms == p.pauses[0].end_ms {
            after_pause.extend(d.ids.iter().map(|id| emnify.event(*id).expect("known").arrival_ms));
        }
        streamer.acknowledge(d.batch_id, true);
    }
    assert!(after_pause.len() > 100, "the backlog is sent on resume");
    assert!(after_pause.windows(2).all(|w| w[0] <= w[1] + p.push_delay_max_ms), "historic data first");
}
