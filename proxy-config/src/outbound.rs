//! Outbound: traffic the workload sends, captured to the proxy's outbound listener (Istio's
//! `virtualOutbound` on 15001) and dispatched by original destination (VIP, port).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::matcher::Cidr;
use crate::route::{RouteConfiguration, WeightedCluster};

/// Istio `MeshConfig.OutboundTrafficPolicy.Mode`: what happens to traffic for a destination no
/// [`OutboundListener`] matches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicy {
    /// Pass it through to the original destination (Istio's default).
    #[default]
    AllowAny,
    /// Refuse it: HTTP gets a 502 with response flag `NR`, TCP is closed.
    RegistryOnly,
}

/// An application protocol (Istio's protocol selection; Envoy's codec choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Protocol {
    /// HTTP/1.1 (or HTTP/2 with prior knowledge, detected by the proxy).
    Http,
    /// HTTP/2.
    Http2,
    /// gRPC (HTTP/2).
    Grpc,
    /// Opaque TCP.
    Tcp,
    /// TLS originated by the application (routed by SNI, proxied as TCP).
    Tls,
    /// Not declared: the proxy sniffs HTTP/1.x and HTTP/2 preface, otherwise TCP.
    #[default]
    Unknown,
}

impl Protocol {
    /// Whether the proxy treats traffic of this protocol as HTTP (HTTP/1.1, HTTP/2 or gRPC).
    pub fn is_http(self) -> bool {
        matches!(self, Self::Http | Self::Http2 | Self::Grpc)
    }
}

/// One outbound (service, port): the traffic for any of `addresses` on `port` is handled by
/// `http` routes (HTTP protocols, or sniffed HTTP for [`Protocol::Unknown`]) or `tcp` routes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundListener {
    /// A unique name, conventionally `<hostname>:<port>`.
    pub name: String,
    /// The service's hostname, e.g. `reviews.default.svc.cluster.local`.
    pub hostname: String,
    /// The service's VIPs (ClusterIPs, ServiceEntry addresses). Empty: matched by port only (an
    /// Istio wildcard listener `0.0.0.0_<port>`).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// The service port.
    pub port: u16,
    /// The service port's protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// The HTTP route table; required when `protocol.is_http()`.
    #[serde(default)]
    pub http: Option<RouteConfiguration>,
    /// TCP routes, first match wins; used for TCP/TLS and for non-HTTP traffic on `Unknown`.
    #[serde(default)]
    pub tcp: Vec<TcpRoute>,
}

/// Istio `TCPRoute`: the first route whose matches accept the connection picks a weighted
/// cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpRoute {
    /// Any of these (empty: every connection).
    #[serde(default, rename = "match")]
    pub matches: Vec<L4Match>,
    /// The destinations and their weights.
    pub clusters: Vec<WeightedCluster>,
}

/// Istio `L4MatchAttributes`: all set fields must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct L4Match {
    /// The destination port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The original destination IP lies in one of these (empty: any).
    #[serde(default)]
    pub destination_subnets: Vec<Cidr>,
    /// The proxy's own workload has all these labels.
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
}
