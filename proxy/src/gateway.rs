//! `weft-proxy gateway`: the proxy as a standalone gateway (Istio's `router` node type, run by
//! `pilot-agent proxy router`), serving the `Gateway` resources that select it.
//!
//! There is no traffic capture and no 15001/15006 listener. Each of the config's
//! [`weft_proxy_config::GatewayListener`]s is a socket ([`listeners`] binds and closes them as
//! configs change; a port that cannot be bound refuses the whole config, which the discovery
//! stream NACKs, and the previous listeners stay). A connection ([`conn`]) is served by one of
//! the port's servers:
//!
//! - plaintext HTTP: per request, the server by authority ([`select`]), an `https_redirect`
//!   301, else the server's route table over the usual cluster and endpoint code (mutual TLS
//!   toward sidecars with the gateway's workload certificate, as for a sidecar's outbound);
//! - `HTTPS`/`TLS`: the ClientHello's SNI picks the server; `SIMPLE`/`MUTUAL`/`OPTIONAL_MUTUAL`
//!   terminate with the server's credential ([`credential`]), `ISTIO_MUTUAL` with the workload
//!   certificate, then HTTP as above (or TCP routes for `TLS`); `PASSTHROUGH` routes by SNI to
//!   a cluster and splices the bytes unterminated; `AUTO_PASSTHROUGH` takes the cluster from
//!   the SNI (`outbound_.<port>_.<subset>_.<host>`);
//! - `TCP`: the server's TCP routes.
//!
//! Requests are reported as the source (`reporter="source"`), as Istio's gateways report them.

mod compile;
pub mod credential;
pub mod listeners;
pub mod select;

mod conn;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::LOCATION;
use http::{Request, Response};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{Admin, PrometheusRender, ProxyStats};
use crate::config::{ConfigSource, ConfigStore};
use crate::http::{ConnInfo, HttpProxy, authority_of, local_reply};
use crate::request_log::{RequestLog, RequestObserver, ResponseFlags};
use crate::run::{AdminListeners, drain, serve_admin};
use crate::snapshot::Snapshot;
use crate::upstream::ProxyBody;

pub use compile::{CompiledTlsRoute, GatewayPort, GatewayServerRuntime, Termination, compile};
pub use listeners::GatewayListeners;

/// Which gateway listener (and, after TLS termination, which server) a connection belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayTarget {
    /// The listener's bound address ([`GatewayPort::address`]).
    pub address: SocketAddr,
    /// The server chosen by SNI when the proxy terminated TLS; `None` for plaintext, where
    /// each request picks its server by authority.
    pub server: Option<String>,
    /// The downstream scheme: `http` or `https`.
    pub scheme: &'static str,
}

/// Everything [`run`] needs besides the admin sockets.
pub struct GatewaySettings {
    /// The config store (holding the workload TLS provider, if any).
    pub store: Arc<ConfigStore>,
    /// The config source; started after the listener hook is installed, so the first config
    /// binds the gateway's ports.
    pub source: Box<dyn ConfigSource>,
    /// Where finished requests go (wrapped in [`ProxyStats`]).
    pub observer: Arc<dyn RequestObserver>,
    /// Prometheus text for `/stats/prometheus`.
    pub prometheus: Option<PrometheusRender>,
    /// In-flight requests get this long after shutdown starts.
    pub drain_time: Duration,
}

/// Runs a gateway until `shutdown` is cancelled, then drains as a sidecar does: the gateway
/// ports stop accepting, in-flight requests get `drain_time`. Health (ready once a config is
/// held), admin and Prometheus are served on `listeners`.
pub async fn run(
    listeners: AdminListeners,
    settings: GatewaySettings,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let stats = ProxyStats::new(settings.observer);
    let observer: Arc<dyn RequestObserver> = stats.clone();
    let store = settings.store;
    let proxy = Arc::new(HttpProxy::outbound(Arc::clone(&store), observer));
    let gateway = GatewayListeners::new(proxy, shutdown.clone(), tracker.clone());
    if !store.set_hook(gateway) {
        tracing::warn!(
            "the config store already had a listener hook; gateway ports will not follow the config"
        );
    }
    let source_task = tokio::spawn(settings.source.run(Arc::clone(&store), shutdown.clone()));
    let admin = Arc::new(Admin {
        store: Arc::clone(&store),
        shutdown: shutdown.clone(),
        stats,
        prometheus: settings.prometheus,
    });
    let servers = serve_admin(listeners, &admin, &shutdown, &tracker);
    shutdown.cancelled().await;
    drain(servers, source_task, tracker, settings.drain_time).await;
}

/// Routes one HTTP request that arrived on a gateway listener: the server (fixed by SNI after
/// TLS termination, else by the authority among the port's plaintext HTTP servers), then
/// `https_redirect` (301 to `https://<host><path>`), then the server's route table. No server
/// or no table: 404 with response flag `NR`.
pub(crate) async fn route_request(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    target: &GatewayTarget,
    request: Request<ProxyBody>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let Some(port) = snapshot.gateway_at(target.address) else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    let authority = authority_of(&request).to_owned();
    let host = select::authority_host(&authority);
    let index = match &target.server {
        Some(name) => port.servers.iter().position(|server| &server.name == name),
        None => port.server_for_host(host),
    };
    let Some(server) = index.and_then(|index| port.servers.get(index)) else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    if server.https_redirect && target.server.is_none() {
        return https_redirect(host, &request, log);
    }
    let Some(table) = &server.http else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    crate::http::route_in(table, conn, request, target.scheme, log).await
}

/// Istio `httpsRedirect`: 301 to the same host (port dropped, so the HTTPS default 443) and
/// path with scheme `https`.
fn https_redirect<B>(
    host: &str,
    request: &Request<B>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut response = local_reply(301, "", ResponseFlags::empty(), log);
    if let Ok(value) = http::HeaderValue::from_str(&format!("https://{host}{path}")) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}
