//! AuthorizationPolicy checks of Istio's `authz.AuthorizationPoliciesAnalyzer` beyond the
//! selector (which `policy_selectors` checks):
//!
//! - a policy without selector outside the root namespace, in a namespace with no workload:
//!   `IST0127` NoMatchingWorkloadsFound (with empty labels, as Istio reports it);
//! - `rules[].from[].source.namespaces` / `notNamespaces` entries that match no Namespace
//!   (exact, `*`, `prefix*` or `*suffix`): `IST0101` ReferencedResourceNotFound, `namespace`.
//!
//! Both need the Kubernetes objects: the first runs only when they are known, the second only
//! when the input holds Namespace objects or was read from a cluster.

use crate::message::{Message, NO_MATCHING_WORKLOADS_FOUND};

use super::Context;

/// Reports namespace-wide policies of empty namespaces and unknown source namespaces.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    if !context.kubernetes_known {
        return;
    }
    let namespaces: Vec<&str> = context
        .input
        .namespaces
        .iter()
        .map(|n| n.resource.name.as_str())
        .collect();
    let check_namespaces = context.input.is_cluster() || !namespaces.is_empty();
    for policy in context.input.authorization_policies() {
        let namespace = policy.resource.namespace.as_deref().unwrap_or_default();
        let spec = &policy.object.spec;
        let namespace_wide = spec.selector.is_none()
            && spec.target_ref.is_none()
            && spec.target_refs.is_empty()
            && namespace != context.root_namespace;
        if namespace_wide && !context.workloads.iter().any(|w| w.namespace == namespace) {
            out.push(Message::new(
                NO_MATCHING_WORKLOADS_FOUND,
                Some(&policy.resource),
                "",
                "No matching workloads for this resource with the following labels: ",
            ));
        }
        if !check_namespaces {
            continue;
        }
        for (i, rule) in spec.rules.iter().enumerate() {
            for (j, from) in rule.from.iter().enumerate() {
                let Some(source) = &from.source else { continue };
                let lists = [
                    ("namespaces", &source.namespaces),
                    ("notNamespaces", &source.not_namespaces),
                ];
                for (field, list) in lists {
                    for (k, pattern) in list.iter().enumerate() {
                        if !namespaces.iter().any(|ns| namespace_match(ns, pattern)) {
                            out.push(Message::not_found(
                                &policy.resource,
                                format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                                "namespace",
                                pattern,
                            ));
                        }
                    }
                }
            }
        }
    }
}

/// Istio's namespace match in policies: `*`, `prefix*`, `*suffix` or an exact name (ASCII
/// case-insensitive).
fn namespace_match(namespace: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return namespace.ends_with(suffix);
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return namespace.starts_with(prefix);
    }
    namespace.eq_ignore_ascii_case(pattern)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-a}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-teams, namespace: shop}
spec:
  rules:
  - from:
    - source: {namespaces: [shop, "team-*"], notNamespaces: [legacy]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-all, namespace: empty}
spec: {}
"#;

    #[test]
    fn unknown_source_namespaces_and_empty_namespaces_are_reported() {
        let out = run(analyze, OBJECTS);
        let summary: Vec<(&str, String, &str)> = out
            .iter()
            .map(|m| {
                (
                    m.code,
                    m.resource.as_ref().unwrap().full_name(),
                    m.path.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "IST0101",
                    "shop/allow-teams".to_owned(),
                    "spec.rules[0].from[0].source.notNamespaces[0]"
                ),
                ("IST0127", "empty/deny-all".to_owned(), ""),
            ]
        );
        assert_eq!(out[0].message, "Referenced namespace not found: \"legacy\"");
    }

    #[test]
    fn known_namespaces_and_populated_namespaces_are_fine() {
        let objects = OBJECTS
            .replace(", notNamespaces: [legacy]", "")
            .replace("namespace: empty", "namespace: shop");
        assert!(
            run(analyze, &objects).is_empty(),
            "{:?}",
            run(analyze, &objects)
        );
    }
}
