//! The status loop's metrics in Prometheus format: reconcile rounds and their duration, status
//! writes by result, the time to gather a view's facts, and the objects waiting for proxies.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The outcome of one object's status write (a fixed label set: never object names).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum WriteResult {
    /// Events published and status applied.
    Applied,
    /// Failed; retried with back-off.
    Failed,
    /// The object was deleted meanwhile (`404`); dropped.
    Gone,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    result: WriteResult,
}

/// The status loop's metrics. Cheap to clone (shared handles).
#[derive(Debug, Clone)]
pub struct StatusMetrics {
    /// Passes over every object of the current view (`weft_status_reconciles_total`).
    pub reconciles: Counter,
    /// Duration of one pass, writes included, seconds.
    pub reconcile_seconds: Histogram,
    /// Time to gather one view's facts (the analyzers, one build per proxy), seconds.
    pub facts_seconds: Histogram,
    /// Objects whose `Reconciled` condition is not `True` after the last pass.
    pub pending: Gauge,
    writes: Family<WriteLabels, Counter>,
}

impl StatusMetrics {
    /// New metrics registered in `registry`: `weft_status_reconciles`,
    /// `weft_status_reconcile_seconds`, `weft_status_facts_seconds`, `weft_status_pending`
    /// and `weft_status_writes{result="applied|failed|gone"}`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            reconciles: Counter::default(),
            reconcile_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            facts_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            pending: Gauge::default(),
            writes: Family::default(),
        };
        registry.register(
            "weft_status_reconciles",
            "Passes of the status loop over every mesh config object",
            m.reconciles.clone(),
        );
        registry.register(
            "weft_status_reconcile_seconds",
            "Duration of one pass of the status loop, writes included, seconds",
            m.reconcile_seconds.clone(),
        );
        registry.register(
            "weft_status_facts_seconds",
            "Time to gather one view's facts (analyzers, unsupported fields), seconds",
            m.facts_seconds.clone(),
        );
        registry.register(
            "weft_status_pending",
            "Mesh config objects whose Reconciled condition is not True",
            m.pending.clone(),
        );
        registry.register(
            "weft_status_writes",
            "Status writes of mesh config objects, by result",
            m.writes.clone(),
        );
        m
    }

    /// Counts one write with `result`.
    pub fn write(&self, result: WriteResult) {
        self.writes.get_or_create(&WriteLabels { result }).inc();
    }

    /// How many writes ended with `result` so far.
    pub fn writes(&self, result: WriteResult) -> u64 {
        self.writes.get_or_create(&WriteLabels { result }).get()
    }
}
