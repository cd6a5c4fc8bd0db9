//! mTLS between two Weft endpoints over real sockets on 127.0.0.1, with the test PKI in
//! `tests/data/tls` (see `generate.sh` there).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use weft_proxy::tls::{
    self, ALPN_ISTIO, CertPaths, CertStore, SERVER_ALPN, TlsError, client_config, peer_identity,
    server_config,
};

const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/server";
const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const SNI: &str = "outbound_.8080_._.server.default.svc.cluster.local";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// Copies a credential set into a fresh temporary directory (so tests can rotate it).
fn workload_dir(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    install(dir.path(), name);
    dir
}

/// Atomically replaces the three files in `dir` with the set `name` (write + rename, as
/// kubelet and istio-agent do).
fn install(dir: &Path, name: &str) {
    for file in ["cert-chain.pem", "key.pem", "root-cert.pem"] {
        replace(dir, file, &std::fs::read(data(name).join(file)).unwrap());
    }
}

fn replace(dir: &Path, file: &str, contents: &[u8]) {
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

fn leaf_der(name: &str) -> Vec<u8> {
    let pem = std::fs::read(data(name).join("cert-chain.pem")).unwrap();
    rustls_pki_types::CertificateDer::from_pem_slice(&pem)
        .unwrap()
        .to_vec()
}

fn store(dir: &Path) -> Arc<CertStore> {
    CertStore::load(CertPaths::discover(dir).unwrap()).unwrap()
}

/// What the server saw for one connection: the handshake result and the peer's SPIFFE ID.
type Accepted = Result<Option<String>, String>;

/// A strict mTLS echo server: it writes the client's SPIFFE ID and a newline, then echoes.
async fn serve(store: Arc<CertStore>) -> (std::net::SocketAddr, mpsc::UnboundedReceiver<Accepted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(server_config(&store, &SERVER_ALPN).unwrap()));
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match acceptor.accept(tcp).await {
                    Ok(mut tls) => {
                        let peer = peer_identity(tls.get_ref().1);
                        let _ = tx.send(Ok(peer.clone()));
                        let line = format!("{}\n", peer.unwrap_or_default());
                        if tls.write_all(line.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = tls.read(&mut buf).await {
                            if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e.to_string()));
                    }
                }
            });
        }
    });
    (addr, rx)
}

type Client = BufReader<tokio_rustls::client::TlsStream<TcpStream>>;

async fn connect(
    addr: std::net::SocketAddr,
    store: &Arc<CertStore>,
    expected: &[&str],
) -> std::io::Result<Client> {
    let expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    let config = client_config(store, &expected, &[ALPN_ISTIO]).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(SNI).unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    Ok(BufReader::new(tls))
}

async fn read_line(client: &mut Client) -> std::io::Result<String> {
    let mut line = String::new();
    client.read_line(&mut line).await?;
    Ok(line.trim_end().to_owned())
}

