//! The standalone control plane end to end, in process: certificates written to disk, a real
//! mTLS HTTP/2 discovery stream, a push when a file changes, the ACK visible in
//! `/debug/syncz`, and a proxy with the wrong identity refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_discovery::client::{ClientSettings, StreamError, stream_once};
use weft_discovery::{Hello, ProxyConfig};
use weft_operator::standalone::runner::{StandaloneSettings, run};
use weft_proxy::tls::{CertPaths, CertStore, client_config};

const WORKLOADS: &str = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: demo}
spec:
  address: 198.18.20.11
  serviceAccount: reviews
  labels: {app: reviews, version: v1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: demo}
spec:
  address: 198.18.20.12
  serviceAccount: ratings
  labels: {app: ratings, version: v1}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: demo}
spec:
  hosts: [ratings.demo.svc.cluster.local]
  addresses: [198.19.20.2]
  ports: [{number: 9080, name: http, protocol: HTTP}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {labels: {app: ratings}}
"#;

const ROUTE: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: demo}
spec:
  hosts: [ratings.demo.svc.cluster.local]
  http:
  - route:
    - destination: {host: ratings.demo.svc.cluster.local}
    timeout: 3s
"#;

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

async fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn settings_for(state: &Path, sa: &str, addr: SocketAddr, workload: &str) -> ClientSettings {
    let store = CertStore::load(CertPaths::istio(state.join("certs/demo").join(sa))).unwrap();
    let tls = client_config(
        &store,
        &["spiffe://cluster.local/ns/istio-system/sa/weft-operator".to_string()],
        &[b"h2"],
    )
    .unwrap();
    ClientSettings {
        address: addr.to_string(),
        tls: Arc::new(tls),
        hello: Hello {
            namespace: "demo".into(),
            workload: workload.into(),
            proxy_version: "test".into(),
            current_version: String::new(),
            proxy_type: Default::default(),
        },
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_get_their_own_config_and_changes_are_pushed() {
    let config = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("workloads.yaml"), WORKLOADS).unwrap();
    let discovery = free_addr();
    let monitoring = free_addr();
    let shutdown = CancellationToken::new();
    let runner = tokio::spawn(run(
        StandaloneSettings {
            config_dir: config.path().to_path_buf(),
            state_dir: state.path().to_path_buf(),
            discovery_addr: discovery,
            monitoring_addr: monitoring,
            cert_owner: None,
            poll_interval: Duration::from_millis(50),
        },
        shutdown.clone(),
    ));
    wait_for(&state.path().join("certs/demo/reviews/cert-chain.pem")).await;
    wait_for(&state.path().join("certs/demo/ratings/cert-chain.pem")).await;

    // reviews-v1 connects with its own identity and gets its config.
    let (tx, mut rx) = mpsc::unbounded_channel::<ProxyConfig>();
    let client = settings_for(state.path(), "reviews", discovery, "reviews-v1");
    let hello = client.hello.clone();
    let stream = tokio::spawn(async move {
        let mut apply = move |c: ProxyConfig| {
            let _ = tx.send(c);
            Ok(())
        };
        stream_once(&client, hello, &mut apply).await
    });
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.node.service_account, "reviews");
    assert!(!first.version.is_empty());
    let ratings = first
        .outbound
        .iter()
        .find(|l| l.hostname == "ratings.demo.svc.cluster.local")
        .expect("ratings is reachable");
    assert_eq!(ratings.port, 9080);

    // A new VirtualService is pushed, with a new version, after the debounce.
    let changed_at = Instant::now();
    std::fs::write(config.path().join("route.yaml"), ROUTE).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let took = changed_at.elapsed();
    assert_ne!(second.version, first.version);
    println!("config change reached the proxy in {took:?}");

    // The ACK is recorded: proxy-status says SYNCED with the new version.
    let mut synced = false;
    for _ in 0..50 {
        let body = http_get(monitoring, "/debug/syncz").await;
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        let row = &rows[0];
        if row["state"] == "SYNCED" && row["acked"] == second.version.as_str() {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(synced, "proxy-status never showed SYNCED");
    let metrics = http_get(monitoring, "/metrics").await;
    assert!(metrics.contains("pilot_xds 1"), "{metrics}");
    assert!(
        metrics.contains("pilot_proxy_convergence_time_count 1"),
        "{metrics}"
    );

    // An unrelated file change that does not alter reviews' config pushes nothing new.
    std::fs::write(config.path().join("notes.yaml"), "# nothing\n").unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(800), rx.recv()).await;
    assert!(
        nothing.is_err(),
        "an unchanged config must not be pushed again"
    );

    // ratings' identity may not read reviews' config.
    let thief = settings_for(state.path(), "ratings", discovery, "reviews-v1");
    let mut ignore = |_c: ProxyConfig| Ok(());
    let denied = stream_once(&thief, thief.hello.clone(), &mut ignore).await;
    match denied {
        Err(StreamError::Rejected { status, message }) => {
            assert_eq!(status, 403);
            assert!(message.contains("permission denied"), "{message}");
        }
        other => panic!("expected a 403 rejection, got {other:?}"),
    }

    shutdown.cancel();
    stream.abort();
    let _ = tokio::time::timeout(Duration::from_secs(5), runner).await;
}

async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}
