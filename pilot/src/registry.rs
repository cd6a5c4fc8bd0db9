//! The service registry: one list of services, with their ports and endpoints, built from
//! Kubernetes Services (+ EndpointSlices and Pods) and Istio ServiceEntries (+ WorkloadEntries).

mod kubernetes;
mod service_entry;

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_proxy_config::{DnsEndpoint, Endpoint, Locality, Protocol};

pub(crate) use kubernetes::{
    locality_from_labels, named_container_port, pod_has_sidecar, pod_ips, pod_service_account,
};

use crate::host::ExportTo;
use crate::unsupported::Unsupported;
use crate::view::{ClusterObjects, MeshSettings};

/// Where a registry service comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceSource {
    /// A Kubernetes Service; `selector` is its pod selector (`None`: no selector).
    Kubernetes {
        /// The Service's `spec.selector`.
        selector: Option<BTreeMap<String, String>>,
    },
    /// An Istio ServiceEntry (one registry service per entry of `spec.hosts`).
    ServiceEntry {
        /// The ServiceEntry's `spec.workloadSelector.labels`, if any.
        workload_selector: Option<BTreeMap<String, String>>,
    },
}

/// Istio `ServiceEntry.Location`; Kubernetes Services are always `MeshInternal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceLocation {
    /// Part of the mesh (`MESH_INTERNAL`).
    MeshInternal,
    /// Outside the mesh (`MESH_EXTERNAL`): no mTLS by default.
    MeshExternal,
}

/// How the proxy finds a service's endpoints (Istio `ServiceEntry.Resolution`, Kubernetes
/// ClusterIP vs headless).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceResolution {
    /// The registry lists the endpoints (`STATIC`, ClusterIP Services).
    ClientSideLb,
    /// The proxy resolves the host names and balances over every address (`DNS`,
    /// `DYNAMIC_DNS`; Envoy `STRICT_DNS`).
    Dns,
    /// The proxy resolves the host name and connects to the first address
    /// (`DNS_ROUND_ROBIN`; Envoy `LOGICAL_DNS`).
    DnsRoundRobin,
    /// Forward to the original destination address (`NONE`, headless Services).
    Passthrough,
}

/// The port a service port forwards to on its endpoints (Kubernetes `targetPort`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetPort {
    /// A port number.
    Number(u16),
    /// A container port name, resolved per pod.
    Name(String),
}

/// One port of a registry service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name (Kubernetes `ports[].name`, ServiceEntry `ports[].name`).
    pub name: String,
    /// The service port number.
    pub port: u16,
    /// The protocol, by Istio's protocol selection ([`protocol_from_name`]).
    pub protocol: Protocol,
    /// The endpoint port.
    pub target_port: TargetPort,
}

/// One endpoint of one service port (Istio `IstioEndpoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceEndpoint {
    /// The service port this endpoint serves.
    pub service_port: u16,
    /// The endpoint as the proxy model spells it (address, target port, labels, locality,
    /// sidecar, identity).
    pub endpoint: Endpoint,
}

/// One endpoint of one service port that the proxy finds by DNS: a `DNS`/`DNS_ROUND_ROBIN`
/// ServiceEntry's host (when it has no endpoints) or an endpoint `address` that is a name.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceDnsEndpoint {
    /// The service port this endpoint serves.
    pub service_port: u16,
    /// The name to resolve, with the target port and metadata its addresses get.
    pub endpoint: DnsEndpoint,
}

/// A service of the registry (Istio `model.Service`) with its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInstance {
    /// The fully qualified host name, e.g. `reviews.bookinfo.svc.cluster.local`.
    pub hostname: String,
    /// The namespace of the Service or ServiceEntry.
    pub namespace: String,
    /// The name of the Service or ServiceEntry.
    pub name: String,
    /// Where it comes from.
    pub source: ServiceSource,
    /// Virtual IPs (ClusterIPs, ServiceEntry `addresses`); empty: matched by port only.
    pub vips: Vec<IpAddr>,
    /// The ports, sorted by number.
    pub ports: Vec<ServicePort>,
    /// Inside or outside the mesh.
    pub location: ServiceLocation,
    /// How endpoints are found.
    pub resolution: ServiceResolution,
    /// Who may see it (Istio `exportTo`; for Services the `networking.istio.io/exportTo`
    /// annotation).
    pub export_to: ExportTo,
    /// ServiceEntry `subjectAltNames`: identities the endpoints' certificates may carry.
    pub subject_alt_names: Vec<String>,
    /// The endpoints of every port, sorted by (service port, address, port).
    pub endpoints: Vec<ServiceEndpoint>,
    /// The endpoints the proxy resolves by DNS (`resolution: DNS`/`DNS_ROUND_ROBIN`), in
    /// the ServiceEntry's order; when not empty, `endpoints` is empty.
    pub dns_endpoints: Vec<ServiceDnsEndpoint>,
    /// Fields of the source object the model cannot express; reported when the service
    /// reaches a proxy.
    pub unsupported: Vec<Unsupported>,
}