async fn echo(client: &mut Client, msg: &str) -> String {
    client.get_mut().write_all(msg.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    client.read_exact(&mut buf).await.unwrap();
    String::from_utf8(buf).unwrap()
}

fn presented_leaf(client: &Client) -> Vec<u8> {
    client.get_ref().get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn handshake_succeeds_with_expected_spiffe_id() {
    let (server_dir, client_dir) = (workload_dir("server"), workload_dir("client"));
    let (addr, mut accepted) = serve(store(server_dir.path())).await;
    let client_store = store(client_dir.path());

    let mut client = connect(
        addr,
        &client_store,
        &["spiffe://cluster.local/ns/x/sa/y", SERVER_ID],
    )
    .await
    .unwrap();
    let conn = client.get_ref().get_ref().1;
    assert_eq!(peer_identity(conn).as_deref(), Some(SERVER_ID));
    assert_eq!(conn.alpn_protocol(), Some(ALPN_ISTIO));
    assert_eq!(
        conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(read_line(&mut client).await.unwrap(), CLIENT_ID);
    assert_eq!(
        accepted.recv().await.unwrap(),
        Ok(Some(CLIENT_ID.to_owned()))
    );
    assert_eq!(echo(&mut client, "ping").await, "ping");
}

#[tokio::test]
async fn empty_expected_list_accepts_any_trusted_peer() {
    let (server_dir, client_dir) = (workload_dir("server"), workload_dir("client"));
    let (addr, _accepted) = serve(store(server_dir.path())).await;
    let mut client = connect(addr, &store(client_dir.path()), &[]).await.unwrap();
    assert_eq!(read_line(&mut client).await.unwrap(), CLIENT_ID);
}

#[tokio::test]
async fn handshake_fails_with_wrong_spiffe_id() {
    let (server_dir, client_dir) = (workload_dir("server"), workload_dir("client"));
    let (addr, _accepted) = serve(store(server_dir.path())).await;
    let Err(err) = connect(
        addr,
        &store(client_dir.path()),
        &["spiffe://cluster.local/ns/default/sa/other"],
    )
    .await
    else {
        panic!("handshake must fail");
    };
    assert!(err.to_string().contains("NotValidForName"), "{err}");
}

#[tokio::test]
async fn handshake_fails_when_server_cert_is_from_an_untrusted_ca() {
    // Same SPIFFE ID, issued by root B; the client trusts only root A.
    let (rogue_dir, client_dir) = (workload_dir("rogue"), workload_dir("client"));
    let (addr, _accepted) = serve(store(rogue_dir.path())).await;
    let Err(err) = connect(addr, &store(client_dir.path()), &[SERVER_ID]).await else {
        panic!("handshake must fail");
    };
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn server_rejects_a_client_cert_from_an_untrusted_ca() {
    // The rogue client trusts root B, so build its store with root A to reach the server's
    // verification step: the server must reject the client's root-B certificate.
    let rogue = workload_dir("rogue");
    let server_dir = workload_dir("server");
    let (addr, mut accepted) = serve(store(server_dir.path())).await;
    let mixed = tempfile::tempdir().unwrap();
    for file in ["cert-chain.pem", "key.pem"] {
        std::fs::copy(rogue.path().join(file), mixed.path().join(file)).unwrap();
    }
    // root-cert.pem = root B + root A: the rogue leaf still validates at load time.
    let mut bundle = std::fs::read(data("root-b.pem")).unwrap();
    bundle.extend(std::fs::read(data("root-a.pem")).unwrap());
    std::fs::write(mixed.path().join("root-cert.pem"), bundle).unwrap();

    // TLS 1.3: the client finishes first; the server's rejection shows up on the first read.
    if let Ok(mut client) = connect(addr, &store(mixed.path()), &[SERVER_ID]).await {
        assert!(
            read_line(&mut client)
                .await
                .map(|l| l.is_empty())
                .unwrap_or(true)
        );
    }
    let seen = accepted.recv().await.unwrap();
    assert!(
        seen.as_ref().is_err_and(|e| e.contains("UnknownIssuer")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn strict_acceptor_refuses_plaintext_and_certless_clients() {
    let server_dir = workload_dir("server");
    let (addr, mut accepted) = serve(store(server_dir.path())).await;

    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: server\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tcp.read_to_end(&mut response).await;
    assert!(
        !response.starts_with(b"HTTP/"),
        "plaintext got an HTTP answer"
    );
    assert!(accepted.recv().await.unwrap().is_err());

    // A TLS client that verifies the server properly but presents no certificate.
    let verifier = tls::SpiffeServerVerifier::new(store(server_dir.path()), vec![SERVER_ID.into()]);
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(SNI).unwrap();
    if let Ok(tls) = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
    {
        let mut client = BufReader::new(tls);
        assert!(
            read_line(&mut client)
                .await
                .map(|l| l.is_empty())
                .unwrap_or(true)
        );
    }
    let seen = accepted.recv().await.unwrap();
    assert!(
        seen.as_ref().is_err_and(|e| e.contains("no certificates")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn rotation_new_handshakes_see_new_cert_old_connections_keep_working() {
    let (server_dir, client_dir) = (workload_dir("server"), workload_dir("client"));
    let server_store = store(server_dir.path());
    let (addr, _accepted) = serve(server_store.clone()).await;
    let client_store = store(client_dir.path());

    let mut before = connect(addr, &client_store, &[SERVER_ID]).await.unwrap();
    assert_eq!(read_line(&mut before).await.unwrap(), CLIENT_ID);
    assert_eq!(presented_leaf(&before), leaf_der("server"));

    assert!(
        !server_store.reload_if_changed().unwrap(),
        "nothing changed yet"
    );
    install(server_dir.path(), "server-rotated");
    assert!(server_store.reload_if_changed().unwrap());

    let mut after = connect(addr, &client_store, &[SERVER_ID]).await.unwrap();
    assert_eq!(read_line(&mut after).await.unwrap(), CLIENT_ID);
    assert_eq!(presented_leaf(&after), leaf_der("server-rotated"));
    assert_ne!(leaf_der("server"), leaf_der("server-rotated"));

    // The connection opened before the rotation is untouched.
    assert_eq!(echo(&mut before, "still here").await, "still here");
    assert_eq!(echo(&mut after, "new").await, "new");
}

#[tokio::test]
async fn watcher_picks_up_rotated_files() {
    let dir = workload_dir("server");
    let store = store(dir.path());
    let watcher = store.watch(Duration::from_millis(20));
    install(dir.path(), "server-rotated");
    let want = leaf_der("server-rotated");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.current().certified_key.cert[0].as_ref() != want.as_slice() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "rotation not seen within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.abort();
}

#[tokio::test]
async fn rotated_trust_bundle_applies_to_the_next_handshake() {
    // The client trusts only root A, so the root-B server is refused...
    let (rogue_dir, client_dir) = (workload_dir("rogue"), workload_dir("client"));
    let (addr, _accepted) = serve(store(rogue_dir.path())).await;
    let client_store = store(client_dir.path());
    assert!(connect(addr, &client_store, &[SERVER_ID]).await.is_err());

    // ...until the client's bundle gains root B (as during a mesh CA migration).
    let mut bundle = std::fs::read(data("root-a.pem")).unwrap();
    bundle.extend(std::fs::read(data("root-b.pem")).unwrap());
    replace(client_dir.path(), "root-cert.pem", &bundle);
    assert!(client_store.reload_if_changed().unwrap());
    let client = connect(addr, &client_store, &[SERVER_ID]).await.unwrap();
    assert_eq!(presented_leaf(&client), leaf_der("rogue"));
}

#[test]
fn half_written_rotation_keeps_the_previous_set() {
    let dir = workload_dir("server");
    let store = store(dir.path());
    let old = leaf_der("server");

    // New chain, old key: rejected, previous set stays.
    replace(
        dir.path(),
        "cert-chain.pem",
        &std::fs::read(data("server-rotated").join("cert-chain.pem")).unwrap(),
    );
    let err = store.reload_if_changed().unwrap_err();
    assert!(matches!(err, TlsError::Key(_)), "{err}");
    assert_eq!(
        store.current().certified_key.cert[0].as_ref(),
        old.as_slice()
    );

    // Truncated key file: rejected too.
    replace(dir.path(), "key.pem", b"-----BEGIN PRIVATE KEY-----\nMIG");
    assert!(matches!(
        store.reload_if_changed(),
        Err(TlsError::NoKey { .. })
    ));
    assert_eq!(
        store.current().certified_key.cert[0].as_ref(),
        old.as_slice()
    );

    // The key arrives: the new set becomes current.
    replace(
        dir.path(),
        "key.pem",
        &std::fs::read(data("server-rotated").join("key.pem")).unwrap(),
    );
    assert!(store.reload_if_changed().unwrap());
    assert_eq!(
        store.current().certified_key.cert[0].as_ref(),
        leaf_der("server-rotated").as_slice()
    );
}

#[test]
fn leaf_not_trusted_by_bundle_is_rejected_at_load() {
    let dir = workload_dir("server");
    std::fs::copy(data("root-b.pem"), dir.path().join("root-cert.pem")).unwrap();
    let err = CertStore::load(CertPaths::istio(dir.path())).unwrap_err();
    assert!(matches!(err, TlsError::Untrusted(_)), "{err}");
}

#[test]
fn layouts_istio_and_kubernetes_tls() {
    let istio = workload_dir("client");
    assert_eq!(
        CertPaths::discover(istio.path()).unwrap(),
        CertPaths::istio(istio.path())
    );

    let kube = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("cert-chain.pem", "tls.crt"),
        ("key.pem", "tls.key"),
        ("root-cert.pem", "ca.crt"),
    ] {
        std::fs::copy(data("client").join(from), kube.path().join(to)).unwrap();
    }
    let paths = CertPaths::discover(kube.path()).unwrap();
    assert_eq!(paths, CertPaths::kubernetes_tls(kube.path()));
    assert_eq!(
        CertStore::load(paths).unwrap().current().identity,
        CLIENT_ID
    );

    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        CertPaths::discover(empty.path()),
        Err(TlsError::NoLayout { .. })
    ));
}
