//! The admission webhook server over real HTTPS: injection answers with a patch, validation
//! denies a bad VirtualService with its field path, probes answer, and a rotated serving
//! certificate is served to new connections without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use prometheus_client::registry::Registry;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_util::sync::CancellationToken;
use weft_identity::{CertificateAuthority, SystemClock};
use weft_operator::webhook_server::{ServingCert, WebhookMetrics, WebhookState, serve};
use weft_webhook::InjectionConfig;

fn write_serving(ca: &CertificateAuthority, dir: &Path) {
    let issued = ca
        .issue_serving(&["localhost"], Duration::from_secs(3600))
        .unwrap();
    std::fs::write(dir.join("tls.key"), issued.private_key_pem.expose_secret()).unwrap();
    std::fs::write(dir.join("tls.crt"), &issued.cert_chain_pem).unwrap();
}

async fn post(
    addr: std::net::SocketAddr,
    ca: &CertificateAuthority,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value, CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    for der in ca.trust_bundle().roots() {
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
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let peer = tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, peer)
}

fn review(
    uid: &str,
    kind: serde_json::Value,
    namespace: &str,
    object: serde_json::Value,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": kind,
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": "CREATE",
            "namespace": namespace,
            "userInfo": {"username": "test"},
            "object": object,
        }
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_answer_over_https_and_pick_up_a_rotated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca =
        CertificateAuthority::self_signed("cluster.local", None, Arc::new(SystemClock)).unwrap();
    write_serving(&ca, dir.path());
    let cert = ServingCert::load(&dir.path().join("tls.crt"), &dir.path().join("tls.key")).unwrap();
    let mut registry = Registry::default();
    let state = WebhookState {
        injection: Arc::new(ArcSwap::from_pointee(InjectionConfig::default())),
        namespaces: Arc::new(|ns: &str| {
            (ns == "app")
                .then(|| BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())]))
        }),
        metrics: WebhookMetrics::new(&mut registry),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(serve(listener, cert.clone(), state, shutdown.clone()));

    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "app", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx", "ports": [{"containerPort": 80}]}]}
    });
    let pod_kind = serde_json::json!({"group": "", "version": "v1", "kind": "Pod"});
    let (status, body, first_cert) =
        post(addr, &ca, "/inject", review("u1", pod_kind, "app", pod)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["uid"], "u1");
    assert_eq!(body["response"]["allowed"], true, "{body}");
    assert_eq!(body["response"]["patchType"], "JSONPatch", "{body}");

    let vs = serde_json::json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "bad", "namespace": "app"},
        "spec": {"hosts": ["web"], "http": [{"route": [{"destination": {"host": "web"}, "weight": 150}]}]}
    });
    let vs_kind = serde_json::json!({"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"});
    let (status, body, _) = post(addr, &ca, "/validate", review("u2", vs_kind, "app", vs)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["response"]["allowed"], false, "{body}");
    let message = body["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains("spec.http[0].route[0].weight"),
        "{message}"
    );

    // Rotation: new files, picked up without a restart, served to the next connection.
    std::thread::sleep(Duration::from_millis(1100)); // a distinct mtime
    write_serving(&ca, dir.path());
    assert!(
        cert.reload_if_changed(),
        "the new certificate was not loaded"
    );
    let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "other"}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let pod_kind = serde_json::json!({"group": "", "version": "v1", "kind": "Pod"});
    let (status, body, second_cert) =
        post(addr, &ca, "/inject", review("u3", pod_kind, "other", pod)).await;
    assert_eq!(status, 200);
    assert_eq!(body["response"]["allowed"], true);
    assert!(
        body["response"]["patch"].is_null(),
        "a pod in an unlabelled namespace is not injected: {body}"
    );
    assert_ne!(first_cert, second_cert, "the rotated certificate is served");
    shutdown.cancel();
}