impl ServiceInstance {
    /// The port numbered `port`, if the service has it.
    pub fn port(&self, port: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|entry| entry.port == port)
    }

    /// The endpoints serving service port `port`.
    pub fn endpoints_for(&self, port: u16) -> impl Iterator<Item = &Endpoint> {
        self.endpoints
            .iter()
            .filter(move |entry| entry.service_port == port)
            .map(|entry| &entry.endpoint)
    }

    /// The DNS endpoints serving service port `port`.
    pub fn dns_endpoints_for(&self, port: u16) -> impl Iterator<Item = &DnsEndpoint> {
        self.dns_endpoints
            .iter()
            .filter(move |entry| entry.service_port == port)
            .map(|entry| &entry.endpoint)
    }

    /// The object kind behind the service, for warnings.
    pub fn kind(&self) -> &'static str {
        match self.source {
            ServiceSource::Kubernetes { .. } => "Service",
            ServiceSource::ServiceEntry { .. } => "ServiceEntry",
        }
    }
}

/// The service registry: every service, sorted by (host name, namespace).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registry {
    services: Vec<ServiceInstance>,
    by_host: BTreeMap<String, Vec<usize>>,
}

impl Registry {
    /// Builds the registry from Kubernetes Services (endpoints from EndpointSlices, labels and
    /// identity from Pods) and ServiceEntries (endpoints from `endpoints` or from the
    /// WorkloadEntries and Pods their `workloadSelector` selects). Never fails; unusable
    /// entries are skipped or recorded in [`ServiceInstance::unsupported`].
    pub fn build(mesh: &MeshSettings, objects: &ClusterObjects) -> Self {
        let mut services = kubernetes::services(mesh, objects);
        services.extend(service_entry::services(mesh, objects));
        Self::from_services(services)
    }

    /// A registry of the given services (sorted here by host name, then namespace).
    pub fn from_services(mut services: Vec<ServiceInstance>) -> Self {
        for service in &mut services {
            service.ports.sort_by_key(|port| port.port);
            service.endpoints.sort_by(|a, b| {
                (a.service_port, a.endpoint.address, a.endpoint.port).cmp(&(
                    b.service_port,
                    b.endpoint.address,
                    b.endpoint.port,
                ))
            });
        }
        services.sort_by(|a, b| (&a.hostname, &a.namespace).cmp(&(&b.hostname, &b.namespace)));
        let mut by_host: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, service) in services.iter().enumerate() {
            by_host
                .entry(service.hostname.clone())
                .or_default()
                .push(index);
        }
        Self { services, by_host }
    }

    /// Every service, sorted by host name, then namespace.
    pub fn services(&self) -> &[ServiceInstance] {
        &self.services
    }

    /// The services with host name `hostname` (one per namespace that defines it).
    pub fn by_host(&self, hostname: &str) -> impl Iterator<Item = &ServiceInstance> {
        self.by_host
            .get(hostname)
            .into_iter()
            .flatten()
            .filter_map(|index| self.services.get(*index))
    }
}

/// Istio's protocol selection for one port: `app_protocol` (Kubernetes `appProtocol`, or a
/// ServiceEntry port's `protocol`) when set, else the port name's prefix up to the first `-`
/// (`http`, `http-web`), compared case-insensitively. `http` → HTTP; `http2`, `h2c`,
/// `kubernetes.io/h2c` → HTTP/2; `grpc` → gRPC; `grpc-web` → HTTP; `https`, `tls` → TLS;
/// `tcp`, `mongo`, `redis`, `mysql` → TCP (Istio proxies them as TCP unless protocol filters
/// are enabled); anything else → [`Protocol::Unknown`] (sniffed).
pub fn protocol_from_name(app_protocol: Option<&str>, port_name: &str) -> Protocol {
    if let Some(protocol) = app_protocol.and_then(parse_protocol) {
        return protocol;
    }
    let prefix = match port_name.split_once('-') {
        Some((prefix, _)) => prefix,
        None => port_name,
    };
    // `grpc-web` is the one protocol whose name contains a dash.
    if port_name.to_ascii_lowercase().starts_with("grpc-web") {
        return Protocol::Http;
    }
    parse_protocol(prefix).unwrap_or(Protocol::Unknown)
}

fn parse_protocol(name: &str) -> Option<Protocol> {
    match name.to_ascii_lowercase().as_str() {
        "http" | "grpc-web" | "kubernetes.io/ws" | "kubernetes.io/wss" => Some(Protocol::Http),
        "http2" | "h2c" | "kubernetes.io/h2c" => Some(Protocol::Http2),
        "grpc" => Some(Protocol::Grpc),
        "https" | "tls" => Some(Protocol::Tls),
        "tcp" | "mongo" | "redis" | "mysql" => Some(Protocol::Tcp),
        _ => None,
    }
}

/// A locality from Istio's `region/zone/subzone` text (WorkloadEntry `locality`).
pub(crate) fn parse_locality(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/');
    Locality {
        region: parts.next().unwrap_or("").to_owned(),
        zone: parts.next().unwrap_or("").to_owned(),
        sub_zone: parts.next().unwrap_or("").to_owned(),
    }
}

/// Pod annotation the injector writes; its presence means the pod runs a sidecar.
pub(crate) const SIDECAR_STATUS_ANNOTATION: &str = "sidecar.istio.io/status";
/// Label Istio sets on workloads that accept Istio mTLS (`security.istio.io/tlsMode=istio`).
pub(crate) const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

#[cfg(test)]
mod tests;
