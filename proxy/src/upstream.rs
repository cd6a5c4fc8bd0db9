//! Upstream connections: a connector (TCP with connect timeout and keepalive, optionally Istio
//! mutual TLS) and per-cluster connection pools (the `pool` submodule) that apply Istio's
//! `ConnectionPoolSettings`: `http.idleTimeout` (idle connections are closed by the pool's
//! timer), `http.maxRequestsPerConnection` and `tcp.maxConnectionDuration` (a connection that
//! reached either is not reused, and closes when its request is done), and `tcp.tcpKeepalive`
//! (SO_KEEPALIVE with the given probes).

mod pool;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use weft_proxy_config::{Cluster, H2UpgradePolicy, Protocol, TcpKeepalive, TransportSocket};

use crate::mesh_tls::MeshTls;
pub use pool::{Pool, PoolError, PoolSettings};

/// The boxed error type of bodies flowing through the proxy.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of requests and responses flowing through the proxy.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// How long an idle pooled upstream connection is kept when the cluster sets no
/// `http.idleTimeout` (Istio's documented default, 1 h).
pub const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(3_600);

/// How long a proxied TCP connection may stay idle when the cluster sets no `tcp.idleTimeout`
/// (Istio's documented default, 1 h, as Envoy's TCP proxy).
pub const DEFAULT_TCP_IDLE: Duration = Duration::from_secs(3_600);

/// A connection to an upstream: plain TCP or TLS over TCP.
#[derive(Debug)]
pub enum UpstreamStream {
    /// Plaintext.
    Plain(TcpStream),
    /// Mutual TLS (boxed: the TLS state is large).
    Tls(Box<TlsStream<TcpStream>>),
}

impl UpstreamStream {
    /// The peer's SPIFFE ID for TLS connections.
    pub fn peer_identity(&self) -> Option<String> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(tls) => crate::tls::peer_identity(tls.get_ref().1),
        }
    }
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            Self::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens upstream connections to the address in the request URI's authority (an endpoint's
/// `ip:port`), within a connect timeout, optionally wrapping them in TLS.
#[derive(Clone)]
pub struct Connector {
    connect_timeout: Duration,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    source: Option<std::net::IpAddr>,
    keepalive: Option<socket2::TcpKeepalive>,
}

/// The source address inbound connections to the workload's own IP are bound to. Istio's
/// capture rules return early for traffic from `127.0.0.6` on `lo`
/// (`-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN`); without it, the proxy's connection to
/// its own pod IP is redirected back to the inbound listener and loops (Istio's
/// `InboundPassthroughClusterIpv4` binds the same address).
pub const INBOUND_PASSTHROUGH_SOURCE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 6);

impl Connector {
    /// A plaintext connector with `connect_timeout`.
    pub fn plain(connect_timeout: Duration) -> Self {
        Self {
            connect_timeout,
            tls: None,
            source: None,
            keepalive: None,
        }
    }

    /// The same connector, enabling TCP keepalive on its connections with `keepalive`'s
    /// probe settings (Istio `TCPSettings.tcpKeepalive`; unset fields keep the OS defaults;
    /// times are whole seconds, at least 1, as the socket options take them).
    pub fn with_keepalive(mut self, keepalive: Option<&TcpKeepalive>) -> Self {
        self.keepalive = keepalive.map(|keepalive| {
            let seconds = |ms: u64| Duration::from_secs((ms / 1_000).max(1));
            let mut options = socket2::TcpKeepalive::new();
            if let Some(time) = keepalive.time_ms {
                options = options.with_time(seconds(time));
            }
            if let Some(interval) = keepalive.interval_ms {
                options = options.with_interval(seconds(interval));
            }
            if let Some(probes) = keepalive.probes {
                options = options.with_retries(probes);
            }
            options
        });
        self
    }

