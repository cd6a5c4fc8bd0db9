//! The gateway data path in-process on 127.0.0.1: servers picked by Host and SNI, HTTPS
//! termination (SIMPLE with file reload, MUTUAL), httpsRedirect, TLS passthrough, and the
//! listener set following the config (with a port that cannot be bound refusing it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

#[path = "common/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use harness::*;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy::config::{ConfigError, ConfigStore};
use weft_proxy::gateway::GatewayListeners;
use weft_proxy::http::HttpProxy;

struct Gateway {
    store: Arc<ConfigStore>,
    listeners: Arc<GatewayListeners>,
    shutdown: CancellationToken,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn gateway() -> Gateway {
    let store = ConfigStore::new(None);
    let recorder = Arc::new(Recorder::default());
    let proxy = Arc::new(HttpProxy::outbound(Arc::clone(&store), recorder));
    let shutdown = CancellationToken::new();
    let listeners = GatewayListeners::new(proxy, shutdown.clone(), TaskTracker::new());
    assert!(store.set_hook(listeners.clone()));
    Gateway {
        store,
        listeners,
        shutdown,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A router config with `gateways` (YAML list items) and `clusters` (YAML list items).
fn config(gateways: &str, clusters: &str) -> weft_proxy_config::ProxyConfig {
    parse(&format!(
        "node: {{id: gw, namespace: istio-system, proxy_type: router}}\ngateways:\n{gateways}clusters:\n{clusters}"
    ))
}

/// A gateway listener item on 127.0.0.1:`port` with `servers` (YAML list items indented by 6).
fn listener(port: u16, servers: &str) -> String {
    format!(
        "  - name: 127.0.0.1_{port}\n    port: {port}\n    bind: 127.0.0.1\n    servers:\n{servers}"
    )
}

/// A route_config sending everything to `cluster`.
fn to_cluster(cluster: &str) -> String {
    format!(
        "        route_config:\n          virtual_hosts:\n            - name: all\n              domains: [\"*\"]\n              routes:\n                - action: {{route: {{clusters: [{{cluster: \"{cluster}\"}}]}}}}\n"
    )
}

fn http_server(name: &str, hosts: &str, cluster: &str) -> String {
    format!(
        "      - name: {name}\n        protocol: HTTP\n        hosts: {hosts}\n{}",
        to_cluster(cluster)
    )
}

/// GET `path` with `Host: host` over `io` (HTTP/1.1); returns status, headers and body.
async fn get_over<I>(io: I, host: &str, path: &str) -> (u16, http::HeaderMap, String)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", host)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

async fn http_get(port: u16, host: &str, path: &str) -> (u16, http::HeaderMap, String) {
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    get_over(stream, host, path).await
}

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A leaf for `names` signed by `ca`: (certificate PEM, key PEM).
fn leaf(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca.issuer)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Writes a leaf for `name` into `dir` as `<name>.crt`/`<name>.key` (write + rename).
fn install(dir: &Path, ca: &Ca, name: &str) {
    let (cert, key) = leaf(ca, &[name]);
    for (file, text) in [(format!("{name}.crt"), cert), (format!("{name}.key"), key)] {
        let tmp = dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(file)).unwrap();
    }
}

fn files_credential(dir: &Path, name: &str, ca: Option<&Path>) -> String {
    let ca = ca.map_or_else(String::new, |path| {
        format!(", ca_certificates: {}", path.display())
    });
    format!(
        "{{files: {{server_certificate: {dir}/{name}.crt, private_key: {dir}/{name}.key{ca}}}}}",
        dir = dir.display()
    )
}

fn client_tls(ca_pem: &str, client: Option<(String, String)>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(weft_proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
    }
}

/// GET over TLS with `sni`, trusting `ca_pem`; errors when the handshake or request fails.
async fn https_get(
    port: u16,
    sni: &str,
    ca_pem: &str,
    client: Option<(String, String)>,
) -> Result<(u16, String), String> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_tls(ca_pem, client)));
    let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), stream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get("/")
        .header("host", sni)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn cluster_of(name: &str, upstream: SocketAddr) -> String {
    cluster(name, &[upstream])
}

