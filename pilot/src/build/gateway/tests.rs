//! Unit tests of gateway config generation: selection, VirtualService binding, the sidecars'
//! view of gateway-bound VirtualServices, server merging and credentials.

use weft_proxy_config::{ProxyType, RouteAction, ServerTlsMode, TlsCredential};

use super::{GatewayName, names_binding};
use crate::{BuildOutput, ClusterView, ProxyTarget, build_proxy_config};

const BASE: &str = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ingress, namespace: istio-system}
spec:
  address: 198.18.0.2
  labels: {istio: ingressgateway}
  serviceAccount: ingress
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client, namespace: app}
spec:
  address: 198.18.0.3
  labels: {app: client}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web, namespace: app}
spec:
  hosts: [web.app.svc.cluster.local]
  addresses: [240.240.0.1]
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: web}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-1, namespace: app}
spec:
  address: 198.18.0.4
  labels: {app: web}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: api, namespace: app}
spec:
  hosts: [api.app.svc.cluster.local]
  addresses: [240.240.0.2]
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: api}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: api-1, namespace: app}
spec:
  address: 198.18.0.5
  labels: {app: api}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: front, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
"#;

fn view(extra: &str) -> ClusterView {
    ClusterView::from_yaml(&format!("{BASE}\n---\n{extra}")).unwrap()
}

fn build(view: &ClusterView, namespace: &str, name: &str, proxy_type: ProxyType) -> BuildOutput {
    let target = ProxyTarget {
        proxy_type,
        ..ProxyTarget::for_workload_entry(view, namespace, name).unwrap()
    };
    let output = build_proxy_config(view, &target);
    assert_eq!(output.config.validate(), Ok(()), "{:?}", output.warnings);
    output
}

fn router(view: &ClusterView) -> BuildOutput {
    build(view, "istio-system", "ingress", ProxyType::Router)
}

/// The clusters the first route of every virtual host of the first server forwards to, by
/// virtual host name.
fn routed(output: &BuildOutput) -> Vec<(String, String)> {
    let server = &output.config.gateways[0].servers[0];
    server
        .route_config
        .iter()
        .flat_map(|config| &config.virtual_hosts)
        .map(|vhost| {
            let cluster = match &vhost.routes[0].action {
                RouteAction::Route(forward) => forward.clusters[0].cluster.clone(),
                other => panic!("expected a forward action, got {other:?}"),
            };
            (vhost.name.clone(), cluster)
        })
        .collect()
}

const WEB_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: [web.example.com]
  gateways: [front]
  http:
  - route:
    - destination: {host: web}
"#;

#[test]
fn a_router_gets_gateway_listeners_and_only_the_clusters_its_routes_reach() {
    let output = router(&view(WEB_VS));
    let config = &output.config;
    assert!(
        config.outbound.is_empty(),
        "a router has no outbound listeners"
    );
    assert!(
        config.inbound.ports.is_empty(),
        "a router has no workload ports"
    );
    assert_eq!(config.gateways.len(), 1);
    assert_eq!(config.gateways[0].name, "0.0.0.0_8080");
    assert_eq!(config.gateways[0].servers[0].name, "app/front/0");
    assert_eq!(
        routed(&output),
        vec![(
            "web.example.com:8080".to_owned(),
            "outbound|80||web.app.svc.cluster.local".to_owned()
        )]
    );
    let clusters: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(clusters, vec!["outbound|80||web.app.svc.cluster.local"]);
    assert!(output.warnings.is_empty(), "{:?}", output.warnings);
}

#[test]
fn a_gateway_only_virtual_service_does_not_reach_sidecars() {
    let view = view(WEB_VS);
    let sidecar = build(&view, "app", "client", ProxyType::Sidecar).config;
    assert!(sidecar.gateways.is_empty());
    let web = sidecar
        .outbound
        .iter()
        .find(|listener| listener.hostname == "web.app.svc.cluster.local")
        .unwrap();
    let routes = &web.http.as_ref().unwrap().virtual_hosts[0].routes;
    assert_eq!(
        routes[0].name, "default",
        "the sidecar keeps the default route"
    );
}

#[test]
fn a_virtual_service_bound_to_mesh_and_gateway_applies_to_both() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: [web, web.example.com]
  gateways: [mesh, app/front]
  http:
  - name: to-api
    route:
    - destination: {host: api}
