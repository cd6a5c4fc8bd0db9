//! The inbound listener (Istio's `virtualInbound`, port 15006): traffic to the workload,
//! redirected by iptables. The port's PeerAuthentication mode decides what is accepted:
//!
//! - `STRICT`: only mutual TLS from mesh workloads; plaintext is closed.
//! - `PERMISSIVE`: the first bytes decide (a TLS ClientHello is terminated as mesh mTLS,
//!   anything else is passed through as plaintext).
//! - `DISABLE`: plaintext only; bytes pass through untouched (even an application's own TLS).
//!
//! After TLS, the peer's SPIFFE ID is the connection's source principal. The connection is then
//! forwarded to the application at `127.0.0.1:<port>` (or the original destination, see
//! [`weft_proxy_config::InboundUpstream`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy_config::{InboundUpstream, MtlsMode};

use crate::config::ConfigStore;
use crate::listener::{DestinationMode, accept_loop, destination, sniff};
use crate::request_log::{Direction, RequestObserver, ResponseFlags};
use crate::tcp;
use crate::tls::sniff::Detected;
use crate::upstream::Connector;

/// Shared state of the inbound listener.
pub struct InboundProxy {
    /// The config.
    pub store: Arc<ConfigStore>,
    /// Where finished connections go.
    pub observer: Arc<dyn RequestObserver>,
    /// How the destination is learnt.
    pub mode: DestinationMode,
    /// Connect timeout to the application.
    pub connect_timeout: std::time::Duration,
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
    let Some(snapshot) = proxy.store.snapshot() else {
        return;
    };
    let started = Instant::now();
    let mut log = tcp::tcp_log(Direction::Inbound, peer, destination);
    let inbound = &snapshot.config.inbound;
    let port = destination.port();
    let target = match inbound.upstream {
        InboundUpstream::OriginalDestination if redirected => destination,
        _ => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
    };
    log.upstream_cluster = format!("inbound|{port}||");
    log.upstream_host = Some(target);
    let mode = inbound.mtls_mode(port);
    let detected = match mode {
        MtlsMode::Disable => Detected::Unknown,
        MtlsMode::Strict | MtlsMode::Permissive => sniff(&stream).await,
    };
    let is_tls = matches!(detected, Detected::Tls { .. });
    let connector = Connector::plain(proxy.connect_timeout);
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
        log.source_principal = crate::tls::peer_identity(tls.get_ref().1);
        match connector.connect(target).await {
            Ok(mut app) => tcp::copy(&mut tls, &mut app, &shutdown, &mut log).await,
            Err(_) => log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE),
        }
    } else if mode == MtlsMode::Strict {
        tracing::debug!(%peer, port, "STRICT mTLS: plaintext connection refused");
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
    } else {
        let mut stream = stream;
        match connector.connect(target).await {
            Ok(mut app) => tcp::copy(&mut stream, &mut app, &shutdown, &mut log).await,
            Err(_) => log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE),
        }
    }
    tcp::emit(proxy.observer.as_ref(), log, started);
}