#[tokio::test]
async fn plaintext_servers_are_picked_by_host_and_https_redirect_answers_301() {
    let (a, b, c) = (
        named_upstream("a").await,
        named_upstream("b").await,
        named_upstream("c").await,
    );
    let port = free_port();
    let servers = [
        http_server("ns/gw/star", "[\"*\"]", "outbound|80||c.example"),
        http_server("ns/gw/wild", "[\"*.example.com\"]", "outbound|80||b.example"),
        http_server("ns/gw/exact", "[a.example.com]", "outbound|80||a.example"),
        "      - name: ns/gw/redirect\n        protocol: HTTP\n        hosts: [secure.example.com]\n        https_redirect: true\n        route_config: {}\n".to_owned(),
    ]
    .concat();
    let clusters = [
        cluster_of("outbound|80||a.example", a.address),
        cluster_of("outbound|80||b.example", b.address),
        cluster_of("outbound|80||c.example", c.address),
    ]
    .concat();
    let gw = gateway();
    gw.store
        .apply(config(&listener(port, &servers), &clusters))
        .unwrap();
    assert_eq!(http_get(port, "a.example.com", "/").await.2, "a");
    assert_eq!(http_get(port, "a.example.com:80", "/").await.2, "a");
    assert_eq!(http_get(port, "shop.example.com", "/").await.2, "b");
    assert_eq!(http_get(port, "other.org", "/").await.2, "c");
    let (status, headers, _) = http_get(port, "secure.example.com:80", "/cart?item=1").await;
    assert_eq!(status, 301);
    assert_eq!(
        headers.get("location").unwrap(),
        "https://secure.example.com/cart?item=1"
    );
}