    /// The same connector, binding connections to non-loopback addresses of `source`'s
    /// family to `source` (see [`INBOUND_PASSTHROUGH_SOURCE`]); loopback targets are connected
    /// as usual.
    pub fn with_source(mut self, source: std::net::IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// A TLS connector with `connect_timeout`, presenting `sni`.
    pub fn tls(
        connect_timeout: Duration,
        config: Arc<rustls::ClientConfig>,
        sni: ServerName<'static>,
    ) -> Self {
        Self {
            connect_timeout,
            tls: Some((TlsConnector::from(config), sni)),
            source: None,
            keepalive: None,
        }
    }

    /// Connects to `address`. Errors: `TimedOut` after the connect timeout, the OS error, or
    /// the TLS handshake error.
    pub async fn connect(&self, address: SocketAddr) -> io::Result<UpstreamStream> {
        let connect = async {
            match self.source {
                Some(source)
                    if source.is_ipv4() == address.is_ipv4() && !address.ip().is_loopback() =>
                {
                    let socket = if address.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.bind(SocketAddr::new(source, 0))?;
                    socket.connect(address).await
                }
                _ => TcpStream::connect(address).await,
            }
        };
        let tcp = tokio::time::timeout(self.connect_timeout, connect)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "upstream connect timeout"))??;
        let _ = tcp.set_nodelay(true);
        if let Some(keepalive) = &self.keepalive
            && let Err(error) = socket2::SockRef::from(&tcp).set_tcp_keepalive(keepalive)
        {
            tracing::debug!(%error, upstream = %address, "setting TCP keepalive failed");
        }
        match &self.tls {
            None => Ok(UpstreamStream::Plain(tcp)),
            Some((connector, sni)) => {
                let tls =
                    tokio::time::timeout(self.connect_timeout, connector.connect(sni.clone(), tcp))
                        .await
                        .map_err(|_| {
                            io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timeout")
                        })??;
                Ok(UpstreamStream::Tls(Box::new(tls)))
            }
        }
    }
}

/// A pooled HTTP client for one transport.
pub type HttpClient = Pool;

/// A cluster's pooled HTTP client.
#[derive(Clone, Copy)]
pub struct UpstreamClient<'a> {
    client: &'a HttpClient,
}

impl<'a> UpstreamClient<'a> {
    /// Sends `request` to the endpoint `address` on a pooled (or new) connection, as
    /// [`Pool::request`]; the connection's request and age limits apply. The pool's own
    /// future, with no wrapper of its own around it (each level adds to every request's
    /// future).
    ///
    /// Errors: the pool's (connect failure, reset, protocol error).
    pub fn request(
        self,
        address: SocketAddr,
        request: http::Request<ProxyBody>,
    ) -> impl Future<Output = Result<http::Response<hyper::body::Incoming>, PoolError>> + Send + 'a
    {
        self.client.request(address, request)
    }
}

/// The upstream side of one cluster: a plaintext client and, for `ISTIO_MUTUAL` clusters, an
/// mTLS client used for endpoints with a sidecar.
pub struct ClusterClients {
    /// Plaintext HTTP client.
    pub plain: HttpClient,
    /// mTLS HTTP client (Istio auto mTLS: only for endpoints with `has_sidecar`).
    pub mtls: Option<HttpClient>,
    /// Plaintext TCP connector.
    pub plain_tcp: Connector,
    /// mTLS TCP connector (ALPN `istio`).
    pub mtls_tcp: Option<Connector>,
    /// What these clients were built from; a new snapshot reuses them (and their pools) when it
    /// is unchanged.
    pub key: ClientKey,
}

/// The cluster settings that determine its clients.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientKey {
    transport: TransportSocket,
    http2: bool,
    connect_timeout_ms: u64,
    idle_timeout_ms: Option<u64>,
    keepalive: Option<TcpKeepalive>,
    max_requests_per_connection: Option<u32>,
    max_connection_duration_ms: Option<u64>,
    tcp_idle_timeout_ms: Option<u64>,
}

impl ClientKey {
    /// Whether requests go upstream as HTTP/2.
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// The key of `cluster`.
    pub fn of(cluster: &Cluster) -> Self {
        let http2 = matches!(cluster.protocol, Protocol::Http2 | Protocol::Grpc)
            || cluster.h2_upgrade == H2UpgradePolicy::Upgrade;
        Self {
            transport: cluster.transport.clone(),
            http2,
            connect_timeout_ms: cluster.connection_pool.tcp.connect_timeout_ms,
            idle_timeout_ms: cluster.connection_pool.http.idle_timeout_ms,
            keepalive: cluster.connection_pool.tcp.tcp_keepalive.clone(),
            // Istio: 0 means unlimited.
            max_requests_per_connection: cluster
                .connection_pool
                .http
                .max_requests_per_connection
                .filter(|max| *max > 0),
            max_connection_duration_ms: cluster.connection_pool.tcp.max_connection_duration_ms,
            tcp_idle_timeout_ms: cluster.connection_pool.tcp.idle_timeout_ms,
        }
    }
}

