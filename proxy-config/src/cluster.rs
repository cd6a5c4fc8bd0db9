//! Upstream clusters: Istio's `outbound|<port>|<subset>|<host>` clusters with the
//! DestinationRule traffic policy applied, and their endpoints.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::PrivateKeyPem;
use crate::node::Locality;
use crate::outbound::Protocol;

mod balancing;

pub use balancing::{
    DEFAULT_WARMUP_AGGRESSION, DEFAULT_WARMUP_MINIMUM_PERCENT, LocalityDistribute,
    LocalityFailover, LocalityLbSetting, TcpKeepalive, Warmup,
};

/// Envoy's/Istio's special cluster forwarding to the original destination (ALLOW_ANY).
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
/// Envoy's/Istio's special cluster that drops traffic (REGISTRY_ONLY).
pub const BLACK_HOLE_CLUSTER: &str = "BlackHoleCluster";
/// Istio's special cluster for inbound traffic to undeclared ports.
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";

/// An upstream cluster: one (service, port, subset) with its policies and endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Istio's name, e.g. `outbound|9080|v1|reviews.default.svc.cluster.local` (see
    /// [`ClusterName`]).
    pub name: String,
    /// Load-balancing policy (Istio `LoadBalancerSettings.simple`); with `consistent_hash`,
    /// the policy for requests that lack the hash key.
    #[serde(default)]
    pub lb_policy: LbPolicy,
    /// Consistent-hash load balancing (Istio `LoadBalancerSettings.consistentHash`); `None`:
    /// off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistent_hash: Option<ConsistentHash>,
    /// Locality load balancing (Istio `LoadBalancerSettings.localityLbSetting`, which replaces
    /// the mesh-wide setting); `None`: the mesh default (Istio's `enabled: true` with no rules:
    /// failover by region, zone and sub-zone, only with outlier detection). See
    /// [`LocalityLbSetting`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb: Option<LocalityLbSetting>,
    /// Slow start of new endpoints (Istio `LoadBalancerSettings.warmup`, or the deprecated
    /// `warmupDurationSecs`); `None`: off. See [`Warmup`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    /// How connections to endpoints are secured (Istio `ClientTLSSettings`, or auto mTLS).
    #[serde(default)]
    pub transport: TransportSocket,
    /// The protocol spoken to the upstream (the service port's protocol).
    #[serde(default)]
    pub protocol: Protocol,
    /// Istio `ConnectionPoolSettings.http.h2UpgradePolicy`: whether HTTP/1.1 requests are sent
    /// upstream as HTTP/2.
    #[serde(default)]
    pub h2_upgrade: H2UpgradePolicy,
    /// Connection limits and timeouts (Istio `ConnectionPoolSettings`).
    #[serde(default)]
    pub connection_pool: ConnectionPoolSettings,
    /// Passive health checking (Istio `OutlierDetection`); `None`: disabled.
    #[serde(default)]
    pub outlier_detection: Option<OutlierDetection>,
    /// The endpoints (EDS); empty: every request fails with flag `UH`.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// DNS discovery (Envoy `STRICT_DNS`/`LOGICAL_DNS` clusters, Istio ServiceEntry
    /// `resolution: DNS`/`DNS_ROUND_ROBIN`): the proxy resolves these host names and uses the
    /// addresses as the endpoints, instead of `endpoints`. `None`: static endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsDiscovery>,
}

/// Consistent-hash load balancing of a cluster (Istio `LoadBalancerSettings.consistentHash`,
/// `ConsistentHashLB`): requests with the same key go to the same endpoint; requests without
/// the key are balanced by the cluster's `lb_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistentHash {
    /// What the request is hashed on (Istio's hash key oneOf).
    pub key: HashKey,
    /// How hashes map to endpoints (`ringHash` or `maglev`; default a ring of 1024).
    #[serde(default)]
    pub algorithm: HashAlgorithm,
}