"#;
    let view = view(vs);
    let sidecar = build(&view, "app", "client", ProxyType::Sidecar).config;
    let web = sidecar
        .outbound
        .iter()
        .find(|listener| listener.hostname == "web.app.svc.cluster.local")
        .unwrap();
    assert_eq!(
        web.http.as_ref().unwrap().virtual_hosts[0].routes[0].name,
        "to-api"
    );
    let output = router(&view);
    let hosts: Vec<String> = routed(&output).into_iter().map(|(host, _)| host).collect();
    assert_eq!(
        hosts,
        vec!["web.app.svc.cluster.local:8080", "web.example.com:8080"]
    );
}

#[test]
fn gateways_select_by_labels_in_any_namespace() {
    let other = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egress, namespace: app}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: 9000, name: http, protocol: HTTP}
    hosts: ["*"]
"#;
    let config = router(&view(other)).config;
    let ports: Vec<u16> = config.gateways.iter().map(|l| l.port).collect();
    assert_eq!(
        ports,
        vec![8080],
        "the egress gateway does not select the ingress"
    );
}

#[test]
fn plaintext_servers_with_the_same_hosts_merge_and_routes_append() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: second, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a-api, namespace: app}
spec:
  hosts: [web.example.com]
  gateways: [second]
  http:
  - match: [{uri: {prefix: /api}}]
    route:
    - destination: {host: api}
"#;
    let output = router(&view(&format!("{WEB_VS}\n---\n{extra}")));
    let listener = &output.config.gateways[0];
    assert_eq!(
        listener.servers.len(),
        1,
        "same hosts on one port: one server"
    );
    let vhosts = &listener.servers[0]
        .route_config
        .as_ref()
        .unwrap()
        .virtual_hosts;
    assert_eq!(vhosts.len(), 1);
    // `front` (oldest by name) comes first: its catch-all route, then `second`'s.
    let clusters: Vec<String> = vhosts[0]
        .routes
        .iter()
        .map(|route| match &route.action {
            RouteAction::Route(forward) => forward.clusters[0].cluster.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        clusters,
        vec![
            "outbound|80||web.app.svc.cluster.local",
            "outbound|80||api.app.svc.cluster.local"
        ]
    );
}

#[test]
fn credential_ca_comes_from_the_cacert_secret_and_secrets_never_print() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mtls, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [web.example.com]
    tls: {mode: MUTUAL, credentialName: web-cert}
---
apiVersion: v1
kind: Secret
metadata: {name: web-cert, namespace: istio-system}
type: kubernetes.io/tls
stringData: {tls.crt: CERT-PEM, tls.key: KEY-PEM-SECRET}
---
apiVersion: v1
kind: Secret
metadata: {name: web-cert-cacert, namespace: istio-system}
stringData: {ca.crt: CA-PEM}
"#;
    let view = view(&format!("{WEB_VS}\n---\n{extra}"));
    assert!(!format!("{view:?}").contains("KEY-PEM-SECRET"));
    let output = router(&view);
    assert!(!format!("{output:?}").contains("KEY-PEM-SECRET"));
    let tls_listener = output
        .config
        .gateways
        .iter()
        .find(|listener| listener.port == 8443)
        .unwrap();
    let tls = tls_listener.servers[0].tls.as_ref().unwrap();
    assert_eq!(tls.mode, ServerTlsMode::Mutual);
    match tls.credential.as_ref().unwrap() {
        TlsCredential::Inline {
            credential_name,
            server_certificate,
            private_key,
            ca_certificates,
        } => {
            assert_eq!(credential_name, "istio-system/web-cert");
            assert_eq!(server_certificate, "CERT-PEM");
            assert_eq!(private_key.expose(), "KEY-PEM-SECRET");
            assert_eq!(ca_certificates.as_deref(), Some("CA-PEM"));
        }
        other => panic!("expected an inline credential, got {other:?}"),
    }
}

#[test]
fn a_secret_in_the_gateway_resources_namespace_is_not_used() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [web.example.com]
    tls: {mode: SIMPLE, credentialName: app-cert}
---
apiVersion: v1
kind: Secret
metadata: {name: app-cert, namespace: app}
stringData: {tls.crt: CERT, tls.key: KEY}
"#;
    let output = router(&view(extra));
    assert!(output.config.gateways.iter().all(|l| l.port != 8443));
    assert_eq!(output.warnings.len(), 1);
    assert_eq!(
        output.warnings[0].field_path,
        "spec.servers[0].tls.credentialName"
    );
}

#[test]
fn per_match_gateways_restrict_routes_to_the_named_gateway() {
    let vs = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: app}
spec:
  hosts: [web.example.com, web]
  gateways: [mesh, front]
  http:
  - name: sidecars-only
    match: [{gateways: [mesh], uri: {prefix: /internal}}]
    route: [{destination: {host: api}}]
  - name: everyone
    route: [{destination: {host: web}}]
