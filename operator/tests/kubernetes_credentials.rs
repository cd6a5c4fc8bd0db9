//! Istio's `credentialName` in Kubernetes mode against the in-memory fake API server: the
//! Secrets a Gateway references are read in its gateway workload's namespace, each watched by
//! name, and reach the gateway proxy's pushed config; a rotation is pushed; Secrets nobody
//! references are never requested.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/proxy_stream.rs"]
mod proxy_stream;

use std::time::Duration;

use base64::Engine as _;
use fake_api::{FakeApi, name_selector};
use proxy_stream::{connect, seed_mesh, start_operator};
use serde_json::{Value, json};

/// A self-signed certificate and its key for `host`, as PEM.
fn certificate(host: &str) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

fn tls_secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Value {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(key, value)| ((*key).to_string(), json!(b64(value))))
        .collect();
    json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
           "metadata": {"name": name, "namespace": namespace}, "data": data})
}

fn gateway(credential: &str) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
           "metadata": {"name": "shop", "namespace": "shop"},
           "spec": {"selector": {"istio": "ingressgateway"},
                    "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                                 "hosts": ["shop.example.com"],
                                 "tls": {"mode": "MUTUAL", "credentialName": credential}}]}})
}

/// The inline credential of the gateway config's first TLS server: (Secret, certificate,
/// client CA).
fn server_credential(
    config: &weft_discovery::ProxyConfig,
) -> Option<(String, String, Option<String>)> {
    config
        .gateways
        .iter()
        .flat_map(|listener| &listener.servers)
        .find_map(|server| match server.tls.as_ref()?.credential.as_ref()? {
            weft_proxy_config::TlsCredential::Inline {
                credential_name,
                server_certificate,
                ca_certificates,
                ..
            } => Some((
                credential_name.clone(),
                server_certificate.clone(),
                ca_certificates.clone(),
            )),
            weft_proxy_config::TlsCredential::Files { .. } => None,
        })
}

