//! Gateway listeners compiled into the run-time form the connection path uses: servers with
//! their route tables, TLS configurations and SNI routes, built once per config snapshot.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use weft_proxy_config::{
    Cidr, GatewayProtocol, GatewayServer, ProxyConfig, ServerTlsMode, TlsRoute,
};

use super::credential::ServerCredential;
use crate::mesh_tls::MeshTls;
use crate::snapshot::{
    ClusterRuntime, Clusters, CompiledTcpRoute, RouteTable, Snapshot, SnapshotError,
    compile_route_table, compile_tcp_routes, weighted,
};
use crate::tls::{ALPN_H2, ALPN_HTTP11};

/// One gateway listener at run time: the socket address it is bound to and its servers.
pub struct GatewayPort {
    /// The listener's name (`0.0.0.0_8080`).
    pub name: String,
    /// Where it listens: `bind:port`, `0.0.0.0:port` when the model has no bind address.
    pub address: SocketAddr,
    /// The servers, in the model's (Istio's merge) order.
    pub servers: Vec<GatewayServerRuntime>,
}

impl GatewayPort {
    /// Whether connections on this port start with a TLS ClientHello (it has an `HTTPS` or
    /// `TLS` server), so the server is picked by SNI.
    pub fn expects_tls(&self) -> bool {
        self.servers.iter().any(|server| server.is_tls())
    }

    /// The index of the TLS server for `sni` ([`super::select::pick`] over the `HTTPS`/`TLS`
    /// servers), or `None`.
    pub fn server_for_sni(&self, sni: Option<&str>) -> Option<usize> {
        super::select::pick(
            self.servers
                .iter()
                .enumerate()
                .filter(|(_, server)| server.is_tls())
                .map(|(index, server)| (index, server.hosts.as_slice())),
            sni,
        )
    }

    /// The index of the plaintext HTTP server for a request to `host` (an authority without
    /// port), or `None`.
    pub fn server_for_host(&self, host: &str) -> Option<usize> {
        super::select::pick(
            self.servers
                .iter()
                .enumerate()
                .filter(|(_, server)| !server.is_tls() && server.http.is_some())
                .map(|(index, server)| (index, server.hosts.as_slice())),
            Some(host),
        )
    }

    /// The `TCP` server of this port, if it has one (it takes every connection).
    pub fn tcp_server(&self) -> Option<&GatewayServerRuntime> {
        self.servers
            .iter()
            .find(|server| server.protocol == GatewayProtocol::Tcp)
    }
}

/// How a server terminates TLS.
pub enum Termination {
    /// `SIMPLE`, `MUTUAL`, `OPTIONAL_MUTUAL`: the server's own credential.
    Credential(Arc<ServerCredential>),
    /// `ISTIO_MUTUAL`: the proxy's workload certificate, clients verified against the mesh's
    /// roots; the error when the proxy has no workload certificate.
    Mesh(Result<Arc<rustls::ServerConfig>, String>),
}

/// A compiled Istio `TLSRoute`.
pub struct CompiledTlsRoute {
    /// Any-of: (SNI host patterns, destination subnets).
    pub matches: Vec<(Vec<String>, Vec<Cidr>)>,
    /// Weighted clusters.
    pub clusters: Vec<(Arc<ClusterRuntime>, u32)>,
}

impl CompiledTlsRoute {
    /// Whether the route accepts a connection with `sni` to `destination`.
    pub fn matches(&self, sni: &str, destination: SocketAddr) -> bool {
        self.matches.iter().any(|(hosts, subnets)| {
            hosts
                .iter()
                .any(|pattern| weft_proxy_config::host_matches(pattern, sni))
                && (subnets.is_empty()
                    || subnets
                        .iter()
                        .any(|subnet| subnet.contains(destination.ip())))
        })
    }
}

/// One server at run time.
pub struct GatewayServerRuntime {
    /// `<namespace>/<gateway>/<server>`.
    pub name: String,
    /// The protocol exposed.
    pub protocol: GatewayProtocol,
    /// The hosts served.
    pub hosts: Vec<String>,
    /// Redirect plaintext requests to `https` (301).
    pub https_redirect: bool,
    /// How TLS is terminated, for terminating servers.
    pub termination: Option<Termination>,
    /// `PASSTHROUGH` or `AUTO_PASSTHROUGH` for servers that forward TLS unterminated.
    pub passthrough: Option<ServerTlsMode>,
    /// The HTTP route table (servers that speak HTTP to clients).
    pub http: Option<RouteTable>,
    /// SNI routes (`PASSTHROUGH`).
    pub tls_routes: Vec<CompiledTlsRoute>,
    /// TCP routes (`TCP`, and `TLS` servers that terminate).
    pub tcp_routes: Vec<CompiledTcpRoute>,
}