/// The TLS a cluster originates to every endpoint (DestinationRule `tls` mode `SIMPLE`, or
/// `MUTUAL` with `client`): the CA file, the client certificate and key files, the SNI and the
/// `subjectAltNames` the server certificate must carry.
struct Origination<'a> {
    ca_certificates: Option<&'a str>,
    client: Option<(&'a str, &'a str)>,
    sni: Option<&'a str>,
    subject_alt_names: &'a [String],
    /// `MUTUAL` with `credentialName`: the inline credential, used instead of the files.
    credential: Option<&'a weft_proxy_config::ClientCredential>,
}

impl Origination<'_> {
    /// The clients of a cluster that originates TLS: the "plain" (default) clients carry it,
    /// with ALPN `h2` or `http/1.1` for HTTP and none for TCP. Errors name the cluster and the
    /// unusable file or the missing SNI.
    fn clients(
        &self,
        cluster: &Cluster,
        key: &ClientKey,
        connect_timeout: Duration,
        build: impl Fn(Connector) -> HttpClient,
    ) -> Result<ClusterClients, String> {
        let keepalive = key.keepalive.as_ref();
        let sni = origination_sni(cluster, self.sni)?;
        let http_alpn: &[&[u8]] = if key.http2 {
            &[crate::tls::ALPN_H2]
        } else {
            &[crate::tls::ALPN_HTTP11]
        };
        let configure = |alpn: &[&[u8]]| {
            match self.credential {
                Some(credential) => crate::origination::credential_client_config(
                    credential,
                    alpn,
                    self.subject_alt_names,
                ),
                None => crate::origination::client_config(
                    self.ca_certificates,
                    self.client,
                    alpn,
                    self.subject_alt_names,
                ),
            }
            .map_err(|error| format!("cluster {}: {error}", cluster.name))
        };
        let http_config = configure(http_alpn)?;
        let tcp_config = configure(&[])?;
        let plain = build(
            Connector::tls(connect_timeout, http_config, sni.clone()).with_keepalive(keepalive),
        );
        let plain_tcp = Connector::tls(connect_timeout, tcp_config, sni).with_keepalive(keepalive);
        Ok(ClusterClients {
            plain,
            mtls: None,
            plain_tcp,
            mtls_tcp: None,
            key: key.clone(),
        })
    }
}

impl ClusterClients {
    /// Builds the clients for `cluster`. Returns an error naming the cluster when mTLS is
    /// required but `tls` is `None` or cannot build a client config, or when a `SIMPLE`/`MUTUAL`
    /// origination's files are unusable or no SNI host is known.
    pub fn new(cluster: &Cluster, tls: Option<&Arc<dyn MeshTls>>) -> Result<Self, String> {
        let key = ClientKey::of(cluster);
        let connect_timeout = Duration::from_millis(key.connect_timeout_ms);
        // Istio: `0s` disables the idle timeout.
        let idle = match key.idle_timeout_ms {
            None => Some(DEFAULT_POOL_IDLE),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        };
        let keepalive = key.keepalive.as_ref();
        let settings = PoolSettings {
            http2: key.http2,
            idle_timeout: idle,
            max_requests_per_connection: key.max_requests_per_connection,
            max_connection_duration: key.max_connection_duration_ms.map(Duration::from_millis),
        };
        let build = |connector: Connector| Pool::new(connector, settings.clone());
        let plain_tcp = Connector::plain(connect_timeout).with_keepalive(keepalive);
        let (mtls, mtls_tcp) = match &cluster.transport {
            TransportSocket::Plaintext => (None, None),
            TransportSocket::IstioMutual {
                expected_identities,
                sni,
                ..
            } => {
                let tls = tls.ok_or_else(|| {
                    format!(
                        "cluster {}: ISTIO_MUTUAL needs workload certificates (--cert-dir)",
                        cluster.name
                    )
                })?;
                let sni = ServerName::try_from(sni.clone())
                    .or_else(|_| ServerName::try_from("outbound.weft.invalid".to_owned()))
                    .map_err(|error| format!("cluster {}: SNI: {error}", cluster.name))?;
                let http_alpn: &[&[u8]] = if key.http2 {
                    &[crate::tls::ALPN_H2]
                } else {
                    &[crate::tls::ALPN_HTTP11]
                };
                let http_config = tls
                    .client_config(expected_identities, http_alpn)
                    .map_err(|error| format!("cluster {}: {error}", cluster.name))?;
                let tcp_config = tls
                    .client_config(expected_identities, &[crate::tls::ALPN_ISTIO])
                    .map_err(|error| format!("cluster {}: {error}", cluster.name))?;
                (
                    Some(build(
                        Connector::tls(connect_timeout, http_config, sni.clone())
                            .with_keepalive(keepalive),
                    )),
                    Some(
                        Connector::tls(connect_timeout, tcp_config, sni).with_keepalive(keepalive),
                    ),
                )
            }
            TransportSocket::Simple {
                ca_certificates,
                sni,
                subject_alt_names,
                ..
            } => {
                let origination = Origination {
                    ca_certificates: ca_certificates.as_deref(),
                    client: None,
                    sni: sni.as_deref(),
                    subject_alt_names,
                    credential: None,
                };
                return origination.clients(cluster, &key, connect_timeout, build);
            }
            TransportSocket::Mutual {
                client_certificate,
                private_key,
                ca_certificates,
                sni,
                subject_alt_names,
                credential,
            } => {
                let origination = Origination {
                    ca_certificates: ca_certificates.as_deref(),
                    client: Some((client_certificate.as_str(), private_key.as_str())),
                    sni: sni.as_deref(),
                    subject_alt_names,
                    credential: credential.as_ref(),
                };
                return origination.clients(cluster, &key, connect_timeout, build);
            }
        };
        Ok(Self {
            plain: build(plain_tcp.clone()),
            mtls,
            plain_tcp,
            mtls_tcp,
            key,
        })
    }

