//! Registry services from Kubernetes Services, their EndpointSlices and Pods.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use weft_proxy_config::{Endpoint, Locality, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL};

use super::{
    SIDECAR_STATUS_ANNOTATION, ServiceEndpoint, ServiceInstance, ServiceLocation, ServicePort,
    ServiceResolution, ServiceSource, TLS_MODE_LABEL, TargetPort, parse_locality,
    protocol_from_name,
};
use crate::host::ExportTo;
use crate::proxy::ProxyTarget;
use crate::view::{ClusterObjects, ClusterView, MeshSettings, name_of, namespace_of};

/// The label an EndpointSlice carries naming its Service (`kubernetes.io/service-name`).
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Istio's annotation carrying a Service's `exportTo` list (comma-separated).
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";
/// Istio's pod label overriding the locality (`region.zone.subzone`, dots for the slashes a
/// label value cannot hold).
pub(crate) const LOCALITY_LABEL: &str = "istio-locality";
/// The deprecated region label Istio still reads on Nodes when the GA one is absent.
const BETA_REGION_LABEL: &str = "failure-domain.beta.kubernetes.io/region";
/// The deprecated zone label Istio still reads on Nodes when the GA one is absent.
const BETA_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";

/// The labels of each Node of `objects` by name.
fn node_labels(objects: &ClusterObjects) -> BTreeMap<&str, &BTreeMap<String, String>> {
    objects
        .nodes
        .iter()
        .filter_map(|node| Some((name_of(&node.metadata), node.metadata.labels.as_ref()?)))
        .collect()
}

/// The locality a Node's labels give its pods (Istio's `getNodeLocality`):
/// `topology.kubernetes.io/region` (else the deprecated `failure-domain.beta...` label),
/// `topology.kubernetes.io/zone` (likewise) and `topology.istio.io/subzone`; `None` when the
/// Node has none of them.
pub(crate) fn node_locality(labels: &BTreeMap<String, String>) -> Option<Locality> {
    let get = |ga: &str, beta: Option<&str>| {
        labels
            .get(ga)
            .or_else(|| beta.and_then(|beta| labels.get(beta)))
            .cloned()
            .unwrap_or_default()
    };
    let locality = Locality {
        region: get(REGION_LABEL, Some(BETA_REGION_LABEL)),
        zone: get(ZONE_LABEL, Some(BETA_ZONE_LABEL)),
        sub_zone: get(SUBZONE_LABEL, None),
    };
    let empty =
        locality.region.is_empty() && locality.zone.is_empty() && locality.sub_zone.is_empty();
    (!empty).then_some(locality)
}

/// A pod's locality (Istio's rule for Kubernetes pods): the pod label `istio-locality`
/// (`region.zone.subzone`) when set, else the topology labels of its Node (`node`, the labels
/// of the Node named by `spec.nodeName`, see [`node_locality`]), else the topology labels on
/// the pod itself (Weft's fallback when the Node is unknown). Pure; takes the pod's labels.
pub(crate) fn pod_locality(
    pod_labels: &BTreeMap<String, String>,
    node: Option<&BTreeMap<String, String>>,
) -> Locality {
    if let Some(label) = pod_labels
        .get(LOCALITY_LABEL)
        .filter(|label| !label.is_empty())
    {
        return parse_locality(&label.replace('.', "/"));
    }
    node.and_then(node_locality)
        .unwrap_or_else(|| locality_from_labels(pod_labels))
}

impl ProxyTarget {
    /// The target with the locality of `pod` in `view`: [`pod_locality`] with the labels of
    /// the Node named by the pod's `spec.nodeName` (Istio's proxy locality on Kubernetes).
    pub(crate) fn with_pod_locality(mut self, view: &ClusterView, pod: &Pod) -> Self {
        let node = pod
            .spec
            .as_ref()
            .and_then(|spec| spec.node_name.as_deref())
            .and_then(|name| view.node_labels(name));
        let unlabelled = BTreeMap::new();
        self.locality = pod_locality(pod.metadata.labels.as_ref().unwrap_or(&unlabelled), node);
        self
    }
}