impl GatewayServerRuntime {
    /// Whether connections start with a TLS ClientHello (`HTTPS` or `TLS`).
    pub fn is_tls(&self) -> bool {
        matches!(self.protocol, GatewayProtocol::Https | GatewayProtocol::Tls)
    }
}

/// Compiles the config's gateway listeners. Terminating servers keep the credential of the
/// same server in `previous` when its TLS settings are unchanged (so file reloads and rustls
/// state survive unrelated pushes); `tls` provides `ISTIO_MUTUAL`.
///
/// Errors: a [`SnapshotError`] from a route table that does not compile. A credential that
/// cannot be loaded does not fail the config: that server refuses handshakes until it loads.
pub fn compile(
    config: &ProxyConfig,
    clusters: &Clusters,
    previous: Option<&Snapshot>,
    tls: Option<&Arc<dyn MeshTls>>,
) -> Result<Vec<GatewayPort>, SnapshotError> {
    let mut ports = Vec::with_capacity(config.gateways.len());
    for listener in &config.gateways {
        let mut servers = Vec::with_capacity(listener.servers.len());
        for server in &listener.servers {
            let field = format!("gateways[{}].servers[{}]", listener.name, server.name);
            servers.push(compile_server(
                &field, server, config, clusters, previous, tls,
            )?);
        }
        ports.push(GatewayPort {
            name: listener.name.clone(),
            address: SocketAddr::new(
                listener.bind.unwrap_or(Ipv4Addr::UNSPECIFIED.into()),
                listener.port,
            ),
            servers,
        });
    }
    Ok(ports)
}

fn compile_server(
    field: &str,
    server: &GatewayServer,
    config: &ProxyConfig,
    clusters: &Clusters,
    previous: Option<&Snapshot>,
    tls: Option<&Arc<dyn MeshTls>>,
) -> Result<GatewayServerRuntime, SnapshotError> {
    let termination = match &server.tls {
        Some(settings) if settings.mode == ServerTlsMode::IstioMutual => {
            Some(Termination::Mesh(match tls {
                Some(tls) => tls.server_config().map_err(|error| error.to_string()),
                None => Err(
                    "ISTIO_MUTUAL needs the proxy's workload certificate (--cert-dir)".to_owned(),
                ),
            }))
        }
        Some(settings) if !settings.mode.is_passthrough() => {
            let reused = previous.and_then(|snapshot| {
                snapshot
                    .gateways
                    .iter()
                    .flat_map(|port| &port.servers)
                    .find(|old| old.name == server.name)
                    .and_then(|old| match &old.termination {
                        Some(Termination::Credential(credential))
                            if credential.settings() == settings =>
                        {
                            Some(Arc::clone(credential))
                        }
                        _ => None,
                    })
            });
            let alpn: &[&[u8]] = if server.serves_http() {
                &[ALPN_H2, ALPN_HTTP11]
            } else {
                &[]
            };
            Some(Termination::Credential(reused.unwrap_or_else(|| {
                Arc::new(ServerCredential::new(&server.name, settings, alpn))
            })))
        }
        _ => None,
    };
    let http = match &server.route_config {
        Some(table) if server.serves_http() => Some(compile_route_table(
            &format!("{field}.route_config"),
            table,
            config,
            clusters,
        )?),
        _ => None,
    };
    Ok(GatewayServerRuntime {
        name: server.name.clone(),
        protocol: server.protocol,
        hosts: server.hosts.clone(),
        https_redirect: server.https_redirect,
        termination,
        passthrough: server
            .tls
            .as_ref()
            .map(|settings| settings.mode)
            .filter(|mode| mode.is_passthrough()),
        http,
        tls_routes: server
            .tls_routes
            .iter()
            .map(|route| compile_tls_route(route, clusters))
            .collect(),
        tcp_routes: compile_tcp_routes(&server.tcp_routes, config, clusters),
    })
}

fn compile_tls_route(route: &TlsRoute, clusters: &Clusters) -> CompiledTlsRoute {
    CompiledTlsRoute {
        matches: route
            .matches
            .iter()
            .map(|tls_match| {
                (
                    tls_match.sni_hosts.clone(),
                    tls_match.destination_subnets.clone(),
                )
            })
            .collect(),
        clusters: weighted(&route.clusters, clusters),
    }
}
