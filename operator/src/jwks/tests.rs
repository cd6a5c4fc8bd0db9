//! The resolver against a local HTTP server on 127.0.0.1 whose answer the test controls.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;

use super::*;

mod discovery_and_blocked;

const SET_A: &str = r#"{"keys":[{"kty":"oct","kid":"a","k":"c2VjcmV0"}]}"#;
const SET_B: &str = r#"{"keys":[{"kty":"oct","kid":"b","k":"b3RoZXI"}]}"#;

/// What the server answers: a status and a body, or nothing at all (hangs).
#[derive(Clone)]
enum Answer {
    Reply(u16, &'static str),
    Hang,
}

/// Serves `answer` (changeable by the test) on 127.0.0.1; returns the base URL. Counts requests.
async fn server(answer: Arc<Mutex<Answer>>, hits: Arc<Mutex<u32>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            let hits = hits.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    let answer = answer.lock().clone();
                    *hits.lock() += 1;
                    async move {
                        match answer {
                            Answer::Reply(status, body) => Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(body.as_bytes())))
                                    .unwrap(),
                            ),
                            Answer::Hang => std::future::pending().await,
                        }
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{addr}/jwks")
}

/// A resolver that refreshes on every `refresh_due` call (interval 0) unless `interval` says.
fn resolver(refresh: Duration, retry: Duration) -> JwksResolver {
    JwksResolver::new(JwksSettings {
        refresh_interval: refresh,
        retry_interval: retry,
        ..JwksSettings::default()
    })
    .unwrap()
}

fn wanted(uri: &str) -> BTreeMap<String, Duration> {
    BTreeMap::from([(uri.to_owned(), Duration::from_secs(5))])
}

#[tokio::test]
async fn fetch_returns_the_key_set_text() {
    let answer = Arc::new(Mutex::new(Answer::Reply(200, SET_A)));
    let uri = server(answer, Arc::default()).await;
    let resolver = resolver(DEFAULT_REFRESH_INTERVAL, DEFAULT_RETRY_INTERVAL);
    assert_eq!(
        resolver.fetch(&uri, Duration::from_secs(5)).await.unwrap(),
        SET_A
    );
}

#[tokio::test]
async fn fetch_errors_name_the_uri() {
    let answer = Arc::new(Mutex::new(Answer::Reply(404, "nope")));
    let uri = server(answer.clone(), Arc::default()).await;
    let resolver = resolver(DEFAULT_REFRESH_INTERVAL, DEFAULT_RETRY_INTERVAL);
    let error = resolver
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        JwksError::Status {
            uri: uri.clone(),
            status: 404
        }
    );
    assert!(error.to_string().contains(&uri), "{error}");

    *answer.lock() = Answer::Reply(200, r#"{"not":"a set"}"#);
    let error = resolver
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, JwksError::NotJwks { uri: u, .. } if *u == uri),
        "{error}"
    );

    let error = resolver
        .fetch("ftp://keys.example/jwks", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, JwksError::BadUri { uri, .. } if uri == "ftp://keys.example/jwks"),
        "{error}"
    );

    // Nothing listens on port 9 of 127.0.0.1 (discard) in the test environment.
    let error = resolver
        .fetch("http://127.0.0.1:9/jwks", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, JwksError::Fetch { uri, .. } if uri == "http://127.0.0.1:9/jwks"),
        "{error}"
    );
}

#[tokio::test]
async fn fetch_gives_up_after_the_rule_timeout() {
    let answer = Arc::new(Mutex::new(Answer::Hang));
    let uri = server(answer, Arc::default()).await;
    let resolver = resolver(DEFAULT_REFRESH_INTERVAL, DEFAULT_RETRY_INTERVAL);
    let error = resolver
        .fetch(&uri, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        JwksError::Timeout {
            uri,
            timeout_ms: 100
        }
    );
}

