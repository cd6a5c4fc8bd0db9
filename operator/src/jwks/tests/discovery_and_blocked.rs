//! OpenID discovery and `BLOCKED_CIDRS_IN_JWKS_URIS` against a local HTTP server on 127.0.0.1
//! that answers by path.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;

use super::super::*;
use super::{SET_A, SET_B};

/// The answers by request path: a status and a body; a path not in the map gets 404.
type Routes = Arc<Mutex<BTreeMap<String, (u16, String)>>>;

/// Serves `routes` on `ip` (an ephemeral port) and counts the requests in `hits`; returns the
/// address.
async fn server(ip: &str, routes: Routes, hits: Arc<Mutex<u32>>) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (routes, hits) = (routes.clone(), hits.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    *hits.lock() += 1;
                    let (status, body) = routes
                        .lock()
                        .get(request.uri().path())
                        .cloned()
                        .unwrap_or((404, String::new()));
                    async move {
                        Ok::<_, Infallible>(
                            http::Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn routes(entries: &[(&str, u16, String)]) -> Routes {
    Arc::new(Mutex::new(
        entries
            .iter()
            .map(|(path, status, body)| ((*path).to_owned(), (*status, body.clone())))
            .collect(),
    ))
}

fn document(jwks_uri: &str) -> String {
    format!(r#"{{"issuer":"https://issuer.example","jwks_uri":"{jwks_uri}"}}"#)
}

fn resolver_blocking(blocked: &str) -> JwksResolver {
    JwksResolver::new(JwksSettings {
        refresh_interval: Duration::ZERO,
        retry_interval: Duration::ZERO,
        blocked_cidrs: BlockedCidrs::parse(blocked).unwrap(),
    })
    .unwrap()
}

const DOCUMENT_PATH: &str = "/realm/.well-known/openid-configuration";

#[tokio::test]
async fn discovery_document_leads_to_the_key_set_it_names() {
    let routes = routes(&[("/keys-a", 200, SET_A.to_owned())]);
    let addr = server("127.0.0.1", routes.clone(), Arc::default()).await;
    routes.lock().insert(
        DOCUMENT_PATH.to_owned(),
        (200, document(&format!("http://{addr}/keys-a"))),
    );
    let url = format!("http://{addr}{DOCUMENT_PATH}");
    let resolver = resolver_blocking("");
    resolver.want(BTreeMap::from([(url.clone(), Duration::from_secs(5))]));
    assert!(resolver.refresh_due().await);
    assert_eq!(
        resolver.key_sets().get(&url).map(String::as_str),
        Some(SET_A),
        "the set is cached under the document's URL, which is what Pilot looks up"
    );

    // The issuer moves its keys: the next refresh follows the document again.
    routes
        .lock()
        .insert("/keys-b".to_owned(), (200, SET_B.to_owned()));
    routes.lock().insert(
        DOCUMENT_PATH.to_owned(),
        (200, document(&format!("http://{addr}/keys-b"))),
    );
    assert!(resolver.refresh_due().await);
    assert_eq!(
        resolver.key_sets().get(&url).map(String::as_str),
        Some(SET_B)
    );

    // The document becomes unavailable: the last good set stays.
    routes
        .lock()
        .insert(DOCUMENT_PATH.to_owned(), (503, String::new()));
    assert!(!resolver.refresh_due().await);
    assert_eq!(
        resolver.key_sets().get(&url).map(String::as_str),
        Some(SET_B)
    );
}

#[tokio::test]
async fn discovery_errors_name_the_url_that_failed() {
    let routes = routes(&[(
        DOCUMENT_PATH,
        200,
        r#"{"issuer":"https://issuer.example"}"#.to_owned(),
    )]);
    let addr = server("127.0.0.1", routes.clone(), Arc::default()).await;
    let url = format!("http://{addr}{DOCUMENT_PATH}");
    let resolver = resolver_blocking("");
    let error = resolver
        .fetch(&url, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, JwksError::Discovery { uri, .. } if *uri == url),
        "{error}"
    );
    assert!(error.to_string().contains("jwks_uri"), "{error}");

    // The document names a key set that is not there: the error names the key set's URL.
    let missing = format!("http://{addr}/missing");
    routes
        .lock()
        .insert(DOCUMENT_PATH.to_owned(), (200, document(&missing)));
    let error = resolver
        .fetch(&url, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        JwksError::Status {
            uri: missing,
            status: 404
        }
    );

    routes
        .lock()
        .insert(DOCUMENT_PATH.to_owned(), (404, String::new()));
    let error = resolver
        .fetch(&url, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        JwksError::Status {
            uri: url,
            status: 404
        }
    );
}

#[tokio::test]
async fn blocked_ip_literal_is_never_connected_to() {
    let hits = Arc::new(Mutex::new(0));
    let routes = routes(&[("/keys", 200, SET_A.to_owned())]);
    let addr = server("127.0.0.1", routes, hits.clone()).await;
    let uri = format!("http://{addr}/keys");

    let error = resolver_blocking("10.0.0.0/8, 127.0.0.0/8")
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        JwksError::Blocked {
            uri: uri.clone(),
            host: "127.0.0.1".to_owned(),
            addresses: "127.0.0.1 in 127.0.0.0/8".to_owned(),
        }
    );
    assert!(
        error.to_string().contains("BLOCKED_CIDRS_IN_JWKS_URIS"),
        "{error}"
    );
    assert_eq!(*hits.lock(), 0, "nothing was sent");

    // Ranges that do not hold the address let the fetch through.
    let set = resolver_blocking("10.0.0.0/8,169.254.169.254/32")
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(set, SET_A);
    assert_eq!(*hits.lock(), 1);
}

#[tokio::test]
async fn host_name_resolving_only_to_blocked_addresses_is_refused() {
    let hits = Arc::new(Mutex::new(0));
    let routes = routes(&[("/keys", 200, SET_A.to_owned())]);
    let addr = server("127.0.0.1", routes, hits.clone()).await;
    // `localhost` resolves to 127.0.0.1 and possibly ::1: both blocked.
    let uri = format!("http://localhost:{}/keys", addr.port());
    let error = resolver_blocking("127.0.0.0/8,::1")
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap_err();
    match &error {
        JwksError::Blocked {
            uri: u,
            host,
            addresses,
        } => {
            assert_eq!(*u, uri);
            assert_eq!(host, "localhost");
            assert!(addresses.contains("127.0.0.1 in 127.0.0.0/8"), "{error}");
        }
        other => panic!("expected Blocked, got {other}"),
    }
    assert_eq!(*hits.lock(), 0, "nothing was sent");
}

#[tokio::test]
async fn key_set_named_by_a_discovery_document_in_a_blocked_range_is_refused() {
    let jwks_hits = Arc::new(Mutex::new(0));
    let keys = server(
        "127.0.0.2",
        routes(&[("/keys", 200, SET_A.to_owned())]),
        jwks_hits.clone(),
    )
    .await;
    let routes = routes(&[(DOCUMENT_PATH, 200, document(&format!("http://{keys}/keys")))]);
    let addr = server("127.0.0.1", routes, Arc::default()).await;
    let url = format!("http://{addr}{DOCUMENT_PATH}");
    let error = resolver_blocking("127.0.0.2/32")
        .fetch(&url, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, JwksError::Blocked { uri, .. } if *uri == format!("http://{keys}/keys")),
        "{error}"
    );
    assert_eq!(*jwks_hits.lock(), 0);
    assert_eq!(
        resolver_blocking("")
            .fetch(&url, Duration::from_secs(5))
            .await
            .unwrap(),
        SET_A
    );
}

#[test]
fn blocked_cidrs_parse_istio_variable() {
    let cidrs = BlockedCidrs::parse(" 10.0.0.0/8, 169.254.169.254 ,,fd00::/8").unwrap();
    let blocking = |ip: &str| cidrs.blocking(ip.parse().unwrap()).map(|n| n.to_string());
    assert_eq!(blocking("10.1.2.3").as_deref(), Some("10.0.0.0/8"));
    assert_eq!(
        blocking("169.254.169.254").as_deref(),
        Some("169.254.169.254/32")
    );
    assert_eq!(blocking("169.254.169.253"), None);
    assert_eq!(blocking("fd12::1").as_deref(), Some("fd00::/8"));
    assert_eq!(
        blocking("::ffff:10.9.9.9").as_deref(),
        Some("10.0.0.0/8"),
        "an IPv4-mapped address is checked as IPv4"
    );
    assert_eq!(blocking("198.18.0.1"), None);
    assert!(BlockedCidrs::parse("").unwrap().is_empty());
    assert_eq!(
        BlockedCidrs::parse("10.0.0.0/8,intranet"),
        Err(JwksError::BadBlockedCidr {
            value: "10.0.0.0/8,intranet".to_owned(),
            entry: "intranet".to_owned(),
        })
    );
    assert!(BlockedCidrs::parse("10.0.0.0/33").is_err());
}

#[test]
fn settings_read_both_istio_variables() {
    let env = BTreeMap::from([
        (REFRESH_INTERVAL_ENV, "30s"),
        (BLOCKED_CIDRS_ENV, "10.0.0.0/8"),
    ]);
    let settings =
        JwksSettings::from_env(|name| env.get(name).map(|value| (*value).to_owned())).unwrap();
    assert_eq!(settings.refresh_interval, Duration::from_secs(30));
    assert_eq!(
        settings.blocked_cidrs,
        BlockedCidrs::parse("10.0.0.0/8").unwrap()
    );
    assert_eq!(
        JwksSettings::from_env(|_| None).unwrap(),
        JwksSettings::default()
    );
    let bad = JwksSettings::from_env(|name| (name == BLOCKED_CIDRS_ENV).then(|| "x".to_owned()));
    assert!(matches!(bad, Err(JwksError::BadBlockedCidr { .. })));
}
