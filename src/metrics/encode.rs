//! The text exposition format: the registry's families through prometheus' encoder, the large
//! labelled families through [`LabelledFamily`], which renders each series' labels only once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, IntCounter, IntCounterVec, Opts, TextEncoder};

/// A counter family with many label sets (one per event type, organisation, ...), exposed from
/// label text rendered once per series: encoding then costs a copy and a number per series, not
/// the protobuf round trip of [`prometheus::Registry::gather`] (about 20 ms for 10,000 series).
pub(super) struct LabelledFamily {
    pub(super) name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    /// Not registered in the registry: [`LabelledFamily::encode`] exposes it.
    vec: IntCounterVec,
    /// Each series' `{name="value",...}` with its counter, in the order of that text.
    series: Mutex<BTreeMap<String, Series>>,
}

/// One series: its counter, and the newest event counted in it (its exemplar).
struct Series {
    counter: IntCounter,
    exemplar: Arc<ExemplarSlot>,
}

/// An event as an OpenMetrics exemplar of the series it was counted in: which event, and which
/// device it concerns. Fixed size: keeping the newest costs a copy, never an allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exemplar {
    pub event_id: u64,
    pub endpoint_id: Option<u64>,
    /// The SIM's ICCID (19 digits).
    pub iccid: Option<u64>,
    /// The event's time (as counted), Unix ms.
    pub timestamp_millis: i64,
}

/// Where a series keeps its exemplar.
#[derive(Debug, Default)]
pub struct ExemplarSlot(Mutex<Option<Exemplar>>);

impl ExemplarSlot {
    /// Keeps `exemplar` unless the one kept is newer: Prometheus drops an exemplar older than the
    /// newest it stored for the series, so an event that arrived late never replaces a newer one.
    pub fn offer(&self, exemplar: Exemplar) {
        let mut kept = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.is_none_or(|k| k.timestamp_millis <= exemplar.timestamp_millis) {
            *kept = Some(exemplar);
        }
    }

    pub fn get(&self) -> Option<Exemplar> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl LabelledFamily {
    pub(super) fn new(name: &'static str, help: &'static str, label_names: &'static [&'static str]) -> Self {
        let vec = IntCounterVec::new(Opts::new(name, help), label_names).expect("static metric definition is valid");
        LabelledFamily { name, help, label_names, vec, series: Mutex::new(BTreeMap::new()) }
    }

    /// The counter of one label set (values in the order of `label_names`), created at zero if new.
    pub(super) fn with_label_values(&self, values: &[&str]) -> IntCounter {
        self.handle(values).0
    }

    /// The counter of one label set and its exemplar slot, created if new.
    pub(super) fn handle(&self, values: &[&str]) -> (IntCounter, Arc<ExemplarSlot>) {
        let counter = self.vec.with_label_values(values);
        let rendered = render_labels(self.label_names.iter().copied().zip(values.iter().copied()));
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        let entry =
            series.entry(rendered).or_insert_with(|| Series { counter: counter.clone(), exemplar: Arc::default() });
        (counter, entry.exemplar.clone())
    }

    /// The counter of a label set given by name; `None` if the names do not fit this family.
    pub(super) fn get_with(&self, labels: &HashMap<&str, &str>) -> Option<IntCounter> {
        if labels.len() != self.label_names.len() {
            return None;
        }
        let values: Option<Vec<&str>> = self.label_names.iter().map(|n| labels.get(n).copied()).collect();
        Some(self.with_label_values(&values?))
    }

    /// Every series as prometheus' own collectors report them (for the state file, and tests).
    pub(super) fn collect(&self) -> Vec<MetricFamily> {
        self.vec.collect()
    }

    /// Appends the family in the text format (nothing while it has no series).
    #[cfg(test)]
    pub(super) fn encode(&self, out: &mut Vec<u8>) {
        self.encode_both(out, &mut Vec::new());
    }

    /// Appends the family in both formats in one walk of its series (nothing while it has none): the
    /// text format to `text`; OpenMetrics to `openmetrics`, the family named without `_total` (its
    /// samples keep it) and each series followed by its exemplar.
    pub(super) fn encode_both(&self, text: &mut Vec<u8>, openmetrics: &mut Vec<u8>) {
        use std::io::Write;
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() {
            return;
        }
        let help = self.help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(text, "# HELP {} {help}\n# TYPE {} counter\n", self.name, self.name);
        let family = self.name.strip_suffix("_total").unwrap_or(self.name);
        openmetrics.extend_from_slice(format!("# HELP {family} ").as_bytes());
        super::exposition::write_help_text(help.as_bytes(), openmetrics);
        let _ = write!(openmetrics, "\n# TYPE {family} counter\n");
        text.reserve(series.len() * (self.name.len() + 128));
        openmetrics.reserve(series.len() * (self.name.len() + 192));
        for (labels, series) in series.iter() {
            let value = series.counter.get();
            for out in [&mut *text, &mut *openmetrics] {
                out.extend_from_slice(self.name.as_bytes());
                out.extend_from_slice(labels.as_bytes());
                let _ = write!(out, " {value}");
            }
            text.push(b'\n');
            if let Some(e) = series.exemplar.get() {
                let _ = write!(openmetrics, " # {{event_id=\"{}\"", e.event_id);
                if let Some(endpoint) = e.endpoint_id {
                    let _ = write!(openmetrics, ",endpoint_id=\"{endpoint}\"");
                }
                if let Some(iccid) = e.iccid {
                    let _ = write!(openmetrics, ",iccid=\"{iccid}\"");
                }
                let (secs, millis) = (e.timestamp_millis.div_euclid(1000), e.timestamp_millis.rem_euclid(1000));
                let _ = write!(openmetrics, "}} 1 {secs}.{millis:03}");
            }
            openmetrics.push(b'\n');
        }
    }
}

/// `{name="value",...}` with the pairs sorted by name and the values escaped, as the text format wants.
fn render_labels<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut pairs: Vec<(&str, &str)> = pairs.collect();
    pairs.sort_unstable_by_key(|(name, _)| *name);
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The families in the text format, by prometheus' own encoder.
pub(super) fn encode_families(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(err) = TextEncoder::new().encode(families, &mut out) {
        tracing::error!(error = %err, "encoding metrics failed");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exemplar_never_goes_back_in_time() {
        let slot = ExemplarSlot::default();
        let at =
            |event_id, timestamp_millis| Exemplar { event_id, endpoint_id: Some(9), iccid: None, timestamp_millis };
        slot.offer(at(1, 2_000));
        slot.offer(at(2, 1_000));
        assert_eq!(slot.get(), Some(at(1, 2_000)), "an event that arrived late keeps the newer exemplar");
        slot.offer(at(3, 2_000));
        assert_eq!(slot.get(), Some(at(3, 2_000)));
    }
}
