//! The admission webhook server (Istio's sidecar injector and Galley endpoints), served by
//! `weft-operator` over HTTPS: `POST /inject` (mutating), `POST /validate` (validating),
//! `GET /healthz`, `GET /readyz`. The logic is `weft-webhook`'s pure functions; this is the shell:
//! TLS with a certificate re-read when it changes, a body limit, a per-request timeout below the
//! API server's default webhook timeout (10 s), and request metrics.

pub mod tls;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use weft_webhook::InjectionConfig;
use weft_webhook::admission::{MAX_BODY_BYTES, handle_inject_body, handle_validate_body};

pub use tls::{ServingCert, ServingCertError};

/// Each request must be answered within this time: the API server's default webhook timeout is
/// 10 s, so answering (even with an error) before it keeps the failure ours and explicit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

/// Namespace labels by name (the operator's Namespace cache; a map in tests).
pub type NamespaceLookup = Arc<dyn Fn(&str) -> Option<BTreeMap<String, String>> + Send + Sync>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    path: String,
    code: u16,
}

/// The webhook server's metrics.
#[derive(Clone, Debug)]
pub struct WebhookMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: Histogram,
}

impl WebhookMetrics {
    /// Metrics registered in `registry`: `weft_webhook_requests_total{path,code}` and
    /// `weft_webhook_request_duration_seconds`.
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Histogram::new(exponential_buckets(0.00005, 2.0, 16)),
        };
        registry.register(
            "weft_webhook_requests",
            "Admission requests by path and HTTP code",
            m.requests.clone(),
        );
        registry.register(
            "weft_webhook_request_duration_seconds",
            "Time to answer an admission request, seconds",
            m.duration.clone(),
        );
        m
    }
}

/// What the handlers need.
#[derive(Clone)]
pub struct WebhookState {
    /// The injection settings (swapped when the Mesh changes).
    pub injection: Arc<ArcSwap<InjectionConfig>>,
    /// Namespace labels, for the injection decision.
    pub namespaces: NamespaceLookup,
    /// Metrics.
    pub metrics: WebhookMetrics,
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: impl Into<Bytes>, json: bool) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let kind = if json {
        "application/json"
    } else {
        "text/plain"
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    resp
}

/// Answers one request (routing, body limit, timeout, metrics).
pub async fn handle(state: WebhookState, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let response =
        match tokio::time::timeout(REQUEST_TIMEOUT, route(&state, method, &path, req)).await {
            Ok(resp) => resp,
            Err(_) => reply(
                StatusCode::GATEWAY_TIMEOUT,
                "admission request timed out",
                false,
            ),
        };
    let known = matches!(
        path.as_str(),
        "/inject" | "/validate" | "/healthz" | "/readyz"
    );
    state
        .metrics
        .requests
        .get_or_create(&RequestLabels {
            path: if known { path } else { "other".into() },
            code: response.status().as_u16(),
        })
        .inc();
    state
        .metrics
        .duration
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn route(
    state: &WebhookState,
    method: Method,
    path: &str,
    req: Request<Incoming>,
) -> Response<Body> {
    match (method, path) {
        (Method::GET, "/healthz") | (Method::GET, "/readyz") => reply(StatusCode::OK, "ok", false),
        (Method::POST, "/inject") | (Method::POST, "/validate") => {
            let body = match Limited::new(req.into_body(), MAX_BODY_BYTES + 1)
                .collect()
                .await
            {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return reply(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("request body over {MAX_BODY_BYTES} bytes"),
                        false,
                    );
                }
            };
            // The handlers never panic on bad input by design (fuzzed); should a dependency
            // still panic, the API server gets a 500 naming the failure, not a dropped
            // connection, and the operator keeps serving.
            let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                if path == "/inject" {
                    let config = state.injection.load_full();
                    let namespaces = Arc::clone(&state.namespaces);
                    let lookup = move |ns: &str| namespaces(ns);
                    handle_inject_body(&body, &lookup, &config)
                } else {
                    handle_validate_body(&body)
                }
            }));
            let Ok((status, out)) = handled else {
                tracing::error!(path, "admission handler panicked; answered 500");
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error in the admission handler (see the operator log)",
                    false,
                );
            };
            let status =
                StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            reply(status, out, true)
        }
        _ => reply(StatusCode::NOT_FOUND, "not found", false),
    }
}

/// Serves HTTPS on `listener` with `cert` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    cert: Arc<ServingCert>,
    state: WebhookState,
    shutdown: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cert.server_config()));
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "webhook accept failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%remote, %error, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}
