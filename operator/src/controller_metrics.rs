//! Reconcile metrics of the operator's kube-runtime controllers (Citadel's ServiceAccount and
//! Namespace controllers, the Mesh reconciler), with controller-runtime's names so that the
//! dashboards and alerts written for operator-sdk and kubebuilder operators read them as they
//! are: `controller_runtime_reconcile_total{controller, result="success|error"}`,
//! `controller_runtime_reconcile_errors_total{controller}` and
//! `controller_runtime_reconcile_time_seconds{controller}` (histogram).

use std::future::Future;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    controller: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ControllerLabel {
    controller: &'static str,
}

type HistogramFamily = Family<ControllerLabel, Histogram, fn() -> Histogram>;

/// The reconcile counters and durations of every controller, by controller name. Cheap to
/// clone (shared handles); [`ControllerMetrics::default`] is unregistered (for tests).
#[derive(Debug, Clone)]
pub struct ControllerMetrics {
    total: Family<ResultLabels, Counter>,
    errors: Family<ControllerLabel, Counter>,
    seconds: HistogramFamily,
}

/// Reconcile durations from 1 ms to ≈ 33 s, doubling.
fn reconcile_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for ControllerMetrics {
    fn default() -> Self {
        Self {
            total: Family::default(),
            errors: Family::default(),
            seconds: Family::new_with_constructor(reconcile_histogram),
        }
    }
}

impl ControllerMetrics {
    /// New metrics registered in `registry` under controller-runtime's names (see the module
    /// documentation).
    pub fn new(registry: &mut Registry) -> Self {
        let metrics = Self::default();
        registry.register(
            "controller_runtime_reconcile",
            "Reconciles per controller and result (success, error)",
            metrics.total.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_errors",
            "Reconciles per controller that returned an error (retried with back-off)",
            metrics.errors.clone(),
        );
        registry.register(
            "controller_runtime_reconcile_time_seconds",
            "Duration of one reconcile per controller, seconds",
            metrics.seconds.clone(),
        );
        metrics
    }

    /// Runs one `reconcile` of `controller` and records its result and duration. Returns what
    /// the reconcile returned.
    pub async fn time<T, E>(
        self,
        controller: &'static str,
        reconcile: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = reconcile.await;
        self.seconds
            .get_or_create(&ControllerLabel { controller })
            .observe(started.elapsed().as_secs_f64());
        let outcome = if result.is_ok() { "success" } else { "error" };
        self.total
            .get_or_create(&ResultLabels {
                controller,
                result: outcome,
            })
            .inc();
        if result.is_err() {
            self.errors
                .get_or_create(&ControllerLabel { controller })
                .inc();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn text(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[tokio::test]
    async fn reconciles_are_counted_by_controller_and_result_with_their_duration() {
        let mut registry = Registry::default();
        let metrics = ControllerMetrics::new(&mut registry);
        let ok: Result<u8, &str> = metrics.clone().time("mesh", async { Ok(1) }).await;
        assert_eq!(ok, Ok(1));
        let failed: Result<u8, &str> = metrics.clone().time("mesh", async { Err("boom") }).await;
        assert_eq!(failed, Err("boom"));
        let _: Result<(), ()> = metrics.time("serviceaccount", async { Ok(()) }).await;
        let text = text(&registry);
        for line in [
            r#"controller_runtime_reconcile_total{controller="mesh",result="success"} 1"#,
            r#"controller_runtime_reconcile_total{controller="mesh",result="error"} 1"#,
            r#"controller_runtime_reconcile_total{controller="serviceaccount",result="success"} 1"#,
            r#"controller_runtime_reconcile_errors_total{controller="mesh"} 1"#,
            r#"controller_runtime_reconcile_time_seconds_count{controller="mesh"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(
            !text.contains(
                r#"controller_runtime_reconcile_errors_total{controller="serviceaccount"}"#
            ),
            "{text}"
        );
    }
}
