//! Gateways: the listeners of a standalone gateway proxy (Istio node type `router`), built from
//! the `Gateway` resources that select it and the `VirtualService`s bound to those gateways.
//!
//! Shape: one [`GatewayListener`] per (bind address, port) — Envoy's listener `0.0.0.0_8080` —
//! holding every Istio `Server` on that port, merged, as [`GatewayServer`]s. A server carries
//! its hosts, its TLS settings ([`ServerTls`], Istio `ServerTLSSettings`) and the routes bound
//! to it: an HTTP [`RouteConfiguration`] for HTTP servers and terminated HTTPS, [`TlsRoute`]s
//! (SNI matches) for `PASSTHROUGH`, [`TcpRoute`]s for TCP and terminated TLS servers.
//!
//! How a proxy picks the server for a connection on a listener (Istio's filter chain match):
//! - TLS servers (protocol `HTTPS` or `TLS`): by the ClientHello's SNI against the server's
//!   `hosts`, most specific first (exact, then the longest `*.suffix`, then `*`); no SNI
//!   matches only a server with host `*`;
//! - plaintext HTTP servers (`HTTP`, `HTTP2`, `GRPC`): by the request's authority (port
//!   removed) against `hosts`, same order; then that server's route table picks the route;
//! - a `TCP` server is alone on its port and takes every connection;
//! - among servers whose hosts match equally specifically, the first in `servers` wins
//!   (Istio's merge order). The control plane merges plaintext HTTP servers that share the
//!   same hosts into one, so this tie only arises for overlapping, different host lists.
//!
//! Private keys resolved from Kubernetes Secrets travel inline ([`TlsCredential::Inline`]);
//! their `Debug` prints `<redacted>` and [`crate::ProxyConfig::redacted`] replaces them for
//! dumps (`/config_dump`).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::matcher::Cidr;
use crate::outbound::TcpRoute;
use crate::route::{RouteConfiguration, WeightedCluster};

/// One listening socket of a gateway proxy: every Istio `Server` of the selecting `Gateway`s on
/// this port (and bind address), merged in Istio's order (oldest Gateway first, then the order
/// of `servers` in each).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayListener {
    /// A unique name, Envoy's `<bind>_<port>`, e.g. `0.0.0.0_8080`.
    pub name: String,
    /// The port to listen on, 1–65535 (Istio `Server.port.number`).
    pub port: u16,
    /// The address to bind (Istio `Server.bind` when it is an IP address); `None`: every
    /// address (`0.0.0.0` and `::`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<IpAddr>,
    /// The servers sharing this socket; at least one. See the module docs for how a
    /// connection picks one.
    pub servers: Vec<GatewayServer>,
}

/// One Istio `Server` of a `Gateway`, with the routes of the `VirtualService`s bound to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayServer {
    /// A unique name, `<namespace>/<gateway>/<server name or index>` (Istio `Server.name`
    /// when set, otherwise the server's index in `servers`).
    pub name: String,
    /// The protocol exposed (Istio `Server.port.protocol`).
    pub protocol: GatewayProtocol,
    /// The hosts served, without Istio's `namespace/` prefix: a DNS name, `*.suffix` or `*`
    /// (Istio `Server.hosts`). At least one.
    pub hosts: Vec<String>,
    /// Answer every plaintext HTTP request with a 301 to the same URL with scheme `https`
    /// (Istio `ServerTLSSettings.httpsRedirect` on an `HTTP` server). Only on plaintext HTTP
    /// servers; Weft keeps it here rather than in [`ServerTls`] because such a server
    /// terminates no TLS.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub https_redirect: bool,
    /// TLS settings (Istio `Server.tls`); required for `HTTPS` and `TLS` servers, absent for
    /// the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTls>,
    /// The HTTP route table: the routes of the VirtualServices bound to this gateway whose
    /// hosts intersect the server's. Required exactly when [`GatewayServer::serves_http`]; its
    /// virtual hosts may be empty (every request gets 404 `NR`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_config: Option<RouteConfiguration>,
    /// SNI-routed TLS passthrough routes (Istio `VirtualService.tls`), first match wins; only
    /// on `PASSTHROUGH` servers. No match: the connection is closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_routes: Vec<TlsRoute>,
    /// TCP routes (Istio `VirtualService.tcp`), first match wins; only on `TCP` servers and
    /// `TLS` servers that terminate TLS. No match: the connection is closed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp_routes: Vec<TcpRoute>,
}

