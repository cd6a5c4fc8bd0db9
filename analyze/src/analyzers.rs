//! The analyzers, one module each, and what they share: host resolution and look-ups in the
//! service registry (Kubernetes Services and ServiceEntry hosts).

mod authorization_namespaces;
mod conflicting_mesh_gateway_hosts;
mod destination_hosts;
mod destination_rule_host;
mod destination_subsets;
mod gateway_selector;
mod injection;
mod mtls_conflict;
mod policy_selectors;
mod schema;
mod sidecar_conflicts;
mod virtual_service_gateways;

use std::collections::BTreeMap;

use weft_crds::networking::{Destination, VirtualService};
use weft_pilot::ExportTo;

use crate::input::{CLUSTER_DOMAIN, Input, Workload, selects};
use crate::message::Message;

/// Runs every analyzer over `input`, in a fixed order; returns their messages in that order.
pub(crate) fn run_all(input: &Input) -> Vec<Message> {
    let context = Context::new(input);
    let mut out = Vec::new();
    schema::analyze(&context, &mut out);
    destination_hosts::analyze(&context, &mut out);
    destination_subsets::analyze(&context, &mut out);
    virtual_service_gateways::analyze(&context, &mut out);
    conflicting_mesh_gateway_hosts::analyze(&context, &mut out);
    gateway_selector::analyze(&context, &mut out);
    policy_selectors::analyze(&context, &mut out);
    authorization_namespaces::analyze(&context, &mut out);
    sidecar_conflicts::analyze(&context, &mut out);
    mtls_conflict::analyze(&context, &mut out);
    destination_rule_host::analyze(&context, &mut out);
    injection::analyze(&context, &mut out);
    out
}

/// Istio's annotation carrying a Service's `exportTo` list (comma-separated).
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A registered service host: its port numbers and who may see it.
#[derive(Debug, Clone)]
pub(crate) struct Registered {
    /// Service port numbers (Kubernetes `spec.ports[].port`, ServiceEntry `ports[].number`).
    pub ports: Vec<u32>,
    /// Istio `exportTo` (Services: the `networking.istio.io/exportTo` annotation).
    pub export_to: ExportTo,
}

/// What every analyzer reads, computed once.
pub(crate) struct Context<'a> {
    /// The input.
    pub input: &'a Input,
    /// Whether the Kubernetes objects are known ([`Input::kubernetes_known`]).
    pub kubernetes_known: bool,
    /// The mesh's root namespace.
    pub root_namespace: String,
    /// Fully qualified host names of the Kubernetes Services, with their ports and
    /// visibility (the `networking.istio.io/exportTo` annotation).
    pub service_hosts: BTreeMap<String, Registered>,
    /// Hosts of the ServiceEntries, resolved in their namespaces (may be wildcards), with the
    /// entries' ports and `exportTo`.
    pub service_entry_hosts: Vec<(String, Registered)>,
    /// Pods, pod templates and WorkloadEntries.
    pub workloads: Vec<Workload>,
}

impl<'a> Context<'a> {
    fn new(input: &'a Input) -> Self {
        let service_hosts = input
            .services
            .iter()
            .map(|e| {
                let namespace = e.resource.namespace.as_deref().unwrap_or_default();
                let ports = e
                    .object
                    .spec
                    .iter()
                    .flat_map(|spec| spec.ports.iter().flatten())
                    .filter_map(|p| u32::try_from(p.port).ok())
                    .collect();
                let export_to: Vec<String> = e
                    .object
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(EXPORT_TO_ANNOTATION))
                    .map(|list| list.split(',').map(|n| n.trim().to_owned()).collect())
                    .unwrap_or_default();
                (
                    format!("{}.{namespace}.svc.{CLUSTER_DOMAIN}", e.resource.name),
                    Registered {
                        ports,
                        export_to: ExportTo::parse(&export_to, namespace),
                    },
                )
            })
            .collect();
        let service_entry_hosts = input
            .service_entries()
            .flat_map(|e| {
                let namespace = e.resource.namespace.clone().unwrap_or_default();
                let registered = Registered {
                    ports: e.object.spec.ports.iter().map(|p| p.number).collect(),
                    export_to: ExportTo::parse(&e.object.spec.export_to, &namespace),
                };
                e.object
                    .spec
                    .hosts
                    .iter()
                    .map(|h| (resolve_host(h, &namespace), registered.clone()))
                    .collect::<Vec<_>>()
            })
            .collect();
        Self {
            input,
            kubernetes_known: input.kubernetes_known(),
            root_namespace: input.root_namespace().to_owned(),
            service_hosts,
            service_entry_hosts,
            workloads: input.workloads(),
        }
    }

    /// Whether `host` (fully qualified) is a Kubernetes Service or covered by a ServiceEntry
    /// host (exactly or by its wildcard, Istio's `host.Name.Matches`) visible from `namespace`.
    pub fn host_exists(&self, host: &str, namespace: &str) -> bool {
        self.host_ports(host, namespace).is_some()
    }

    /// The port numbers of the service `host` (fully qualified) names, as seen from
    /// `namespace` (Istio `exportTo`): the Kubernetes Service's, else the first visible
    /// ServiceEntry covering it; `None` when no visible service has the host.
    pub fn host_ports(&self, host: &str, namespace: &str) -> Option<&[u32]> {
        let visible = |r: &&Registered| r.export_to.visible_to(namespace);
        self.service_hosts
            .get(host)
            .filter(visible)
            .map(|r| r.ports.as_slice())
            .or_else(|| {
                self.service_entry_hosts
                    .iter()
                    .filter(|(entry, r)| visible(&r) && weft_pilot::host_matches(entry, host))
                    .map(|(_, r)| r.ports.as_slice())
                    .next()
            })
    }

    /// Whether a host that [`Context::host_exists`] did not find may still be a Kubernetes
    /// Service the input does not show: the Kubernetes objects are unknown and the host has
    /// the `.svc.<cluster domain>` form.
    pub fn host_unknowable(&self, host: &str) -> bool {
        !self.kubernetes_known && is_kubernetes_host(host)
    }

    /// The workloads in `namespace` (every namespace when `None`) whose labels `selector`
    /// selects.
    pub fn selected<'s>(
        &'s self,
        namespace: Option<&'s str>,
        selector: &'s BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'s Workload> + 's {
        self.workloads.iter().filter(move |w| {
            namespace.is_none_or(|ns| w.namespace == ns) && selects(selector, &w.labels)
        })
    }
}

