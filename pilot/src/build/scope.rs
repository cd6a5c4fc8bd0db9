//! The proxy's scope (Istio `SidecarScope`): the services, ports and VirtualServices it can
//! see, from `exportTo` and the Sidecar resource that applies to it.

use std::collections::BTreeMap;

use weft_crds::networking::{OutboundTrafficMode, Sidecar};
use weft_proxy_config::{OutboundTrafficPolicy, ProxyType};

use super::Context;
use crate::host::{host_matches, resolve_host};
use crate::registry::ServiceInstance;
use crate::selector::applicable_sidecar;
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// What the proxy can see.
pub(crate) struct Scope<'a> {
    /// Visible services, one per host name, sorted by host name.
    pub services: Vec<&'a ServiceInstance>,
    /// Visible service ports, per host name.
    ports: BTreeMap<&'a str, Vec<u16>>,
    /// Per VirtualService (by index in the view's list): whether it is bound to the mesh and
    /// visible to the proxy.
    pub virtual_services: Vec<bool>,
    /// The outbound traffic policy (the Sidecar's, else the mesh's).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
}

/// One egress `hosts` entry, `namespace/host`.
struct EgressHost {
    namespace: String,
    host: String,
    port: Option<u16>,
}

impl EgressHost {
    /// Whether the entry covers an object of `namespace` with host `host` on `port`, as
    /// Istio's Sidecar egress: namespace `*` any, `.` the proxy's, `~` none; host `*` or a
    /// (wildcard) name; a listener `port` restricts to that port.
    fn covers(
        &self,
        proxy_namespace: &str,
        namespace: &str,
        host: &str,
        port: Option<u16>,
    ) -> bool {
        let namespace_ok = match self.namespace.as_str() {
            "*" => true,
            "~" => false,
            "." => namespace == proxy_namespace,
            other => other == namespace,
        };
        let port_ok = match (self.port, port) {
            (Some(listener), Some(port)) => listener == port,
            _ => true,
        };
        namespace_ok
            && port_ok
            && (host_matches(&self.host, host) || host_matches(host, &self.host))
    }
}