/// One registry service per Kubernetes Service with a spec, except `ExternalName` Services
/// (which have no ports to proxy in this model). Ports whose protocol is not TCP (UDP, SCTP)
/// are skipped, as Istio does.
pub(super) fn services(mesh: &MeshSettings, objects: &ClusterObjects) -> Vec<ServiceInstance> {
    let mut slices: BTreeMap<(&str, &str), Vec<&EndpointSlice>> = BTreeMap::new();
    for slice in &objects.endpoint_slices {
        if let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|labels| labels.get(SERVICE_NAME_LABEL))
        {
            slices
                .entry((namespace_of(&slice.metadata), service.as_str()))
                .or_default()
                .push(slice);
        }
    }
    let pods: BTreeMap<(&str, &str), &Pod> = objects
        .pods
        .iter()
        .map(|pod| ((namespace_of(&pod.metadata), name_of(&pod.metadata)), pod))
        .collect();
    let nodes = node_labels(objects);
    objects
        .services
        .iter()
        .filter_map(|service| {
            let namespace = namespace_of(&service.metadata);
            let name = name_of(&service.metadata);
            let own_slices = slices
                .get(&(namespace, name))
                .map_or(&[][..], Vec::as_slice);
            service_instance(mesh, service, own_slices, &pods, &nodes)
        })
        .collect()
}

fn service_instance(
    mesh: &MeshSettings,
    service: &Service,
    slices: &[&EndpointSlice],
    pods: &BTreeMap<(&str, &str), &Pod>,
    nodes: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> Option<ServiceInstance> {
    let spec = service.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    let namespace = namespace_of(&service.metadata);
    let name = name_of(&service.metadata);
    let ports: Vec<ServicePort> = spec
        .ports
        .iter()
        .flatten()
        .filter(|port| port.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|port| {
            let number = u16::try_from(port.port).ok()?;
            let port_name = port.name.clone().unwrap_or_default();
            let target_port = match &port.target_port {
                None => TargetPort::Number(number),
                Some(IntOrString::Int(target)) => {
                    TargetPort::Number(u16::try_from(*target).unwrap_or(number))
                }
                Some(IntOrString::String(target)) => match target.parse::<u16>() {
                    Ok(target) => TargetPort::Number(target),
                    Err(_) => TargetPort::Name(target.clone()),
                },
            };
            Some(ServicePort {
                protocol: protocol_from_name(port.app_protocol.as_deref(), &port_name),
                name: port_name,
                port: number,
                target_port,
            })
        })
        .collect();
    let headless = spec.cluster_ip.as_deref() == Some("None");
    let mut vips: Vec<IpAddr> = if headless {
        Vec::new()
    } else {
        spec.cluster_ips
            .iter()
            .flatten()
            .chain(spec.cluster_ip.iter())
            .filter_map(|ip| ip.parse().ok())
            .collect()
    };
    let endpoints = endpoints(mesh, &ports, slices, pods, nodes);
    if headless {
        // Istio matches a headless Service's traffic by the endpoints' own addresses.
        vips = endpoints
            .iter()
            .map(|entry| entry.endpoint.address)
            .collect();
    }
    vips.sort();
    vips.dedup();
    let export_to: Vec<String> = service
        .metadata
        .annotations
        .as_ref()
        .and_then(|annotations| annotations.get(EXPORT_TO_ANNOTATION))
        .map(|list| {
            list.split(',')
                .map(|entry| entry.trim().to_owned())
                .filter(|entry| !entry.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Some(ServiceInstance {
        hostname: format!("{name}.{namespace}.svc.{}", mesh.cluster_domain),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        source: ServiceSource::Kubernetes {
            selector: spec.selector.clone(),
        },
        vips,
        ports,
        location: ServiceLocation::MeshInternal,
        resolution: if headless {
            ServiceResolution::Passthrough
        } else {
            ServiceResolution::ClientSideLb
        },
        export_to: ExportTo::parse(&export_to, namespace),
        subject_alt_names: Vec::new(),
        endpoints,
        dns_endpoints: Vec::new(),
        unsupported: Vec::new(),
    })
}

/// The ready endpoints of `slices` for each of `ports` (an EndpointSlice port matches the
/// Service port of the same name; its number is the resolved target port). An endpoint's
/// locality is its pod's ([`pod_locality`], with the Node the slice or the pod names), its zone
/// else the slice's `zone`.
fn endpoints(
    mesh: &MeshSettings,
    ports: &[ServicePort],
    slices: &[&EndpointSlice],
    pods: &BTreeMap<(&str, &str), &Pod>,
    nodes: &BTreeMap<&str, &BTreeMap<String, String>>,
) -> Vec<ServiceEndpoint> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for slice in slices {
        let namespace = namespace_of(&slice.metadata);
        for slice_port in slice.ports.iter().flatten() {
            let slice_port_name = slice_port.name.as_deref().unwrap_or("");
            let Some(service_port) = ports.iter().find(|port| port.name == slice_port_name) else {
                continue;
            };
            let Some(target) = slice_port.port.and_then(|port| u16::try_from(port).ok()) else {
                continue;
            };
            for endpoint in &slice.endpoints {
                let ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|conditions| conditions.ready)
                    .unwrap_or(true);
                if !ready {
                    continue;
                }
                let pod = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|target| target.kind.as_deref() == Some("Pod"))
                    .and_then(|target| {
                        let pod_namespace = target.namespace.as_deref().unwrap_or(namespace);
                        pods.get(&(pod_namespace, target.name.as_deref().unwrap_or("")))
                    })
                    .copied();
                for address in &endpoint.addresses {
                    let Ok(address) = address.parse::<IpAddr>() else {
                        continue;
                    };
                    if !seen.insert((service_port.port, address, target)) {
                        continue;
                    }
                    let mut built = pod_endpoint(mesh, pod, address, target);
                    if let Some(pod) = pod {
                        let node_name = endpoint.node_name.as_deref().or_else(|| {
                            pod.spec.as_ref().and_then(|spec| spec.node_name.as_deref())
                        });
                        let node = node_name.and_then(|name| nodes.get(name).copied());
                        let unlabelled = BTreeMap::new();
                        let labels = pod.metadata.labels.as_ref().unwrap_or(&unlabelled);
                        built.locality = pod_locality(labels, node);
                    }
                    if built.locality.zone.is_empty() {
                        built.locality.zone = endpoint.zone.clone().unwrap_or_default();
                    }
                    out.push(ServiceEndpoint {
                        service_port: service_port.port,
                        endpoint: built,
                    });
                }
            }
        }
    }
    out
}

/// The model endpoint for a pod (or an address without a known pod) at `address:port`: the
/// pod's labels, its locality from the `topology.kubernetes.io/region`/`zone` and
/// `topology.istio.io/subzone` labels, `has_sidecar` when the pod carries the injector's
/// `sidecar.istio.io/status` annotation or the `security.istio.io/tlsMode=istio` label, and
/// the SPIFFE ID of its service account.
pub(super) fn pod_endpoint(
    mesh: &MeshSettings,
    pod: Option<&Pod>,
    address: IpAddr,
    port: u16,
) -> Endpoint {
    let labels = pod
        .and_then(|pod| pod.metadata.labels.clone())
        .unwrap_or_default();
    let has_sidecar = pod.is_some_and(pod_has_sidecar);
    let identity =
        pod.map(|pod| mesh.spiffe_id(namespace_of(&pod.metadata), &pod_service_account(pod)));
    Endpoint {
        address,
        port,
        locality: locality_from_labels(&labels),
        labels,
        weight: 1,
        has_sidecar,
        identity,
    }
}

/// Whether the pod runs an injected sidecar (annotation `sidecar.istio.io/status`, or label
/// `security.istio.io/tlsMode=istio`).
pub(crate) fn pod_has_sidecar(pod: &Pod) -> bool {
    let annotated = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|annotations| annotations.contains_key(SIDECAR_STATUS_ANNOTATION));
    let labelled = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(TLS_MODE_LABEL))
        .is_some_and(|mode| mode == "istio");
    annotated || labelled
}

