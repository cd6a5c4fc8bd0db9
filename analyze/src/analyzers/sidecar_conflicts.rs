//! Sidecars that compete for the same workloads (Istio's `sidecar.SelectorAnalyzer` and
//! `sidecar.DefaultSelectorAnalyzer`):
//!
//! - `IST0111` MultipleSidecarsWithoutWorkloadSelectors: more than one Sidecar of a namespace
//!   has no `workloadSelector` (which one is the namespace default is undefined);
//! - `IST0110` ConflictingSidecarWorkloadSelectors: a workload (pod, pod template,
//!   WorkloadEntry) of the Sidecar's namespace is selected by more than one Sidecar.

use std::collections::BTreeMap;

use crate::message::{
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS, Message,
    ResourceRef,
};

use super::Context;

/// Reports every Sidecar in such a conflict (the whole resource for IST0111,
/// `spec.workloadSelector` for IST0110).
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    let mut without_selector: BTreeMap<String, Vec<ResourceRef>> = BTreeMap::new();
    // workload -> the Sidecars selecting it
    let mut by_workload: BTreeMap<ResourceRef, Vec<ResourceRef>> = BTreeMap::new();
    for sidecar in context.input.sidecars() {
        let namespace = sidecar.resource.namespace.clone().unwrap_or_default();
        let selector = sidecar
            .object
            .spec
            .workload_selector
            .as_ref()
            .map(|s| &s.labels)
            .filter(|labels| !labels.is_empty());
        match selector {
            None => without_selector
                .entry(namespace)
                .or_default()
                .push(sidecar.resource.clone()),
            Some(selector) => {
                for workload in context.selected(Some(&namespace), selector) {
                    by_workload
                        .entry(workload.resource.clone())
                        .or_default()
                        .push(sidecar.resource.clone());
                }
            }
        }
    }
    for (namespace, sidecars) in &without_selector {
        if sidecars.len() < 2 {
            continue;
        }
        let names = names(sidecars);
        for sidecar in sidecars {
            out.push(Message::new(
                MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
                Some(sidecar),
                "",
                format!(
                    "The Sidecars {names} in namespace {namespace:?} have no workload selector, \
                     which can lead to undefined behavior."
                ),
            ));
        }
    }
    for (workload, sidecars) in &by_workload {
        if sidecars.len() < 2 {
            continue;
        }
        let names = names(sidecars);
        let namespace = workload.namespace.as_deref().unwrap_or_default();
        for sidecar in sidecars {
            out.push(Message::new(
                CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
                Some(sidecar),
                "spec.workloadSelector",
                format!(
                    "The Sidecars {names} in namespace {namespace:?} select the same workload \
                     {} {:?}, which can lead to undefined behavior.",
                    workload.kind.to_lowercase(),
                    workload.name
                ),
            ));
        }
    }
}

fn names(sidecars: &[ResourceRef]) -> String {
    let names: Vec<&str> = sidecars.iter().map(|s| s.name.as_str()).collect();
    format!("[{}]", names.join(" "))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const SIDECARS: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec: {egress: [{hosts: ['./*']}]}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: shop}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress: [{hosts: ['./*']}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: v1, namespace: shop}
spec:
  workloadSelector: {labels: {version: v1}}
  egress: [{hosts: ['./*']}]
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v2, namespace: shop, labels: {app: reviews, version: v2}}
"#;

    #[test]
    fn one_default_and_disjoint_selectors_are_fine() {
        assert!(
            run(analyze, SIDECARS).is_empty(),
            "{:?}",
            run(analyze, SIDECARS)
        );
    }

    #[test]
    fn two_defaults_and_overlapping_selectors_conflict() {
        let more = r#"---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: other-default, namespace: shop}
spec: {egress: [{hosts: ['./*']}]}
---
apiVersion: v1
kind: Pod
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews, version: v1}}
"#;
        let out = run(analyze, &format!("{SIDECARS}{more}"));
        let summary: Vec<(&str, &str)> = out
            .iter()
            .map(|m| (m.code, m.resource.as_ref().unwrap().name.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                ("IST0111", "default"),
                ("IST0111", "other-default"),
                ("IST0110", "reviews"),
                ("IST0110", "v1"),
            ]
        );
        assert_eq!(
            out[2].message,
            "The Sidecars [reviews v1] in namespace \"shop\" select the same workload pod \
             \"reviews-v1\", which can lead to undefined behavior."
        );
    }
}