impl<'a> Scope<'a> {
    /// The scope of `context.target`: services whose `exportTo` admits the proxy's namespace,
    /// filtered by the egress hosts of the Sidecar that applies (one selecting the workload in
    /// its namespace, else the namespace's default Sidecar, else the root namespace's); one
    /// service per host name, preferring the proxy's own namespace.
    pub fn new(context: &mut Context<'a>) -> Self {
        let view = context.view;
        let target = context.target;
        let mesh = view.mesh();
        let proxy_namespace = target.namespace.as_str();
        // Sidecar resources configure sidecars only; a router sees what `exportTo` allows.
        let sidecar = match target.proxy_type {
            ProxyType::Sidecar => find_sidecar(context),
            ProxyType::Router => None,
        };
        let egress: Option<Vec<EgressHost>> = sidecar.and_then(|sidecar| {
            let spec = &sidecar.spec;
            if spec.egress.is_empty() {
                return None;
            }
            Some(
                spec.egress
                    .iter()
                    .flat_map(|listener| {
                        let port = listener
                            .port
                            .as_ref()
                            .and_then(|port| port.number)
                            .and_then(|number| u16::try_from(number).ok());
                        listener.hosts.iter().filter_map(move |entry| {
                            let (namespace, host) = entry.split_once('/')?;
                            Some(EgressHost {
                                namespace: namespace.to_owned(),
                                host: host.to_owned(),
                                port,
                            })
                        })
                    })
                    .collect(),
            )
        });
        let covered = |namespace: &str, host: &str, port: Option<u16>| {
            egress.as_ref().is_none_or(|hosts| {
                hosts
                    .iter()
                    .any(|entry| entry.covers(proxy_namespace, namespace, host, port))
            })
        };

        let mut by_host: BTreeMap<&str, &ServiceInstance> = BTreeMap::new();
        let mut ports: BTreeMap<&str, Vec<u16>> = BTreeMap::new();
        for service in view.registry().services() {
            if !service.export_to.visible_to(proxy_namespace)
                || !covered(&service.namespace, &service.hostname, None)
            {
                continue;
            }
            let visible_ports: Vec<u16> = service
                .ports
                .iter()
                .map(|port| port.port)
                .filter(|port| covered(&service.namespace, &service.hostname, Some(*port)))
                .collect();
            if visible_ports.is_empty() {
                continue;
            }
            let replace = match by_host.get(service.hostname.as_str()) {
                None => true,
                Some(existing) => {
                    existing.namespace != proxy_namespace && service.namespace == proxy_namespace
                }
            };
            if replace {
                by_host.insert(&service.hostname, service);
                ports.insert(&service.hostname, visible_ports);
            }
        }

        let vs_export = &view.index().virtual_services.export_to;
        let virtual_services = view
            .objects()
            .virtual_services
            .iter()
            .enumerate()
            .map(|(position, vs)| {
                let namespace = namespace_of(&vs.metadata);
                let bound_to_mesh =
                    vs.spec.gateways.is_empty() || vs.spec.gateways.iter().any(|g| g == "mesh");
                bound_to_mesh
                    && vs_export
                        .get(position)
                        .is_some_and(|export| export.visible_to(proxy_namespace))
                    && (egress.is_none()
                        || vs.spec.hosts.iter().any(|host| {
                            covered(
                                namespace,
                                &resolve_host(host, namespace, &mesh.cluster_domain),
                                None,
                            )
                        }))
            })
            .collect();

        let outbound_traffic_policy = sidecar
            .and_then(|sidecar| sidecar.spec.outbound_traffic_policy.as_ref())
            .and_then(|policy| policy.mode)
            .map_or(mesh.outbound_traffic_policy, |mode| match mode {
                OutboundTrafficMode::AllowAny => OutboundTrafficPolicy::AllowAny,
                OutboundTrafficMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
            });
        Self {
            services: by_host.into_values().collect(),
            ports,
            virtual_services,
            outbound_traffic_policy,
        }
    }

    /// The visible ports of `service`, in order.
    pub fn ports_of(&self, service: &ServiceInstance) -> &[u16] {
        self.ports
            .get(service.hostname.as_str())
            .map_or(&[][..], Vec::as_slice)
    }

    /// The visible service with host name `hostname`, if any.
    pub fn service(&self, hostname: &str) -> Option<&'a ServiceInstance> {
        self.services
            .binary_search_by(|service| service.hostname.as_str().cmp(hostname))
            .ok()
            .and_then(|index| self.services.get(index).copied())
    }
}

/// The Sidecar that applies to the proxy, reporting its outbound fields the model cannot
/// express.
fn find_sidecar<'a>(context: &mut Context<'a>) -> Option<&'a Sidecar> {
    let sidecar = applicable_sidecar(context.view, context.target)?;
    let origin = Origin {
        kind: "Sidecar",
        namespace: namespace_of(&sidecar.metadata),
        name: name_of(&sidecar.metadata),
    };
    let spec = &sidecar.spec;
    // `ingress` and `inboundConnectionPool` shape the inbound side, built per proxy
    // (`inbound::ingress`), which reports their unsupported fields.
    for (index, listener) in spec.egress.iter().enumerate() {
        if listener.bind.is_some() {
            context.warn(origin.unsupported(
                format!("spec.egress[{index}].bind"),
                "egress listeners bound to an address are not expressible; traffic is captured \
                 as usual",
            ));
        }
        if listener.capture_mode.is_some() {
            context.warn(origin.unsupported(
                format!("spec.egress[{index}].captureMode"),
                "capture modes are not expressible; traffic is captured by iptables",
            ));
        }
    }
    if spec
        .outbound_traffic_policy
        .as_ref()
        .is_some_and(|policy| policy.egress_proxy.is_some())
    {
        context.warn(origin.unsupported(
            "spec.outboundTrafficPolicy.egressProxy",
            "an egress proxy for unknown destinations is not expressible; the mode alone applies",
        ));
    }
    Some(sidecar)
}