/// Istio's credentialName in Kubernetes mode: the Gateway (namespace `shop`) selects the
/// ingress gateway pod of `istio-system`, so its MUTUAL server's credential and
/// `<name>-cacert` are read there, each watched by name; the gateway proxy's pushed config
/// holds the certificate, a rotation of the Secret pushes the new one, pointing the Gateway at
/// another Secret watches that one, and Secrets nobody references are never requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_credentials_come_from_the_referenced_secrets_only() {
    let api = FakeApi::default();
    seed_mesh(
        &api,
        "istio-system",
        &[("istio-ingressgateway", "sa-uid-gw")],
    );
    api.put(
        "/api/v1/namespaces/istio-system/pods/istio-ingressgateway-1",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "istio-ingressgateway-1", "namespace": "istio-system",
                            "labels": {"istio": "ingressgateway"}},
               "spec": {"serviceAccountName": "istio-ingressgateway",
                        "containers": [{"name": "istio-proxy", "image": "weft-proxy"}]},
               "status": {"podIP": "198.18.0.10"}}),
    );
    api.put(
        "/apis/networking.istio.io/v1/namespaces/shop/gateways/shop",
        gateway("shop-cert"),
    );
    let (cert_a, key_a) = certificate("shop.example.com");
    let (client_ca, _) = certificate("client-ca.example.com");
    let shop_cert = "/api/v1/namespaces/istio-system/secrets/shop-cert";
    api.put(
        shop_cert,
        tls_secret(
            "istio-system",
            "shop-cert",
            &[("tls.crt", &cert_a), ("tls.key", &key_a)],
        ),
    );
    api.put(
        "/api/v1/namespaces/istio-system/secrets/shop-cert-cacert",
        tls_secret(
            "istio-system",
            "shop-cert-cacert",
            &[("ca.crt", &client_ca)],
        ),
    );
    // Not referenced: another Secret of the gateway's namespace, and one of the Gateway's own
    // namespace (Istio reads the gateway workload's).
    let (cert_x, key_x) = certificate("unused.example.com");
    let unused = [("tls.crt", cert_x.as_str()), ("tls.key", key_x.as_str())];
    api.put(
        "/api/v1/namespaces/istio-system/secrets/unused-cert",
        tls_secret("istio-system", "unused-cert", &unused),
    );
    api.put(
        "/api/v1/namespaces/shop/secrets/shop-cert",
        tls_secret("shop", "shop-cert", &unused),
    );

    let (settings, shutdown, operator, _state_dir) = start_operator(&api);
    let (mut configs, stream) = connect(
        &api,
        &settings,
        "istio-system",
        "istio-ingressgateway",
        "istio-ingressgateway-1",
        weft_discovery::ProxyType::Router,
    )
    .await;
    let mut next_credential = async |what: &str, cert: &str, secret: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let config = tokio::time::timeout_at(deadline, configs.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            if let Some(found) = server_credential(&config)
                && found.1 == cert
            {
                assert_eq!(found.0, format!("istio-system/{secret}"));
                return found;
            }
        }
    };
    let (_, _, ca) = next_credential("the certificate of shop-cert", &cert_a, "shop-cert").await;
    assert_eq!(
        ca.as_deref(),
        Some(client_ca.as_str()),
        "from shop-cert-cacert"
    );

    // Rotation: the Secret's new certificate is pushed to the connected gateway.
    let (cert_b, key_b) = certificate("shop.example.com");
    api.put_and_notify(
        shop_cert,
        "MODIFIED",
        tls_secret(
            "istio-system",
            "shop-cert",
            &[("tls.crt", &cert_b), ("tls.key", &key_b)],
        ),
    );
    next_credential("the rotated certificate", &cert_b, "shop-cert").await;

    // The Gateway now names another Secret (with its CA inline): that one is watched.
    let (cert_c, key_c) = certificate("shop.example.com");
    api.put(
        "/api/v1/namespaces/istio-system/secrets/shop-v2",
        tls_secret(
            "istio-system",
            "shop-v2",
            &[
                ("tls.crt", &cert_c),
                ("tls.key", &key_c),
                ("ca.crt", &client_ca),
            ],
        ),
    );
    api.put_and_notify(
        "/apis/networking.istio.io/v1/namespaces/shop/gateways/shop",
        "MODIFIED",
        gateway("shop-v2"),
    );
    next_credential("the certificate of shop-v2", &cert_c, "shop-v2").await;

    // Every Secret request of the gateway's namespace named a referenced Secret; the others
    // were never asked for.
    let watched: Vec<String> = api
        .log
        .lock()
        .iter()
        .filter_map(|(_, uri, _)| uri.strip_prefix("/api/v1/namespaces/istio-system/secrets?"))
        .map(|query| name_selector(query).unwrap_or_else(|| format!("unfiltered: {query}")))
        .collect();
    let referenced = ["shop-cert", "shop-cert-cacert", "shop-v2", "shop-v2-cacert"];
    assert!(
        watched
            .iter()
            .all(|name| referenced.contains(&name.as_str())),
        "{watched:?}"
    );
    assert!(watched.iter().any(|name| name == "shop-v2"), "{watched:?}");
    let log = api.log.lock().clone();
    assert!(
        !log.iter().any(|(_, uri, _)| uri.contains("unused-cert")
            || uri.starts_with("/api/v1/namespaces/shop/secrets")),
        "an unreferenced Secret was requested"
    );

    stream.abort();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}

/// The inline client credential of cluster `name` in `config`: (Secret, certificate chain,
/// CA).
fn client_credential(
    config: &weft_discovery::ProxyConfig,
    name: &str,
) -> Option<(String, Option<String>, Option<String>)> {
    match &config.cluster(name)?.transport {
        weft_proxy_config::TransportSocket::Mutual {
            credential: Some(credential),
            ..
        } => Some((
            credential.credential_name.clone(),
            credential.certificate_chain.clone(),
            credential.ca_certificates.clone(),
        )),
        _ => None,
    }
}

