//! Opaque TCP proxying: Istio `TCPRoute` selection, cluster and endpoint pick, and a
//! bidirectional copy.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::outlier::TryResult;
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use std::sync::Arc;

use crate::snapshot::{ClusterRuntime, CompiledTcpRoute};
use crate::upstream::Connector;

/// A log record for a TCP connection (method empty, protocol `TCP`).
pub fn tcp_log(direction: Direction, peer: SocketAddr, destination: SocketAddr) -> RequestLog {
    RequestLog {
        direction,
        start: SystemTime::now(),
        duration: Default::default(),
        method: String::new(),
        authority: destination.to_string(),
        path: String::new(),
        protocol: "TCP",
        status: 0,
        flags: ResponseFlags::empty(),
        request_id: String::new(),
        route_name: String::new(),
        upstream_cluster: String::new(),
        upstream_host: None,
        downstream_peer: Some(peer),
        source_principal: None,
        attempts: 0,
        destination_service: String::new(),
        request_bytes: 0,
        response_bytes: 0,
        traceparent: None,
    }
}

/// The cluster of the first TCP route in `routes` that accepts a connection to `destination`,
/// picked by weight (Istio `TCPRoute`: first match wins).
pub fn select_cluster(
    routes: &[CompiledTcpRoute],
    destination: SocketAddr,
) -> Option<&Arc<ClusterRuntime>> {
    let route = routes.iter().find(|route| {
        route.matches.is_empty()
            || route.matches.iter().any(|(port, subnets)| {
                port.is_none_or(|port| port == destination.port())
                    && (subnets.is_empty()
                        || subnets
                            .iter()
                            .any(|subnet| subnet.contains(destination.ip())))
            })
    })?;
    pick_weighted(&route.clusters)
}

/// One of `clusters` picked at random in proportion to its weight; `None` when the weights sum
/// to 0.
pub fn pick_weighted(clusters: &[(Arc<ClusterRuntime>, u32)]) -> Option<&Arc<ClusterRuntime>> {
    let total: u64 = clusters.iter().map(|(_, weight)| u64::from(*weight)).sum();
    if total == 0 {
        return None;
    }
    let mut point = rand::rng().random_range(0..total);
    for (cluster, weight) in clusters {
        if point < u64::from(*weight) {
            return Some(cluster);
        }
        point -= u64::from(*weight);
    }
    None
}

/// Connects to an endpoint of `cluster` (the original destination for passthrough) and copies
/// bytes both ways until either side closes or `shutdown` is cancelled. Records flags
/// `UH`/`UF`/`NR` and the upstream in `log`.
pub async fn proxy_to_cluster<D>(
    mut downstream: D,
    cluster: &ClusterRuntime,
    destination: SocketAddr,
    passthrough_allowed: bool,
    shutdown: &CancellationToken,
    log: &mut RequestLog,
) where
    D: AsyncRead + AsyncWrite + Unpin,
{
    log.upstream_cluster.clone_from(&cluster.name);
    if cluster.black_hole {
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
        return;
    }
    let Some(_admitted) = cluster.breaker.connection() else {
        log.flags.insert(ResponseFlags::UPSTREAM_OVERFLOW);
        return;
    };
    let Ok(clients) = &cluster.clients else {
        log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        return;
    };
    let mut picked = None;
    let (address, connector): (SocketAddr, &Connector) = if cluster.passthrough {
        if !passthrough_allowed {
            log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
            return;
        }
        (destination, clients.tcp_for(false))
    } else {
        let hash = log
            .downstream_peer
            .and_then(|peer| cluster.endpoints.source_hash(peer.ip()));
        let Some(endpoint) = cluster.endpoints.pick_hashed(None, hash) else {
            log.flags.insert(ResponseFlags::NO_HEALTHY_UPSTREAM);
            return;
        };
        let target = (
            endpoint.endpoint().address,
            clients.tcp_for(endpoint.endpoint().has_sidecar),
        );
        picked = Some(endpoint);
        target
    };
    log.upstream_host = Some(address);
    log.attempts = 1;
    let connected = connector.connect(address).await;
    if let Some(picked) = &picked {
        picked.report(match &connected {
            Ok(_) => TryResult::Success,
            Err(_) => TryResult::LOCAL_ERROR,
        });
    }
    let mut upstream = match connected {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%error, upstream = %address, "TCP upstream connect failed");
            log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
            return;
        }
    };
    copy(&mut downstream, &mut upstream, shutdown, log).await;
}

/// Copies both ways (`a` is the downstream) until either side closes or `shutdown` is
/// cancelled; records the byte counts in `log`.
pub async fn copy<A, B>(a: &mut A, b: &mut B, shutdown: &CancellationToken, log: &mut RequestLog)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        result = tokio::io::copy_bidirectional(a, b) => match result {
            Ok((received, sent)) => {
                log.request_bytes = received;
                log.response_bytes = sent;
            }
            Err(error) => {
                tracing::debug!(%error, "TCP proxy connection ended with an error");
                log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
            }
        },
        () = shutdown.cancelled() => {}
    }
}

/// Finishes a TCP log: duration and hand-off to the observer.
pub fn emit(observer: &dyn RequestObserver, mut log: RequestLog, started: Instant) {
    log.duration = started.elapsed();
    observer.on_request(&log);
}
