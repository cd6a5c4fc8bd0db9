//! The health endpoint (Istio's status port 15021, `/healthz/ready`) and the admin endpoint
//! (Envoy's admin on 127.0.0.1:15000: `/config_dump`, `/ready`, `/stats`, `/quitquitquit`),
//! plus [`ProxyStats`], the counters behind `/stats`.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app_health::AppProbers;
use crate::config::ConfigStore;
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use crate::upstream::ProxyBody;

/// Renders extra metrics for `/stats/prometheus` (the telemetry module's registry).
pub type PrometheusRender = Arc<dyn Fn() -> String + Send + Sync>;

/// Request counters (Envoy-style names) that also forward every record to an inner observer.
pub struct ProxyStats {
    inner: Arc<dyn RequestObserver>,
    counters: [AtomicU64; COUNTERS.len()],
}

const COUNTERS: [&str; 10] = [
    "outbound.downstream_rq_total",
    "outbound.downstream_rq_2xx",
    "outbound.downstream_rq_4xx",
    "outbound.downstream_rq_5xx",
    "outbound.downstream_cx_tcp_total",
    "inbound.downstream_rq_total",
    "inbound.downstream_cx_tcp_total",
    "upstream_rq_retry_limit_exceeded",
    "upstream_rq_timeout",
    "no_route",
];

impl ProxyStats {
    /// Counters in front of `inner`.
    pub fn new(inner: Arc<dyn RequestObserver>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            counters: Default::default(),
        })
    }

    fn bump(&self, index: usize) {
        if let Some(counter) = self.counters.get(index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counters as Envoy's `/stats` text: `name: value` lines.
    pub fn render(&self) -> String {
        let mut text = String::new();
        for (name, counter) in COUNTERS.iter().zip(&self.counters) {
            let _ = writeln!(text, "{name}: {}", counter.load(Ordering::Relaxed));
        }
        text
    }
}

impl RequestObserver for ProxyStats {
    fn on_request(&self, log: &RequestLog) {
        let tcp = log.method.is_empty();
        match (log.direction, tcp) {
            (Direction::Outbound, false) => {
                self.bump(0);
                match log.status {
                    200..=299 => self.bump(1),
                    400..=499 => self.bump(2),
                    500..=599 => self.bump(3),
                    _ => {}
                }
            }
            (Direction::Outbound, true) => self.bump(4),
            (Direction::Inbound, false) => self.bump(5),
            (Direction::Inbound, true) => self.bump(6),
        }
        if log
            .flags
            .contains(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED)
        {
            self.bump(7);
        }
        if log.flags.contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT) {
            self.bump(8);
        }
        if log.flags.contains(ResponseFlags::NO_ROUTE_FOUND) {
            self.bump(9);
        }
        self.inner.on_request(log);
    }

    /// The wrapped observer's answer: the counters read no descriptive field.
    fn wants_details(&self) -> bool {
        self.inner.wants_details()
    }
}

/// What the admin endpoint serves.
pub struct Admin {
    /// The config.
    pub store: Arc<ConfigStore>,
    /// Cancelled by `/quitquitquit`.
    pub shutdown: CancellationToken,
    /// Counters for `/stats`.
    pub stats: Arc<ProxyStats>,
    /// Extra Prometheus text for `/stats/prometheus`, if telemetry is wired.
    pub prometheus: Option<PrometheusRender>,
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(crate::http::full_body(body));
    *response.status_mut() = status;
    response
}

/// `/healthz/ready` (Istio's readiness probe target): 200 once a valid config is loaded,
/// 503 before. Other paths: 404.
pub fn health_response(store: &ConfigStore, path: &str) -> Response<ProxyBody> {
    match path {
        "/healthz/ready" if store.is_ready() => text(StatusCode::OK, String::new()),
        "/healthz/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded\n".into()),
        _ => text(StatusCode::NOT_FOUND, String::new()),
    }
}

impl Admin {
    /// The admin response for `method path`: `/config_dump` (the current config as JSON, with
    /// inline private keys of gateway credentials replaced by `<redacted>`), `/ready` (`LIVE` or 503
    /// `PRE_INITIALIZING`), `/stats`, `/stats/prometheus`, `POST /quitquitquit` (starts the
    /// drain and exit).
    pub fn response(&self, method: &Method, path: &str) -> Response<ProxyBody> {
        match (method, path) {
            (_, "/config_dump") => match self.store.snapshot() {
                Some(snapshot) => match serde_json::to_string_pretty(&snapshot.config.redacted()) {
                    Ok(json) => text(StatusCode::OK, json),
                    Err(error) => text(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
                },
                None => text(StatusCode::SERVICE_UNAVAILABLE, "no config loaded\n".into()),
            },
            (_, "/ready") if self.store.is_ready() => text(StatusCode::OK, "LIVE\n".into()),
            (_, "/ready") => text(StatusCode::SERVICE_UNAVAILABLE, "PRE_INITIALIZING\n".into()),
            (_, "/stats") => text(StatusCode::OK, self.stats.render()),
            (_, "/stats/prometheus") => {
                let body = self
                    .prometheus
                    .as_ref()
                    .map(|render| render())
                    .unwrap_or_default();
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static(crate::telemetry::CONTENT_TYPE),
                );
                response
            }
            (&Method::POST, "/quitquitquit") => {
                self.shutdown.cancel();
                text(StatusCode::OK, "OK\n".into())
            }
            (_, "/quitquitquit") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n".into()),
            _ => text(StatusCode::NOT_FOUND, String::new()),
        }
    }
}

/// Serves a small HTTP endpoint on `listener` with `respond(method, path)` until `shutdown`.
pub async fn serve<F>(
    listener: TcpListener,
    respond: F,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) where
    F: Fn(&Method, &str) -> Response<ProxyBody> + Send + Sync + 'static,
{
    serve_async(
        listener,
        move |method, path| {
            let response = respond(&method, &path);
            async move { response }
        },
        shutdown,
        tracker,
    )
    .await;
}

/// Like [`serve`], with an asynchronous responder (e.g. one that probes the application).
pub async fn serve_async<F, Fut>(
    listener: TcpListener,
    respond: F,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) where
    F: Fn(Method, String) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<ProxyBody>> + Send + 'static,
{
    let respond = Arc::new(respond);
    let connection_shutdown = shutdown.clone();
    crate::listener::accept_loop(listener, shutdown, tracker, move |stream, _peer| {
        let respond = Arc::clone(&respond);
        let shutdown = connection_shutdown.clone();
        async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(request.method().clone(), request.uri().path().to_owned());
                async move { Ok::<_, Infallible>(response.await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = shutdown.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        }
    })
    .await;
}

/// The status port (Istio's pilot-agent port 15020): `/healthz/ready` as on 15021, and the
/// rewritten application probes `/app-health/<container>/<kind>z` ([`AppProbers`]).
pub async fn status_response(
    store: &ConfigStore,
    probers: Option<&AppProbers>,
    path: &str,
) -> Response<ProxyBody> {
    if path.starts_with("/app-health/") {
        return match probers {
            Some(probers) => match probers.probe(path).await {
                Some(status) => text(status, String::new()),
                None => text(StatusCode::NOT_FOUND, "no such probe\n".into()),
            },
            None => text(StatusCode::NOT_FOUND, "no probes configured\n".into()),
        };
    }
    health_response(store, path)
}