#[tokio::test]
async fn failed_refresh_keeps_the_last_good_set_and_a_new_set_replaces_it() {
    let answer = Arc::new(Mutex::new(Answer::Reply(200, SET_A)));
    let uri = server(answer.clone(), Arc::default()).await;
    let resolver = resolver(Duration::ZERO, Duration::ZERO);
    let mut changes = resolver.subscribe();
    assert!(
        resolver.want(wanted(&uri)).is_empty(),
        "nothing fetched yet"
    );

    assert!(resolver.refresh_due().await, "first fetch is a change");
    assert!(changes.has_changed().unwrap());
    changes.mark_unchanged();
    assert_eq!(
        resolver.key_sets().get(&uri).map(String::as_str),
        Some(SET_A)
    );

    *answer.lock() = Answer::Reply(500, "down");
    assert!(!resolver.refresh_due().await, "a failure changes nothing");
    assert!(!changes.has_changed().unwrap());
    assert_eq!(
        resolver.key_sets().get(&uri).map(String::as_str),
        Some(SET_A)
    );
    assert_eq!(
        resolver.want(wanted(&uri)).get(&uri).map(String::as_str),
        Some(SET_A)
    );

    *answer.lock() = Answer::Reply(200, SET_A);
    assert!(!resolver.refresh_due().await, "the same set is no change");

    *answer.lock() = Answer::Reply(200, SET_B);
    assert!(resolver.refresh_due().await);
    assert!(changes.has_changed().unwrap());
    assert_eq!(
        resolver.key_sets().get(&uri).map(String::as_str),
        Some(SET_B)
    );
}

#[tokio::test]
async fn fetched_sets_are_not_fetched_again_before_the_refresh_interval() {
    let hits = Arc::new(Mutex::new(0));
    let answer = Arc::new(Mutex::new(Answer::Reply(200, SET_A)));
    let uri = server(answer, hits.clone()).await;
    let resolver = resolver(DEFAULT_REFRESH_INTERVAL, DEFAULT_RETRY_INTERVAL);
    resolver.want(wanted(&uri));
    assert!(resolver.refresh_due().await);
    assert!(!resolver.refresh_due().await);
    assert_eq!(*hits.lock(), 1);
}

#[tokio::test]
async fn uris_no_longer_wanted_are_dropped() {
    let answer = Arc::new(Mutex::new(Answer::Reply(200, SET_A)));
    let uri = server(answer, Arc::default()).await;
    let resolver = resolver(Duration::ZERO, Duration::ZERO);
    resolver.want(wanted(&uri));
    resolver.refresh_due().await;
    assert_eq!(resolver.key_sets().len(), 1);
    assert!(resolver.want(BTreeMap::new()).is_empty());
    assert!(resolver.key_sets().is_empty());
    assert!(!resolver.refresh_due().await, "nothing left to fetch");
}

#[test]
fn refresh_interval_reads_istio_variable() {
    assert_eq!(
        JwksSettings::from_env_value(None).unwrap().refresh_interval,
        Duration::from_secs(1200)
    );
    assert_eq!(
        JwksSettings::from_env_value(Some("500ms"))
            .unwrap()
            .refresh_interval,
        Duration::from_millis(500)
    );
    for bad in ["0s", "soon", "-1m"] {
        assert_eq!(
            JwksSettings::from_env_value(Some(bad)),
            Err(JwksError::BadRefreshInterval {
                value: bad.to_owned()
            })
        );
    }
}

#[tokio::test]
async fn https_server_not_signed_by_a_system_root_is_refused() {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert = certified.cert.der().clone();
    let key =
        rustls_pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // The handshake fails on the client's side; nothing is served.
            let _ = acceptor.accept(stream).await;
        }
    });
    let uri = format!("https://{addr}/jwks");
    let resolver = resolver(DEFAULT_REFRESH_INTERVAL, DEFAULT_RETRY_INTERVAL);
    let error = resolver
        .fetch(&uri, Duration::from_secs(5))
        .await
        .unwrap_err();
    match &error {
        JwksError::Fetch { uri: u, reason } => {
            assert_eq!(*u, uri);
            assert!(reason.to_lowercase().contains("certificate"), "{error}");
        }
        other => panic!("expected a certificate error, got {other}"),
    }
}
