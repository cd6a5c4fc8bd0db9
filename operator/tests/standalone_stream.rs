//! The standalone control plane end to end, in process: certificates written to disk, a real
//! mTLS HTTP/2 discovery stream, a push when a file changes (a full config, or a delta for an
//! incremental client, answered with the full config when the proxy refuses it), the ACK
//! visible in `/debug/syncz`, and a proxy with the wrong identity refused.

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
            incremental: false,
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

/// An incremental client gets its first config whole and the change as a delta, which it
/// turns back into the whole config the server built (the client checks the content hash);
/// when the proxy refuses a delta push, the server answers with the full config of the same
/// version, and proxy-status ends SYNCED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_clients_get_deltas_and_a_full_config_after_a_nack() {
    let config = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(config.path().join("workloads.yaml"), WORKLOADS).unwrap();
    let (discovery, monitoring) = (free_addr(), free_addr());
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

    // The proxy refuses the second config it is handed (the first delta), once.
    let (tx, mut rx) = mpsc::unbounded_channel::<(ProxyConfig, bool)>();
    let mut client = settings_for(state.path(), "reviews", discovery, "reviews-v1");
    client.hello.incremental = true;
    let hello = client.hello.clone();
    let stream = tokio::spawn(async move {
        let mut handed = 0;
        let mut apply = move |c: ProxyConfig| {
            handed += 1;
            let accept = handed != 2;
            let _ = tx.send((c, accept));
            if accept {
                Ok(())
            } else {
                Err("refused once by the test".to_owned())
            }
        };
        stream_once(&client, hello, &mut apply).await
    });
    let mut recv = async || {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
    };
    let (first, _) = recv().await;
    let ratings_route = |config: &ProxyConfig| {
        config
            .outbound
            .iter()
            .find(|l| l.hostname == "ratings.demo.svc.cluster.local")
            .map(|l| format!("{:?}", l.http))
    };
    std::fs::write(config.path().join("route.yaml"), ROUTE).unwrap();
    let (refused, accepted) = recv().await;
    assert!(!accepted);
    assert_ne!(refused.version, first.version);
    assert_ne!(
        ratings_route(&refused),
        ratings_route(&first),
        "the route changed"
    );
    assert_eq!(refused.node, first.node, "the rest is kept");
    let (resent, accepted) = recv().await;
    assert!(accepted);
    assert_eq!(resent, refused, "the same config, whole");

    let mut synced = false;
    for _ in 0..50 {
        let body = http_get(monitoring, "/debug/syncz").await;
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        if rows[0]["state"] == "SYNCED" && rows[0]["acked"] == resent.version.as_str() {
            synced = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(synced, "proxy-status never showed SYNCED");
    let metrics = http_get(monitoring, "/metrics").await;
    assert!(metrics.contains("pilot_xds_pushes_total 3"), "{metrics}");
    assert!(
        metrics.contains("weft_xds_delta_pushes_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("pilot_total_xds_rejects_total 1"),
        "{metrics}"
    );

    // The next change goes as a delta from the config acknowledged last, and is applied.
    std::fs::write(config.path().join("route.yaml"), ROUTE.replace("3s", "4s")).unwrap();
    let (third, accepted) = recv().await;
    assert!(accepted);
    assert_ne!(third.version, resent.version);
    let metrics = http_get(monitoring, "/metrics").await;
    assert!(
        metrics.contains("weft_xds_delta_pushes_total 2"),
        "{metrics}"
    );

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
