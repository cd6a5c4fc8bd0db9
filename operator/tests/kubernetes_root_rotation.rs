//! Root rotation end to end (issue 3: "Root rotation keeps the old and new roots both in the
//! trust bundle until every workload certificate is re-issued"), with the fake API server of
//! `tower_test::mock` and real TLS handshakes on 127.0.0.1:
//!
//! the administrator replaces `cacerts` with a new signing root and a `root-cert.pem` holding
//! the old and the new root → the operator loads it; Citadel re-issues a workload certificate
//! signed under the old root with `ca.crt` = both roots; the discovery server accepts proxies
//! holding either an old or a new certificate; the webhook configurations get both roots.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::client::Body;
use rustls_pki_types::ServerName;
use serde_json::{Value, json};
use weft_crds::mesh::MeshSpec;
use weft_identity::{
    CertificateAuthority, ChainStatus, Clock, Identity, RotationPolicy, SystemClock, TrustBundle,
};
use weft_operator::citadel::controller::{load_ca, reconcile_service_account};
use weft_operator::citadel::{CitadelSettings, Context};
use weft_operator::kubernetes::own_certs::write_discovery_cert;
use weft_operator::kubernetes::webhook_config::ensure_webhook_configurations;
use weft_proxy::tls::{CertPaths, CertStore, client_config, peer_identity, server_config};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const OPERATOR_ID: &str = "spiffe://cluster.local/ns/weft-system/sa/weft-operator";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn unb64(value: &Value) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

async fn expect(handle: &mut Handle, method: Method, uri: &str, reply: (u16, Value)) -> Value {
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().to_string(), uri);
    let body = request.into_body().collect_bytes().await.unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    respond.send_response(
        Response::builder()
            .status(reply.0)
            .body(Body::from(serde_json::to_vec(&reply.1).unwrap()))
            .unwrap(),
    );
    body
}

struct Rotation {
    clock: Arc<dyn Clock>,
    old: CertificateAuthority,
    new: CertificateAuthority,
    /// `cacerts` after the rotation: signing with the new root, trusting both.
    cacerts: Value,
}

fn rotation() -> Rotation {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let old = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let new = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let parts = new.to_pem_parts();
    let both = format!("{}{}", old.trust_bundle_pem(), new.trust_bundle_pem());
    let cacerts = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cacerts", "namespace": "weft-system"},
        "data": {
            "ca-cert.pem": b64(&parts.ca_cert_pem),
            "ca-key.pem": b64(parts.ca_key_pem.expose_secret()),
            "root-cert.pem": b64(&both),
            "cert-chain.pem": b64(""),
        }
    });
    Rotation {
        clock,
        old,
        new,
        cacerts,
    }
}

/// Loads the rotated CA through the fake API (GET `cacerts`).
async fn load_rotated(r: &Rotation) -> CertificateAuthority {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let settings = CitadelSettings {
        namespace: "weft-system".into(),
        mesh: MeshSpec::default(),
    };
    let clock = r.clock.clone();
    let task = tokio::spawn(async move { load_ca(&client, &settings, clock).await });
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/weft-system/secrets/cacerts",
        (200, r.cacerts.clone()),
    )
    .await;
    task.await.unwrap().unwrap()
}

/// A proxy's files (Istio layout) with a certificate for `demo/reviews` from `issuer` and the
/// trust bundle `bundle_pem`.
fn proxy_store(
    issuer: &CertificateAuthority,
    bundle_pem: &str,
    dir: &std::path::Path,
) -> Arc<CertStore> {
    let identity = Identity::spiffe("cluster.local", "demo", "reviews").unwrap();
    let issued = issuer
        .issue_workload(&identity, Duration::from_secs(3600))
        .unwrap();
    let paths = CertPaths::istio(dir);
    std::fs::write(&paths.cert_chain, &issued.cert_chain_pem).unwrap();
    std::fs::write(&paths.key, issued.private_key_pem.expose_secret()).unwrap();
    std::fs::write(&paths.root_cert, bundle_pem).unwrap();
    CertStore::load(paths).unwrap()
}

/// One mTLS handshake from `client` to a discovery listener using `server`'s files; returns
/// the client identity the server saw, or the server's error.
async fn handshake(server: &Arc<CertStore>, client: &Arc<CertStore>) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor =
        tokio_rustls::TlsAcceptor::from(Arc::new(server_config(server, &[b"h2"]).unwrap()));
    let accepted = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tls = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        peer_identity(tls.get_ref().1).ok_or_else(|| "no peer identity".to_string())
    });
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        client_config(client, &[OPERATOR_ID.to_string()], &[b"h2"]).unwrap(),
    ));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("weft-operator.weft-system.svc").unwrap();
    let connected = connector.connect(name, tcp).await;
    let seen = accepted.await.unwrap();
    drop(connected);
    seen
}

