//! TLS origination (DestinationRule `tls.mode: SIMPLE`) to a TLS upstream on 127.0.0.1 with a
//! throwaway CA.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

#[path = "common/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use harness::*;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use weft_proxy::request_log::ResponseFlags;

struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(host: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec![host.to_owned()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![server.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    }
}

/// A TLS (HTTP/1.1) server answering "secret".
async fn tls_upstream(pki: &Pki) -> SocketAddr {
    let config = rustls::ServerConfig::builder_with_provider(weft_proxy::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|_request| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"secret"),
                    )))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    address
}

const EGRESS: &str = "outbound|443||backend.example";

async fn proxy_for(upstream: SocketAddr, ca_file: &std::path::Path) -> Proxy {
    let clusters = format!(
        r#"  - name: "{EGRESS}"
    transport: {{mode: SIMPLE, ca_certificates: "{}", sni: backend.example}}
    endpoints: [{{address: 127.0.0.1, port: {}}}]
"#,
        ca_file.display(),
        upstream.port()
    );
    let routes = format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{EGRESS}\"}}]\n"
    );
    outbound_proxy(http_config(&routes, &clusters), VIP).await
}

#[tokio::test]
async fn simple_tls_origination_verifies_the_upstream() {
    let good = pki("backend.example");
    let upstream = tls_upstream(&good).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &good.ca_pem).unwrap();
    let proxy = proxy_for(upstream, &ca_file).await;
    let (status, _, body) = get(&proxy, "backend.example", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "secret"));
}

#[tokio::test]
async fn simple_tls_origination_rejects_an_untrusted_upstream() {
    let upstream = tls_upstream(&pki("backend.example")).await;
    let other = pki("backend.example");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &other.ca_pem).unwrap();
    let proxy = proxy_for(upstream, &ca_file).await;
    let (status, _, _) = get(&proxy, "backend.example", "/", &[]).await;
    assert_eq!(status, 503);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
    );
}

#[tokio::test]
async fn unusable_ca_file_makes_the_cluster_fail_with_uf() {
    let upstream = tls_upstream(&pki("backend.example")).await;
    let proxy = proxy_for(upstream, std::path::Path::new("/nonexistent/ca.pem")).await;
    let (status, _, _) = get(&proxy, "backend.example", "/", &[]).await;
    assert_eq!(status, 503);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
    );
}
