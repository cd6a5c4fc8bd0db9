//! The inbound listener (Istio's `virtualInbound`, port 15006): traffic to the workload,
//! redirected by iptables. The port's PeerAuthentication mode decides what is accepted:
//!
//! - `STRICT`: only mutual TLS from mesh workloads; plaintext is closed.
//! - `PERMISSIVE`: the first bytes decide (a TLS ClientHello is terminated as mesh mTLS,
//!   anything else is passed through as plaintext).
//! - `DISABLE`: plaintext only; bytes pass through untouched (even an application's own TLS).
//!
//! After TLS, the peer's SPIFFE ID is the connection's source principal. The connection is then
//! forwarded to the application at the original destination (or `127.0.0.1:<port>`, see
//! [`weft_proxy_config::InboundUpstream`]), or at the port's Sidecar `defaultEndpoint`
//! ([`weft_proxy_config::InboundConfig::forward_address`]); a port's connection pool caps its
//! TCP connections (overflow is closed, flag `UO`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy_config::{MtlsMode, Protocol};

use crate::config::ConfigStore;
use crate::http::{ConnInfo, HttpProxy, serve_connection};
use crate::listener::{DestinationMode, accept_loop, destination, sniff};
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use crate::snapshot::Snapshot;
use crate::tcp;
use crate::tls::sniff::Detected;
use crate::upstream::Connector;

/// Shared state of the inbound listener.
pub struct InboundProxy {
    /// The config.
    pub store: Arc<ConfigStore>,
    /// Where finished connections and requests go.
    pub observer: Arc<dyn RequestObserver>,
    /// How the destination is learnt.
    pub mode: DestinationMode,
    /// Connect timeout to the application.
    pub connect_timeout: std::time::Duration,
    http: Arc<HttpProxy>,
}

impl InboundProxy {
    /// The inbound listener's state; `connect_timeout` bounds connecting to the application.
    pub fn new(
        store: Arc<ConfigStore>,
        observer: Arc<dyn RequestObserver>,
        mode: DestinationMode,
        connect_timeout: std::time::Duration,
    ) -> Self {
        let http = Arc::new(HttpProxy::inbound(
            Arc::clone(&store),
            Arc::clone(&observer),
            connect_timeout,
        ));
        Self {
            store,
            observer,
            mode,
            connect_timeout,
            http,
        }
    }
}

