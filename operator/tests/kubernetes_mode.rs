//! The whole Kubernetes mode in-process against a small in-memory fake API server (list,
//! never-ending watch, get, create, apply): it creates the mesh CA, becomes ready once every
//! reflector has listed, injects a pod of a namespace labelled in its Namespace store over
//! HTTPS with a serving certificate from the mesh CA, runs Citadel (a workload certificate
//! Secret and the trust-bundle ConfigMap), patches the injector's caBundle (again when an
//! installer re-creates it), follows a root rotation in `cacerts` while running (discovery
//! trust bundle, caBundle and ConfigMap with both roots, the workload certificate re-issued
//! by the new root), serves discovery, and stops on shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

#[path = "support/fake_api.rs"]
mod fake_api;
#[path = "support/proxy_stream.rs"]
mod proxy_stream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fake_api::{FakeApi, eventually};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use proxy_stream::start_operator_with;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};

async fn http_get(addr: SocketAddr, path: &str) -> Option<u16> {
    http_get_body(addr, path).await.map(|(status, _)| status)
}

async fn http_get_body(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .ok()?;
    tokio::spawn(conn);
    let request = Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// POSTs `body` to the webhook at `addr`, trusting only `root_pem` and checking the serving
/// certificate against the Service name `weft-operator.weft-system.svc`.
async fn post_webhook(addr: SocketAddr, root_pem: &str, path: &str, body: Value) -> Value {
    let mut roots = rustls::RootCertStore::empty();
    for der in weft_identity::TrustBundle::from_pem(root_pem)
        .unwrap()
        .roots()
    {
        roots.add(CertificateDer::from(der.to_vec())).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            ServerName::try_from("weft-operator.weft-system.svc").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::post(path)
        .header("host", "weft-operator.weft-system.svc")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(&body).unwrap())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_runs_against_a_fake_api_server() {
    let api = FakeApi::default();
    api.put(
        "/api/v1/namespaces/demo",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "demo", "labels": {"istio-injection": "enabled"}}}),
    );
    // The Mesh `default`: Citadel provisions only while it is in force.
    api.put(
        "/apis/mesh.weft.dev/v1alpha1/meshes/default",
        json!({"apiVersion": "mesh.weft.dev/v1alpha1", "kind": "Mesh",
               "metadata": {"name": "default", "uid": "mesh-uid-1", "generation": 1},
               "spec": {}}),
    );
    api.put(
        "/api/v1/namespaces/demo/serviceaccounts/reviews",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "reviews", "namespace": "demo", "uid": "sa-uid-1"}}),
    );
    api.put(
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector",
        json!({"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "weft-sidecar-injector"},
               "webhooks": [{"name": "namespace.sidecar-injector.weft.dev",
                             "sideEffects": "None", "admissionReviewVersions": ["v1"],
                             "clientConfig": {"service": {"name": "weft-operator",
                                                          "namespace": "weft-system",
                                                          "path": "/inject"}}}]}),
    );
    let (settings, shutdown, operator, state_dir) =
        start_operator_with(&api, |settings| settings.manage_webhook_ca_bundle = true);

    // Ready once every reflector has listed.
    let monitoring = settings.monitoring_addr;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http_get(monitoring, "/readyz").await != Some(200) {
        assert!(tokio::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The mesh CA was created once, in the operator's namespace.
    let created = api.requests(&Method::POST, "/api/v1/namespaces/weft-system/secrets");
    assert_eq!(created.len(), 1, "one CA Secret created");
    assert_eq!(created[0]["metadata"]["name"], "weft-ca-secret");
    let root_b64 = created[0]["data"]["root-cert.pem"].as_str().unwrap();
    let root = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(root_b64)
            .unwrap(),
    )
    .unwrap();

    // The injector decides from the Namespace store: `demo` is labelled for injection.
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE", "namespace": "demo", "userInfo": {"username": "test"},
            "object": {"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"name": "web-1", "namespace": "demo"},
                       "spec": {"containers": [{"name": "web", "image": "nginx"}]}}
        }
    });
    let answer = post_webhook(settings.webhook_addr, &root, "/inject", review.clone()).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert_eq!(answer["response"]["patchType"], "JSONPatch", "{answer}");
    let mut unlabelled = review;
    unlabelled["request"]["namespace"] = json!("other");
    unlabelled["request"]["object"]["metadata"]["namespace"] = json!("other");
    let answer = post_webhook(settings.webhook_addr, &root, "/inject", unlabelled).await;
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
    assert!(
        answer["response"].get("patch").is_none(),
        "not injected: {answer}"
    );

    // The leader's Citadel wrote the workload certificate and the trust bundle.
    let secret = "/api/v1/namespaces/demo/secrets/weft-workload-cert-reviews";
    let written = eventually("the workload certificate Secret", || {
        api.requests(&Method::PATCH, secret).pop()
    })
    .await;
    assert_eq!(written["type"], "kubernetes.io/tls");
    let configmap = "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert";
    let bundle = eventually("the trust bundle ConfigMap", || {
        api.requests(&Method::PATCH, configmap).pop()
    })
    .await;
    assert_eq!(bundle["data"]["root-cert.pem"], root.as_str());

    // The injector's caBundle is the mesh root.
    let injector =
        "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector";
    let patch = eventually("the caBundle patch", || {
        api.requests(&Method::PATCH, injector).pop()
    })
    .await;
    assert_eq!(
        patch["webhooks"][0]["clientConfig"]["caBundle"],
        json!(root_b64)
    );

    // An installer re-creates the injector's configuration without a caBundle: re-patched.
    api.put_and_notify(
        injector,
        "MODIFIED",
        json!({"apiVersion": "admissionregistration.k8s.io/v1",
               "kind": "MutatingWebhookConfiguration",
               "metadata": {"name": "weft-sidecar-injector"},
               "webhooks": [{"name": "namespace.sidecar-injector.weft.dev",
                             "sideEffects": "None", "admissionReviewVersions": ["v1"],
                             "clientConfig": {"service": {"name": "weft-operator",
                                                          "namespace": "weft-system",
                                                          "path": "/inject"}}}]}),
    );
    eventually("the caBundle re-patched", || {
        (api.requests(&Method::PATCH, injector).len() >= 2).then_some(())
    })
    .await;

    // Root rotation while running: `cacerts` signs with a new root and trusts both.
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let new_root = weft_identity::CertificateAuthority::self_signed(
        "cluster.local",
        None,
        Arc::new(weft_identity::SystemClock),
    )
    .unwrap();
    let parts = new_root.to_pem_parts();
    let both = format!("{root}{}", parts.root_cert_pem);
    api.put_and_notify(
        "/api/v1/namespaces/weft-system/secrets/cacerts",
        "ADDED",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "cacerts", "namespace": "weft-system"},
               "data": {"ca-cert.pem": b64(&parts.ca_cert_pem),
                        "ca-key.pem": b64(parts.ca_key_pem.expose_secret()),
                        "root-cert.pem": b64(&both),
                        "cert-chain.pem": b64("")}}),
    );
    let roots_of = |pem: &str| weft_identity::TrustBundle::from_pem(pem).unwrap().len();
    // The discovery server now trusts both roots (and serves a certificate of the new one).
    let discovery_bundle = state_dir.path().join("discovery/root-cert.pem");
    eventually("the discovery trust bundle with both roots", || {
        let pem = std::fs::read_to_string(&discovery_bundle).ok()?;
        (roots_of(&pem) == 2).then_some(())
    })
    .await;
    // The webhooks' caBundle and the published trust bundle carry both roots.
    eventually("the caBundle with both roots", || {
        let patch = api.requests(&Method::PATCH, injector).pop()?;
        let sent = patch["webhooks"][0]["clientConfig"]["caBundle"].as_str()?;
        let pem = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(sent)
                .unwrap(),
        )
        .unwrap();
        (roots_of(&pem) == 2).then_some(())
    })
    .await;
    eventually("the trust bundle ConfigMap with both roots", || {
        let bundle = api.requests(&Method::PATCH, configmap).pop()?;
        (roots_of(bundle["data"]["root-cert.pem"].as_str()?) == 2).then_some(())
    })
    .await;
    // The workload certificate issued under the old root is re-issued by the new CA.
    eventually("the workload certificate re-issued by the new root", || {
        let stored = api.requests(&Method::PATCH, secret).pop()?;
        let chain = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(stored["data"]["tls.crt"].as_str()?)
                .unwrap(),
        )
        .unwrap();
        weft_identity::TrustBundle::from_pem(&parts.root_cert_pem)
            .unwrap()
            .verify_chain_pem(&chain, std::time::SystemTime::now())
            .ok()
            .map(drop)
    })
    .await;

    // The Mesh is being deleted: Citadel stops, so a new ServiceAccount gets no certificate
    // (what the Mesh's cleanup removes must stay removed)...
    let mesh_path = "/apis/mesh.weft.dev/v1alpha1/meshes/default";
    let mesh = |deleting: bool| {
        let mut mesh = json!({"apiVersion": "mesh.weft.dev/v1alpha1", "kind": "Mesh",
               "metadata": {"name": "default", "uid": "mesh-uid-1", "generation": 1},
               "spec": {}});
        if deleting {
            mesh["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            mesh["metadata"]["finalizers"] = json!(["mesh.weft.dev/cleanup"]);
        }
        mesh
    };
    api.put_and_notify(mesh_path, "MODIFIED", mesh(true));
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.put_and_notify(
        "/api/v1/namespaces/demo/serviceaccounts/ratings",
        "ADDED",
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "ratings", "namespace": "demo", "uid": "sa-uid-2"}}),
    );
    let ratings_secret = "/api/v1/namespaces/demo/secrets/weft-workload-cert-ratings";
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        api.requests(&Method::PATCH, ratings_secret).is_empty(),
        "no certificate is issued while the Mesh is deleted"
    );
    // ...and starts again when the Mesh is back.
    api.put_and_notify(mesh_path, "MODIFIED", mesh(false));
    eventually("the certificate once the Mesh is back", || {
        api.requests(&Method::PATCH, ratings_secret).pop()
    })
    .await;

    // Without --leader-elect this replica leads, and says so in its metrics.
    let (_, metrics) = http_get_body(monitoring, "/metrics").await.unwrap();
    assert!(
        metrics.contains("leader_election_master_status{name=\"weft-operator-leader\"} 1"),
        "{metrics}"
    );

    // Discovery listens; the operator stops on shutdown.
    tokio::net::TcpStream::connect(settings.discovery_addr)
        .await
        .unwrap();
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), operator)
        .await
        .expect("stops on shutdown")
        .unwrap()
        .unwrap();
}