    /// Whether requests go upstream as HTTP/2.
    pub fn http2(&self) -> bool {
        self.key.http2
    }

    /// How long a proxied TCP connection may go without bytes in either direction (Istio
    /// `TCPSettings.idleTimeout`, default 1 h; `None`: `0s`, never).
    pub fn tcp_idle_timeout(&self) -> Option<Duration> {
        match self.key.tcp_idle_timeout_ms {
            None => Some(DEFAULT_TCP_IDLE),
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
        }
    }

    /// The HTTP client for an endpoint: mTLS if the cluster is `ISTIO_MUTUAL` and the endpoint
    /// has a sidecar or the cluster's rule set `ISTIO_MUTUAL` itself (`every_endpoint`),
    /// plaintext otherwise; with the cluster's per-connection limits.
    pub fn http_for(&self, has_sidecar: bool) -> UpstreamClient<'_> {
        let client = match (&self.mtls, self.mutual_for(has_sidecar)) {
            (Some(mtls), true) => mtls,
            _ => &self.plain,
        };
        UpstreamClient { client }
    }

    /// The TCP connector for an endpoint, by the same rule as [`ClusterClients::http_for`].
    pub fn tcp_for(&self, has_sidecar: bool) -> &Connector {
        match (&self.mtls_tcp, self.mutual_for(has_sidecar)) {
            (Some(mtls), true) => mtls,
            _ => &self.plain_tcp,
        }
    }

    /// Whether an endpoint gets the `ISTIO_MUTUAL` clients: one with a sidecar (Istio's auto
    /// mTLS), or any when the DestinationRule chose `ISTIO_MUTUAL` itself.
    fn mutual_for(&self, has_sidecar: bool) -> bool {
        has_sidecar
            || matches!(
                self.key.transport,
                TransportSocket::IstioMutual {
                    every_endpoint: true,
                    ..
                }
            )
    }
}