/// Resolves a host written in an object of `namespace` as Istio's `ResolveShortnameToFQDN`
/// does: a name without a dot becomes `<name>.<namespace>.svc.cluster.local`; names with a dot
/// and wildcards stay as written.
pub(crate) fn resolve_host(host: &str, namespace: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    }
}

/// Whether `host` has the form of a Kubernetes Service host, `<name>.<namespace>.svc.cluster.local`.
pub(crate) fn is_kubernetes_host(host: &str) -> bool {
    kubernetes_service(host).is_some()
}

/// The `(namespace, name)` of a Kubernetes Service host `<name>.<namespace>.svc.cluster.local`;
/// `None` for other hosts and wildcards.
pub(crate) fn kubernetes_service(host: &str) -> Option<(&str, &str)> {
    let rest = host.strip_suffix(&format!(".svc.{CLUSTER_DOMAIN}"))?;
    let (name, namespace) = rest.split_once('.')?;
    (!name.starts_with('*') && !namespace.contains('.') && !name.is_empty())
        .then_some((namespace, name))
}

/// Every destination of a VirtualService with its field path: HTTP, TLS and TCP route
/// destinations, `mirror` and `mirrors[].destination`.
pub(crate) fn destinations(vs: &VirtualService) -> Vec<(String, &Destination)> {
    let mut out = Vec::new();
    for (i, http) in vs.spec.http.iter().enumerate() {
        for (j, route) in http.route.iter().enumerate() {
            out.push((
                format!("spec.http[{i}].route[{j}].destination"),
                &route.destination,
            ));
        }
        if let Some(mirror) = &http.mirror {
            out.push((format!("spec.http[{i}].mirror"), mirror));
        }
        for (j, mirror) in http.mirrors.iter().enumerate() {
            out.push((
                format!("spec.http[{i}].mirrors[{j}].destination"),
                &mirror.destination,
            ));
        }
    }
    for (i, tls) in vs.spec.tls.iter().enumerate() {
        for (j, route) in tls.route.iter().enumerate() {
            out.push((
                format!("spec.tls[{i}].route[{j}].destination"),
                &route.destination,
            ));
        }
    }
    for (i, tcp) in vs.spec.tcp.iter().enumerate() {
        for (j, route) in tcp.route.iter().enumerate() {
            out.push((
                format!("spec.tcp[{i}].route[{j}].destination"),
                &route.destination,
            ));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builds inputs from YAML and picks messages by code.

    use crate::input::Input;
    use crate::message::Message;

    /// The input of `yaml` (file `test.yaml`).
    pub fn input(yaml: &str) -> Input {
        let mut input = Input::default();
        input.add_yaml("test.yaml", yaml).unwrap();
        input
    }

    /// Runs one analyzer on `yaml` and returns its messages.
    pub fn run(analyze: fn(&super::Context<'_>, &mut Vec<Message>), yaml: &str) -> Vec<Message> {
        let input = input(yaml);
        let context = super::Context::new(&input);
        let mut out = Vec::new();
        analyze(&context, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_resolve_and_split_like_istio() {
        assert_eq!(
            resolve_host("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(resolve_host("api.example.com", "x"), "api.example.com");
        assert_eq!(
            kubernetes_service("reviews.bookinfo.svc.cluster.local"),
            Some(("bookinfo", "reviews"))
        );
        assert_eq!(kubernetes_service("*.bookinfo.svc.cluster.local"), None);
        assert_eq!(kubernetes_service("api.example.com"), None);
    }
}
