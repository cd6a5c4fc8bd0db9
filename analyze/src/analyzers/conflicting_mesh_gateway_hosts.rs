//! VirtualServices bound to the `mesh` gateway that define the same host (Istio's
//! `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: `IST0109`
//! ConflictingMeshGatewayVirtualServiceHosts). Sidecars do not merge such VirtualServices:
//! which one applies is undefined.
//!
//! A VirtualService is bound to `mesh` when `gateways` is empty or lists `mesh`. Hosts resolve
//! in each VirtualService's namespace; `*` is skipped. Two VirtualServices conflict only when
//! some namespace sees both (their `exportTo` sets overlap), so `exportTo: ["."]` in different
//! namespaces is the documented fix.

use std::collections::BTreeMap;

use weft_pilot::ExportTo;

use crate::message::{CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS, Message, ResourceRef};

use super::{Context, resolve_host};

/// Reports every VirtualService in a conflict, at the conflicting `spec.hosts[i]`.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    // host -> (resource, hosts index, exportTo)
    let mut by_host: BTreeMap<String, Vec<(ResourceRef, usize, ExportTo)>> = BTreeMap::new();
    for vs in context.input.virtual_services() {
        let spec = &vs.object.spec;
        if !(spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh")) {
            continue;
        }
        let namespace = vs.resource.namespace.clone().unwrap_or_default();
        let export_to = ExportTo::parse(&spec.export_to, &namespace);
        for (i, host) in spec.hosts.iter().enumerate() {
            if host == "*" {
                continue;
            }
            by_host
                .entry(resolve_host(host, &namespace))
                .or_default()
                .push((vs.resource.clone(), i, export_to.clone()));
        }
    }
    for (host, list) in &by_host {
        for (resource, hosts_index, export_to) in list {
            let conflicting: Vec<&ResourceRef> = list
                .iter()
                .filter(|(other, _, other_export)| {
                    other != resource && overlap(export_to, other_export)
                })
                .map(|(r, _, _)| r)
                .collect();
            if conflicting.is_empty() {
                continue;
            }
            let mut names: Vec<String> = std::iter::once(resource)
                .chain(conflicting)
                .map(ResourceRef::full_name)
                .collect();
            names.sort();
            names.dedup();
            out.push(Message::new(
                CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                Some(resource),
                format!("spec.hosts[{hosts_index}]"),
                format!(
                    "The VirtualServices {} associated with mesh gateway define the same host {host} \
                     which can lead to undefined behavior. This can be fixed by merging the \
                     conflicting VirtualServices into a single resource.",
                    names.join(",")
                ),
            ));
        }
    }
}

/// Whether some namespace sees objects exported to `a` and to `b`.
fn overlap(a: &ExportTo, b: &ExportTo) -> bool {
    match (a, b) {
        (ExportTo::All, ExportTo::All) => true,
        (ExportTo::All, ExportTo::Namespaces(s)) | (ExportTo::Namespaces(s), ExportTo::All) => {
            !s.is_empty()
        }
        (ExportTo::Namespaces(x), ExportTo::Namespaces(y)) => !x.is_disjoint(y),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const TWO: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: productpage, namespace: team-1}
spec:
  hosts: [productpage.default.svc.cluster.local]
  http: [{route: [{destination: {host: productpage}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: custom, namespace: team-2}
spec:
  hosts: [productpage.default.svc.cluster.local]
  http: [{route: [{destination: {host: productpage.team-2.svc.cluster.local}}]}]
"#;

    #[test]
    fn two_mesh_virtual_services_for_one_host_conflict() {
        let out = run(analyze, TWO);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(
            out.iter()
                .all(|m| m.code == "IST0109" && m.path == "spec.hosts[0]")
        );
        assert!(
            out[0].message.starts_with(
                "The VirtualServices team-1/productpage,team-2/custom associated with mesh gateway \
                 define the same host productpage.default.svc.cluster.local"
            ),
            "{}",
            out[0].message
        );
    }

    #[test]
    fn one_virtual_service_naming_a_host_twice_does_not_conflict_with_itself() {
        let one = TWO.split("---").next().unwrap().replace(
            "hosts: [productpage.default.svc.cluster.local]",
            "hosts: [productpage, productpage.team-1.svc.cluster.local]",
        );
        assert!(run(analyze, &one).is_empty(), "{:?}", run(analyze, &one));
    }

    #[test]
    fn export_to_own_namespace_or_a_gateway_binding_avoids_the_conflict() {
        let scoped = TWO.replace("  hosts:", "  exportTo: ['.']\n  hosts:");
        assert!(run(analyze, &scoped).is_empty());
        let gateway = TWO.replacen("  hosts:", "  gateways: [edge]\n  hosts:", 1);
        assert!(run(analyze, &gateway).is_empty());
    }
}
