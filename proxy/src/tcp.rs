//! Opaque TCP proxying: Istio `TCPRoute` selection, cluster and endpoint pick, and a
//! bidirectional copy that ends after the cluster's idle timeout (Istio
//! `TCPSettings.idleTimeout`, Envoy's TCP proxy `idle_timeout`).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::outlier::TryResult;
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use std::sync::Arc;

use crate::balance::PickedEndpoint;
use crate::snapshot::{ClusterRuntime, CompiledTcpRoute};
use crate::upstream::{Connector, UpstreamStream};

/// A log record for a TCP connection (method empty, protocol `TCP`).
pub fn tcp_log(direction: Direction, peer: SocketAddr, destination: SocketAddr) -> RequestLog {
    RequestLog {
        direction,
        start: SystemTime::now(),
        duration: Default::default(),
        method: std::borrow::Cow::Borrowed(""),
        authority: destination.to_string(),
        path: String::new(),
        protocol: "TCP",
        status: 0,
        flags: ResponseFlags::empty(),
        request_id: String::new(),
        route_name: crate::request_log::empty_name(),
        upstream_cluster: crate::request_log::empty_name(),
        upstream_host: None,
        downstream_peer: Some(peer),
        source_principal: None,
        attempts: 0,
        destination_service: crate::request_log::empty_name(),
        request_bytes: 0,
        response_bytes: 0,
        traceparent: None,
        audit_policy: None,
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
    let Some(mut upstream) = connect_upstream(connector, address, picked.as_ref(), log).await
    else {
        return;
    };
    copy_until_idle(
        &mut downstream,
        &mut upstream,
        shutdown,
        log,
        clients.tcp_idle_timeout(),
    )
    .await;
}

/// Connects to `address` with `connector` for a proxied TCP connection: sets the log's
/// upstream host and attempt count, and reports the outcome to `picked` (outlier detection's
/// local-origin result) when the endpoint was picked from the cluster's balancer. Returns the
/// stream, or `None` with response flag `UF` logged when the connection fails.
pub(crate) async fn connect_upstream(
    connector: &Connector,
    address: SocketAddr,
    picked: Option<&PickedEndpoint>,
    log: &mut RequestLog,
) -> Option<UpstreamStream> {
    log.upstream_host = Some(address);
    log.attempts = 1;
    let connected = connector.connect(address).await;
    if let Some(picked) = picked {
        picked.report(match &connected {
            Ok(_) => TryResult::Success,
            Err(_) => TryResult::LOCAL_ERROR,
        });
    }
    match connected {
        Ok(upstream) => Some(upstream),
        Err(error) => {
            tracing::debug!(%error, upstream = %address, "TCP upstream connect failed");
            log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
            None
        }
    }
}

/// As [`copy`], also ending (closing both sides) once no byte went either way for `idle`
/// (`None`: never).
pub async fn copy_until_idle<A, B>(
    a: &mut A,
    b: &mut B,
    shutdown: &CancellationToken,
    log: &mut RequestLog,
    idle: Option<Duration>,
) where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Some(idle) = idle else {
        return copy(a, b, shutdown, log).await;
    };
    let clock = Arc::new(Activity {
        start: Instant::now(),
        last_ms: AtomicU64::new(0),
    });
    let mut a = Active {
        inner: a,
        clock: Arc::clone(&clock),
    };
    let mut b = Active {
        inner: b,
        clock: Arc::clone(&clock),
    };
    let watchdog = async {
        loop {
            let quiet = clock.quiet();
            if quiet >= idle {
                break;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    };
    tokio::select! {
        () = copy(&mut a, &mut b, shutdown, log) => {}
        () = watchdog => {
            tracing::debug!(idle_ms = idle.as_millis() as u64, "TCP connection idle timeout");
        }
    }
}

/// When a connection last moved bytes.
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last read that returned bytes.
    last_ms: AtomicU64,
}

impl Activity {
    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// How long nothing was read on either side.
    fn quiet(&self) -> Duration {
        self.start
            .elapsed()
            .saturating_sub(Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A stream that records reads of at least one byte on its [`Activity`].
struct Active<'a, S> {
    inner: &'a mut S,
    clock: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Active<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut *this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Active<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.get_mut().inner).poll_shutdown(cx)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn log() -> RequestLog {
        tcp_log(
            Direction::Outbound,
            SocketAddr::from(([127, 0, 0, 1], 1)),
            SocketAddr::from(([127, 0, 0, 1], 2)),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_end_after_the_idle_timeout_and_traffic_keeps_them_open() {
        let (mut client, mut proxy_down) = tokio::io::duplex(64);
        let (mut proxy_up, mut server) = tokio::io::duplex(64);
        let shutdown = CancellationToken::new();
        let proxied = tokio::spawn(async move {
            let mut log = log();
            copy_until_idle(
                &mut proxy_down,
                &mut proxy_up,
                &shutdown,
                &mut log,
                Some(Duration::from_secs(10)),
            )
            .await;
            log
        });
        // Bytes every 6 s keep the connection alive past 10 s.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            client.write_all(b"ping").await.unwrap();
            let mut echo = [0u8; 4];
            server.read_exact(&mut echo).await.unwrap();
            assert_eq!(&echo, b"ping");
            assert!(!proxied.is_finished(), "active traffic must keep it open");
        }
        // Then 10 s of silence end it, closing both sides.
        tokio::time::sleep(Duration::from_secs(11)).await;
        let log = proxied.await.unwrap();
        assert_eq!(log.request_bytes, 0, "the copy was cut, not completed");
        let mut rest = Vec::new();
        assert_eq!(server.read_to_end(&mut rest).await.unwrap(), 0);
    }
}