/// The SNI (and verified host name) of a `SIMPLE`/`MUTUAL` cluster: the configured `sni`, else
/// the service hostname from the Istio cluster name.
fn origination_sni(cluster: &Cluster, sni: Option<&str>) -> Result<ServerName<'static>, String> {
    let host = match sni {
        Some(sni) if !sni.is_empty() => sni.to_owned(),
        _ => cluster
            .name
            .parse::<weft_proxy_config::ClusterName>()
            .map(|name| name.hostname)
            .map_err(|_| {
                format!(
                    "cluster {}: TLS origination needs an sni (the cluster name has no hostname)",
                    cluster.name
                )
            })?,
    };
    ServerName::try_from(host).map_err(|error| format!("cluster {}: SNI: {error}", cluster.name))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::TokioIo;
    use tokio::net::TcpListener;
    use weft_proxy_config::ProxyConfig;

    use super::*;

    fn cluster(pool: &str) -> Cluster {
        let yaml = format!(
            "node: {{id: a, namespace: default}}\nclusters:\n  - name: c\n    connection_pool: {pool}\n"
        );
        ProxyConfig::from_yaml(&yaml).unwrap().clusters.remove(0)
    }

    #[tokio::test]
    async fn keepalive_settings_reach_the_upstream_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let keepalive = TcpKeepalive {
            probes: Some(4),
            time_ms: Some(30_000),
            interval_ms: Some(5_500),
        };
        let connector = Connector::plain(Duration::from_secs(1)).with_keepalive(Some(&keepalive));
        let UpstreamStream::Plain(stream) = connector.connect(address).await.unwrap() else {
            panic!("plain connector gave TLS");
        };
        let socket = socket2::SockRef::from(&stream);
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(30)
        );
        // Socket options take whole seconds.
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(5)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 4);
        // Without the setting, SO_KEEPALIVE stays off.
        let UpstreamStream::Plain(plain) = Connector::plain(Duration::from_secs(1))
            .connect(address)
            .await
            .unwrap()
        else {
            panic!("plain connector gave TLS");
        };
        assert!(!socket2::SockRef::from(&plain).keepalive().unwrap());
    }

    /// A local HTTP/1.1 server that counts the connections it accepts.
    async fn counting_server() -> (SocketAddr, Arc<AtomicUsize>) {
        slow_counting_server(Duration::ZERO).await
    }

    /// [`counting_server`] answering each request after `delay`.
    async fn slow_counting_server(delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |_request| async move {
                        tokio::time::sleep(delay).await;
                        Ok::<_, std::convert::Infallible>(
                            http::Response::new(Empty::<Bytes>::new()),
                        )
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        (address, accepted)
    }

    async fn get(clients: &ClusterClients, address: SocketAddr) {
        let request = http::Request::get("/")
            .body(
                Empty::<Bytes>::new()
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .unwrap();
        let response = clients
            .http_for(false)
            .request(address, request)
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        // Reading the body to its end hands the connection back to the pool.
        response.into_body().collect().await.unwrap();
    }

    #[tokio::test]
    async fn max_requests_per_connection_retires_used_up_connections() {
        let (address, accepted) = counting_server().await;
        let limited =
            ClusterClients::new(&cluster("{http: {max_requests_per_connection: 2}}"), None)
                .unwrap();
        for _ in 0..6 {
            get(&limited, address).await;
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            3,
            "6 requests, 2 per connection"
        );
        // Without the limit (or with Istio's 0, unlimited) one connection carries them all.
        let (address, accepted) = counting_server().await;
        let unlimited =
            ClusterClients::new(&cluster("{http: {max_requests_per_connection: 0}}"), None)
                .unwrap();
        for _ in 0..6 {
            get(&unlimited, address).await;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn max_connection_duration_retires_connections_that_reached_it() {
        // Each answer takes at least 5 ms, so a connection is always older than the 1 ms
        // limit when its response arrives: none is reused.
        let (address, accepted) = slow_counting_server(Duration::from_millis(5)).await;
        let limited =
            ClusterClients::new(&cluster("{tcp: {max_connection_duration_ms: 1}}"), None).unwrap();
        for _ in 0..3 {
            get(&limited, address).await;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
        let (address, accepted) = slow_counting_server(Duration::from_millis(5)).await;
        let unlimited = ClusterClients::new(&cluster("{}"), None).unwrap();
        for _ in 0..3 {
            get(&unlimited, address).await;
        }
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn idle_timeouts_follow_istios_defaults() {
        let default = ClusterClients::new(&cluster("{}"), None).unwrap();
        assert_eq!(default.tcp_idle_timeout(), Some(DEFAULT_TCP_IDLE));
        let off = ClusterClients::new(&cluster("{tcp: {idle_timeout_ms: 0}}"), None).unwrap();
        assert_eq!(off.tcp_idle_timeout(), None);
        let set = ClusterClients::new(&cluster("{tcp: {idle_timeout_ms: 1500}}"), None).unwrap();
        assert_eq!(set.tcp_idle_timeout(), Some(Duration::from_millis(1_500)));
    }
}
