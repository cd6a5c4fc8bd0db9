//! Test harness: upstream servers, an in-process proxy on ephemeral 127.0.0.1 ports, a
//! recording observer and a plain HTTP client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy::config::ConfigStore;
use weft_proxy::http::HttpProxy;
use weft_proxy::listener::DestinationMode;
use weft_proxy::request_log::{RequestLog, RequestObserver};
use weft_proxy_config::ProxyConfig;

/// The service VIP the tests' outbound listener pretends every connection was sent to.
pub const VIP: &str = "10.96.0.20:9080";

/// Records every request log.
#[derive(Default)]
pub struct Recorder {
    pub logs: Mutex<Vec<RequestLog>>,
}

impl RequestObserver for Recorder {
    fn on_request(&self, log: &RequestLog) {
        self.logs.lock().push(log.clone());
    }
}

impl Recorder {
    pub fn last(&self) -> RequestLog {
        self.logs
            .lock()
            .last()
            .cloned()
            .expect("a request was logged")
    }
}

/// What an upstream saw.
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
}

/// A test upstream: `respond` maps (request number, request) to a response.
pub struct Upstream {
    pub address: SocketAddr,
    pub hits: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

pub async fn upstream<F, Fut>(respond: F) -> Upstream
where
    F: Fn(usize, Seen) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let respond = Arc::new(respond);
    let (task_hits, task_seen) = (Arc::clone(&hits), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let respond = Arc::clone(&respond);
            let hits = Arc::clone(&task_hits);
            let seen_log = Arc::clone(&task_seen);
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let number = hits.fetch_add(1, Ordering::SeqCst);
                    let seen = Seen {
                        method: request.method().to_string(),
                        path: request.uri().to_string(),
                        headers: request.headers().clone(),
                    };
                    seen_log.lock().push(Seen {
                        method: seen.method.clone(),
                        path: seen.path.clone(),
                        headers: seen.headers.clone(),
                    });
                    let response = respond(number, seen);
                    async move { Ok::<_, Infallible>(response.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Upstream {
        address,
        hits,
        seen,
    }
}

/// An upstream answering 200 with `name` as the body.
pub async fn named_upstream(name: &'static str) -> Upstream {
    upstream(move |_, _| async move { Response::new(Full::new(Bytes::from(name))) }).await
}

pub fn status(code: u16, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = http::StatusCode::from_u16(code).unwrap();
    response
}

/// An in-process outbound listener.
pub struct Proxy {
    pub address: SocketAddr,
    pub store: Arc<ConfigStore>,
    pub recorder: Arc<Recorder>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn parse(yaml: &str) -> ProxyConfig {
    ProxyConfig::from_yaml(yaml).unwrap()
}

/// Starts an outbound listener for `config`, treating every connection as sent to
/// `destination`.
pub async fn outbound_proxy(config: ProxyConfig, destination: &str) -> Proxy {
    let store = ConfigStore::new(None);
    store.apply(config).unwrap();
    outbound_proxy_with_store(store, destination).await
}

/// Starts an outbound listener over an already-filled `store`.
pub async fn outbound_proxy_with_store(store: Arc<ConfigStore>, destination: &str) -> Proxy {
    let recorder = Arc::new(Recorder::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let http = Arc::new(HttpProxy::outbound(Arc::clone(&store), recorder.clone()));
    tokio::spawn(weft_proxy::outbound::serve(
        listener,
        http,
        DestinationMode::Fixed(destination.parse().unwrap()),
        shutdown.clone(),
        tracker.clone(),
    ));
    Proxy {
        address,
        store,
        recorder,
        shutdown,
        tracker,
    }
}

pub fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends `GET path` with `Host: host` and extra headers through `proxy`; returns the status,
/// headers and body.
pub async fn get(
    proxy: &Proxy,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, http::HeaderMap, String) {
    let mut builder = Request::get(format!("http://{}{path}", proxy.address)).header("host", host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let logged = proxy.recorder.logs.lock().len();
    let response = client()
        .request(builder.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    // The proxy logs once it has finished sending the body, which can be just after the
    // client has read it.
    for _ in 0..200 {
        if proxy.recorder.logs.lock().len() > logged {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// A config with one HTTP service on [`VIP`] whose only virtual host (domain `*`) has
/// `routes` (YAML, indented for the `routes:` key) and the given clusters (YAML list items).
pub fn http_config(routes: &str, clusters: &str) -> ProxyConfig {
    parse(&format!(
        r#"
node: {{id: test, namespace: default, labels: {{app: productpage}}}}
outbound:
  - name: reviews:9080
    hostname: reviews.default.svc.cluster.local
    addresses: [10.96.0.20]
    port: 9080
    protocol: HTTP
    http:
      virtual_hosts:
        - name: reviews
          domains: ["*"]
          routes:
{routes}
clusters:
{clusters}
"#
    ))
}

/// A cluster YAML list item with the given endpoints.
pub fn cluster(name: &str, endpoints: &[SocketAddr]) -> String {
    let mut text = format!("  - name: \"{name}\"\n    lb_policy: ROUND_ROBIN\n    endpoints:\n");
    for endpoint in endpoints {
        text.push_str(&format!(
            "      - {{address: {}, port: {}}}\n",
            endpoint.ip(),
            endpoint.port()
        ));
    }
    if endpoints.is_empty() {
        text = format!("  - name: \"{name}\"\n    endpoints: []\n");
    }
    text
}
