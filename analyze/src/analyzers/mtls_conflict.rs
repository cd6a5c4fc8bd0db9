//! DestinationRules that disable TLS toward workloads whose PeerAuthentication is `STRICT`
//! (Istio `IST0113` MTLSPolicyConflict): the client sends plain text, the server refuses it.
//!
//! For each `tls.mode: DISABLE` (an absent mode is Istio's default, `DISABLE`) in
//! `spec.trafficPolicy`, its `portLevelSettings` or a subset's `trafficPolicy`, on a
//! Kubernetes Service host `<name>.<namespace>.svc.cluster.local`: the Service's pods (its
//! `spec.selector` over pods and pod templates of its namespace) get their effective
//! PeerAuthentication mode by Istio's precedence: a policy of the namespace whose selector
//! matches the workload, else the namespace-wide policy, else the root namespace's mesh-wide
//! policy, else `PERMISSIVE`; an `UNSET` mode inherits from the next level. When the Service
//! or its workloads are not in the input, the namespace-wide and mesh-wide policies decide.
//! Port-level PeerAuthentication (`portLevelMtls`) is not considered.

use std::collections::BTreeMap;

use weft_crds::networking::{ClientTlsMode, ClientTlsSettings, DestinationRule};
use weft_crds::security::{MtlsMode, PeerAuthentication};

use crate::input::{Entry, selects};
use crate::message::{MTLS_POLICY_CONFLICT, Message, ResourceRef};

use super::{Context, kubernetes_service, resolve_host};

/// Reports each TLS-disabling setting toward a `STRICT` workload, at its `tls.mode` path.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    let policies: Vec<Entry<&PeerAuthentication>> = context.input.peer_authentications().collect();
    for dr in context.input.destination_rules() {
        let namespace = dr.resource.namespace.as_deref().unwrap_or_default();
        let host = resolve_host(&dr.object.spec.host, namespace);
        let Some((service_namespace, service_name)) = kubernetes_service(&host) else {
            continue;
        };
        let disabled = disabled_tls_paths(dr.object);
        if disabled.is_empty() {
            continue;
        }
        let workloads = service_workloads(context, service_namespace, service_name);
        let strict = workloads.iter().find_map(|labels| {
            let (mode, policy) = effective_mode(
                &policies,
                &context.root_namespace,
                service_namespace,
                labels,
            );
            (mode == MtlsMode::Strict).then_some(policy).flatten()
        });
        let Some(policy) = strict else {
            continue;
        };
        for path in disabled {
            out.push(Message::new(
                MTLS_POLICY_CONFLICT,
                Some(&dr.resource),
                path,
                format!(
                    "A DestinationRule and Policy are in conflict with regards to mTLS for host \
                     {host}. The DestinationRule {:?} specifies that mTLS must be false but the \
                     Policy object {:?} specifies STRICT.",
                    dr.resource.full_name(),
                    policy.full_name()
                ),
            ));
        }
    }
}

fn is_disabled(tls: Option<&ClientTlsSettings>) -> bool {
    tls.is_some_and(|tls| tls.mode.unwrap_or_default() == ClientTlsMode::Disable)
}

fn disabled_tls_paths(dr: &DestinationRule) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(policy) = &dr.spec.traffic_policy {
        if is_disabled(policy.tls.as_ref()) {
            out.push("spec.trafficPolicy.tls.mode".to_owned());
        }
        for (i, port) in policy.port_level_settings.iter().enumerate() {
            if is_disabled(port.tls.as_ref()) {
                out.push(format!(
                    "spec.trafficPolicy.portLevelSettings[{i}].tls.mode"
                ));
            }
        }
    }
    for (i, subset) in dr.spec.subsets.iter().enumerate() {
        if is_disabled(subset.traffic_policy.as_ref().and_then(|p| p.tls.as_ref())) {
            out.push(format!("spec.subsets[{i}].trafficPolicy.tls.mode"));
        }
    }
    out
}

