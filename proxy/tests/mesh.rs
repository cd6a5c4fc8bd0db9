//! TCP proxying, the inbound listener's mTLS modes, and sidecar-to-sidecar mTLS, over real
//! sockets on 127.0.0.1 with the test PKI in `tests/data/tls`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

#[path = "common/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy::config::ConfigStore;
use weft_proxy::inbound::InboundProxy;
use weft_proxy::listener::DestinationMode;
use weft_proxy::mesh_tls::{CertStoreTls, MeshTls};
use weft_proxy::request_log::{Direction, ResponseFlags};
use weft_proxy::tls::{CertPaths, CertStore};

/// An echo server; returns its address.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    address
}

async fn round_trip(address: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(payload).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap_or_default();
    reply
}

fn tls(name: &str) -> Arc<dyn MeshTls> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name);
    let store = CertStore::load(CertPaths::discover(dir).unwrap()).unwrap();
    Arc::new(CertStoreTls::new(store))
}

struct Inbound {
    address: SocketAddr,
    recorder: Arc<Recorder>,
    _shutdown: tokio_util::sync::DropGuard,
}

/// An inbound listener forwarding to `app` with `mtls_mode` on the app's port.
async fn inbound(app: SocketAddr, mtls_mode: &str, tls: Option<Arc<dyn MeshTls>>) -> Inbound {
    let config = parse(&format!(
        "node: {{id: b, namespace: default}}\ninbound:\n  ports:\n    - {{port: {}, mtls_mode: {mtls_mode}}}\n",
        app.port()
    ));
    let store = ConfigStore::new(tls);
    store.apply(config).unwrap();
    let recorder = Arc::new(Recorder::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let proxy = Arc::new(InboundProxy::new(
        store,
        recorder.clone(),
        DestinationMode::Fixed(app),
        Duration::from_secs(2),
    ));
    tokio::spawn(weft_proxy::inbound::serve(
        listener,
        proxy,
        shutdown.clone(),
        TaskTracker::new(),
    ));
    Inbound {
        address,
        recorder,
        _shutdown: shutdown.drop_guard(),
    }
}

async fn wait_for_log(recorder: &Recorder) -> weft_proxy::request_log::RequestLog {
    for _ in 0..100 {
        if let Some(log) = recorder.logs.lock().last().cloned() {
            return log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no log recorded");
}

#[tokio::test]
async fn outbound_tcp_service_is_proxied_to_its_endpoint() {
    let app = echo().await;
    let config = parse(&format!(
        r#"
node: {{id: a, namespace: default}}
outbound:
  - name: mysql:3306
    hostname: mysql.default.svc.cluster.local
    addresses: [10.96.0.30]
    port: 3306
    protocol: TCP
    tcp:
      - match: [{{destination_subnets: [10.96.0.0/16]}}]
        clusters: [{{cluster: mysql}}]
clusters:
{}"#,
        cluster("mysql", &[app])
    ));
    let proxy = outbound_proxy(config, "10.96.0.30:3306").await;
    assert_eq!(round_trip(proxy.address, b"hello tcp").await, b"hello tcp");
    let log = wait_for_log(&proxy.recorder).await;
    assert_eq!(log.protocol, "TCP");
    assert_eq!(log.upstream_host, Some(app));
    assert_eq!(&*log.upstream_cluster, "mysql");
}

#[tokio::test]
async fn registry_only_closes_unknown_tcp() {
    let mut config = parse("node: {id: a, namespace: default}\n");
    config.outbound_traffic_policy = weft_proxy_config::OutboundTrafficPolicy::RegistryOnly;
    let proxy = outbound_proxy(config, "203.0.113.9:5432").await;
    // A server-first style client: sends a non-HTTP payload.
    assert_eq!(round_trip(proxy.address, b"\x00\x01binary").await, b"");
    assert!(
        wait_for_log(&proxy.recorder)
            .await
            .flags
            .contains(ResponseFlags::NO_ROUTE_FOUND)
    );
}

#[tokio::test]
async fn permissive_accepts_plaintext() {
    let app = echo().await;
    let inbound = inbound(app, "PERMISSIVE", None).await;
    assert_eq!(round_trip(inbound.address, b"plain").await, b"plain");
    let log = wait_for_log(&inbound.recorder).await;
    assert_eq!(log.direction, Direction::Inbound);
    assert_eq!(log.source_principal, None);
}

#[tokio::test]
async fn strict_refuses_plaintext() {
    let app = echo().await;
    let inbound = inbound(app, "STRICT", Some(tls("server"))).await;
    assert_eq!(
        round_trip(inbound.address, b"GET / HTTP/1.1\r\n\r\n").await,
        b""
    );
    assert!(
        wait_for_log(&inbound.recorder)
            .await
            .flags
            .contains(ResponseFlags::NO_ROUTE_FOUND)
    );
}

#[tokio::test]
async fn disable_passes_tls_bytes_through_untouched() {
    let app = echo().await;
    let inbound = inbound(app, "DISABLE", Some(tls("server"))).await;
    // A TLS record header followed by junk: with DISABLE it is the app's business.
    let payload = b"\x16\x03\x01\x00\x05hello";
    assert_eq!(round_trip(inbound.address, payload).await, payload);
}

const V1: &str = "outbound|8080||server.default.svc.cluster.local";

/// Client sidecar (outbound, ISTIO_MUTUAL) -> server sidecar (inbound STRICT) -> app.
#[tokio::test]
async fn sidecar_to_sidecar_mtls_carries_http_and_identity() {
    let app = named_upstream("from-app").await;
    let server_side = inbound(app.address, "STRICT", Some(tls("server"))).await;
    let routes = format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{V1}\"}}]\n"
    );
    let clusters = format!(
        r#"  - name: "{V1}"
    transport:
      mode: ISTIO_MUTUAL
      expected_identities: [spiffe://cluster.local/ns/default/sa/server]
      sni: outbound_.8080_._.server.default.svc.cluster.local
    endpoints:
      - {{address: 127.0.0.1, port: {}, has_sidecar: true}}
"#,
        server_side.address.port()
    );
    let store = ConfigStore::new(Some(tls("client")));
    store.apply(http_config(&routes, &clusters)).unwrap();
    let proxy = outbound_proxy_with_store(store, VIP).await;
    let (status, _, body) = get(&proxy, "server", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "from-app"));
    // The server sidecar logs the request (not just the connection) with the peer identity.
    let log = wait_for_log(&server_side.recorder).await;
    assert_eq!(log.direction, Direction::Inbound);
    assert_eq!(log.method, "GET");
    assert_eq!(log.status, 200);
    assert_eq!(
        log.source_principal.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/client")
    );
    assert_eq!(log.upstream_host, Some(app.address));
    // The application sees Istio's x-forwarded-client-cert.
    let xfcc = app.seen.lock()[0].headers["x-forwarded-client-cert"]
        .to_str()
        .unwrap()
        .to_owned();
    let hash = xfcc
        .split(';')
        .find_map(|part| part.strip_prefix("Hash="))
        .unwrap();
    assert_eq!(hash.len(), 64, "{xfcc}");
    assert!(
        xfcc.ends_with(r#"Subject="";URI=spiffe://cluster.local/ns/default/sa/client"#),
        "{xfcc}"
    );
}

/// The wrong server identity fails the handshake: 503 UF, nothing reaches the app.
#[tokio::test]
async fn mtls_to_an_unexpected_identity_fails() {
    let app = named_upstream("from-app").await;
    let server_side = inbound(app.address, "STRICT", Some(tls("server"))).await;
    let routes = format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{V1}\"}}]\n"
    );
    let clusters = format!(
        r#"  - name: "{V1}"
    transport:
      mode: ISTIO_MUTUAL
      expected_identities: [spiffe://cluster.local/ns/default/sa/someone-else]
      sni: outbound_.8080_._.server.default.svc.cluster.local
    endpoints:
      - {{address: 127.0.0.1, port: {}, has_sidecar: true}}
"#,
        server_side.address.port()
    );
    let store = ConfigStore::new(Some(tls("client")));
    store.apply(http_config(&routes, &clusters)).unwrap();
    let proxy = outbound_proxy_with_store(store, VIP).await;
    let (status, _, _) = get(&proxy, "server", "/", &[]).await;
    assert_eq!(status, 503);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
    );
    assert_eq!(app.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn permissive_plaintext_http_is_logged_per_request() {
    let app = named_upstream("from-app").await;
    let inbound = inbound(app.address, "PERMISSIVE", None).await;
    let mut stream = TcpStream::connect(inbound.address).await.unwrap();
    stream
        .write_all(
            b"GET /a HTTP/1.1\r\nHost: app\r\nX-Forwarded-Client-Cert: URI=forged\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.ends_with("from-app"), "{reply}");
    let log = wait_for_log(&inbound.recorder).await;
    assert_eq!(
        (&*log.method, log.path.as_str(), log.status),
        ("GET", "/a", 200)
    );
    assert_eq!(log.source_principal, None);
    assert_eq!(app.seen.lock()[0].headers["host"], "app");
    // Without mTLS a client-supplied XFCC is dropped (SANITIZE_SET).
    assert!(
        !app.seen.lock()[0]
            .headers
            .contains_key("x-forwarded-client-cert")
    );
}