/// The hash key of [`ConsistentHash`] (Istio `ConsistentHashLB.hash_key` oneOf), tagged by
/// `type`: `{type: http_header_name, name}`, `{type: http_cookie, name, path, ttl_ms}`,
/// `{type: use_source_ip}`, `{type: http_query_parameter_name, name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HashKey {
    /// `httpHeaderName`: a request header's value.
    HttpHeaderName {
        /// The header name.
        name: String,
    },
    /// `httpCookie`: a cookie's value; the proxy generates the cookie when the request lacks
    /// it.
    HttpCookie {
        /// The cookie name.
        name: String,
        /// `path` of a generated cookie.
        #[serde(default)]
        path: Option<String>,
        /// `ttl` in ms, as Envoy's hash-policy cookie reads it: `None` generates no cookie
        /// (requests without it use the simple policy), `Some(0)` generates a session cookie
        /// (no `Max-Age`), `Some(n)` one with `Max-Age` of `n / 1000` seconds.
        #[serde(default)]
        ttl_ms: Option<u64>,
    },
    /// `useSourceIp`: the downstream address (HTTP and TCP).
    UseSourceIp,
    /// `httpQueryParameterName`: a query parameter's value.
    HttpQueryParameterName {
        /// The parameter name.
        name: String,
    },
}

/// Istio's (and Envoy's) default `ringHash.minimumRingSize`.
pub const DEFAULT_MINIMUM_RING_SIZE: u64 = 1024;
/// Istio's (and Envoy's) default `maglev.tableSize` (a prime).
pub const DEFAULT_MAGLEV_TABLE_SIZE: u64 = 65_537;

/// The consistent-hash algorithm (Istio `ConsistentHashLB.ringHash` / `.maglev`), tagged by
/// `type`: `{type: ring_hash, minimum_ring_size}` or `{type: maglev, table_size}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum HashAlgorithm {
    /// Ring hash with at least `minimum_ring_size` points (Istio default 1024).
    RingHash {
        /// `ringHash.minimumRingSize` (or the deprecated `minimumRingSize`).
        minimum_ring_size: u64,
    },
    /// Maglev with a `table_size` lookup table (Istio default 65537, a prime).
    Maglev {
        /// `maglev.tableSize`.
        table_size: u64,
    },
}

impl Default for HashAlgorithm {
    /// Istio's default: `ringHash` with `minimumRingSize` 1024.
    fn default() -> Self {
        Self::RingHash {
            minimum_ring_size: DEFAULT_MINIMUM_RING_SIZE,
        }
    }
}

/// Istio `LoadBalancerSettings.SimpleLB`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbPolicy {
    /// Weighted round robin.
    RoundRobin,
    /// Power of two choices by active requests (Istio's default since 1.14).
    #[default]
    LeastRequest,
    /// Random pick, weighted.
    Random,
    /// Forward to the original destination address (no endpoints).
    Passthrough,
}

/// Istio `ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Follow the mesh default (do not upgrade).
    #[default]
    Default,
    /// Never upgrade.
    DoNotUpgrade,
    /// Send HTTP/1.1 requests upstream as HTTP/2.
    Upgrade,
}

