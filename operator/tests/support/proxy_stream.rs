//! The operator in Kubernetes mode against the fake API server, and a proxy's discovery
//! stream to it: shared by the fake-API tests that check what proxies receive.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use weft_operator::kubernetes::{KubernetesSettings, run};

use super::fake_api::{FakeApi, eventually, free_port};

pub type Operator = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Seeds `api` with what every proxy test needs before the operator starts: `namespace`
/// labelled for injection, the Mesh `default`, and the service accounts `accounts` (name,
/// uid) in `namespace` (Citadel issues their workload certificates).
pub fn seed_mesh(api: &FakeApi, namespace: &str, accounts: &[(&str, &str)]) {
    api.put(
        &format!("/api/v1/namespaces/{namespace}"),
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": namespace, "labels": {"istio-injection": "enabled"}}}),
    );
    api.put(
        "/apis/mesh.weft.dev/v1alpha1/meshes/default",
        json!({"apiVersion": "mesh.weft.dev/v1alpha1", "kind": "Mesh",
               "metadata": {"name": "default", "uid": "mesh-uid-1", "generation": 1},
               "spec": {}}),
    );
    for (name, uid) in accounts {
        api.put(
            &format!("/api/v1/namespaces/{namespace}/serviceaccounts/{name}"),
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": name, "namespace": namespace, "uid": uid}}),
        );
    }
}

/// Starts the operator in Kubernetes mode against `api`; returns its settings, the shutdown
/// token, its task and the state directory (kept alive by the caller).
pub fn start_operator(
    api: &FakeApi,
) -> (
    KubernetesSettings,
    CancellationToken,
    Operator,
    tempfile::TempDir,
) {
    start_operator_with(api, |_| {})
}

/// As [`start_operator`], with the settings changed by `adjust` first (e.g. to manage the
/// webhook configurations' `caBundle`).
pub fn start_operator_with(
    api: &FakeApi,
    adjust: impl FnOnce(&mut KubernetesSettings),
) -> (
    KubernetesSettings,
    CancellationToken,
    Operator,
    tempfile::TempDir,
) {
    let fake = api.clone();
    let service = tower::service_fn(move |request| {
        let fake = fake.clone();
        async move { Ok::<_, Infallible>(fake.handle(request).await) }
    });
    let client = kube::Client::new(service, "default");
    let state_dir = tempfile::tempdir().unwrap();
    let mut settings = KubernetesSettings {
        namespace: "weft-system".into(),
        leader_elect: false,
        identity: "weft-operator-0".into(),
        discovery_addr: free_port(),
        monitoring_addr: free_port(),
        webhook_addr: free_port(),
        webhook_cert_dir: None,
        manage_webhook_ca_bundle: false,
        webhook_url: None,
        state_dir: state_dir.path().to_path_buf(),
        proxy_image: None,
    };
    adjust(&mut settings);
    let shutdown = CancellationToken::new();
    let operator = tokio::spawn(run(client, settings.clone(), shutdown.clone()));
    (settings, shutdown, operator, state_dir)
}

/// Connects proxy `pod` (service account `account` in `namespace`, of `proxy_type`) to the
/// operator's discovery server with the workload certificate Citadel issued it; returns the
/// configs it receives and the stream's task.
pub async fn connect(
    api: &FakeApi,
    settings: &KubernetesSettings,
    namespace: &str,
    account: &str,
    pod: &str,
    proxy_type: weft_discovery::ProxyType,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<weft_discovery::ProxyConfig>,
    tokio::task::JoinHandle<Result<(), weft_discovery::client::StreamError>>,
) {
    let b64_field = |secret: &Value, key: &str| {
        let text = secret["data"][key].as_str()?;
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .ok()?,
        )
        .ok()
    };
    let workload_cert =
        format!("/api/v1/namespaces/{namespace}/secrets/weft-workload-cert-{account}");
    let issued = eventually("the proxy's workload certificate", || {
        api.requests(&Method::PATCH, &workload_cert).pop()
    })
    .await;
    let certs = tempfile::tempdir().unwrap();
    for (key, file) in [
        ("tls.crt", "cert-chain.pem"),
        ("tls.key", "key.pem"),
        ("ca.crt", "root-cert.pem"),
    ] {
        std::fs::write(certs.path().join(file), b64_field(&issued, key).unwrap()).unwrap();
    }
    let store =
        weft_proxy::tls::CertStore::load(weft_proxy::tls::CertPaths::istio(certs.path())).unwrap();
    let tls = weft_proxy::tls::client_config(
        &store,
        &["spiffe://cluster.local/ns/weft-system/sa/weft-operator".to_string()],
        &[b"h2"],
    )
    .unwrap();
    let hello = weft_discovery::Hello {
        namespace: namespace.into(),
        workload: pod.into(),
        proxy_version: "test".into(),
        current_version: String::new(),
        proxy_type,
        incremental: false,
    };
    let client_settings = weft_discovery::client::ClientSettings {
        address: settings.discovery_addr.to_string(),
        tls: Arc::new(tls),
        hello: hello.clone(),
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    };
    let (tx, configs) = tokio::sync::mpsc::unbounded_channel();
    // The discovery server may not accept streams yet (it waits for the stores to sync):
    // reconnect until the test stops the stream, as the proxy's client does.
    let stream = tokio::spawn(async move {
        loop {
            let sender = tx.clone();
            let mut apply = move |config: weft_discovery::ProxyConfig| {
                let _ = sender.send(config);
                Ok(())
            };
            let ended =
                weft_discovery::client::stream_once(&client_settings, hello.clone(), &mut apply)
                    .await;
            if tx.is_closed() {
                return ended;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    (configs, stream)
}