/// The pod's service account (`spec.serviceAccountName`, default `default`).
pub(crate) fn pod_service_account(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|spec| spec.service_account_name.clone())
        .unwrap_or_else(|| "default".to_owned())
}

/// A locality from Kubernetes' and Istio's topology labels.
pub(crate) fn locality_from_labels(labels: &BTreeMap<String, String>) -> Locality {
    let get = |key: &str| labels.get(key).cloned().unwrap_or_default();
    Locality {
        region: get(REGION_LABEL),
        zone: get(ZONE_LABEL),
        sub_zone: get(SUBZONE_LABEL),
    }
}

/// The pod's IPs (`status.podIPs`, else `status.podIP`).
pub(crate) fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<IpAddr> = status
        .pod_ips
        .iter()
        .flatten()
        .filter_map(|ip| ip.ip.parse().ok())
        .collect();
    if ips.is_empty() {
        ips.extend(
            status
                .pod_ip
                .as_ref()
                .and_then(|ip| ip.parse::<IpAddr>().ok()),
        );
    }
    ips
}

/// The container port named `name` in the pod, if any.
pub(crate) fn named_container_port(pod: &Pod, name: &str) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|container| container.ports.iter().flatten())
        .find(|port| port.name.as_deref() == Some(name))
        .and_then(|port| u16::try_from(port.container_port).ok())
}

#[cfg(test)]
mod tests;