/// How the proxy secures connections to a cluster's endpoints (Istio `ClientTLSSettings.mode`
/// spelling in serde: `DISABLE`, `ISTIO_MUTUAL`, `SIMPLE`, `MUTUAL`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum TransportSocket {
    /// Plaintext (Istio `DISABLE`).
    #[default]
    #[serde(rename = "DISABLE")]
    Plaintext,
    /// Istio mutual TLS with the proxy's own workload certificate. Under Istio's auto mTLS
    /// (`transport_socket_matches` on the `tlsMode: istio` label) it applies only to endpoints
    /// with `has_sidecar`, others get plaintext; with `every_endpoint` (a DestinationRule that
    /// sets `ISTIO_MUTUAL` itself, whose TLS Istio puts on the whole cluster) to every endpoint.
    IstioMutual {
        /// SPIFFE IDs the server certificate may carry: the DestinationRule's
        /// `subjectAltNames` when set, else the service's accounts.
        #[serde(default)]
        expected_identities: Vec<String>,
        /// SNI sent: the DestinationRule's `sni` when set, else Istio's
        /// `outbound_.<port>_.<subset>_.<host>`.
        #[serde(default)]
        sni: String,
        /// Whether every endpoint gets mutual TLS, sidecar or not (a DestinationRule's own
        /// `ISTIO_MUTUAL`); `false`: auto mTLS, endpoints with `has_sidecar` only.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        every_endpoint: bool,
    },
    /// TLS originated by the proxy, server verified (Istio `SIMPLE`).
    Simple {
        /// CA bundle file; `None`: the system roots.
        #[serde(default)]
        ca_certificates: Option<String>,
        /// SNI sent.
        #[serde(default)]
        sni: Option<String>,
        /// Accepted server SANs; empty: any (hostname verification by SNI).
        #[serde(default)]
        subject_alt_names: Vec<String>,
    },
    /// Mutual TLS with a given client certificate (Istio `MUTUAL`): from files, or from the
    /// Secret named by `credentialName` (`credential`, which then replaces the files and
    /// `ca_certificates`).
    Mutual {
        /// Client certificate chain file (PEM); empty with `credential`.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        client_certificate: String,
        /// Client private key file (PEM); empty with `credential`. A key from a file is never
        /// in the model.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        private_key: String,
        /// CA bundle file.
        #[serde(default)]
        ca_certificates: Option<String>,
        /// SNI sent.
        #[serde(default)]
        sni: Option<String>,
        /// Accepted server SANs.
        #[serde(default)]
        subject_alt_names: Vec<String>,
        /// The client certificate, key and CA resolved by the control plane from the Secret
        /// named by Istio `ClientTLSSettings.credentialName`; `None`: the files above apply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        credential: Option<ClientCredential>,
    },
}

impl TransportSocket {
    /// Replaces an inline private key ([`ClientCredential::private_key`]) with
    /// [`crate::REDACTED`], for dumps (see [`crate::ProxyConfig::redacted`]); other transports
    /// are left as they are.
    pub fn redact_private_key(&mut self) {
        if let Self::Mutual {
            credential:
                Some(ClientCredential {
                    private_key: Some(key),
                    ..
                }),
            ..
        } = self
        {
            *key = PrivateKeyPem::new(crate::REDACTED);
        }
    }
}

/// A client credential for TLS origination, resolved by the control plane from the Kubernetes
/// Secret named by Istio's `ClientTLSSettings.credentialName` in the namespace of the proxy
/// using it (Istio: "The secret (of type generic) should contain the following keys and
/// values: key, cert, cacert ... Secret of type tls for client certificates along with ca.crt
/// key for CA certificates is also supported"; the CA may also come from the Secret
/// `<name>-cacert`). The PEM travels inline, as Istio's SDS sends it to Envoy; the key is
/// redacted in `Debug` and in [`crate::ProxyConfig::redacted`].
///
/// A Secret that is missing or lacks the certificate or the key leaves `certificate_chain` or
/// `private_key` `None`: the proxy then fails every connection of the cluster (flag `UF`), as
/// Envoy's cluster does while its SDS secret is missing — never plaintext, never without the
/// client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredential {
    /// The Secret it came from, `<namespace>/<name>`, for logs and dumps.
    pub credential_name: String,
    /// The PEM certificate chain, leaf first (key `tls.crt` or `cert`); `None`: not found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_chain: Option<String>,
    /// The PEM private key (key `tls.key` or `key`); `None`: not found. Redacted in `Debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<PrivateKeyPem>,
    /// The PEM CA bundle verifying the server (key `ca.crt` or `cacert` of the Secret, else of
    /// the Secret `<name>-cacert`); `None`: the system roots, as for `SIMPLE` without
    /// `caCertificates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

impl ClientCredential {
    /// The certificate chain and private key PEM when both were found; `None` means every
    /// connection of the cluster must fail.
    pub fn identity(&self) -> Option<(&str, &str)> {
        Some((
            self.certificate_chain.as_deref()?,
            self.private_key.as_ref()?.expose(),
        ))
    }
}

