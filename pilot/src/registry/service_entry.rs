//! Registry services from Istio ServiceEntries, with endpoints from `spec.endpoints` or from the
//! WorkloadEntries and Pods selected by `spec.workloadSelector`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_crds::networking::{Location, Resolution, ServiceEntry, WorkloadEntrySpec};
use weft_proxy_config::{Cidr, DnsEndpoint, Endpoint};

use super::kubernetes::{pod_endpoint, pod_ips};
use super::{
    ServiceDnsEndpoint, ServiceEndpoint, ServiceInstance, ServiceLocation, ServicePort,
    ServiceResolution, ServiceSource, TLS_MODE_LABEL, TargetPort, parse_locality,
    protocol_from_name,
};
use crate::host::ExportTo;
use crate::selector::selects;
use crate::unsupported::{Origin, Unsupported};
use crate::view::{ClusterObjects, MeshSettings, name_of, namespace_of};

/// One registry service per host of every ServiceEntry.
pub(super) fn services(mesh: &MeshSettings, objects: &ClusterObjects) -> Vec<ServiceInstance> {
    objects
        .service_entries
        .iter()
        .flat_map(|entry| entry_services(mesh, objects, entry))
        .collect()
}

fn entry_services(
    mesh: &MeshSettings,
    objects: &ClusterObjects,
    entry: &ServiceEntry,
) -> Vec<ServiceInstance> {
    let namespace = namespace_of(&entry.metadata);
    let name = name_of(&entry.metadata);
    let origin = Origin {
        kind: "ServiceEntry",
        namespace,
        name,
    };
    let spec = &entry.spec;
    let mut unsupported = Vec::new();
    let mut vips = Vec::new();
    for (index, address) in spec.addresses.iter().enumerate() {
        match address.parse::<Cidr>() {
            Ok(cidr) if cidr.prefix_len == if cidr.address.is_ipv4() { 32 } else { 128 } => {
                vips.push(cidr.address);
            }
            _ => unsupported.push(origin.unsupported(
                format!("spec.addresses[{index}]"),
                format!(
                    "address {address:?} is not a single IP; the model's listeners match single \
                     addresses only, so traffic to this range is not captured for the entry"
                ),
            )),
        }
    }
    vips.sort();
    vips.dedup();
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .filter_map(|port| {
            let number = u16::try_from(port.number).ok()?;
            Some(ServicePort {
                name: port.name.clone(),
                port: number,
                protocol: protocol_from_name(port.protocol.as_deref(), &port.name),
                target_port: TargetPort::Number(
                    port.target_port
                        .and_then(|target| u16::try_from(target).ok())
                        .unwrap_or(number),
                ),
            })
        })
        .collect();
    let location = match spec.location.unwrap_or_default() {
        Location::MeshExternal => ServiceLocation::MeshExternal,
        Location::MeshInternal => ServiceLocation::MeshInternal,
    };
    let resolution = match spec.resolution.unwrap_or_default() {
        Resolution::None => ServiceResolution::Passthrough,
        Resolution::Static => ServiceResolution::ClientSideLb,
        Resolution::Dns | Resolution::DynamicDns => ServiceResolution::Dns,
        Resolution::DnsRoundRobin => ServiceResolution::DnsRoundRobin,
    };
    let by_dns = matches!(
        resolution,
        ServiceResolution::Dns | ServiceResolution::DnsRoundRobin
    );
    let mut endpoints = Vec::new();
    let mut dns_endpoints = Vec::new();
    for (index, workload) in spec.endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{index}]");
        endpoints.extend(workload_endpoints(
            mesh,
            &origin,
            &field,
            namespace,
            workload,
            &ports,
            false,
            by_dns.then_some(&mut dns_endpoints),
            &mut unsupported,
        ));
    }
    let selector = spec
        .workload_selector
        .as_ref()
        .map(|selector| selector.labels.clone());
    if let Some(selector) = &selector {
        let mesh_internal = location == ServiceLocation::MeshInternal;
        for workload in &objects.workload_entries {
            if namespace_of(&workload.metadata) != namespace
                || !selects(selector, &workload.spec.labels)
            {
                continue;
            }
            let field = "spec";
            let workload_origin = Origin {
                kind: "WorkloadEntry",
                namespace,
                name: name_of(&workload.metadata),
            };
            endpoints.extend(workload_endpoints(
                mesh,
                &workload_origin,
                field,
                namespace,
                &workload.spec,
                &ports,
                mesh_internal,
                by_dns.then_some(&mut dns_endpoints),
                &mut unsupported,
            ));
        }
        for pod in &objects.pods {
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            if namespace_of(&pod.metadata) != namespace || !selects(selector, &labels) {
                continue;
            }
            for address in pod_ips(pod) {
                for port in &ports {
                    let TargetPort::Number(target) = port.target_port else {
                        continue;
                    };
                    endpoints.push(ServiceEndpoint {
                        service_port: port.port,
                        endpoint: pod_endpoint(mesh, Some(pod), address, target),
                    });
                }
            }
        }
    }
    if !dns_endpoints.is_empty() {
        // One DNS cluster holds every endpoint: IP addresses resolve to themselves.
        dns_endpoints.extend(endpoints.drain(..).map(|entry| ServiceDnsEndpoint {
            service_port: entry.service_port,
            endpoint: DnsEndpoint {
                hostname: entry.endpoint.address.to_string(),
                port: entry.endpoint.port,
                labels: entry.endpoint.labels,
                locality: entry.endpoint.locality,
                weight: entry.endpoint.weight,
                has_sidecar: entry.endpoint.has_sidecar,
            },
        }));
    }
    // Without endpoints and selector, each host is the name its cluster resolves (Istio:
    // "when resolution is DNS and no endpoints are specified, the host field is used as the
    // DNS name of the endpoint").
    let hosts_resolved = by_dns && spec.endpoints.is_empty() && selector.is_none();
    if spec.resolution == Some(Resolution::DynamicDns) {
        unsupported.push(origin.unsupported(
            "spec.resolution",
            "DYNAMIC_DNS is not supported; treated as DNS",
        ));
    }
    let export_to = ExportTo::parse(&spec.export_to, namespace);
    spec.hosts
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let mut unsupported = unsupported.clone();
            let dns_endpoints = if !hosts_resolved {
                dns_endpoints.clone()
            } else if host.starts_with('*') {
                unsupported.push(origin.unsupported(
                    format!("spec.hosts[{index}]"),
                    format!(
                        "wildcard host {host:?} cannot be resolved by DNS without endpoints; \
                         traffic is forwarded to the original destination"
                    ),
                ));
                Vec::new()
            } else {
                host_dns_endpoints(host, &ports)
            };
            (host, dns_endpoints, unsupported)
        })
        .map(|(host, dns_endpoints, unsupported)| ServiceInstance {
            hostname: host.clone(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source: ServiceSource::ServiceEntry {
                workload_selector: selector.clone(),
            },
            vips: vips.clone(),
            ports: ports.clone(),
            location,
            resolution,
            export_to: export_to.clone(),
            subject_alt_names: spec.subject_alt_names.clone(),
            endpoints: endpoints.clone(),
            dns_endpoints,
            unsupported,
        })
        .collect()
}

