//! The outbound listener (Istio's `virtualOutbound`, port 15001): traffic the workload sends,
//! redirected by iptables. Each connection is dispatched by its original destination to the
//! outbound service's HTTP or TCP handling, passed through (ALLOW_ANY), or refused
//! (REGISTRY_ONLY: HTTP gets 502 `NR`, TCP is closed).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weft_proxy_config::{OutboundTrafficPolicy, PASSTHROUGH_CLUSTER, Protocol};

use crate::http::{ConnInfo, HttpProxy, serve_connection};
use crate::listener::{DestinationMode, accept_loop, destination, sniff};
use crate::request_log::{Direction, ResponseFlags};
use crate::tcp;
use crate::tls::sniff::Detected;

/// Serves the outbound listener on `listener` until `shutdown`; connection tasks go to
/// `tracker` so the caller can drain them.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<HttpProxy>,
    mode: DestinationMode,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let handler_shutdown = shutdown.clone();
    accept_loop(listener, shutdown, tracker, move |stream, peer| {
        let proxy = Arc::clone(&proxy);
        let shutdown = handler_shutdown.clone();
        async move { handle(stream, peer, proxy, mode, shutdown).await }
    })
    .await;
}

async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    proxy: Arc<HttpProxy>,
    mode: DestinationMode,
    shutdown: CancellationToken,
) {
    let Ok((destination, redirected)) = destination(&stream, mode) else {
        return;
    };
    let Some(snapshot) = proxy.store.snapshot() else {
        return; // Not ready: refuse by closing.
    };
    let conn = ConnInfo {
        destination,
        peer,
        source_principal: None,
        peer_certificate_hash: None,
        sni: None,
        passthrough_allowed: redirected,
        gateway: None,
    };
    let started = Instant::now();
    let mut log = tcp::tcp_log(Direction::Outbound, peer, destination);
    match snapshot.outbound_for(destination) {
        Some(service) => {
            log.destination_service.clone_from(&service.hostname);
            let http = match service.protocol {
                Protocol::Http | Protocol::Http2 | Protocol::Grpc => true,
                Protocol::Tcp | Protocol::Tls => false,
                Protocol::Unknown => {
                    service.http.is_some()
                        && matches!(
                            sniff(&stream).await,
                            Detected::Http1 | Detected::Http2Preface
                        )
                }
            };
            if http {
                serve_connection(stream, proxy, Arc::new(conn), shutdown).await;
                return;
            }
            match tcp::select_cluster(&service.tcp, destination) {
                Some(cluster) => {
                    tcp::proxy_to_cluster(
                        stream,
                        cluster,
                        destination,
                        redirected,
                        &shutdown,
                        &mut log,
                    )
                    .await;
                }
                None => log.flags.insert(ResponseFlags::NO_ROUTE_FOUND),
            }
        }
        None => match snapshot.config.outbound_traffic_policy {
            OutboundTrafficPolicy::AllowAny => match snapshot.cluster(PASSTHROUGH_CLUSTER) {
                Some(cluster) => {
                    tcp::proxy_to_cluster(
                        stream,
                        cluster,
                        destination,
                        redirected,
                        &shutdown,
                        &mut log,
                    )
                    .await;
                }
                None => log.flags.insert(ResponseFlags::NO_ROUTE_FOUND),
            },
            OutboundTrafficPolicy::RegistryOnly => {
                if matches!(
                    sniff(&stream).await,
                    Detected::Http1 | Detected::Http2Preface
                ) {
                    // Every request on this connection gets 502 NR (logged per request).
                    serve_connection(stream, proxy, Arc::new(conn), shutdown).await;
                    return;
                }
                log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
            }
        },
    }
    tcp::emit(proxy.observer.as_ref(), log, started);
}
