//! Unit tests of config generation rules that golden files cover only in combination.

use weft_proxy_config::{BLACK_HOLE_CLUSTER, MtlsMode, RouteAction, TransportSocket};

use crate::{ClusterView, ProxyTarget, affected_proxies, build_proxy_config};

const BASE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: team
  labels: {app: client}
  annotations: {sidecar.istio.io/status: x}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: team
  labels: {app: server, version: v1}
status: {podIP: 10.0.1.2}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: team}
spec:
  clusterIP: 10.96.0.2
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: server-1
  namespace: team
  labels: {kubernetes.io/service-name: server}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints:
- addresses: [10.0.1.2]
  targetRef: {kind: Pod, name: server}
"#;

fn build(extra: &str, pod: &str) -> crate::BuildOutput {
    let view = ClusterView::from_yaml(&format!("{BASE}\n---\n{extra}")).unwrap();
    let target = ProxyTarget::for_pod(&view, "team", pod).unwrap();
    build_proxy_config(&view, &target)
}

#[test]
fn unset_peer_authentication_inherits_namespace_then_mesh() {
    let mesh_strict = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec: {mtls: {mode: STRICT}}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: server, namespace: team}
spec:
  selector: {matchLabels: {app: server}}
  mtls: {mode: UNSET}
"#;
    let output = build(mesh_strict, "server");
    assert_eq!(output.config.inbound.default_mtls_mode, MtlsMode::Strict);
    let namespace_permissive = format!(
        "{mesh_strict}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\n\
         metadata: {{name: default, namespace: team}}\nspec: {{mtls: {{mode: PERMISSIVE}}}}\n"
    );
    let output = build(&namespace_permissive, "server");
    assert_eq!(
        output.config.inbound.default_mtls_mode,
        MtlsMode::Permissive
    );
    assert_eq!(
        build("", "server").config.inbound.default_mtls_mode,
        MtlsMode::Permissive
    );
}

#[test]
fn auto_mtls_is_plaintext_without_sidecar_and_explicit_istio_mutual_wins() {
    let output = build("", "client");
    let cluster = output
        .config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap();
    assert_eq!(cluster.transport, TransportSocket::Plaintext);
    assert_eq!(cluster.endpoints[0].port, 8080);
    let rule = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: team}
spec:
  host: server
  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}
"#;
    let output = build(rule, "client");
    let cluster = output
        .config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap();
    assert!(matches!(
        cluster.transport,
        TransportSocket::IstioMutual { ref sni, every_endpoint: true, .. }
            if sni == "outbound_.80_._.server.team.svc.cluster.local"
    ));
}

#[test]
fn a_rules_own_istio_mutual_keeps_its_sni_and_subject_alt_names() {
    // Istio's `buildUpstreamTLSSettings`: the rule's `sni` and `subjectAltNames` replace the
    // generated SNI and the service accounts (how mesh clients reach a gateway by its host).
    let rule = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: team}
spec:
  host: server
  trafficPolicy:
    tls:
      mode: ISTIO_MUTUAL
      sni: mesh.example.com
      subjectAltNames: [spiffe://cluster.local/ns/istio-system/sa/egress]
"#;
    let output = build(rule, "client");
    let cluster = output
        .config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap();
    assert_eq!(
        cluster.transport,
        TransportSocket::IstioMutual {
            expected_identities: vec!["spiffe://cluster.local/ns/istio-system/sa/egress".into()],
            sni: "mesh.example.com".into(),
            every_endpoint: true,
        }
    );
}

#[test]
fn unknown_subset_goes_to_the_black_hole_with_a_warning() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: server, namespace: team}
spec:
  hosts: [server]
  http:
  - route:
    - destination: {host: server, subset: v9}
"#;
    let output = build(vs, "client");
    let listener = &output.config.outbound[0];
    let route = &listener.http.as_ref().unwrap().virtual_hosts[0].routes[0];
    let RouteAction::Route(forward) = &route.action else {
        panic!("expected a forward action, got {route:?}");
    };
    assert_eq!(forward.clusters[0].cluster, BLACK_HOLE_CLUSTER);
    assert_eq!(output.warnings.len(), 1);
    assert_eq!(
        output.warnings[0].field_path,
        "spec.http[0].route[0].destination"
    );
    assert!(output.config.validate().is_ok());
}