/// Istio `ConnectionPoolSettings`: limits, timeouts and keepalive of upstream connections.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    /// TCP settings.
    #[serde(default)]
    pub tcp: TcpPoolSettings,
    /// HTTP settings.
    #[serde(default)]
    pub http: HttpPoolSettings,
}

/// Istio `ConnectionPoolSettings.TCPSettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpPoolSettings {
    /// Maximum connections to the cluster (`maxConnections`); `None`: unlimited.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// TCP connect timeout in ms (`connectTimeout`; Istio's default 10 000).
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// `tcpKeepalive`: SO_KEEPALIVE on upstream sockets with these probe settings; `None`:
    /// no keepalive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// `maxConnectionDuration` in ms: an upstream HTTP connection is not reused for a request
    /// once it is this old, and is closed; `None`: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration_ms: Option<u64>,
    /// `idleTimeout` of proxied TCP connections in ms: closed after this long without bytes
    /// in either direction; `None`: Istio's default, 1 h; `Some(0)`: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
}

impl Default for TcpPoolSettings {
    fn default() -> Self {
        Self {
            max_connections: None,
            connect_timeout_ms: default_connect_timeout_ms(),
            tcp_keepalive: None,
            max_connection_duration_ms: None,
            idle_timeout_ms: None,
        }
    }
}

fn default_connect_timeout_ms() -> u64 {
    10_000
}

/// Istio `ConnectionPoolSettings.HTTPSettings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpPoolSettings {
    /// `http1MaxPendingRequests`; `None`: unlimited.
    #[serde(default)]
    pub http1_max_pending_requests: Option<u32>,
    /// `http2MaxRequests`; `None`: unlimited.
    #[serde(default)]
    pub http2_max_requests: Option<u32>,
    /// `maxRequestsPerConnection`; `None`: unlimited.
    #[serde(default)]
    pub max_requests_per_connection: Option<u32>,
    /// `maxRetries` outstanding to the cluster; `None`: unlimited.
    #[serde(default)]
    pub max_retries: Option<u32>,
    /// `idleTimeout` in ms for pooled connections: a connection without active requests for
    /// this long is closed; `None`: Istio's default, 1 h.
    #[serde(default)]
    pub idle_timeout_ms: Option<u64>,
}

/// Istio `OutlierDetection`: passive health checking by consecutive errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    /// Consecutive 5xx before ejection (`consecutive5xxErrors`).
    #[serde(default)]
    pub consecutive_5xx_errors: Option<u32>,
    /// Consecutive 502/503/504 before ejection (`consecutiveGatewayErrors`, or the deprecated
    /// `consecutiveErrors`, which Istio maps to gateway errors).
    #[serde(default)]
    pub consecutive_gateway_errors: Option<u32>,
    /// `splitExternalLocalOriginErrors`: locally originated failures (connect failure,
    /// timeout, reset) are counted apart from upstream 5xx, by
    /// `consecutive_local_origin_failures`; `false`: they count as 5xx/gateway errors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split_external_local_origin_errors: bool,
    /// Consecutive locally originated failures before ejection
    /// (`consecutiveLocalOriginFailures`), used only with `split_external_local_origin_errors`;
    /// `None`: Envoy's default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Analysis interval in ms (`interval`, default 10 000).
    #[serde(default = "ten_seconds")]
    pub interval_ms: u64,
    /// Minimum ejection duration in ms (`baseEjectionTime`, default 30 000).
    #[serde(default = "thirty_seconds")]
    pub base_ejection_time_ms: u64,
    /// Maximum share of endpoints ejected, 0–100 (`maxEjectionPercent`, default 10).
    #[serde(default = "ten_percent")]
    pub max_ejection_percent: f64,
    /// Outlier detection is off below this share of healthy endpoints, 0–100
    /// (`minHealthPercent`, default 0).
    #[serde(default)]
    pub min_health_percent: f64,
}

