//! One connection on a gateway port: plaintext HTTP, TLS terminated then HTTP or TCP, TLS
//! passed through by SNI, or TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use weft_proxy_config::ServerTlsMode;

use super::credential::client_san_accepted;
use super::{GatewayServerRuntime, GatewayTarget, Termination};
use crate::http::{ConnInfo, HttpProxy, cluster_host, serve_connection};
use crate::request_log::{Direction, RequestLog, ResponseFlags};
use crate::snapshot::{ClusterRuntime, Snapshot};
use crate::tcp;
use crate::tls::sniff::{self, Detected};

/// How long a client may take to send its ClientHello on a TLS port (Envoy's
/// `listener_filters_timeout` default is 15 s; Weft uses 10 s).
pub const CLIENT_HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves one accepted connection on the gateway listener bound at `address`.
pub(crate) async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    address: SocketAddr,
    proxy: Arc<HttpProxy>,
    shutdown: CancellationToken,
) {
    let Some(snapshot) = proxy.store.snapshot() else {
        return;
    };
    let Some(port) = snapshot.gateway_at(address) else {
        return; // The port left the config while this connection was queued.
    };
    let destination = stream.local_addr().unwrap_or(address);
    let mut conn = ConnInfo {
        destination,
        peer,
        source_principal: None,
        peer_certificate_hash: None,
        sni: None,
        passthrough_allowed: false,
        gateway: Some(GatewayTarget {
            address,
            server: None,
            scheme: "http",
        }),
    };
    if let Some(server) = port.tcp_server() {
        let started = Instant::now();
        let mut log = tcp::tcp_log(Direction::Outbound, peer, destination);
        let cluster = tcp::select_cluster(&server.tcp_routes, destination);
        to_cluster(stream, cluster, destination, &shutdown, &mut log).await;
        tcp::emit(proxy.observer.as_ref(), log, started);
        return;
    }
    if !port.expects_tls() {
        serve_connection(stream, proxy, Arc::new(conn), shutdown).await;
        return;
    }
    let started = Instant::now();
    let mut log = tcp::tcp_log(Direction::Outbound, peer, destination);
    let Some(sni) = client_hello_sni(&stream).await else {
        // Not TLS, or the client never finished its ClientHello.
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
        tcp::emit(proxy.observer.as_ref(), log, started);
        return;
    };
    let Some(server) = port
        .server_for_sni(sni.as_deref())
        .and_then(|index| port.servers.get(index))
    else {
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
        tcp::emit(proxy.observer.as_ref(), log, started);
        return;
    };
    if let Some(mode) = server.passthrough {
        let cluster = passthrough_cluster(&snapshot, server, mode, sni.as_deref(), destination);
        if mode == ServerTlsMode::AutoPassthrough {
            splice_to_cluster(stream, cluster, &shutdown, &mut log).await;
        } else {
            to_cluster(stream, cluster, destination, &shutdown, &mut log).await;
        }
        tcp::emit(proxy.observer.as_ref(), log, started);
        return;
    }
    let config = match &server.termination {
        Some(Termination::Credential(credential)) => credential.config().map_err(|e| e.to_string()),
        Some(Termination::Mesh(config)) => config.clone(),
        None => Err(format!("server {} has no TLS settings", server.name)),
    };
    let config = match config {
        Ok(config) => config,
        Err(reason) => {
            tracing::warn!(server = %server.name, %reason, "TLS handshake refused: no server certificate");
            log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
            tcp::emit(proxy.observer.as_ref(), log, started);
            return;
        }
    };
    let accepted = tokio::time::timeout(
        CLIENT_HELLO_TIMEOUT,
        TlsAcceptor::from(config).accept(stream),
    )
    .await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::debug!(%error, %peer, server = %server.name, "downstream TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let session = tls.get_ref().1;
    let accepted_sans: &[String] = match &server.termination {
        Some(Termination::Credential(credential)) => &credential.settings().subject_alt_names,
        _ => &[],
    };
    let leaf = session.peer_certificates().and_then(|chain| chain.first());
    if !client_san_accepted(accepted_sans, leaf) {
        tracing::debug!(%peer, server = %server.name, "client certificate has none of the accepted subject alternative names");
        return;
    }
    conn.source_principal = crate::tls::peer_identity(session);
    if server.http.is_some() {
        conn.gateway = Some(GatewayTarget {
            address,
            server: Some(server.name.clone()),
            scheme: "https",
        });
        serve_connection(tls, proxy, Arc::new(conn), shutdown).await;
        return;
    }
    let cluster = tcp::select_cluster(&server.tcp_routes, destination);
    to_cluster(tls, cluster, destination, &shutdown, &mut log).await;
    tcp::emit(proxy.observer.as_ref(), log, started);
}

/// Proxies `downstream` to `cluster` (no cluster: `NR`, connection closed), recording the
/// destination service from the cluster's name.
async fn to_cluster<D>(
    downstream: D,
    cluster: Option<&Arc<ClusterRuntime>>,
    destination: SocketAddr,
    shutdown: &CancellationToken,
    log: &mut RequestLog,
) where
    D: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let Some(cluster) = cluster else {
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
        return;
    };
    log.destination_service = cluster_host(&cluster.name).into();
    tcp::proxy_to_cluster(downstream, cluster, destination, false, shutdown, log).await;
}