#[tokio::test]
async fn https_simple_picks_the_certificate_by_sni_and_reloads_changed_files() {
    let (a, b) = (named_upstream("a").await, named_upstream("b").await);
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (ca(), ca());
    install(dir.path(), &first, "a.example.com");
    install(dir.path(), &first, "b.example.com");
    let port = free_port();
    let https = |name: &str, host: &str, cluster: &str| {
        format!(
            "      - name: {name}\n        protocol: HTTPS\n        hosts: [{host}]\n        tls: {{mode: SIMPLE, credential: {}}}\n{}",
            files_credential(dir.path(), host, None),
            to_cluster(cluster)
        )
    };
    let servers = [
        https("ns/gw/a", "a.example.com", "outbound|80||a.example"),
        https("ns/gw/b", "b.example.com", "outbound|80||b.example"),
    ]
    .concat();
    let clusters = [
        cluster_of("outbound|80||a.example", a.address),
        cluster_of("outbound|80||b.example", b.address),
    ]
    .concat();
    let gw = gateway();
    gw.store
        .apply(config(&listener(port, &servers), &clusters))
        .unwrap();
    // Each SNI gets its server's certificate (the client checks the name) and its routes.
    assert_eq!(
        https_get(port, "a.example.com", &first.pem, None).await,
        Ok((200, "a".to_owned()))
    );
    assert_eq!(
        https_get(port, "b.example.com", &first.pem, None).await,
        Ok((200, "b".to_owned()))
    );
    // No server for this SNI: the connection is closed.
    assert!(
        https_get(port, "c.example.com", &first.pem, None)
            .await
            .is_err()
    );

    // Rotate a's files to a certificate from another CA: new handshakes see it.
    install(dir.path(), &second, "a.example.com");
    let mut rotated = Err(String::new());
    for _ in 0..50 {
        rotated = https_get(port, "a.example.com", &second.pem, None).await;
        if rotated.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rotated, Ok((200, "a".to_owned())));
    assert!(
        https_get(port, "a.example.com", &first.pem, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mutual_requires_a_client_certificate_from_the_credential_ca_with_an_accepted_san() {
    let upstream = named_upstream("mtls").await;
    let dir = tempfile::tempdir().unwrap();
    let (server_ca, client_ca) = (ca(), ca());
    install(dir.path(), &server_ca, "api.example.com");
    let ca_path = dir.path().join("client-ca.pem");
    std::fs::write(&ca_path, &client_ca.pem).unwrap();
    let port = free_port();
    let servers = format!(
        "      - name: ns/gw/mtls\n        protocol: HTTPS\n        hosts: [api.example.com]\n        tls: {{mode: MUTUAL, credential: {}, subject_alt_names: [client.partner.example]}}\n{}",
        files_credential(dir.path(), "api.example.com", Some(&ca_path)),
        to_cluster("outbound|80||api.example")
    );
    let gw = gateway();
    gw.store
        .apply(config(
            &listener(port, &servers),
            &cluster_of("outbound|80||api.example", upstream.address),
        ))
        .unwrap();
    assert!(
        https_get(port, "api.example.com", &server_ca.pem, None)
            .await
            .is_err(),
        "a client without certificate was served"
    );
    let stranger = leaf(&ca(), &["client"]);
    assert!(
        https_get(port, "api.example.com", &server_ca.pem, Some(stranger))
            .await
            .is_err(),
        "a client certificate from another CA was accepted"
    );
    let client = leaf(&client_ca, &["client.partner.example"]);
    assert_eq!(
        https_get(port, "api.example.com", &server_ca.pem, Some(client)).await,
        Ok((200, "mtls".to_owned()))
    );
    // subjectAltNames: a certificate from the right CA with another name is refused.
    let other = leaf(&client_ca, &["someone.else.example"]);
    assert!(
        https_get(port, "api.example.com", &server_ca.pem, Some(other))
            .await
            .is_err(),
        "a client outside subject_alt_names was served"
    );
}

/// A TLS server for `name` answering "backend" (its own certificate, from `ca`).
async fn tls_backend(ca: &Ca, name: &str) -> SocketAddr {
    let (cert, key) = leaf(ca, &[name]);
    let config = rustls::ServerConfig::builder_with_provider(weft_proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            CertificateDer::pem_slice_iter(cert.as_bytes())
                .map(Result::unwrap)
                .collect(),
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"backend"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn passthrough_routes_by_sni_without_terminating() {
    let backend_ca = ca();
    let backend = tls_backend(&backend_ca, "db.example.com").await;
    let port = free_port();
    let servers = "      - name: ns/gw/pass\n        protocol: TLS\n        hosts: [\"*.example.com\"]\n        tls: {mode: PASSTHROUGH}\n        tls_routes:\n          - match: [{sni_hosts: [db.example.com]}]\n            clusters: [{cluster: \"outbound|443||db.example.com\"}]\n";
    let gw = gateway();
    gw.store
        .apply(config(
            &listener(port, servers),
            &cluster_of("outbound|443||db.example.com", backend),
        ))
        .unwrap();
    // The client verifies the backend's own certificate: the gateway did not terminate.
    assert_eq!(
        https_get(port, "db.example.com", &backend_ca.pem, None).await,
        Ok((200, "backend".to_owned()))
    );
    // The server accepts the SNI but no route does: closed.
    assert!(
        https_get(port, "web.example.com", &backend_ca.pem, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn listener_set_follows_the_config_and_an_unbindable_port_refuses_it() {
    let upstream = named_upstream("up").await;
    let clusters = cluster_of("outbound|80||up.example", upstream.address);
    let server = |port: u16| {
        http_server(
            &format!("ns/gw/http-{port}"),
            "[\"*\"]",
            "outbound|80||up.example",
        )
    };
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let addr = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let gw = gateway();
    gw.store
        .apply(config(
            &[listener(p1, &server(p1)), listener(p2, &server(p2))].concat(),
            &clusters,
        ))
        .unwrap();
    let mut sorted = vec![addr(p1), addr(p2)];
    sorted.sort();
    assert_eq!(gw.listeners.serving(), sorted);
    // A connection to p2 opened before the update must survive it.
    let kept = TcpStream::connect(addr(p2)).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(kept))
        .await
        .unwrap();
    tokio::spawn(connection);

    let v2 = gw
        .store
        .apply(config(
            &[listener(p2, &server(p2)), listener(p3, &server(p3))].concat(),
            &clusters,
        ))
        .unwrap();
    assert!(
        TcpStream::connect(addr(p1)).await.is_err(),
        "removed port still accepts"
    );
    assert_eq!(http_get(p3, "x", "/").await.2, "up");
    let request = http::Request::get("/")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(sender.send_request(request).await.unwrap().status(), 200);

    // A port someone else holds: the config is refused with the port named, nothing changes.
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = blocker.local_addr().unwrap().port();
    let refused = gw.store.apply(config(
        &[listener(p2, &server(p2)), listener(taken, &server(taken))].concat(),
        &clusters,
    ));
    let Err(ConfigError::Listeners(reason)) = refused else {
        panic!("expected a listener error, got {refused:?}");
    };
    assert!(reason.contains(&format!("127.0.0.1:{taken}")), "{reason}");
    assert_eq!(gw.store.snapshot().unwrap().config.version, v2);
    let mut sorted = vec![addr(p2), addr(p3)];
    sorted.sort();
    assert_eq!(gw.listeners.serving(), sorted);
    assert_eq!(http_get(p3, "x", "/").await.2, "up");
}

#[tokio::test]
async fn config_dump_redacts_inline_private_keys() {
    let (cert, key) = leaf(&ca(), &["secure.example.com"]);
    // JSON strings are YAML double-quoted scalars.
    let quoted = |pem: &str| serde_json::to_string(pem).unwrap();
    let servers = format!(
        "      - name: ns/gw/https\n        protocol: HTTPS\n        hosts: [secure.example.com]\n        tls:\n          mode: SIMPLE\n          credential:\n            inline:\n              credential_name: ns/secure-cert\n              server_certificate: {}\n              private_key: {}\n        route_config: {{}}\n",
        quoted(&cert),
        quoted(&key),
    );
    let gw = gateway();
    gw.store
        .apply(config(&listener(free_port(), &servers), ""))
        .unwrap();
    let admin = weft_proxy::admin::Admin {
        store: Arc::clone(&gw.store),
        shutdown: CancellationToken::new(),
        stats: weft_proxy::admin::ProxyStats::new(Arc::new(Recorder::default())),
        prometheus: None,
    };
    let response = admin.response(&http::Method::GET, "/config_dump");
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let dump = String::from_utf8_lossy(&body);
    let key_line = key.lines().nth(1).unwrap();
    assert!(
        !dump.contains(key_line),
        "the private key is in /config_dump"
    );
    assert!(dump.contains(weft_proxy_config::REDACTED), "{dump}");
    assert!(dump.contains("ns/secure-cert"), "{dump}");
}