#[test]
fn workload_sidecar_beats_the_namespace_default() {
    let sidecars = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: team}
spec:
  egress: [{hosts: ["~/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: client, namespace: team}
spec:
  workloadSelector: {labels: {app: client}}
  egress: [{hosts: ["./*"]}]
"#;
    assert_eq!(build(sidecars, "client").config.outbound.len(), 1);
    assert!(build(sidecars, "server").config.outbound.is_empty());
}

#[test]
fn affected_proxies_are_those_whose_config_changes() {
    let before = ClusterView::from_yaml(BASE).unwrap();
    let rule = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: \
                {name: server, namespace: team}\nspec:\n  host: server\n  trafficPolicy: \
                {loadBalancer: {simple: RANDOM}}\n";
    let after = ClusterView::from_yaml(&format!("{BASE}\n---\n{rule}")).unwrap();
    let affected = affected_proxies(&before, &after);
    let names: Vec<&str> = affected.iter().map(|t| t.instance_name.as_str()).collect();
    assert_eq!(
        names,
        vec!["client"],
        "only the pod with a sidecar is a proxy"
    );
    assert!(affected_proxies(&after, &after).is_empty());
}

#[test]
fn unnamed_protocol_is_sniffed_with_http_and_tcp_routes() {
    let service = r#"
apiVersion: v1
kind: Service
metadata: {name: opaque, namespace: team}
spec:
  clusterIP: 10.96.0.9
  ports: [{name: web, port: 7000}]
"#;
    let output = build(service, "client");
    let listener = output
        .config
        .outbound
        .iter()
        .find(|listener| listener.hostname == "opaque.team.svc.cluster.local")
        .unwrap();
    assert_eq!(listener.protocol, weft_proxy_config::Protocol::Unknown);
    assert!(listener.http.is_some(), "sniffed HTTP gets routes");
    assert_eq!(
        listener.tcp.len(),
        1,
        "non-HTTP traffic gets the default TCP route"
    );
}

#[test]
fn headless_service_is_matched_by_endpoint_addresses_and_passed_through() {
    let text = BASE.replace("clusterIP: 10.96.0.2", "clusterIP: None");
    let view = ClusterView::from_yaml(&text).unwrap();
    let target = ProxyTarget::for_pod(&view, "team", "client").unwrap();
    let config = build_proxy_config(&view, &target).config;
    let listener = &config.outbound[0];
    assert_eq!(
        listener.addresses,
        vec!["10.0.1.2".parse::<std::net::IpAddr>().unwrap()]
    );
    let cluster = config
        .cluster("outbound|80||server.team.svc.cluster.local")
        .unwrap();
    assert_eq!(cluster.lb_policy, weft_proxy_config::LbPolicy::Passthrough);
    assert!(cluster.endpoints.is_empty());
}

#[test]
fn invalid_warmup_and_distribute_values_never_make_an_invalid_config() {
    let dr = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: team}
spec:
  host: server
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      warmup: {duration: 30s, minimumPercent: 150, aggression: 0.5}
      localityLbSetting:
        distribute:
        - from: region1/*
          to: {region1/*: 80, region2/*: 20}
        - from: region2/*
          to: {region2/*: 70}
"#;
    let output = build(dr, "client");
    let cluster = output
        .config
        .clusters
        .iter()
        .find(|cluster| cluster.name.contains("server"))
        .unwrap();
    let warmup = cluster.warmup.as_ref().unwrap();
    assert_eq!(
        (
            warmup.duration_ms,
            warmup.minimum_percent,
            warmup.aggression
        ),
        (30_000, 100.0, 1.0)
    );
    let distribute = &cluster.locality_lb.as_ref().unwrap().distribute;
    assert_eq!(distribute.len(), 1);
    assert_eq!(distribute[0].from, "region1/*");
    assert_eq!(output.config.validate(), Ok(()));
}
