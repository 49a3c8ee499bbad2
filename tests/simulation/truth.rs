//! Ground truth per series, and a checker that compares an exposition with it and returns a readable diff.
//!
//! Which events must be counted is the driver's decision, passed in as a [`CountingRule`]:
//! - **excluded** (in no series): `arrival_ms > horizon_ms` (not arrived yet) or `timestamp_ms < floor_ms`
//!   (before counting starts);
//! - **unreachable** (may or may not be counted): with `overlap_ms = Some(o)`, an event that arrived more
//!   than `o` after its timestamp (`arrival_ms - timestamp_ms > o`: no window polled after its arrival
//!   reaches back to it); with `min_visible_ms = Some(v)`, an event visible for less than `v`
//!   (`expires_ms - arrival_ms < v`: retention removed it before a poll had to see it);
//!   with `stamp_horizon_ms = Some(h)`, an event stamped at or after `h` is excluded (no poll window reached
//!   it: emnify's `Date` ran behind); with `expired_before_ms = Some(x)`, an event that expired at or before
//!   `x` is unreachable (retention removed it before the walk that had to read it was over);
//! - **countable**: every other event; each must be counted exactly once.
//!
//! Pushes ([`Truth::with_pushes`]) widen that: an event a Data Streamer delivery brought to the tally is
//! countable however polling classes it ([`PushFate::Counts`]: accepted while stamped at or after what
//! polling had read completely, so the tally must count it), or, when every accepted delivery of it came
//! after polling had read past its time and polling itself cannot reach it, unreachable
//! ([`Unreachable::PolledAlready`]: the tally skips it, never counting twice). In push mode polling
//! reaches nothing: give a rule with `floor_ms = i64::MAX`.
//!
//! [`check`] then requires, series by series, `countable <= exported <= countable + unreachable`, and no
//! exported series with a positive value that the truth does not know.

use std::collections::BTreeMap;

use emnify_exporter::catalogue::{generic_cause, severity_name, source_name, GENERIC_EVENT_TYPE};

use crate::emnify::Event;

/// One counter series the exporter should have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeriesKey {
    /// `emnify_events_total`.
    Events { event_type_id: u32, source: &'static str, severity: &'static str, organisation_id: u64 },
    /// `emnify_generic_events_total` (event type 0 only).
    Generic { cause: &'static str, organisation_id: u64 },
    /// `emnify_alert_events_total` (events flagged `alert`).
    Alert { event_type_id: u32, organisation_id: u64 },
}

impl SeriesKey {
    pub fn metric(&self) -> &'static str {
        match self {
            SeriesKey::Events { .. } => "emnify_events_total",
            SeriesKey::Generic { .. } => "emnify_generic_events_total",
            SeriesKey::Alert { .. } => "emnify_alert_events_total",
        }
    }

    /// The labels that identify the series (display names such as `organisation` left out).
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        match self {
            SeriesKey::Events { event_type_id, source, severity, organisation_id } => vec![
                ("event_type_id", event_type_id.to_string()),
                ("event_source", source.to_string()),
                ("event_severity", severity.to_string()),
                ("organisation_id", organisation_id.to_string()),
            ],
            SeriesKey::Generic { cause, organisation_id } => {
                vec![("cause", cause.to_string()), ("organisation_id", organisation_id.to_string())]
            }
            SeriesKey::Alert { event_type_id, organisation_id } => {
                vec![("event_type_id", event_type_id.to_string()), ("organisation_id", organisation_id.to_string())]
            }
        }
    }

    /// Every series one event adds 1 to.
    pub fn of(event: &Event) -> Vec<SeriesKey> {
        let organisation_id = event.organisation_id;
        let mut keys = vec![SeriesKey::Events {
            event_type_id: event.event_type_id,
            source: source_name(Some(event.source_id)),
            severity: severity_name(Some(event.severity_id)),
            organisation_id,
        }];
        if event.event_type_id == GENERIC_EVENT_TYPE {
            keys.push(SeriesKey::Generic { cause: generic_cause(event.description), organisation_id });
        }
        if event.alert {
            keys.push(SeriesKey::Alert { event_type_id: event.event_type_id, organisation_id });
        }
        keys
    }
}

/// Which events must be counted (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountingRule {
    pub floor_ms: i64,
    pub horizon_ms: i64,
    pub overlap_ms: Option<i64>,
    pub min_visible_ms: Option<i64>,
    pub stamp_horizon_ms: Option<i64>,
    /// Events stamped from `stamp_horizon_ms` up to this were reached by an earlier window only (one
    /// that ran ahead before emnify's clock was stepped back): read if they had arrived by then.
    pub reached_until_ms: Option<i64>,
    pub expired_before_ms: Option<i64>,
}

