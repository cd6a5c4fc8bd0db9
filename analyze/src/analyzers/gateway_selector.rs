//! Gateways whose `selector` matches no workload (Istio's `gateway.IngressGatewayPortAnalyzer`:
//! `IST0101` ReferencedResourceNotFound, `selector`).
//!
//! As in Istio, the selector is matched against workloads of every namespace (Gateway
//! deployments usually live in another namespace than the Gateway object). Workloads are pods,
//! pod templates of workload kinds and WorkloadEntries. When the input holds no Kubernetes
//! objects, only WorkloadEntries can be seen, so nothing is reported.

use crate::input::selector_string;
use crate::message::Message;

use super::Context;

/// Reports each Gateway no workload carries the selector's labels for, at `spec.selector`.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    if !context.kubernetes_known {
        return;
    }
    for gateway in context.input.gateways() {
        let selector = &gateway.object.spec.selector;
        if context.selected(None, selector).next().is_none() {
            out.push(Message::not_found(
                &gateway.resource,
                "spec.selector",
                "selector",
                &selector_string(selector),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: ['*']}]
"#;

    #[test]
    fn a_selector_matching_no_pod_is_reported() {
        let pod = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: app, labels: {app: x}}\n";
        let out = run(analyze, &format!("{GATEWAY}{pod}"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].path, "spec.selector");
        assert_eq!(
            out[0].message,
            "Referenced selector not found: \"istio=ingressgateway\""
        );
    }

    #[test]
    fn a_deployment_in_another_namespace_is_selected() {
        let deployment = r#"---
apiVersion: apps/v1
kind: Deployment
metadata: {name: istio-ingressgateway, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  template: {metadata: {labels: {istio: ingressgateway}}}
"#;
        assert!(run(analyze, &format!("{GATEWAY}{deployment}")).is_empty());
    }

    #[test]
    fn nothing_is_reported_without_kubernetes_objects() {
        assert!(run(analyze, GATEWAY).is_empty());
    }
}
