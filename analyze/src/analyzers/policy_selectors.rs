//! Policies whose workload selector matches no workload.
//!
//! - AuthorizationPolicy, PeerAuthentication, RequestAuthentication `spec.selector`:
//!   `IST0127` NoMatchingWorkloadsFound (Istio's `authz.AuthorizationPoliciesAnalyzer` reports
//!   it for AuthorizationPolicies; Istio has no analyzer for the other two, and the same code
//!   fits them).
//! - Sidecar `spec.workloadSelector`: `IST0101` ReferencedResourceNotFound, `selector`
//!   (Istio's `sidecar.SelectorAnalyzer`).
//!
//! The selector applies within the policy's namespace; a security policy in the root
//! namespace selects in every namespace (Istio's root-namespace rule). An empty selector
//! selects every workload and is not checked. When the input holds no Kubernetes objects,
//! nothing is reported.

use std::collections::BTreeMap;

use crate::input::selector_string;
use crate::message::{Message, NO_MATCHING_WORKLOADS_FOUND, ResourceRef};

use super::Context;

/// Reports each selector that matches no workload, at `spec.selector` (Sidecar:
/// `spec.workloadSelector`).
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    if !context.kubernetes_known {
        return;
    }
    let input = context.input;
    let security = input
        .authorization_policies()
        .map(|e| {
            (
                e.resource,
                e.object.spec.selector.as_ref().map(|s| &s.match_labels),
            )
        })
        .chain(input.peer_authentications().map(|e| {
            (
                e.resource,
                e.object.spec.selector.as_ref().map(|s| &s.match_labels),
            )
        }))
        .chain(input.request_authentications().map(|e| {
            (
                e.resource,
                e.object.spec.selector.as_ref().map(|s| &s.match_labels),
            )
        }));
    for (resource, selector) in security {
        let Some(selector) = selector.filter(|s| !s.is_empty()) else {
            continue;
        };
        let namespace = resource.namespace.as_deref().unwrap_or_default();
        let scope = (namespace != context.root_namespace).then_some(namespace);
        if none_selected(context, scope, selector) {
            out.push(Message::new(
                NO_MATCHING_WORKLOADS_FOUND,
                Some(&resource),
                "spec.selector",
                format!(
                    "No matching workloads for this resource with the following labels: {}",
                    selector_string(selector)
                ),
            ));
        }
    }
    for sidecar in input.sidecars() {
        let Some(selector) = sidecar
            .object
            .spec
            .workload_selector
            .as_ref()
            .map(|s| &s.labels)
            .filter(|s| !s.is_empty())
        else {
            continue;
        };
        let resource: &ResourceRef = &sidecar.resource;
        let namespace = resource.namespace.as_deref().unwrap_or_default();
        if none_selected(context, Some(namespace), selector) {
            out.push(Message::not_found(
                resource,
                "spec.workloadSelector",
                "selector",
                &selector_string(selector),
            ));
        }
    }
}

fn none_selected(
    context: &Context<'_>,
    namespace: Option<&str>,
    selector: &BTreeMap<String, String>,
) -> bool {
    context.selected(namespace, selector).next().is_none()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict-ratings, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: ratings}}
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: reviews, namespace: bookinfo}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress: [{hosts: ['./*']}]
"#;

    #[test]
    fn selectors_matching_nothing_are_reported() {
        let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: bookinfo, labels: {app: details}}\n";
        let out = run(analyze, &format!("{POLICIES}{pod}"));
        let summary: Vec<(&str, &str, String)> = out
            .iter()
            .map(|m| {
                (
                    m.code,
                    m.path.as_str(),
                    m.resource.as_ref().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "IST0127",
                    "spec.selector",
                    "AuthorizationPolicy bookinfo/reviews".to_owned()
                ),
                (
                    "IST0127",
                    "spec.selector",
                    "PeerAuthentication bookinfo/strict-ratings".to_owned()
                ),
                (
                    "IST0101",
                    "spec.workloadSelector",
                    "Sidecar bookinfo/reviews".to_owned()
                ),
            ]
        );
        assert_eq!(
            out[0].message,
            "No matching workloads for this resource with the following labels: app=reviews"
        );
    }

    #[test]
    fn workloads_in_the_namespace_are_selected_but_not_elsewhere() {
        let workloads = r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {name: reviews-v1, namespace: bookinfo}
spec: {template: {metadata: {labels: {app: reviews, version: v1}}}}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings, namespace: elsewhere, labels: {app: ratings}}
"#;
        let out = run(analyze, &format!("{POLICIES}{workloads}"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].resource.as_ref().unwrap().name, "strict-ratings");
    }

    #[test]
    fn root_namespace_policies_select_in_every_namespace() {
        let policy = POLICIES.replace(
            "name: strict-ratings, namespace: bookinfo",
            "name: strict-ratings, namespace: istio-system",
        );
        let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: r, namespace: shop, labels: {app: ratings}}\n";
        let out = run(analyze, &format!("{policy}{pod}"));
        assert!(
            out.iter()
                .all(|m| m.resource.as_ref().unwrap().name != "strict-ratings"),
            "{out:?}"
        );
    }
}
