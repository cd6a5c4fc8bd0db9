//! DestinationRule `tls` `MUTUAL` with `credentialName` (Istio `ClientTLSSettings`).

use weft_proxy_config::{ClientCredential, ProxyType, TransportSocket};

use crate::build::build_proxy_config;
use crate::proxy::ProxyTarget;
use crate::view::ClusterView;

const CLUSTER: &str = "outbound|80||db.example.com";

/// An external service `db.example.com`, a client WorkloadEntry `client` (label `app:
/// client`) in namespace `demo`, a DestinationRule in `demo` originating MUTUAL TLS with
/// `credentialName: client-credential` (with `workloadSelector` when `selector`), and `secrets`
/// (YAML documents) appended.
fn view(selector: bool, secrets: &str) -> ClusterView {
    let selector = if selector {
        "  workloadSelector: {matchLabels: {app: client}}\n"
    } else {
        ""
    };
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n\
         metadata: {{name: db, namespace: demo}}\n\
         spec:\n  hosts: [db.example.com]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  \
         ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 10.9.0.1}}]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\n\
         metadata: {{name: client, namespace: demo}}\nspec: {{address: 10.0.0.1, labels: {{app: client}}}}\n\
         ---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: db, namespace: demo}}\nspec:\n  host: db.example.com\n{selector}  \
         trafficPolicy:\n    tls: {{mode: MUTUAL, credentialName: client-credential, sni: db.example.com}}\n\
         {secrets}"
    );
    ClusterView::from_yaml(&text).unwrap()
}

const SECRET: &str = "---\napiVersion: v1\nkind: Secret\n\
    metadata: {name: client-credential, namespace: demo}\ntype: Opaque\n\
    stringData: {cert: CLIENT-CERT, key: CLIENT-KEY, cacert: SERVER-CA}\n";

/// The transport of [`CLUSTER`] for proxy `client` of type `proxy_type`, and the warnings'
/// field paths and reasons.
fn transport(view: &ClusterView, proxy_type: ProxyType) -> (TransportSocket, Vec<String>) {
    let mut target = ProxyTarget::for_workload_entry(view, "demo", "client").unwrap();
    target.proxy_type = proxy_type;
    let output = build_proxy_config(view, &target);
    let cluster = output.config.cluster(CLUSTER).unwrap().clone();
    let warnings = output
        .warnings
        .iter()
        .map(|warning| format!("{}: {}", warning.field_path, warning.reason))
        .collect();
    (cluster.transport, warnings)
}

fn credential(socket: &TransportSocket) -> Option<&ClientCredential> {
    match socket {
        TransportSocket::Mutual { credential, .. } => credential.as_ref(),
        _ => None,
    }
}

#[test]
fn a_selecting_rule_gives_the_sidecar_the_secret_inline() {
    let (socket, warnings) = transport(&view(true, SECRET), ProxyType::Sidecar);
    let credential = credential(&socket).expect("inline credential");
    assert_eq!(credential.credential_name, "demo/client-credential");
    assert_eq!(credential.certificate_chain.as_deref(), Some("CLIENT-CERT"));
    assert_eq!(
        credential.private_key.as_ref().map(|key| key.expose()),
        Some("CLIENT-KEY")
    );
    assert_eq!(credential.ca_certificates.as_deref(), Some("SERVER-CA"));
    assert!(
        warnings.iter().all(|w| !w.contains("credentialName")),
        "{warnings:?}"
    );
}

#[test]
fn without_a_selector_only_gateways_read_the_secret() {
    let view = view(false, SECRET);
    let (socket, warnings) = transport(&view, ProxyType::Sidecar);
    assert_eq!(credential(&socket), None);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("credentialName") && w.contains("workloadSelector")),
        "{warnings:?}"
    );
    // An egress gateway: a Gateway selecting the proxy and a route to the service.
    let egress = format!(
        "{SECRET}---\napiVersion: networking.istio.io/v1\nkind: Gateway\n\
         metadata: {{name: egress, namespace: demo}}\n\
         spec:\n  selector: {{app: client}}\n  \
         servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: [db.example.com]}}]\n\
         ---\napiVersion: networking.istio.io/v1\nkind: VirtualService\n\
         metadata: {{name: db, namespace: demo}}\n\
         spec:\n  hosts: [db.example.com]\n  gateways: [egress]\n  \
         http: [{{route: [{{destination: {{host: db.example.com, port: {{number: 80}}}}}}]}}]\n"
    );
    let (socket, _) = transport(&self::view(false, &egress), ProxyType::Router);
    assert_eq!(
        credential(&socket).and_then(|c| c.certificate_chain.as_deref()),
        Some("CLIENT-CERT")
    );
}

#[test]
fn a_missing_secret_is_reported_and_fails_closed() {
    let (socket, warnings) = transport(&view(true, ""), ProxyType::Sidecar);
    let empty = credential(&socket).expect("MUTUAL with an empty credential");
    assert_eq!(
        empty.identity(),
        None,
        "no client certificate: connections fail"
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("spec.trafficPolicy.tls.credentialName")
                && w.contains("Secret demo/client-credential not found")),
        "{warnings:?}"
    );
    // The Secret in another namespace does not count (Istio: the proxy's namespace).
    let elsewhere = SECRET.replace("namespace: demo", "namespace: other");
    let (socket, _) = transport(&view(true, &elsewhere), ProxyType::Sidecar);
    assert_eq!(
        credential(&socket).and_then(ClientCredential::identity),
        None
    );
}

#[test]
fn the_ca_may_come_from_the_cacert_secret_and_rotation_changes_the_config() {
    let split = "---\napiVersion: v1\nkind: Secret\n\
        metadata: {name: client-credential, namespace: demo}\ntype: kubernetes.io/tls\n\
        stringData: {tls.crt: CERT-1, tls.key: KEY-1}\n\
        ---\napiVersion: v1\nkind: Secret\n\
        metadata: {name: client-credential-cacert, namespace: demo}\n\
        stringData: {ca.crt: CA-1}\n";
    let (socket, _) = transport(&view(true, split), ProxyType::Sidecar);
    let found = credential(&socket).unwrap();
    assert_eq!(found.certificate_chain.as_deref(), Some("CERT-1"));
    assert_eq!(found.ca_certificates.as_deref(), Some("CA-1"));
    let rotated = split.replace("CERT-1", "CERT-2");
    let (socket, _) = transport(&view(true, &rotated), ProxyType::Sidecar);
    assert_eq!(
        credential(&socket).and_then(|c| c.certificate_chain.as_deref()),
        Some("CERT-2")
    );
}