#[tokio::test]
async fn citadel_reissues_old_certificates_with_both_roots_in_ca_crt() {
    let r = rotation();
    let ca = load_rotated(&r).await;
    assert_eq!(ca.trust_bundle().len(), 2, "the old and the new root");

    let old_cert = r
        .old
        .issue_workload(
            &Identity::spiffe("cluster.local", "demo", "reviews").unwrap(),
            Duration::from_secs(24 * 3600),
        )
        .unwrap();
    assert_eq!(
        ca.chain_status(&old_cert.cert_chain_pem).unwrap(),
        ChainStatus::TrustedByRetiredCa,
        "an old certificate still verifies during the overlap"
    );
    let stored = json!({
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": "weft-workload-cert-reviews", "namespace": "demo"},
        "data": {"tls.crt": b64(&old_cert.cert_chain_pem),
                 "tls.key": b64(old_cert.private_key_pem.expose_secret()),
                 "ca.crt": b64(&r.old.trust_bundle_pem())}
    });

    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let ctx = Arc::new(Context::new(
        client,
        ca,
        &MeshSpec::default(),
        r.clock.clone(),
    ));
    let sa: ServiceAccount = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "reviews", "namespace": "demo", "uid": "sa-uid-1"}
    }))
    .unwrap();
    let task = tokio::spawn(reconcile_service_account(Arc::new(sa), ctx.clone()));
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
                           "metadata": {"name": "demo", "labels": {"istio-injection": "enabled"}}});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace),
    )
    .await;
    let secret_path = "/api/v1/namespaces/demo/secrets/weft-workload-cert-reviews";
    expect(&mut handle, Method::GET, secret_path, (200, stored)).await;
    let written = expect(
        &mut handle,
        Method::PATCH,
        &format!("{secret_path}?&force=true&fieldManager=weft-operator"),
        (
            200,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
        ),
    )
    .await;
    task.await.unwrap().unwrap();
    let chain = unb64(&written["data"]["tls.crt"]);
    assert_eq!(
        ctx.ca().chain_status(&chain).unwrap(),
        ChainStatus::IssuedByCurrentCa
    );
    let bundle = TrustBundle::from_pem(&unb64(&written["data"]["ca.crt"])).unwrap();
    assert_eq!(
        bundle.len(),
        2,
        "ca.crt keeps both roots during the overlap"
    );
}

#[tokio::test]
async fn the_discovery_server_trusts_proxies_of_both_roots_during_the_overlap() {
    let r = rotation();
    let ca = load_rotated(&r).await;
    let both = ca.trust_bundle_pem();
    let policy = RotationPolicy::new(Duration::from_secs(3600), 0.5);

    let operator_dir = tempfile::tempdir().unwrap();
    let (paths, _) = write_discovery_cert(
        &ca,
        &policy,
        "cluster.local",
        "weft-system",
        operator_dir.path(),
    )
    .unwrap();
    let server = CertStore::load(paths).unwrap();

    let old_dir = tempfile::tempdir().unwrap();
    let new_dir = tempfile::tempdir().unwrap();
    let old_proxy = proxy_store(&r.old, &both, old_dir.path());
    let new_proxy = proxy_store(&ca, &both, new_dir.path());
    let reviews = "spiffe://cluster.local/ns/demo/sa/reviews";
    assert_eq!(handshake(&server, &old_proxy).await.unwrap(), reviews);
    assert_eq!(handshake(&server, &new_proxy).await.unwrap(), reviews);

    // Control: an operator trusting only the new root refuses the not-yet-re-issued proxy.
    let new_only_dir = tempfile::tempdir().unwrap();
    let (paths, _) = write_discovery_cert(
        &r.new,
        &policy,
        "cluster.local",
        "weft-system",
        new_only_dir.path(),
    )
    .unwrap();
    let new_only = CertStore::load(paths).unwrap();
    assert!(handshake(&new_only, &old_proxy).await.is_err());
}

#[tokio::test]
async fn the_webhook_configurations_get_both_roots() {
    let r = rotation();
    let ca = load_rotated(&r).await;
    let bundle = ca.trust_bundle_pem();
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let pem = bundle.clone();
    let task =
        tokio::spawn(
            async move { ensure_webhook_configurations(&client, pem.as_bytes(), None).await },
        );
    let mutating = json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": "weft-sidecar-injector"},
        "webhooks": [{"name": "namespace.sidecar-injector.weft.dev", "sideEffects": "None",
                      "admissionReviewVersions": ["v1"],
                      "clientConfig": {"caBundle": b64(&r.old.trust_bundle_pem()),
                                       "service": {"name": "weft-operator",
                                                   "namespace": "weft-system",
                                                   "path": "/inject"}}}]
    });
    let path =
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector";
    expect(&mut handle, Method::GET, path, (200, mutating.clone())).await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        &format!("{path}?&fieldManager=weft-operator"),
        (200, mutating),
    )
    .await;
    let sent = unb64(&patch["webhooks"][0]["clientConfig"]["caBundle"]);
    assert_eq!(sent, bundle);
    assert_eq!(TrustBundle::from_pem(&sent).unwrap().len(), 2);
    let validating_path =
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/weft-validator";
    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "NotFound", "code": 404, "message": "not found"});
    expect(&mut handle, Method::GET, validating_path, (404, not_found)).await;
    assert_eq!(task.await.unwrap().unwrap(), 1);
}