/// The label sets of the Service's workloads; one empty set (namespace-level policies only)
/// when the Service or its workloads are not in the input.
fn service_workloads(
    context: &Context<'_>,
    namespace: &str,
    name: &str,
) -> Vec<BTreeMap<String, String>> {
    let selector = context
        .input
        .services
        .iter()
        .find(|s| s.resource.name == name && s.resource.namespace.as_deref() == Some(namespace))
        .and_then(|s| s.object.spec.as_ref()?.selector.clone())
        .filter(|selector| !selector.is_empty());
    let labels: Vec<BTreeMap<String, String>> = selector
        .map(|selector| {
            context
                .selected(Some(namespace), &selector)
                .map(|w| w.labels.clone())
                .collect()
        })
        .unwrap_or_default();
    if labels.is_empty() {
        vec![BTreeMap::new()]
    } else {
        labels
    }
}

/// The effective mode for a workload with `labels` in `namespace`, and the policy that set it.
fn effective_mode(
    policies: &[Entry<&PeerAuthentication>],
    root_namespace: &str,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> (MtlsMode, Option<ResourceRef>) {
    let mode_of = |pa: &PeerAuthentication| {
        pa.spec
            .mtls
            .as_ref()
            .and_then(|m| m.mode)
            .filter(|m| *m != MtlsMode::Unset)
    };
    let selector_of = |pa: &PeerAuthentication| {
        pa.spec
            .selector
            .as_ref()
            .map(|s| s.match_labels.clone())
            .unwrap_or_default()
    };
    fn in_namespace<'p>(
        policies: &'p [Entry<&'p PeerAuthentication>],
        ns: &'p str,
    ) -> impl Iterator<Item = &'p Entry<&'p PeerAuthentication>> + 'p {
        policies
            .iter()
            .filter(move |p| p.resource.namespace.as_deref() == Some(ns))
    }
    let workload = in_namespace(policies, namespace).find(|p| {
        let selector = selector_of(p.object);
        !selector.is_empty() && selects(&selector, labels) && mode_of(p.object).is_some()
    });
    let namespace_wide = in_namespace(policies, namespace)
        .find(|p| selector_of(p.object).is_empty() && mode_of(p.object).is_some());
    let mesh_wide = in_namespace(policies, root_namespace)
        .find(|p| selector_of(p.object).is_empty() && mode_of(p.object).is_some());
    match workload.or(namespace_wide).or(mesh_wide) {
        Some(p) => (
            mode_of(p.object).unwrap_or(MtlsMode::Permissive),
            Some(p.resource.clone()),
        ),
        None => (MtlsMode::Permissive, None),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec:
  host: ratings
  trafficPolicy: {tls: {mode: DISABLE}}
"#;
    const MESH_STRICT: &str = r#"---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
"#;

    #[test]
    fn disabling_tls_toward_a_mesh_wide_strict_workload_conflicts() {
        let out = run(analyze, &format!("{DR}{MESH_STRICT}"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "IST0113");
        assert_eq!(out[0].path, "spec.trafficPolicy.tls.mode");
        assert!(
            out[0]
                .message
                .contains("\"istio-system/default\" specifies STRICT"),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn a_permissive_namespace_or_workload_policy_wins_over_the_mesh() {
        let namespace = "---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
                         metadata: {name: default, namespace: bookinfo}\nspec: {mtls: {mode: PERMISSIVE}}\n";
        assert!(run(analyze, &format!("{DR}{MESH_STRICT}{namespace}")).is_empty());
        let workload = r#"---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo}
spec: {selector: {app: ratings}}
---
apiVersion: v1
kind: Pod
metadata: {name: ratings-1, namespace: bookinfo, labels: {app: ratings}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings, namespace: bookinfo}
spec: {selector: {matchLabels: {app: ratings}}, mtls: {mode: PERMISSIVE}}
"#;
        assert!(run(analyze, &format!("{DR}{MESH_STRICT}{workload}")).is_empty());
    }

    #[test]
    fn istio_mutual_is_no_conflict() {
        let dr = DR.replace("DISABLE", "ISTIO_MUTUAL");
        assert!(run(analyze, &format!("{dr}{MESH_STRICT}")).is_empty());
    }
}
