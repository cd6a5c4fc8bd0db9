//! VirtualService destinations that name no service or no port of it (Istio's
//! `virtualservice.DestinationHostAnalyzer`):
//!
//! - the host is no Service and no ServiceEntry host: `IST0101` ReferencedResourceNotFound,
//!   `host` (`mirror host` for `mirror`/`mirrors`);
//! - `port.number` is not a port of the service: `IST0101`, `host:port`;
//! - no `port` while the service has more than one: `IST0112`
//!   VirtualServiceDestinationPortSelectorRequired.
//!
//! Short names resolve in the VirtualService's namespace, as Istio resolves them; a service
//! counts only when its `exportTo` makes it visible there. When the
//! input holds no Kubernetes objects, hosts of the `<name>.<namespace>.svc.cluster.local` form
//! are not reported (they may be Services the input does not show).

use crate::message::{Message, VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED};

use super::{Context, destinations, resolve_host};

/// Reports each destination whose host is not in the registry (at `<destination>.host`), whose
/// port the service lacks (at `<destination>.port.number`), or that needs a port (at
/// `<destination>`).
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    for vs in context.input.virtual_services() {
        let namespace = vs.resource.namespace.as_deref().unwrap_or_default();
        for (path, destination) in destinations(vs.object) {
            let host = resolve_host(&destination.host, namespace);
            let Some(ports) = context.host_ports(&host, namespace) else {
                if !context.host_unknowable(&host) {
                    let what = if path.contains(".mirror") {
                        "mirror host"
                    } else {
                        "host"
                    };
                    out.push(Message::not_found(
                        &vs.resource,
                        format!("{path}.host"),
                        what,
                        &destination.host,
                    ));
                }
                continue;
            };
            match destination.port.as_ref().and_then(|p| p.number) {
                Some(number) if !ports.contains(&number) => out.push(Message::not_found(
                    &vs.resource,
                    format!("{path}.port.number"),
                    "host:port",
                    &format!("{}:{number}", destination.host),
                )),
                None if ports.len() > 1 => {
                    let list: Vec<String> = ports.iter().map(u32::to_string).collect();
                    out.push(Message::new(
                        VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                        Some(&vs.resource),
                        path,
                        format!(
                            "This VirtualService routes to a service {:?} that exposes multiple \
                             ports [{}]. Specifying a port in the destination is required to \
                             disambiguate.",
                            destination.host,
                            list.join(" ")
                        ),
                    ));
                }
                _ => {}
            }
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
        assert_eq!(
            out[1].message,
            "Referenced mirror host not found: \"api.example.com\""
        );
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
    fn ports_must_exist_and_be_named_when_the_service_has_several() {
        let yaml = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    - destination: {host: reviews, port: {number: 9090}}
    - destination: {host: reviews, port: {number: 9081}}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: http, port: 9080}, {name: grpc, port: 9081}]}
"#;
        let out = run(analyze, yaml);
        let summary: Vec<(&str, &str)> = out.iter().map(|m| (m.code, m.path.as_str())).collect();
        assert_eq!(
            summary,
            [
                ("IST0112", "spec.http[0].route[0].destination"),
                ("IST0101", "spec.http[0].route[1].destination.port.number"),
            ]
        );
        assert_eq!(
            out[0].message,
            "This VirtualService routes to a service \"reviews\" that exposes multiple ports \
             [9080 9081]. Specifying a port in the destination is required to disambiguate."
        );
        assert_eq!(
            out[1].message,
            "Referenced host:port not found: \"reviews:9090\""
        );
    }

    #[test]
    fn a_service_entry_not_exported_to_the_namespace_is_not_found() {
        let entry = r#"---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext, namespace: other}
spec: {hosts: [api.example.com], exportTo: ['.'], ports: [{number: 80, name: http}]}
"#;
        let out = run(analyze, &format!("{VS}{SERVICE}{entry}"));
        assert!(
            out.iter().any(|m| m.path == "spec.http[1].mirror.host"),
            "{out:?}"
        );
        let exported = entry.replace("['.']", "[default]");
        let out = run(analyze, &format!("{VS}{SERVICE}{exported}"));
        assert!(
            out.iter().all(|m| m.path != "spec.http[1].mirror.host"),
            "{out:?}"
        );
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
