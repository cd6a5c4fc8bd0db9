//! Sidecar injection (Istio's `injection.Analyzer`):
//!
//! - `IST0102` NamespaceNotInjected (Info): a Namespace with neither the `istio-injection` nor
//!   the `istio.io/rev` label. `istio-system` (the root namespace) and Kubernetes' own
//!   namespaces (`kube-system`, `kube-public`, `kube-node-lease`, `local-path-storage`) are
//!   skipped, as Istio skips them.
//! - `IST0103` PodMissingProxy (Warning): a pod in a namespace labelled
//!   `istio-injection=enabled` (or with only `istio.io/rev`) that has no `istio-proxy`
//!   container (nor native sidecar init container), unless it opts out
//!   (`sidecar.istio.io/inject: "false"` label or annotation) or uses the host network.
//!
//! Only Namespace objects of the input are looked at: pods of namespaces the input does not
//! show are not checked.

use std::collections::BTreeSet;

use weft_webhook::names::{
    NAMESPACE_INJECTION_LABEL, PROXY_CONTAINER_NAME, REVISION_LABEL, SIDECAR_INJECT,
};

use crate::message::{Message, NAMESPACE_NOT_INJECTED, POD_MISSING_PROXY};

use super::Context;

/// Namespaces Istio's injection analyzer never reports (Kubernetes' own).
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// Reports namespaces without injection labels and injected-namespace pods without a proxy.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    let mut injected = BTreeSet::new();
    for namespace in &context.input.namespaces {
        let name = namespace.resource.name.as_str();
        if name == context.root_namespace
            || name == crate::input::DEFAULT_ROOT_NAMESPACE
            || SYSTEM_NAMESPACES.contains(&name)
        {
            continue;
        }
        let labels = namespace.object.metadata.labels.clone().unwrap_or_default();
        let injection = labels.get(NAMESPACE_INJECTION_LABEL);
        let revision = labels.contains_key(REVISION_LABEL);
        match (injection, revision) {
            (None, false) => out.push(Message::new(
                NAMESPACE_NOT_INJECTED,
                Some(&namespace.resource),
                "metadata.labels",
                format!(
                    "The namespace is not enabled for Istio injection. Run 'kubectl label \
                     namespace {name} istio-injection=enabled' to enable it, or 'kubectl label \
                     namespace {name} istio-injection=disabled' to explicitly mark it as not \
                     needing injection."
                ),
            )),
            (Some(value), _) if value != "enabled" => {}
            _ => {
                injected.insert(name.to_owned());
            }
        }
    }
    for pod in &context.input.pods {
        let namespace = pod.resource.namespace.as_deref().unwrap_or_default();
        if !injected.contains(namespace) {
            continue;
        }
        let meta = &pod.object.metadata;
        let opt_out = meta
            .labels
            .as_ref()
            .and_then(|l| l.get(SIDECAR_INJECT))
            .or_else(|| {
                meta.annotations
                    .as_ref()
                    .and_then(|a| a.get(SIDECAR_INJECT))
            })
            .is_some_and(|v| v.eq_ignore_ascii_case("false"));
        let Some(spec) = &pod.object.spec else {
            continue;
        };
        if opt_out || spec.host_network == Some(true) {
            continue;
        }
        let has_proxy = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .any(|c| c.name == PROXY_CONTAINER_NAME);
        if !has_proxy {
            out.push(Message::new(
                POD_MISSING_PROXY,
                Some(&pod.resource),
                "spec.containers",
                format!(
                    "The pod {} is missing the Istio proxy. This can often be resolved by \
                     restarting or redeploying the workload.",
                    pod.resource.full_name()
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const OBJECTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Namespace
metadata: {name: bookinfo, labels: {istio-injection: enabled}}
---
apiVersion: v1
kind: Namespace
metadata: {name: kube-system}
---
apiVersion: v1
kind: Pod
metadata: {name: plain, namespace: bookinfo}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: meshed, namespace: bookinfo}
spec: {containers: [{name: app, image: app}, {name: istio-proxy, image: proxy}]}
---
apiVersion: v1
kind: Pod
metadata: {name: opted-out, namespace: bookinfo, annotations: {sidecar.istio.io/inject: "false"}}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: outside, namespace: shop}
spec: {containers: [{name: app, image: app}]}
"#;

    #[test]
    fn unlabelled_namespaces_and_proxyless_pods_are_reported() {
        let out = run(analyze, OBJECTS);
        let summary: Vec<(&str, String)> = out
            .iter()
            .map(|m| (m.code, m.resource.as_ref().unwrap().to_string()))
            .collect();
        assert_eq!(
            summary,
            [
                ("IST0102", "Namespace shop".to_owned()),
                ("IST0103", "Pod bookinfo/plain".to_owned()),
            ]
        );
        assert_eq!(out[0].level, crate::Level::Info);
        assert!(
            out[0]
                .message
                .contains("kubectl label namespace shop istio-injection=enabled")
        );
    }

    #[test]
    fn labelled_namespaces_with_proxied_pods_are_clean() {
        let objects = OBJECTS
            .replace("metadata: {name: shop}", "metadata: {name: shop, labels: {istio-injection: disabled}}")
            .replace("{containers: [{name: app, image: app}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: meshed", "{containers: [{name: app, image: app}, {name: istio-proxy, image: p}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: meshed");
        assert!(
            run(analyze, &objects).is_empty(),
            "{:?}",
            run(analyze, &objects)
        );
    }
}
