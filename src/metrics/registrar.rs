//! How each part of the metrics registers its metrics: into the registry (or, for the large labelled
//! families, the list published after it) and, for counters, into the state file's table.
//!
//! Parts import this rather than the metrics root, so imports within `metrics` run one way: the root
//! uses the parts, the parts use their siblings.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::encode::LabelledFamily;
use super::persist::{CounterTable, OnRestore};

/// What each part of the metrics registers its metrics with. Counters are entered in the state file's
/// table as they are registered; gauges and histograms describe the present and are not saved.
pub(super) struct Registrar<'a> {
    registry: &'a Registry,
    labelled: &'a mut Vec<Arc<LabelledFamily>>,
    counters: &'a mut CounterTable,
}

impl<'a> Registrar<'a> {
    pub(super) fn new(
        registry: &'a Registry,
        labelled: &'a mut Vec<Arc<LabelledFamily>>,
        counters: &'a mut CounterTable,
    ) -> Self {
        Registrar { registry, labelled, counters }
    }

    /// Only the typed helpers below call this, so no counter gets into the registry without its table entry.
    fn register<T: Collector + Clone + 'static>(&mut self, metric: T) -> T {
        self.registry.register(Box::new(metric.clone())).expect("metric names are unique");
        metric
    }

    /// A counter without labels, saved in the state file.
    pub(super) fn counter(&mut self, name: &'static str, help: &str) -> IntCounter {
        let counter = self.register(IntCounter::new(name, help).expect("static metric definition is valid"));
        self.counters.add_counter(name, &counter);
        counter
    }

    /// A counter family, saved in the state file.
    pub(super) fn counter_vec(&mut self, name: &'static str, help: &str, labels: &[&str]) -> IntCounterVec {
        let vec = self
            .register(IntCounterVec::new(Opts::new(name, help), labels).expect("static metric definition is valid"));
        self.counters.add_vec(name, &vec);
        vec
    }

    /// A counter family with many series, exposed from its own text (see [`LabelledFamily`]) and saved in
    /// the state file; `on_restore` runs for each series restored from it.
    pub(super) fn labelled(&mut self, family: LabelledFamily, on_restore: Option<OnRestore>) -> Arc<LabelledFamily> {
        let family = Arc::new(family);
        self.labelled.push(family.clone());
        self.counters.add_labelled(&family, on_restore);
        family
    }

    pub(super) fn int_gauge(&mut self, name: &str, help: &str) -> IntGauge {
        self.register(IntGauge::new(name, help).expect("static metric definition is valid"))
    }

    pub(super) fn int_gauge_vec(&mut self, opts: Opts, labels: &[&str]) -> IntGaugeVec {
        self.register(IntGaugeVec::new(opts, labels).expect("static metric definition is valid"))
    }

    pub(super) fn gauge(&mut self, name: &str, help: &str) -> Gauge {
        self.register(Gauge::new(name, help).expect("static metric definition is valid"))
    }

    pub(super) fn histogram(&mut self, opts: HistogramOpts) -> Histogram {
        self.register(Histogram::with_opts(opts).expect("static metric definition is valid"))
    }
}