impl CountingRule {
    /// Events stamped from `floor_ms` that arrived by `horizon_ms`, all countable.
    pub fn new(floor_ms: i64, horizon_ms: i64) -> CountingRule {
        CountingRule {
            floor_ms,
            horizon_ms,
            overlap_ms: None,
            min_visible_ms: None,
            stamp_horizon_ms: None,
            reached_until_ms: None,
            expired_before_ms: None,
        }
    }
}

/// What the Data Streamer's accepted deliveries did with one event (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PushFate {
    /// Every accepted delivery came when polling had read past the event's time: skipped.
    PolledAlready,
    /// At least one accepted delivery came while the tally had to count it.
    Counts,
}

/// Why an event is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unreachable {
    Late,
    Expired,
    /// Only pushed, after polling had read its time completely (`polled_already`).
    PolledAlready,
}

/// What the rule makes of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Excluded,
    Countable,
    Unreachable(Unreachable),
}

impl CountingRule {
    pub fn classify(&self, e: &Event) -> Class {
        if e.arrival_ms > self.horizon_ms || e.timestamp_ms < self.floor_ms {
            return Class::Excluded;
        }
        if let Some(h) = self.stamp_horizon_ms.filter(|&h| e.timestamp_ms >= h) {
            return match self.reached_until_ms {
                Some(reached) if e.timestamp_ms < reached && h < reached => Class::Unreachable(Unreachable::Late),
                _ => Class::Excluded,
            };
        }
        if self.overlap_ms.is_some_and(|o| e.arrival_ms - e.timestamp_ms > o) {
            return Class::Unreachable(Unreachable::Late);
        }
        if let (Some(x), Some(expires)) = (self.expired_before_ms, e.expires_ms) {
            if expires <= x {
                return Class::Unreachable(Unreachable::Expired);
            }
        }
        if let (Some(v), Some(expires)) = (self.min_visible_ms, e.expires_ms) {
            if expires - e.arrival_ms < v {
                return Class::Unreachable(Unreachable::Expired);
            }
        }
        Class::Countable
    }
}

/// Ground truth under one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Truth {
    pub countable: BTreeMap<SeriesKey, u64>,
    pub unreachable: BTreeMap<SeriesKey, u64>,
    /// Ids of unreachable events, by reason.
    pub unreachable_ids: BTreeMap<Unreachable, Vec<i64>>,
    pub excluded: u64,
}

impl Truth {
    pub fn of(events: &[Event], rule: &CountingRule) -> Truth {
        Truth::with_pushes(events, rule, &BTreeMap::new())
    }

    /// [`Truth::of`], with what the Data Streamer's accepted deliveries did, by event id.
    pub fn with_pushes(events: &[Event], rule: &CountingRule, pushes: &BTreeMap<i64, PushFate>) -> Truth {
        let mut truth = Truth::default();
        for e in events {
            let class = match (rule.classify(e), pushes.get(&e.id)) {
                (Class::Countable, _) | (_, Some(PushFate::Counts)) => Class::Countable,
                (_, Some(PushFate::PolledAlready)) => Class::Unreachable(Unreachable::PolledAlready),
                (class, None) => class,
            };
            let map = match class {
                Class::Excluded => {
                    truth.excluded += 1;
                    continue;
                }
                Class::Countable => &mut truth.countable,
                Class::Unreachable(why) => {
                    truth.unreachable_ids.entry(why).or_default().push(e.id);
                    &mut truth.unreachable
                }
            };
            for key in SeriesKey::of(e) {
                *map.entry(key).or_default() += 1;
            }
        }
        truth
    }

    /// Countable events (the sum of the `emnify_events_total` series).
    pub fn countable_events(&self) -> u64 {
        self.countable.iter().filter(|(k, _)| matches!(k, SeriesKey::Events { .. })).map(|(_, v)| v).sum()
    }

    pub fn unreachable_events(&self) -> u64 {
        self.unreachable.iter().filter(|(k, _)| matches!(k, SeriesKey::Events { .. })).map(|(_, v)| v).sum()
    }
}

