//! VirtualService destination hosts that are no Service and no ServiceEntry host (Istio's
//! `virtualservice.DestinationHostAnalyzer`: `IST0101` ReferencedResourceNotFound, `host`).
//!
//! Short names resolve in the VirtualService's namespace, as Istio resolves them. When the
//! input holds no Kubernetes objects, hosts of the `<name>.<namespace>.svc.cluster.local` form
//! are not reported (they may be Services the input does not show).

use crate::message::Message;

use super::{Context, destinations, resolve_host};

/// Reports each destination whose host is not in the registry, at `<destination>.host`.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    for vs in context.input.virtual_services() {
        let namespace = vs.resource.namespace.as_deref().unwrap_or_default();
        for (path, destination) in destinations(vs.object) {
            let host = resolve_host(&destination.host, namespace);
            if context.host_exists(&host) || context.host_unknowable(&host) {
                continue;
            }
            out.push(Message::not_found(
                &vs.resource,
                format!("{path}.host"),
                "host",
                &destination.host,
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviewz}
  - mirror: {host: api.example.com}
    route:
    - destination: {host: reviews}
"#;
    const SERVICE: &str = "---\napiVersion: v1\nkind: Service\nmetadata: {name: reviews}\n";

    #[test]
    fn an_unknown_short_host_is_reported_with_its_path() {
        let out = run(analyze, &format!("{VS}{SERVICE}"));
        let paths: Vec<&str> = out.iter().map(|m| m.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.http[0].route[0].destination.host",
                "spec.http[1].mirror.host"
            ]
        );
        assert_eq!(out[0].message, "Referenced host not found: \"reviewz\"");
        assert_eq!(out[0].code, "IST0101");
    }

    #[test]
    fn services_and_service_entry_wildcards_resolve() {
        let entry = r#"---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext}
spec: {hosts: ['*.example.com'], ports: [{number: 80, name: http}]}
---
apiVersion: v1
kind: Service
metadata: {name: reviewz}
"#;
        let out = run(analyze, &format!("{VS}{SERVICE}{entry}"));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn kubernetes_hosts_are_not_checked_without_kubernetes_objects() {
        let out = run(analyze, VS);
        // reviewz and reviews may be Services the files do not show; api.example.com is not a
        // Kubernetes host and no ServiceEntry declares it.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].path, "spec.http[1].mirror.host");
    }
}