fn ten_seconds() -> u64 {
    10_000
}

fn thirty_seconds() -> u64 {
    30_000
}

fn ten_percent() -> f64 {
    10.0
}

/// One upstream endpoint (Envoy `LbEndpoint`; Istio `IstioEndpoint`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// The endpoint's IP (a pod IP, or a ServiceEntry address).
    pub address: IpAddr,
    /// The endpoint's port (the target port).
    pub port: u16,
    /// The workload's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the endpoint runs.
    #[serde(default)]
    pub locality: Locality,
    /// Load-balancing weight, at least 1.
    #[serde(default = "default_endpoint_weight")]
    pub weight: u32,
    /// Whether the endpoint runs a mesh proxy (Istio's `tlsMode: istio` label), so auto mTLS
    /// applies.
    #[serde(default)]
    pub has_sidecar: bool,
    /// The endpoint's SPIFFE ID, when known.
    #[serde(default)]
    pub identity: Option<String>,
}

fn default_endpoint_weight() -> u32 {
    1
}

/// Envoy's default `dns_refresh_rate` in ms.
pub const DEFAULT_DNS_REFRESH_RATE_MS: u64 = 5_000;

/// How a cluster's endpoints are found by DNS (Envoy's `STRICT_DNS`/`LOGICAL_DNS` cluster
/// discovery types, which Istio uses for ServiceEntry `resolution: DNS` and
/// `DNS_ROUND_ROBIN`). The proxy resolves each host name off the request path, re-resolves it
/// after the answer's TTL (when `respect_dns_ttl`) bounded by 1 s below and
/// `refresh_rate_ms` above, and keeps a name's last good addresses while resolution fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDiscovery {
    /// `STRICT_DNS` (every address is an endpoint) or `LOGICAL_DNS` (the first address).
    #[serde(default)]
    pub lookup: DnsLookup,
    /// The names to resolve, each with the port and metadata its addresses get.
    pub endpoints: Vec<DnsEndpoint>,
    /// Envoy `dns_refresh_rate` in ms (default 5000): the interval between resolutions when
    /// the TTL is not respected, after a failure, and the longest wait otherwise.
    #[serde(default = "default_dns_refresh_rate_ms")]
    pub refresh_rate_ms: u64,
    /// Envoy `respect_dns_ttl` (Istio sets it): re-resolve when the answer's TTL ends.
    #[serde(default = "default_true")]
    pub respect_dns_ttl: bool,
}

fn default_dns_refresh_rate_ms() -> u64 {
    DEFAULT_DNS_REFRESH_RATE_MS
}

fn default_true() -> bool {
    true
}

/// Envoy's DNS cluster discovery types (serde `STRICT_DNS`, `LOGICAL_DNS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsLookup {
    /// Every address of every name is an endpoint, balanced by the cluster's policy (Istio
    /// `resolution: DNS`).
    #[default]
    #[serde(rename = "STRICT_DNS")]
    Strict,
    /// One endpoint: the first address of the first name's latest answer, used for new
    /// connections (Istio `resolution: DNS_ROUND_ROBIN`).
    #[serde(rename = "LOGICAL_DNS")]
    Logical,
}

/// One name of a [`DnsDiscovery`] (a ServiceEntry host, or an endpoint `address` that is a
/// name); its resolved addresses become [`Endpoint`]s with these fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsEndpoint {
    /// The DNS name resolved.
    pub hostname: String,
    /// The endpoint port (the target port).
    pub port: u16,
    /// The workload's labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Where the endpoint runs.
    #[serde(default)]
    pub locality: Locality,
    /// Load-balancing weight of each address, at least 1.
    #[serde(default = "default_endpoint_weight")]
    pub weight: u32,
    /// Whether the endpoint runs a mesh proxy (auto mTLS applies).
    #[serde(default)]
    pub has_sidecar: bool,
}