/// Splices `downstream` (an `AUTO_PASSTHROUGH` connection, still the client's TLS) onto a
/// plain TCP connection to an endpoint of `cluster`, whatever the cluster's transport: the
/// client's mutual TLS ends at the destination's sidecar, as with Istio's SNI-DNAT clusters
/// (which carry no transport socket). No cluster: `NR`; no endpoint: `UH`; connect failure:
/// `UF`; circuit breaker full: `UO`.
async fn splice_to_cluster(
    mut downstream: TcpStream,
    cluster: Option<&Arc<ClusterRuntime>>,
    shutdown: &CancellationToken,
    log: &mut RequestLog,
) {
    let Some(cluster) = cluster else {
        log.flags.insert(ResponseFlags::NO_ROUTE_FOUND);
        return;
    };
    log.destination_service = cluster_host(&cluster.name).into();
    log.upstream_cluster = Arc::clone(&cluster.name);
    let Some(_admitted) = cluster.breaker.connection() else {
        log.flags.insert(ResponseFlags::UPSTREAM_OVERFLOW);
        return;
    };
    let Ok(clients) = &cluster.clients else {
        log.flags.insert(ResponseFlags::UPSTREAM_CONNECTION_FAILURE);
        return;
    };
    let hash = log
        .downstream_peer
        .and_then(|peer| cluster.endpoints.source_hash(peer.ip()));
    let Some(endpoint) = cluster.endpoints.pick_hashed(None, hash) else {
        log.flags.insert(ResponseFlags::NO_HEALTHY_UPSTREAM);
        return;
    };
    let address = endpoint.endpoint().address;
    // The client's own TLS passes through: plain TCP to the endpoint, whatever its sidecar.
    let Some(mut upstream) =
        tcp::connect_upstream(clients.tcp_for(false), address, Some(&endpoint), log).await
    else {
        return;
    };
    tcp::copy_until_idle(
        &mut downstream,
        &mut upstream,
        shutdown,
        log,
        clients.tcp_idle_timeout(),
    )
    .await;
}

/// The cluster a passthrough server sends a connection with `sni` to: the first matching
/// TLS route's (`PASSTHROUGH`), or the cluster the SNI names (`AUTO_PASSTHROUGH`).
fn passthrough_cluster<'a>(
    snapshot: &'a Snapshot,
    server: &'a GatewayServerRuntime,
    mode: ServerTlsMode,
    sni: Option<&str>,
    destination: SocketAddr,
) -> Option<&'a Arc<ClusterRuntime>> {
    let sni = sni?;
    if mode == ServerTlsMode::AutoPassthrough {
        return snapshot.cluster(&auto_passthrough_cluster(sni)?);
    }
    server
        .tls_routes
        .iter()
        .find(|route| route.matches(sni, destination))
        .and_then(|route| tcp::pick_weighted(&route.clusters))
}

/// The cluster name an `AUTO_PASSTHROUGH` SNI names: `outbound_.<port>_.<subset>_.<host>` →
/// `outbound|<port>|<subset>|<host>` (Istio's SNI-DNAT cluster naming); `None` for other SNIs.
pub fn auto_passthrough_cluster(sni: &str) -> Option<String> {
    let mut parts = sni.splitn(4, "_.");
    let direction = parts.next().filter(|d| *d == "outbound")?;
    let port: u16 = parts.next()?.parse().ok()?;
    let subset = parts.next()?;
    let host = parts.next().filter(|host| !host.is_empty())?;
    Some(format!("{direction}|{port}|{subset}|{host}"))
}

/// Peeks at the connection until its ClientHello is complete; returns its SNI (inner `None`
/// when the ClientHello has none), or `None` when the bytes are not TLS or do not arrive
/// within [`CLIENT_HELLO_TIMEOUT`]. Nothing is consumed.
async fn client_hello_sni(stream: &TcpStream) -> Option<Option<String>> {
    let deadline = tokio::time::Instant::now() + CLIENT_HELLO_TIMEOUT;
    let mut buf = vec![0u8; sniff::MAX_SNIFF_BYTES];
    loop {
        let read = tokio::time::timeout_at(deadline, stream.peek(&mut buf))
            .await
            .ok()?
            .ok()?;
        if read == 0 {
            return None;
        }
        match sniff::detect(buf.get(..read)?) {
            Detected::Tls { sni } => return Some(sni),
            Detected::Incomplete if read < buf.len() => {
                // Peek returns what is buffered: wait for more of the ClientHello.
                if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(2)))
                    .await
                    .is_err()
                {
                    return None;
                }
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::auto_passthrough_cluster;

    #[test]
    fn auto_passthrough_sni_names_an_istio_cluster() {
        assert_eq!(
            auto_passthrough_cluster("outbound_.9080_.v1_.reviews.demo.svc.cluster.local")
                .as_deref(),
            Some("outbound|9080|v1|reviews.demo.svc.cluster.local")
        );
        assert_eq!(
            auto_passthrough_cluster("outbound_.443_._.api.example.com").as_deref(),
            Some("outbound|443||api.example.com")
        );
        assert_eq!(auto_passthrough_cluster("api.example.com"), None);
        assert_eq!(auto_passthrough_cluster("outbound_.x_.v1_.a"), None);
    }
}