impl GatewayServer {
    /// Whether the proxy terminates TLS on this server: an `HTTPS` or `TLS` server whose mode
    /// is not `PASSTHROUGH`/`AUTO_PASSTHROUGH`.
    pub fn terminates_tls(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|tls| !tls.mode.is_passthrough())
    }

    /// Whether the proxy speaks HTTP to clients on this server: plaintext `HTTP`, `HTTP2`,
    /// `GRPC`, or `HTTPS` with TLS terminated (Istio builds an HTTP connection manager for
    /// exactly these).
    pub fn serves_http(&self) -> bool {
        match self.protocol {
            GatewayProtocol::Http | GatewayProtocol::Http2 | GatewayProtocol::Grpc => true,
            GatewayProtocol::Https => self.terminates_tls(),
            GatewayProtocol::Tls | GatewayProtocol::Tcp => false,
        }
    }

    /// Whether connections to this server start with a TLS ClientHello (protocol `HTTPS` or
    /// `TLS`), so the proxy picks the server by SNI.
    pub fn is_tls(&self) -> bool {
        matches!(self.protocol, GatewayProtocol::Https | GatewayProtocol::Tls)
    }
}

/// Istio `Port.protocol` of a gateway server, spelt as Istio spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum GatewayProtocol {
    /// HTTP/1.1 (and HTTP/2 with prior knowledge), plaintext.
    Http,
    /// HTTP over TLS; TLS terminated by the proxy unless the mode is a passthrough.
    Https,
    /// HTTP/2, plaintext.
    Http2,
    /// gRPC (HTTP/2), plaintext.
    Grpc,
    /// TLS routed by SNI (`PASSTHROUGH`), or terminated and then proxied as TCP.
    Tls,
    /// Opaque TCP.
    Tcp,
}

impl GatewayProtocol {
    /// Istio's spelling: `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `TLS` or `TCP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "HTTP",
            Self::Https => "HTTPS",
            Self::Http2 => "HTTP2",
            Self::Grpc => "GRPC",
            Self::Tls => "TLS",
            Self::Tcp => "TCP",
        }
    }
}

/// Istio `ServerTLSSettings`, resolved: the mode, the credential and the client checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// How TLS is handled (Istio `ServerTLSSettings.mode`).
    pub mode: ServerTlsMode,
    /// The server certificate, key and client CA; required for `SIMPLE`, `MUTUAL` and
    /// `OPTIONAL_MUTUAL`, absent for the passthrough modes and `ISTIO_MUTUAL` (which uses the
    /// proxy's own workload certificate and the mesh's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<TlsCredential>,
    /// Accepted subject alternative names of the client certificate (Istio
    /// `subjectAltNames`); empty: any name the CA signed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// The lowest TLS version accepted (Istio `minProtocolVersion`); `None`: TLS 1.2, Istio's
    /// server default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsVersion>,
    /// The highest TLS version accepted (Istio `maxProtocolVersion`); `None`: TLS 1.3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsVersion>,
    /// Allowed cipher suites, by their OpenSSL/BoringSSL names as Istio takes them (Istio
    /// `cipherSuites`); empty: the proxy's defaults.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// Istio `ServerTLSSettings.TLSmode`, spelt as Istio spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Route by SNI without terminating TLS.
    Passthrough,
    /// Terminate TLS with the server certificate; no client certificate asked.
    Simple,
    /// Terminate TLS and require a client certificate signed by the credential's CA.
    Mutual,
    /// Route by SNI without terminating; the SNI names the destination cluster
    /// (`outbound_.<port>_.<subset>_.<host>`), no VirtualService needed.
    AutoPassthrough,
    /// Terminate mesh mTLS with the proxy's workload certificate, clients verified against the
    /// mesh's roots.
    IstioMutual,
    /// Like `MUTUAL`, but a client without a certificate is accepted too.
    OptionalMutual,
}

impl ServerTlsMode {
    /// Istio's spelling, e.g. `ISTIO_MUTUAL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passthrough => "PASSTHROUGH",
            Self::Simple => "SIMPLE",
            Self::Mutual => "MUTUAL",
            Self::AutoPassthrough => "AUTO_PASSTHROUGH",
            Self::IstioMutual => "ISTIO_MUTUAL",
            Self::OptionalMutual => "OPTIONAL_MUTUAL",
        }
    }

    /// Whether TLS passes through unterminated (`PASSTHROUGH`, `AUTO_PASSTHROUGH`).
    pub fn is_passthrough(self) -> bool {
        matches!(self, Self::Passthrough | Self::AutoPassthrough)
    }

    /// Whether the mode needs a [`TlsCredential`] (`SIMPLE`, `MUTUAL`, `OPTIONAL_MUTUAL`).
    pub fn needs_credential(self) -> bool {
        matches!(self, Self::Simple | Self::Mutual | Self::OptionalMutual)
    }

    /// Whether the mode verifies client certificates against a CA from the credential
    /// (`MUTUAL`, `OPTIONAL_MUTUAL`).
    pub fn needs_client_ca(self) -> bool {
        matches!(self, Self::Mutual | Self::OptionalMutual)
    }
}

