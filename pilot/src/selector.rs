//! Label selection (Istio `WorkloadSelector.matchLabels`, Kubernetes Service `selector`).

use std::collections::BTreeMap;

use weft_crds::networking::Sidecar;

use crate::proxy::ProxyTarget;
use crate::view::{ClusterView, namespace_of};

/// Whether `labels` carry every key/value of `selector`. An empty selector selects everything,
/// as Istio's `matchLabels` does.
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// The Sidecar that applies to `target`, as Istio chooses it: one in the workload's namespace
/// whose `workloadSelector` selects it, else the namespace's default (no selector), else the
/// root namespace's default.
pub(crate) fn applicable_sidecar<'v>(
    view: &'v ClusterView,
    target: &ProxyTarget,
) -> Option<&'v Sidecar> {
    let sidecars = &view.objects().sidecars;
    let in_namespace = |namespace: &str| {
        let namespace = namespace.to_owned();
        sidecars
            .iter()
            .filter(move |sidecar| namespace_of(&sidecar.metadata) == namespace)
    };
    let is_default = |sidecar: &&Sidecar| {
        sidecar
            .spec
            .workload_selector
            .as_ref()
            .is_none_or(|selector| selector.labels.is_empty())
    };
    in_namespace(&target.namespace)
        .find(|sidecar| {
            sidecar
                .spec
                .workload_selector
                .as_ref()
                .is_some_and(|selector| {
                    !selector.labels.is_empty() && selects(&selector.labels, &target.labels)
                })
        })
        .or_else(|| in_namespace(&target.namespace).find(is_default))
        .or_else(|| in_namespace(&view.mesh().root_namespace).find(is_default))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_of_labels_is_selected() {
        let labels = BTreeMap::from([
            ("app".to_owned(), "reviews".to_owned()),
            ("version".to_owned(), "v1".to_owned()),
        ]);
        assert!(selects(&BTreeMap::new(), &labels));
        assert!(selects(
            &BTreeMap::from([("app".to_owned(), "reviews".to_owned())]),
            &labels
        ));
        assert!(!selects(
            &BTreeMap::from([("version".to_owned(), "v2".to_owned())]),
            &labels
        ));
    }
}
