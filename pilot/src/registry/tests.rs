//! Unit tests of protocol selection and registry construction.

use super::*;
use crate::ClusterView;

#[test]
fn app_protocol_wins_over_the_port_name() {
    assert_eq!(protocol_from_name(Some("grpc"), "http-web"), Protocol::Grpc);
    assert_eq!(protocol_from_name(Some("HTTP2"), "tcp"), Protocol::Http2);
    assert_eq!(
        protocol_from_name(Some("kubernetes.io/h2c"), ""),
        Protocol::Http2
    );
}

#[test]
fn port_name_prefix_up_to_the_dash() {
    assert_eq!(protocol_from_name(None, "http"), Protocol::Http);
    assert_eq!(protocol_from_name(None, "http-web"), Protocol::Http);
    assert_eq!(protocol_from_name(None, "http2-api"), Protocol::Http2);
    assert_eq!(protocol_from_name(None, "grpc-web"), Protocol::Http);
    assert_eq!(protocol_from_name(None, "grpc"), Protocol::Grpc);
    assert_eq!(protocol_from_name(None, "https-admin"), Protocol::Tls);
    assert_eq!(protocol_from_name(None, "mongo-db"), Protocol::Tcp);
    assert_eq!(protocol_from_name(None, "httpx"), Protocol::Unknown);
    assert_eq!(protocol_from_name(None, "web"), Protocol::Unknown);
    assert_eq!(protocol_from_name(Some("weird"), "redis"), Protocol::Tcp);
}

#[test]
fn locality_text_splits_on_slashes() {
    let locality = parse_locality("us-east1/us-east1-b/rack3");
    assert_eq!(locality.region, "us-east1");
    assert_eq!(locality.zone, "us-east1-b");
    assert_eq!(locality.sub_zone, "rack3");
    assert_eq!(parse_locality("eu").zone, "");
}

const SERVICE_WITH_SLICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.0.0.7
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: web}
  - {name: metrics, port: 9090, protocol: UDP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: reviews-abc
  namespace: shop
  labels: {kubernetes.io/service-name: reviews}
addressType: IPv4
ports:
- {name: http, port: 8080}
endpoints:
- addresses: [10.1.0.1]
  conditions: {ready: true}
  targetRef: {kind: Pod, name: reviews-1}
- addresses: [10.1.0.2]
  conditions: {ready: false}
---
apiVersion: v1
kind: Pod
metadata:
  name: reviews-1
  namespace: shop
  labels: {app: reviews, topology.kubernetes.io/zone: z1}
  annotations: {sidecar.istio.io/status: '{}'}
spec:
  serviceAccountName: bookinfo-reviews
  containers: [{name: app}]
"#;

#[test]
fn kubernetes_service_endpoints_come_from_ready_slice_entries() {
    let view = ClusterView::from_yaml(SERVICE_WITH_SLICE).unwrap();
    let services = view.registry().services();
    assert_eq!(services.len(), 1);
    let service = &services[0];
    assert_eq!(service.hostname, "reviews.shop.svc.cluster.local");
    assert_eq!(service.vips, vec!["10.0.0.7".parse::<IpAddr>().unwrap()]);
    assert_eq!(service.ports.len(), 1, "the UDP port is skipped");
    assert_eq!(service.ports[0].protocol, Protocol::Http);
    let endpoints: Vec<_> = service.endpoints_for(9080).collect();
    assert_eq!(endpoints.len(), 1, "the not-ready endpoint is skipped");
    assert_eq!(endpoints[0].port, 8080);
    assert!(endpoints[0].has_sidecar);
    assert_eq!(endpoints[0].locality.zone, "z1");
    assert_eq!(
        endpoints[0].identity.as_deref(),
        Some("spiffe://cluster.local/ns/shop/sa/bookinfo-reviews")
    );
}

#[test]
fn service_entry_selects_workload_entries_and_overrides_ports_by_name() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vm, namespace: vms}
spec:
  hosts: [vm.example.internal]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, targetPort: 8000}]
  workloadSelector: {labels: {app: vm}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: vms}
spec:
  address: 192.0.2.10
  labels: {app: vm}
  ports: {http: 8080}
  serviceAccount: vm-sa
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: vms}
spec:
  address: 192.0.2.11
  labels: {app: vm}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-ns, namespace: elsewhere}
spec:
  address: 192.0.2.12
  labels: {app: vm}
"#;
    let view = ClusterView::from_yaml(text).unwrap();
    let service = &view.registry().services()[0];
    let endpoints: Vec<_> = service.endpoints_for(80).collect();
    assert_eq!(
        endpoints.len(),
        2,
        "only WorkloadEntries of the entry's namespace"
    );
    assert_eq!(
        endpoints[0].port, 8080,
        "ports map overrides the target port"
    );
    assert_eq!(endpoints[1].port, 8000, "targetPort otherwise");
    assert!(endpoints.iter().all(|endpoint| endpoint.has_sidecar));
    assert_eq!(
        endpoints[0].identity.as_deref(),
        Some("spiffe://cluster.local/ns/vms/sa/vm-sa")
    );
}

#[test]
fn dns_service_entry_resolves_its_hosts_or_its_named_endpoints() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: hosts, namespace: ext}
spec:
  hosts: [a.example.com, "*.wild.example.com"]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: named, namespace: ext}
spec:
  hosts: [named.example.com]
  location: MESH_EXTERNAL
  resolution: DNS_ROUND_ROBIN
  ports: [{number: 443, name: tls}]
  endpoints:
  - {address: us.partner.example, ports: {tls: 8443}, labels: {region: us}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: mixed, namespace: ext}
spec:
  hosts: [mixed.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http}]
  endpoints: [{address: 192.0.2.1}, {address: eu.partner.example}]
"#;
    let view = ClusterView::from_yaml(text).unwrap();
    let registry = view.registry();
    let service = |host: &str| registry.by_host(host).next().unwrap();

    let plain = service("a.example.com");
    assert_eq!(plain.resolution, ServiceResolution::Dns);
    let names: Vec<_> = plain.dns_endpoints_for(80).collect();
    assert_eq!(names.len(), 1);
    assert_eq!(
        (names[0].hostname.as_str(), names[0].port),
        ("a.example.com", 8080),
        "the host itself on the target port"
    );
    assert!(
        plain.unsupported.is_empty(),
        "DNS without endpoints is supported: {:?}",
        plain.unsupported
    );
    let wild = service("*.wild.example.com");
    assert!(wild.dns_endpoints.is_empty());
    assert_eq!(wild.unsupported[0].field_path, "spec.hosts[1]");

    let named = service("named.example.com");
    assert_eq!(named.resolution, ServiceResolution::DnsRoundRobin);
    let names: Vec<_> = named.dns_endpoints_for(443).collect();
    assert_eq!(names.len(), 1);
    assert_eq!(names[0].hostname, "us.partner.example");
    assert_eq!(names[0].port, 8443, "the endpoint's ports map");
    assert_eq!(
        names[0].labels.get("region").map(String::as_str),
        Some("us")
    );
    assert!(named.endpoints.is_empty());

    let mixed = service("mixed.example.com");
    let mut names: Vec<_> = mixed
        .dns_endpoints_for(80)
        .map(|endpoint| endpoint.hostname.as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["192.0.2.1", "eu.partner.example"],
        "IP endpoints join the DNS cluster (they resolve to themselves)"
    );
    assert!(mixed.endpoints.is_empty());
}