/// Istio `ServerTLSSettings.TLSProtocol`, spelt as Istio spells it; ordered by version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TlsVersion {
    /// The proxy chooses (Istio `TLS_AUTO`).
    #[serde(rename = "TLS_AUTO")]
    Auto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    V1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    V1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    V1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    V1_3,
}

impl TlsVersion {
    /// Istio's spelling, e.g. `TLSV1_2`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "TLS_AUTO",
            Self::V1_0 => "TLSV1_0",
            Self::V1_1 => "TLSV1_1",
            Self::V1_2 => "TLSV1_2",
            Self::V1_3 => "TLSV1_3",
        }
    }
}

/// Where a server's certificate, private key and client CA come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsCredential {
    /// PEM files on the gateway's file system (Istio `serverCertificate`, `privateKey`,
    /// `caCertificates`); the proxy re-reads them when they change.
    Files {
        /// Path of the PEM certificate chain, leaf first.
        server_certificate: String,
        /// Path of the PEM private key.
        private_key: String,
        /// Path of the PEM CA bundle verifying client certificates (`MUTUAL`,
        /// `OPTIONAL_MUTUAL`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_certificates: Option<String>,
    },
    /// PEM text resolved by the control plane from the Secret named by Istio's
    /// `credentialName` in the Gateway's namespace (Istio's SDS: keys `tls.crt`/`tls.key`/
    /// `ca.crt` or `cert`/`key`/`cacert`, the CA also from `<name>-cacert`).
    Inline {
        /// The Secret it came from, `<namespace>/<name>`, for logs and dumps.
        credential_name: String,
        /// The PEM certificate chain, leaf first.
        server_certificate: String,
        /// The PEM private key; redacted in `Debug`.
        private_key: PrivateKeyPem,
        /// The PEM CA bundle verifying client certificates (`MUTUAL`, `OPTIONAL_MUTUAL`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_certificates: Option<String>,
    },
}

impl TlsCredential {
    /// The client CA (path or PEM), if the credential has one.
    pub fn ca_certificates(&self) -> Option<&str> {
        match self {
            Self::Files {
                ca_certificates, ..
            }
            | Self::Inline {
                ca_certificates, ..
            } => ca_certificates.as_deref(),
        }
    }
}

/// A PEM private key carried in the config. Serialises as the plain string (the proxy needs
/// it); `Debug` prints `<redacted>` so logs never show it. Use [`PrivateKeyPem::expose`] to
/// read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(String);

/// What [`crate::ProxyConfig::redacted`] puts in place of private keys.
pub const REDACTED: &str = "<redacted>";

impl PrivateKeyPem {
    /// Wraps PEM text.
    pub fn new(pem: impl Into<String>) -> Self {
        Self(pem.into())
    }

    /// The PEM text. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PrivateKeyPem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(REDACTED)
    }
}

/// Istio `TLSRoute`: the first route whose matches accept the connection's SNI picks a
/// weighted cluster; the TLS bytes are forwarded unterminated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsRoute {
    /// Any of these (Istio `TLSRoute.match`); at least one.
    #[serde(rename = "match")]
    pub matches: Vec<TlsMatch>,
    /// The destinations and their weights (Istio `TLSRoute.route`).
    pub clusters: Vec<WeightedCluster>,
}

/// Istio `TLSMatchAttributes` as a gateway evaluates it: every set field must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsMatch {
    /// SNI values, exact or `*.suffix` or `*` (Istio `sniHosts`); at least one.
    pub sni_hosts: Vec<String>,
    /// The connection's destination IP lies in one of these (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<Cidr>,
}

/// Whether `host` is a valid gateway host or SNI for the model: `*`, or a DNS name (labels of
/// ASCII letters, digits and `-`, not starting or ending with `-`, 1–63 bytes each, 253 in
/// all), optionally after a `*.` wildcard. The rule [`crate::ProxyConfig::validate`] applies to
/// `hosts` and `sni_hosts`.
pub fn is_valid_gateway_host(host: &str) -> bool {
    let name = host.strip_prefix("*.").unwrap_or(host);
    host == "*"
        || (name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
            }))
}

/// Whether `host` (a DNS name, possibly with a leading `*.` wildcard) matches the gateway
/// host pattern `pattern` (`*`, `*.suffix` or exact), case-insensitively. This is Istio's
/// `host.Name.Matches` for a concrete name against a server host; used for SNI and authority.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => {
            host.len() > suffix.len()
                && host
                    .get(host.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        }
        None => pattern.eq_ignore_ascii_case(host),
    }
}

#[cfg(test)]
mod tests;
