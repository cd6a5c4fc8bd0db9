//! The sample service.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::parse_pair;

/// Headers forwarded to upstream calls, as bookinfo propagates them (trace context, request id,
/// user identity, and the test knobs prefixed `x-weft-up-`).
const PROPAGATED: &[&str] = &[
    "x-request-id",
    "traceparent",
    "tracestate",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "end-user",
    "user-agent",
];

/// Arguments of `serve`.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// The service name reported in answers (e.g. `reviews`).
    #[arg(long)]
    service: String,
    /// The version reported in answers (e.g. `v1`).
    #[arg(long, default_value = "v1")]
    version: String,
    /// Listen address.
    #[arg(long, default_value = "0.0.0.0:9080")]
    listen: SocketAddr,
    /// An upstream to call on every request: `NAME=URL` (e.g.
    /// `ratings=http://ratings.demo.svc.cluster.local:9080/ratings/0`).
    #[arg(long, value_parser = parse_pair)]
    call: Vec<(String, String)>,
    /// Resolve a host name to an address, as curl's `--resolve`: `HOST=IP`.
    #[arg(long, value_parser = parse_pair)]
    resolve: Vec<(String, String)>,
}

struct State {
    args: ServeArgs,
    resolve: BTreeMap<String, String>,
    counter: AtomicU64,
}

/// Serves until the process is stopped.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let state = Arc::new(State {
        resolve: args.resolve.iter().cloned().collect(),
        args,
        counter: AtomicU64::new(0),
    });
    eprintln!(
        "{} {} listening on {}",
        state.args.service, state.args.version, state.args.listen
    );
    loop {
        let (tcp, _) = listener.accept().await?;
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(state, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let n = state.counter.fetch_add(1, Ordering::Relaxed) + 1;
    let headers = req.headers().clone();
    let path = req.uri().path().to_string();
    if let Some(ms) = header_u64(&headers, "x-weft-delay-ms") {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut status = header_u64(&headers, "x-weft-status")
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    // `x-weft-fail-version: v2` makes only the instances of that version answer 500: one
    // endpoint of a service misbehaves while the others stay healthy (outlier detection).
    if headers
        .get("x-weft-fail-version")
        .is_some_and(|v| v.as_bytes() == state.args.version.as_bytes())
    {
        status = StatusCode::INTERNAL_SERVER_ERROR;
    }
    if let Some(k) = header_u64(&headers, "x-weft-fail-every")
        && k > 1
        && !n.is_multiple_of(k)
    {
        status = StatusCode::SERVICE_UNAVAILABLE;
    }
    let mut upstreams = serde_json::Map::new();
    for (name, url) in &state.args.call {
        upstreams.insert(name.clone(), call(&state, url, &headers).await);
    }
    let body = json!({
        "service": state.args.service,
        "version": state.args.version,
        "path": path,
        "request_id": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        "peer_principal_header": headers.get("x-forwarded-client-cert").and_then(|v| v.to_str().ok()),
        "upstreams": upstreams,
        "headers": echoed(&headers),
    });
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// The request headers named in `x-weft-echo` (comma-separated, e.g.
/// `x-jwt-sub,authorization`), each with its values joined by `,` (`null` when absent): what
/// the proxy let through or wrote, for tests to check.
fn echoed(headers: &HeaderMap) -> serde_json::Map<String, Value> {
    let Some(names) = headers.get(ECHO).and_then(|v| v.to_str().ok()) else {
        return serde_json::Map::new();
    };
    names
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let value = if values.is_empty() {
                Value::Null
            } else {
                Value::String(values.join(","))
            };
            (name.to_ascii_lowercase(), value)
        })
        .collect()
}

/// The request header naming the headers to echo (see [`echoed`]).
const ECHO: &str = "x-weft-echo";

async fn call(state: &State, url: &str, incoming: &HeaderMap) -> Value {
    let started = std::time::Instant::now();
    let mut headers = HeaderMap::new();
    for name in PROPAGATED {
        if let Some(v) = incoming.get(*name) {
            headers.insert(*name, v.clone());
        }
    }
    match crate::load::get(url, &state.resolve, &headers).await {
        Ok((status, _, body)) => {
            let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            json!({
                "status": status,
                "version": parsed.get("version"),
                "upstreams": parsed.get("upstreams"),
                "ms": started.elapsed().as_secs_f64() * 1000.0,
            })
        }
        Err(e) => json!({ "status": 0, "error": e.to_string() }),
    }
}

/// Collects a body into bytes; an error yields what was read.
pub async fn collect(body: Incoming) -> Bytes {
    body.collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default()
}
