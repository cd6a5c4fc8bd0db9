//! The control plane's monitoring endpoint (istiod's 15014): `/metrics` in Prometheus text
//! format, `/debug/syncz` (every proxy's sync status, read by `weftctl proxy-status`),
//! `/healthz` (liveness) and `/readyz` (ready once the first config is loaded).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::discovery::DiscoveryServer;

/// What the monitoring endpoint reads.
#[derive(Clone)]
pub struct Monitoring {
    /// The metrics registry of every component.
    pub registry: Arc<Mutex<Registry>>,
    /// The discovery server, for `/debug/syncz`.
    pub discovery: Arc<DiscoveryServer>,
    /// Set once the first configuration is loaded.
    pub ready: Arc<AtomicBool>,
}

async fn metrics(State(m): State<Monitoring>) -> impl IntoResponse {
    let mut text = String::new();
    let encoded = prometheus_client::encoding::text::encode(&mut text, &m.registry.lock());
    match encoded {
        Ok(()) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain")],
            e.to_string(),
        ),
    }
}

async fn syncz(State(m): State<Monitoring>) -> impl IntoResponse {
    axum::Json(m.discovery.statuses())
}

async fn readyz(State(m): State<Monitoring>) -> impl IntoResponse {
    if m.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration loaded yet",
        )
    }
}

/// Serves the monitoring endpoint on `addr` until `shutdown`. Errors when the address cannot
/// be bound.
pub async fn serve(
    addr: SocketAddr,
    monitoring: Monitoring,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/debug/syncz", get(syncz))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(monitoring);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}