"#;
    let view = view(vs);
    let output = router(&view);
    let server = &output.config.gateways[0].servers[0];
    let names: Vec<&str> = server.route_config.as_ref().unwrap().virtual_hosts[0]
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    assert_eq!(names, vec!["everyone"]);
    let sidecar = build(&view, "app", "client", ProxyType::Sidecar).config;
    let web = sidecar
        .outbound
        .iter()
        .find(|listener| listener.hostname == "web.app.svc.cluster.local")
        .unwrap();
    let names: Vec<&str> = web.http.as_ref().unwrap().virtual_hosts[0]
        .routes
        .iter()
        .map(|route| route.name.as_str())
        .collect();
    assert_eq!(names, vec!["sidecars-only", "everyone"]);
}

#[test]
fn gateway_names_resolve_as_istio() {
    let gateway = GatewayName {
        namespace: "istio-system".to_owned(),
        name: "ingress".to_owned(),
    };
    let list =
        |entries: &[&str]| -> Vec<String> { entries.iter().map(|e| (*e).to_owned()).collect() };
    assert!(names_binding(
        &list(&["istio-system/ingress"]),
        "bookinfo",
        Some(&gateway)
    ));
    assert!(names_binding(
        &list(&["ingress"]),
        "istio-system",
        Some(&gateway)
    ));
    assert!(!names_binding(
        &list(&["ingress"]),
        "bookinfo",
        Some(&gateway)
    ));
    assert!(names_binding(
        &list(&["ingress.istio-system.svc.cluster.local"]),
        "bookinfo",
        Some(&gateway)
    ));
    assert!(!names_binding(
        &list(&["mesh"]),
        "istio-system",
        Some(&gateway)
    ));
    assert!(names_binding(&list(&["mesh", "x/y"]), "a", None));
    assert!(!names_binding(&list(&["istio-system/ingress"]), "a", None));
}

#[test]
fn conflicting_servers_on_a_port_are_left_out_and_reported() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: more, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: tcp, protocol: TCP}
    hosts: ["*"]
  - port: {number: 8443, name: https-a, protocol: HTTPS}
    hosts: [a.example.com]
    tls: {mode: ISTIO_MUTUAL}
  - port: {number: 8443, name: https-b, protocol: HTTPS}
    hosts: [a.example.com, b.example.com]
    tls: {mode: ISTIO_MUTUAL}
"#;
    let output = router(&view(extra));
    let config = &output.config;
    let http = &config.gateways[0];
    assert_eq!(http.port, 8080);
    assert_eq!(
        http.servers.len(),
        1,
        "the TCP server cannot join the HTTP port"
    );
    let tls = &config.gateways[1];
    assert_eq!(tls.servers.len(), 2);
    assert_eq!(
        tls.servers[0].tls.as_ref().unwrap().mode,
        ServerTlsMode::IstioMutual
    );
    assert!(tls.servers[0].tls.as_ref().unwrap().credential.is_none());
    assert_eq!(
        tls.servers[1].hosts,
        vec!["b.example.com"],
        "a.example.com stays with the first"
    );
    let paths: Vec<&str> = output
        .warnings
        .iter()
        .map(|warning| warning.field_path.as_str())
        .collect();
    assert_eq!(paths, vec!["spec.servers[0].port", "spec.servers[2].hosts"]);
}

#[test]
fn auto_passthrough_keeps_the_clusters_of_every_covered_service_and_subset() {
    let view = view(
        r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: cross-network, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.app.svc.cluster.local"]
    tls: {mode: AUTO_PASSTHROUGH}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web, namespace: app}
spec:
  host: web.app.svc.cluster.local
  subsets: [{name: v1, labels: {app: web}}]
"#,
    );
    let output = build(&view, "istio-system", "ingress", ProxyType::Router);
    let names: Vec<&str> = output
        .config
        .clusters
        .iter()
        .map(|cluster| cluster.name.as_str())
        .collect();
    for expected in [
        "outbound|80||web.app.svc.cluster.local",
        "outbound|80|v1|web.app.svc.cluster.local",
        "outbound|80||api.app.svc.cluster.local",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing: the SNI may name it; clusters: {names:?}"
        );
    }
    let server = output
        .config
        .gateways
        .iter()
        .find(|listener| listener.port == 15443)
        .and_then(|listener| listener.servers.first())
        .unwrap();
    assert_eq!(
        server.tls.as_ref().map(|tls| tls.mode),
        Some(ServerTlsMode::AutoPassthrough)
    );
    assert!(
        !output
            .warnings
            .iter()
            .any(|warning| warning.field_path.ends_with("tls.mode")),
        "AUTO_PASSTHROUGH is supported: {:?}",
        output.warnings
    );
}
