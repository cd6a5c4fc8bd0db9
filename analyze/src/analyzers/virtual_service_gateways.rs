//! VirtualServices bound to a Gateway that does not exist (Istio's
//! `virtualservice.GatewayAnalyzer`: `IST0101` ReferencedResourceNotFound, `gateway`).
//!
//! Checks `spec.gateways` and the `gateways` of every HTTP, TLS and TCP match. `mesh` is the
//! sidecars, not a Gateway object. A name is `<namespace>/<name>`, or a bare name in the
//! VirtualService's namespace (Istio's gateway name rules).

use std::collections::BTreeSet;

use crate::message::Message;

use super::Context;

/// Reports each gateway name that names no Gateway of the input.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    let gateways: BTreeSet<(String, String)> = context
        .input
        .gateways()
        .map(|g| {
            (
                g.resource.namespace.clone().unwrap_or_default(),
                g.resource.name.clone(),
            )
        })
        .collect();
    for vs in context.input.virtual_services() {
        let namespace = vs.resource.namespace.as_deref().unwrap_or_default();
        for (path, name) in gateway_names(vs.object) {
            if name == "mesh" {
                continue;
            }
            let (gw_namespace, gw_name) = match name.split_once('/') {
                Some((ns, n)) => (ns.to_owned(), n.to_owned()),
                None => (namespace.to_owned(), name.to_owned()),
            };
            if !gateways.contains(&(gw_namespace, gw_name)) {
                out.push(Message::not_found(&vs.resource, path, "gateway", name));
            }
        }
    }
}

fn gateway_names(vs: &weft_crds::networking::VirtualService) -> Vec<(String, &str)> {
    let mut out: Vec<(String, &str)> = vs
        .spec
        .gateways
        .iter()
        .enumerate()
        .map(|(i, g)| (format!("spec.gateways[{i}]"), g.as_str()))
        .collect();
    for (i, http) in vs.spec.http.iter().enumerate() {
        for (j, m) in http.match_.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((format!("spec.http[{i}].match[{j}].gateways[{k}]"), g));
            }
        }
    }
    for (i, tls) in vs.spec.tls.iter().enumerate() {
        for (j, m) in tls.match_.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((format!("spec.tls[{i}].match[{j}].gateways[{k}]"), g));
            }
        }
    }
    for (i, tcp) in vs.spec.tcp.iter().enumerate() {
        for (j, m) in tcp.match_.iter().enumerate() {
            for (k, g) in m.gateways.iter().enumerate() {
                out.push((format!("spec.tcp[{i}].match[{j}].gateways[{k}]"), g));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: ['*']
  gateways: [mesh, httpbin-gateway, edge/public]
  http:
  - match: [{gateways: [httpbin-gateway]}]
    route:
    - destination: {host: httpbin}
"#;
    const GATEWAYS: &str = r#"---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway}
spec: {selector: {istio: ingressgateway}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: public, namespace: edge}
spec: {selector: {istio: ingressgateway}}
"#;

    #[test]
    fn a_missing_gateway_is_reported_at_each_reference() {
        let out = run(analyze, VS);
        let paths: Vec<&str> = out.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.gateways[1]",
                "spec.gateways[2]",
                "spec.http[0].match[0].gateways[0]"
            ]
        );
        assert_eq!(
            out[0].message,
            "Referenced gateway not found: \"httpbin-gateway\""
        );
    }

    #[test]
    fn existing_gateways_and_mesh_are_found() {
        let out = run(analyze, &format!("{VS}{GATEWAYS}"));
        assert!(out.is_empty(), "{out:?}");
    }
}