/// Serves the inbound listener on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<InboundProxy>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let handler_shutdown = shutdown.clone();
    accept_loop(listener, shutdown, tracker, move |stream, peer| {
        let proxy = Arc::clone(&proxy);
        let shutdown = handler_shutdown.clone();
        async move { handle(stream, peer, proxy, shutdown).await }
    })
    .await;
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<InboundProxy>,
    shutdown: CancellationToken,
) {
    let Ok((destination, redirected)) = destination(&stream, proxy.mode) else {
        return;
    };
    if !redirected {
        // Connected to the inbound port itself: there is no application port to forward to,
        // and forwarding to our own port would loop.
        tracing::debug!(%peer, "inbound connection without an original destination; closing");
        return;
    }
    let Some(snapshot) = proxy.store.snapshot() else {
        return;
    };
    let started = Instant::now();
    let mut log = tcp::tcp_log(Direction::Inbound, peer, destination);
    let inbound = &snapshot.config.inbound;
    let port = destination.port();
    let target = inbound.forward_address(destination);
    log.upstream_cluster = crate::request_log::inbound_cluster_name(port);
    log.upstream_host = Some(target);
    let mode = inbound.mtls_mode(port);
    let detected = match mode {
        MtlsMode::Disable => Detected::Unknown,
        MtlsMode::Strict | MtlsMode::Permissive => sniff(&stream).await,
    };
    let is_tls = matches!(detected, Detected::Tls { .. });
    let declared = inbound.port(port).map(|entry| entry.protocol);
    // Bound to 127.0.0.6 so that the capture rules do not send it back to us.
    let connector = Connector::plain(proxy.connect_timeout)
        .with_source(crate::upstream::INBOUND_PASSTHROUGH_SOURCE.into());
    let mut conn = ConnInfo {
        // The original destination: HTTP forwarding maps it with `forward_address` itself.
        destination,
        peer,
        source_principal: None,
        peer_certificate_hash: None,
        sni: None,
        passthrough_allowed: false,
        gateway: None,
    };
    if is_tls {
        let acceptor = match proxy.store.tls().map(|tls| tls.server_config()) {
            Some(Ok(config)) => TlsAcceptor::from(config),
            Some(Err(error)) => {
                tracing::warn!(%error, "inbound mTLS unavailable; closing");
                log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
                return tcp::emit(proxy.observer.as_ref(), log, started);
            }
            None => {
                tracing::debug!("inbound TLS without workload certificates; closing");
                return tcp::emit(proxy.observer.as_ref(), log, started);
            }
        };
        let mut tls = match acceptor.accept(stream).await {
            Ok(tls) => tls,
            Err(error) => {
                tracing::debug!(%error, %peer, "inbound mTLS handshake failed");
                return tcp::emit(proxy.observer.as_ref(), log, started);
            }
        };
        let session = tls.get_ref().1;
        conn.source_principal = crate::tls::peer_identity(session);
        conn.sni = session.server_name().map(str::to_owned);
        conn.peer_certificate_hash = session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| hex::encode(Sha256::digest(leaf.as_ref())));
        log.source_principal.clone_from(&conn.source_principal);
        let http = match session.alpn_protocol() {
            Some(crate::tls::ALPN_H2 | crate::tls::ALPN_HTTP11) => true,
            _ => declared.is_some_and(Protocol::is_http),
        };
        if http {
            return serve_connection(tls, Arc::clone(&proxy.http), Arc::new(conn), shutdown).await;
        }
        if let Err(policy) = crate::authz::check_tcp(
            inbound,
            peer,
            destination,
            conn.source_principal.as_deref(),
            conn.sni.as_deref(),
        ) {
            // AuthorizationPolicy denies TCP by closing the connection (Envoy's network RBAC).
            tracing::debug!(%peer, ?policy, "inbound connection refused by policy");
            return tcp::emit(proxy.observer.as_ref(), log, started);
        }
        forward_tcp(
            &mut tls, &snapshot, port, &connector, target, &shutdown, &mut log,
        )
        .await;
    } else if mode == MtlsMode::Strict {
        tracing::debug!(%peer, port, "STRICT mTLS: plaintext connection refused");
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
    } else {
        let http = match declared.unwrap_or(Protocol::Unknown) {
            Protocol::Http | Protocol::Http2 | Protocol::Grpc => true,
            Protocol::Tcp | Protocol::Tls => false,
            Protocol::Unknown => {
                let detected = match detected {
                    Detected::Unknown if mode == MtlsMode::Disable => sniff(&stream).await,
                    other => other,
                };
                matches!(detected, Detected::Http1 | Detected::Http2Preface)
            }
        };
        if http {
            return serve_connection(stream, Arc::clone(&proxy.http), Arc::new(conn), shutdown)
                .await;
        }
        if let Err(policy) = crate::authz::check_tcp(inbound, peer, destination, None, None) {
            tracing::debug!(%peer, ?policy, "inbound connection refused by policy");
            return tcp::emit(proxy.observer.as_ref(), log, started);
        }
        let mut stream = stream;
        forward_tcp(
            &mut stream,
            &snapshot,
            port,
            &connector,
            target,
            &shutdown,
            &mut log,
        )
        .await;
    }
    tcp::emit(proxy.observer.as_ref(), log, started);
}

/// The TCP part of an inbound connection that policy admitted: a slot of the port's inbound
/// connection pool (Sidecar `inboundConnectionPool`; none free: the connection is closed and
/// flagged `UO`), then the application at `target` (unreachable: `UF`), bytes copied both ways
/// until either side closes or `shutdown` is cancelled. The caller emits `log`.
async fn forward_tcp<S>(
    stream: &mut S,
    snapshot: &Snapshot,
    port: u16,
    connector: &Connector,
    target: SocketAddr,
    shutdown: &CancellationToken,
    log: &mut RequestLog,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Held until the copy ends: the slot is the connection's.
    let admitted = snapshot
        .inbound_breaker(port)
        .map(|breaker| breaker.connection());
    if matches!(admitted, Some(None)) {
        log.flags.insert(ResponseFlags::UPSTREAM_OVERFLOW);
        return;
    }
    match connector.connect(target).await {
        Ok(mut app) => tcp::copy(stream, &mut app, shutdown, log).await,
        Err(_) => log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE),
    }
}
