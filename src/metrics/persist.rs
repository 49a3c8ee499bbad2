//! State-file persistence of counters, driven by a table each part of the metrics fills as it registers counters.
//!
//! Saving and restoring both go through [`CounterTable`], so a counter registered through the
//! [`super::registrar::Registrar`] is saved and restored without being named a second time anywhere.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntCounterVec};

use super::encode::LabelledFamily;

/// One counter series as saved in the state file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CounterValue {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: u64,
}

/// Runs for each restored series of a family, with its labels and saved value, for state derived from it.
pub(super) type OnRestore = Box<dyn Fn(&HashMap<&str, &str>, u64) + Send + Sync>;

/// How the series of one saved family are put back.
enum Slot {
    /// A counter without labels (labels saved with it are ignored, as they always were).
    Counter(IntCounter),
    /// A registered family: a saved series must have exactly its label names.
    Vec(IntCounterVec),
    /// A family exposed outside the registry; a saved series must have exactly its label names.
    Labelled { family: Arc<LabelledFamily>, on_restore: Option<OnRestore> },
}

impl Slot {
    fn collect(&self) -> Vec<MetricFamily> {
        match self {
            Slot::Counter(counter) => counter.collect(),
            Slot::Vec(vec) => vec.collect(),
            Slot::Labelled { family, .. } => family.collect(),
        }
    }
}

/// Every counter family the state file holds, by name.
#[derive(Default)]
pub(super) struct CounterTable {
    slots: BTreeMap<&'static str, Slot>,
}

impl CounterTable {
    pub(super) fn add_counter(&mut self, name: &'static str, counter: &IntCounter) {
        self.add(name, Slot::Counter(counter.clone()));
    }

    pub(super) fn add_vec(&mut self, name: &'static str, vec: &IntCounterVec) {
        self.add(name, Slot::Vec(vec.clone()));
    }

    pub(super) fn add_labelled(&mut self, family: &Arc<LabelledFamily>, on_restore: Option<OnRestore>) {
        self.add(family.name, Slot::Labelled { family: family.clone(), on_restore });
    }

    fn add(&mut self, name: &'static str, slot: Slot) {
        // Labelled families are not in the registry, which would refuse a second family of one name.
        let previous = self.slots.insert(name, slot);
        assert!(previous.is_none(), "counter family {name} is registered twice");
    }

    /// The names of the saved families, in name order.
    #[cfg(test)]
    pub(super) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.slots.keys().copied()
    }

    /// Every series of every family, for the state file.
    pub(super) fn values(&self) -> Vec<CounterValue> {
        let mut out = Vec::new();
        // Registered families first, then the labelled ones, each group by name, and within a registered
        // family by label values: the order state files had when the list came from `Registry::gather`.
        // Labelled families stay in collection order; sorting every series would cost each checkpoint.
        for labelled in [false, true] {
            for (name, slot) in &self.slots {
                if matches!(slot, Slot::Labelled { .. }) != labelled {
                    continue;
                }
                let first = out.len();
                for family in slot.collect() {
                    for metric in family.get_metric() {
                        let labels =
                            metric.get_label().iter().map(|l| (l.name().to_string(), l.value().to_string())).collect();
                        let value = metric.get_counter().get_value() as u64;
                        out.push(CounterValue { name: (*name).to_string(), labels, value });
                    }
                }
                if !labelled {
                    out[first..].sort_by(|a, b| a.labels.cmp(&b.labels));
                }
            }
        }
        out
    }

    /// Adds saved values to the counters; returns how many series were restored. Entries this version
    /// does not know, or whose labels do not fit, are logged and skipped: an old or newer file still loads.
    pub(super) fn restore(&self, values: &[CounterValue]) -> usize {
        let mut restored = 0;
        for saved in values {
            let Some(slot) = self.slots.get(saved.name.as_str()) else {
                tracing::warn!(
                    metric = saved.name.as_str(),
                    "the state file has a counter this version does not know; ignored"
                );
                continue;
            };
            let labels: HashMap<&str, &str> = saved.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            match slot {
                Slot::Counter(counter) => {
                    counter.inc_by(saved.value);
                    restored += 1;
                }
                Slot::Vec(vec) => match vec.get_metric_with(&labels) {
                    Ok(counter) => {
                        counter.inc_by(saved.value);
                        restored += 1;
                    }
                    Err(err) => {
                        tracing::warn!(metric = %saved.name, error = %err, "a saved counter does not fit; ignored");
                    }
                },
                Slot::Labelled { family, on_restore } => match family.get_with(&labels) {
                    Some(counter) => {
                        counter.inc_by(saved.value);
                        restored += 1;
                        if let Some(on_restore) = on_restore {
                            on_restore(&labels, saved.value);
                        }
                    }
                    None => tracing::warn!(metric = %saved.name, "a saved counter's labels do not fit; ignored"),
                },
            }
        }
        restored
    }
}