/// DestinationRule `tls` `MUTUAL` with `credentialName` at a sidecar (Istio: through a rule
/// with a `workloadSelector`, the Secret in the proxy's namespace): the Secret is watched by
/// name in the sidecar's namespace, its certificate and CA reach the sidecar's cluster, a
/// rotation is pushed, and other Secrets are never requested.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_credentials_reach_the_selected_sidecar() {
    let api = FakeApi::default();
    seed_mesh(&api, "demo", &[("client", "sa-uid-client")]);
    api.put(
        "/api/v1/namespaces/demo/pods/client-1",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "client-1", "namespace": "demo",
                            "labels": {"app": "client"}},
               "spec": {"serviceAccountName": "client",
                        "containers": [{"name": "app", "image": "app"}]},
               "status": {"podIP": "198.18.0.20"}}),
    );
    api.put(
        "/apis/networking.istio.io/v1/namespaces/demo/serviceentries/db",
        json!({"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
               "metadata": {"name": "db", "namespace": "demo"},
               "spec": {"hosts": ["db.example.com"], "location": "MESH_EXTERNAL",
                        "resolution": "STATIC",
                        "ports": [{"number": 80, "name": "http", "protocol": "HTTP"}],
                        "endpoints": [{"address": "198.18.0.30"}]}}),
    );
    api.put(
        "/apis/networking.istio.io/v1/namespaces/demo/destinationrules/db",
        json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
               "metadata": {"name": "db", "namespace": "demo"},
               "spec": {"host": "db.example.com",
                        "workloadSelector": {"matchLabels": {"app": "client"}},
                        "trafficPolicy": {"tls": {"mode": "MUTUAL",
                                                  "credentialName": "client-cert",
                                                  "sni": "db.example.com"}}}}),
    );
    let (cert_a, key_a) = certificate("client.example.com");
    let (server_ca, _) = certificate("db-ca.example.com");
    let client_cert = "/api/v1/namespaces/demo/secrets/client-cert";
    let opaque = |cert: &str, key: &str| {
        let mut secret = tls_secret(
            "demo",
            "client-cert",
            &[("cert", cert), ("key", key), ("cacert", &server_ca)],
        );
        secret["type"] = json!("Opaque");
        secret
    };
    api.put(client_cert, opaque(&cert_a, &key_a));
    api.put(
        "/api/v1/namespaces/demo/secrets/unrelated",
        tls_secret(
            "demo",
            "unrelated",
            &[("tls.crt", &cert_a), ("tls.key", &key_a)],
        ),
    );

    let (settings, shutdown, operator, _state_dir) = start_operator(&api);
    let (mut configs, stream) = connect(
        &api,
        &settings,
        "demo",
        "client",
        "client-1",
        weft_discovery::ProxyType::Sidecar,
    )
    .await;
    let cluster = "outbound|80||db.example.com";
    let mut next_certificate = async |what: &str, cert: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let config = tokio::time::timeout_at(deadline, configs.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
                .unwrap();
            if let Some(found) = client_credential(&config, cluster)
                && found.1.as_deref() == Some(cert)
            {
                assert_eq!(found.0, "demo/client-cert");
                return found;
            }
        }
    };
    let (_, _, ca) = next_certificate("the certificate of client-cert", &cert_a).await;
    assert_eq!(
        ca.as_deref(),
        Some(server_ca.as_str()),
        "the Secret's cacert"
    );

    // Rotation: the sidecar gets the new certificate.
    let (cert_b, key_b) = certificate("client.example.com");
    api.put_and_notify(client_cert, "MODIFIED", opaque(&cert_b, &key_b));
    next_certificate("the rotated certificate", &cert_b).await;

    let watched: Vec<String> = api
        .log
        .lock()
        .iter()
        .filter_map(|(_, uri, _)| uri.strip_prefix("/api/v1/namespaces/demo/secrets?"))
        .map(|query| name_selector(query).unwrap_or_else(|| format!("unfiltered: {query}")))
        .collect();
    assert!(
        watched.iter().any(|name| name == "client-cert"),
        "{watched:?}"
    );
    assert!(
        watched
            .iter()
            .all(|name| ["client-cert", "client-cert-cacert"].contains(&name.as_str())),
        "{watched:?}"
    );
    assert!(
        !api.log
            .lock()
            .iter()
            .any(|(_, uri, _)| uri.contains("unrelated")),
        "an unreferenced Secret was requested"
    );

    stream.abort();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}