/// One sample of the text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text format (escapes included); a malformed line is an error, never a panic.
pub fn parse_exposition(text: &str) -> Result<Vec<Sample>, String> {
    let mut samples = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("exposition line {}: {why}: {line:?}", n + 1);
        let split = line.find(['{', ' ']).ok_or_else(|| bad("no value"))?;
        let (name, mut rest) = line.split_at(split);
        let mut labels = BTreeMap::new();
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(i + 1);
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        if chars.next().map(|x| x.1) != Some('"') {
                            return Err(bad("label value without quote"));
                        }
                        let mut value = String::new();
                        loop {
                            match chars.next().map(|x| x.1) {
                                None => return Err(bad("unterminated label value")),
                                Some('\\') => match chars.next().map(|x| x.1) {
                                    Some('n') => value.push('\n'),
                                    Some(other) => value.push(other),
                                    None => return Err(bad("dangling escape")),
                                },
                                Some('"') => break,
                                Some(c) => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &body[end.ok_or_else(|| bad("unterminated labels"))?..];
        }
        let value = rest.split_whitespace().next().ok_or_else(|| bad("no value"))?;
        let value = value.parse::<f64>().map_err(|_| bad("value not a number"))?;
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}

fn matches(sample: &Sample, key: &SeriesKey) -> bool {
    sample.name == key.metric() && key.labels().iter().all(|(k, v)| sample.labels.get(*k) == Some(v))
}

/// Compares an exposition with the truth, series by series. `Ok(())` when every series lies within its
/// bounds; otherwise `Err` with one line per wrong series and a summary line.
pub fn check(exposition: &str, truth: &Truth) -> Result<(), String> {
    let samples = parse_exposition(exposition)?;
    let mut lines = Vec::new();
    let keys: std::collections::BTreeSet<&SeriesKey> = truth.countable.keys().chain(truth.unreachable.keys()).collect();
    let mut accounted = vec![false; samples.len()];
    for key in keys {
        let low = truth.countable.get(key).copied().unwrap_or(0);
        let high = low + truth.unreachable.get(key).copied().unwrap_or(0);
        let mut got = 0.0;
        for (i, s) in samples.iter().enumerate() {
            if matches(s, key) {
                got += s.value;
                accounted[i] = true;
            }
        }
        if got < low as f64 || got > high as f64 {
            let want = if low == high { format!("{low}") } else { format!("{low}..={high}") };
            let labels: Vec<String> = key.labels().iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            lines.push(format!(
                "{}{{{}}}: exported {got}, truth {want} ({:+})",
                key.metric(),
                labels.join(","),
                got - low as f64
            ));
        }
    }
    let families = ["emnify_events_total", "emnify_generic_events_total", "emnify_alert_events_total"];
    for (s, _) in samples.iter().zip(&accounted).filter(|(s, seen)| !**seen && families.contains(&s.name.as_str())) {
        if s.value != 0.0 {
            lines.push(format!("{}{:?}: exported {}, truth knows no such series", s.name, s.labels, s.value));
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    let total: f64 = samples.iter().filter(|s| s.name == "emnify_events_total").map(|s| s.value).sum();
    lines.push(format!(
        "emnify_events_total sums to {total}; truth {} countable + {} unreachable",
        truth.countable_events(),
        truth.unreachable_events()
    ));
    Err(lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::emnify::Emnify;
    use crate::seed::{Params, Seed, HOUR};

    /// An exposition as the exporter would write it for `counts`.
    fn exposition(counts: &BTreeMap<SeriesKey, u64>) -> String {
        let mut text = String::from("# HELP emnify_events_total x\n# TYPE emnify_events_total counter\n");
        for (key, value) in counts {
            let mut labels: Vec<String> = key.labels().iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            labels.push("organisation=\"Quote\\\" Back\\\\slash\\nNew\"".to_string());
            text.push_str(&format!("{}{{{}}} {value}\n", key.metric(), labels.join(",")));
        }
        text.push_str("emnify_events_unreadable_total{reason=\"missing_id\"} 3\n");
        text
    }

    #[test]
    fn checker_compares_series_by_series_and_never_panics() {
        let mut p = Params::calm();
        p.hostile_organisation_share = 0.3;
        let mut emnify = Emnify::new(Seed(15), p.clone());
        let now = p.start_ms + HOUR;
        emnify.advance_to(now);
        let rule = CountingRule::new(p.start_ms, now);
        let truth = emnify.truth(&rule);
        assert!(truth.countable.keys().any(|k| matches!(k, SeriesKey::Generic { .. } | SeriesKey::Alert { .. })));
        assert_eq!(check(&exposition(&truth.countable), &truth), Ok(()));
        let mut off = truth.countable.clone();
        let (key, _) = off.iter().next().map(|(k, v)| (k.clone(), *v)).expect("a series");
        *off.get_mut(&key).expect("present") += 1;
        let diff = check(&exposition(&off), &truth).expect_err("one series counted twice");
        assert!(diff.contains(key.metric()) && diff.contains("(+1)"), "{diff}");
        off.insert(SeriesKey::Alert { event_type_id: 999, organisation_id: 1 }, 2);
        let diff = check(&exposition(&off), &truth).expect_err("an unknown series");
        assert!(diff.contains("truth knows no such series"), "{diff}");
        let mut bounded = Truth::default();
        bounded.unreachable.insert(key.clone(), 2);
        let one: BTreeMap<SeriesKey, u64> = [(key.clone(), 1)].into();
        assert_eq!(check(&exposition(&one), &bounded), Ok(()), "unreachable events may be counted");
        for garbage in ["emnify_events_total{a=\"x} 1", "x{a=1} 2", "emnify_events_total one", "{", "a{b=\"\\"] {
            assert!(check(garbage, &truth).is_err(), "{garbage}");
        }
    }
}