impl DnsEndpoint {
    /// The [`Endpoint`] for one resolved `address` of this name.
    pub fn at(&self, address: IpAddr) -> Endpoint {
        Endpoint {
            address,
            port: self.port,
            labels: self.labels.clone(),
            locality: self.locality.clone(),
            weight: self.weight,
            has_sidecar: self.has_sidecar,
            identity: None,
        }
    }
}

/// The direction part of an Istio cluster name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrafficDirection {
    /// `outbound`.
    Outbound,
    /// `inbound`.
    Inbound,
}

/// An Istio cluster name, `<direction>|<port>|<subset>|<hostname>` (Istio
/// `model.BuildSubsetKey`); the subset is empty when the cluster covers the whole service.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterName {
    /// Inbound or outbound.
    pub direction: TrafficDirection,
    /// The service port.
    pub port: u16,
    /// The DestinationRule subset name, empty for none.
    pub subset: String,
    /// The service hostname.
    pub hostname: String,
}

impl ClusterName {
    /// `outbound|<port>|<subset>|<hostname>`.
    pub fn outbound(port: u16, subset: &str, hostname: &str) -> Self {
        Self {
            direction: TrafficDirection::Outbound,
            port,
            subset: subset.to_owned(),
            hostname: hostname.to_owned(),
        }
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            TrafficDirection::Outbound => "outbound",
            TrafficDirection::Inbound => "inbound",
        };
        write!(
            f,
            "{direction}|{}|{}|{}",
            self.port, self.subset, self.hostname
        )
    }
}

impl FromStr for ClusterName {
    type Err = crate::ModelError;

    /// Parses `<direction>|<port>|<subset>|<hostname>`. Errors: [`crate::ModelError::ClusterName`]
    /// when the parts are missing, the direction is unknown or the port is not a number.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || crate::ModelError::ClusterName {
            name: text.to_owned(),
        };
        let mut parts = text.splitn(4, '|');
        let direction = match parts.next() {
            Some("outbound") => TrafficDirection::Outbound,
            Some("inbound") => TrafficDirection::Inbound,
            _ => return Err(invalid()),
        };
        let port = parts
            .next()
            .and_then(|port| port.parse().ok())
            .ok_or_else(invalid)?;
        let subset = parts.next().ok_or_else(invalid)?.to_owned();
        let hostname = parts
            .next()
            .filter(|host| !host.is_empty())
            .ok_or_else(invalid)?
            .to_owned();
        Ok(Self {
            direction,
            port,
            subset,
            hostname,
        })
    }
}

#[cfg(test)]
mod consistent_hash_tests {
    use super::*;

    #[test]
    fn consistent_hash_reads_every_key_and_defaults_to_a_ring_of_1024() {
        let header: ConsistentHash =
            serde_yaml::from_str("key: {type: http_header_name, name: x-user}").unwrap();
        assert_eq!(
            header.key,
            HashKey::HttpHeaderName {
                name: "x-user".into()
            }
        );
        assert_eq!(
            header.algorithm,
            HashAlgorithm::RingHash {
                minimum_ring_size: 1024
            }
        );
        let cookie: ConsistentHash = serde_yaml::from_str(
            "key: {type: http_cookie, name: session, path: /, ttl_ms: 60000}\nalgorithm: {type: maglev, table_size: 65537}",
        )
        .unwrap();
        assert_eq!(
            cookie.key,
            HashKey::HttpCookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl_ms: Some(60_000),
            }
        );
        assert_eq!(
            cookie.algorithm,
            HashAlgorithm::Maglev { table_size: 65_537 }
        );
        let source: ConsistentHash = serde_yaml::from_str("key: {type: use_source_ip}").unwrap();
        assert_eq!(source.key, HashKey::UseSourceIp);
        assert!(
            serde_yaml::from_str::<ConsistentHash>("key: {type: http_header, name: x}").is_err()
        );
        let text = serde_yaml::to_string(&cookie).unwrap();
        assert_eq!(
            serde_yaml::from_str::<ConsistentHash>(&text).unwrap(),
            cookie
        );
    }
}

#[cfg(test)]
mod credential_tests;