/// The DNS endpoints of a `DNS`/`DNS_ROUND_ROBIN` ServiceEntry host without endpoints: the
/// host itself on each port's target port.
fn host_dns_endpoints(host: &str, ports: &[ServicePort]) -> Vec<ServiceDnsEndpoint> {
    ports
        .iter()
        .map(|port| ServiceDnsEndpoint {
            service_port: port.port,
            endpoint: DnsEndpoint {
                hostname: host.to_owned(),
                port: match port.target_port {
                    TargetPort::Number(target) => target,
                    TargetPort::Name(_) => port.port,
                },
                labels: BTreeMap::new(),
                locality: Default::default(),
                weight: 1,
                has_sidecar: false,
            },
        })
        .collect()
}

/// The endpoints of one workload (a ServiceEntry `endpoints` entry or a selected
/// WorkloadEntry) for each service port: the target port is the workload's `ports[<port
/// name>]`, else the port's `targetPort`, else its number. `has_sidecar` when the workload has
/// the label `security.istio.io/tlsMode=istio` or `selected_by_mesh_internal` (a WorkloadEntry
/// selected by a `MESH_INTERNAL` entry). An address that is a name goes to `dns` (as a DNS
/// endpoint per port) when the entry resolves by DNS; otherwise addresses that are not IPs
/// (DNS names, Unix sockets) and `network` are reported as unsupported.
#[allow(clippy::too_many_arguments)]
fn workload_endpoints(
    mesh: &MeshSettings,
    origin: &Origin<'_>,
    field: &str,
    namespace: &str,
    workload: &WorkloadEntrySpec,
    ports: &[ServicePort],
    selected_by_mesh_internal: bool,
    dns: Option<&mut Vec<ServiceDnsEndpoint>>,
    unsupported: &mut Vec<Unsupported>,
) -> Vec<ServiceEndpoint> {
    if workload.network.is_some() {
        unsupported.push(origin.unsupported(
            format!("{field}.network"),
            "multi-network endpoints are not supported; the endpoint is used as if on the \
             proxy's network",
        ));
    }
    let Some(address) = workload.address.as_deref() else {
        return Vec::new();
    };
    let labels: BTreeMap<String, String> = workload.labels.clone();
    let has_sidecar = selected_by_mesh_internal
        || labels
            .get(TLS_MODE_LABEL)
            .is_some_and(|mode| mode == "istio");
    let locality = workload
        .locality
        .as_deref()
        .map(parse_locality)
        .unwrap_or_default();
    let weight = workload.weight.filter(|weight| *weight > 0).unwrap_or(1);
    let target_of = |port: &ServicePort| match workload.ports.get(&port.name) {
        Some(target) => u16::try_from(*target).ok(),
        None => match port.target_port {
            TargetPort::Number(target) => Some(target),
            TargetPort::Name(_) => Some(port.port),
        },
    };
    let parsed = address.parse::<IpAddr>();
    if let (Err(_), Some(dns)) = (&parsed, dns)
        && !address.starts_with("unix://")
    {
        dns.extend(ports.iter().filter_map(|port| {
            Some(ServiceDnsEndpoint {
                service_port: port.port,
                endpoint: DnsEndpoint {
                    hostname: address.to_owned(),
                    port: target_of(port)?,
                    labels: labels.clone(),
                    locality: locality.clone(),
                    weight,
                    has_sidecar,
                },
            })
        }));
        return Vec::new();
    }
    let Ok(address) = parsed else {
        unsupported.push(origin.unsupported(
            format!("{field}.address"),
            format!(
                "address {address:?} is not an IP address; the model's endpoints are IP \
                 addresses, so this endpoint is left out"
            ),
        ));
        return Vec::new();
    };
    let identity = workload
        .service_account
        .as_deref()
        .map(|account| mesh.spiffe_id(namespace, account));
    ports
        .iter()
        .filter_map(|port| {
            let target = target_of(port)?;
            Some(ServiceEndpoint {
                service_port: port.port,
                endpoint: Endpoint {
                    address,
                    port: target,
                    labels: labels.clone(),
                    locality: locality.clone(),
                    weight,
                    has_sidecar,
                    identity: identity.clone(),
                },
            })
        })
        .collect()
}
