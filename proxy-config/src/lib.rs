//! The proxy-configuration model: what the control plane (Weft's Pilot) computes for ONE proxy and
//! the proxy applies.
//!
//! The vocabulary is Envoy's (listeners, route configurations, virtual hosts, clusters, endpoints)
//! and the semantics are Istio's (VirtualService routes, DestinationRule subsets and traffic
//! policies, PeerAuthentication modes, the mesh's `outboundTrafficPolicy`). The model is pure data:
//! serde (JSON or YAML, `snake_case` fields, enum values spelt as Istio spells them, e.g.
//! `ROUND_ROBIN`, `STRICT`, `REGISTRY_ONLY`), [`ProxyConfig::validate`] and a few helpers. It does
//! no I/O beyond parsing strings.
//!
//! Units, everywhere in the model:
//! - durations are milliseconds, in `u64` fields whose names end in `_ms`;
//! - percentages are `f64` in `0.0..=100.0`;
//! - ports are `u16`, weights `u32`.
//!
//! Model version: [`MODEL_VERSION`]. A breaking change to the shape bumps it.
#![warn(missing_docs)]

mod cluster;
mod content_hash;
mod gateway;
mod inbound;
mod matcher;
mod node;
mod outbound;
mod route;
mod validate;

pub use cluster::ClientCredential;
pub use cluster::{
    BLACK_HOLE_CLUSTER, Cluster, ClusterName, ConnectionPoolSettings, ConsistentHash,
    DEFAULT_DNS_REFRESH_RATE_MS, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MINIMUM_RING_SIZE,
    DnsDiscovery, DnsEndpoint, DnsLookup, Endpoint, H2UpgradePolicy, HashAlgorithm, HashKey,
    HttpPoolSettings, INBOUND_PASSTHROUGH_CLUSTER, LbPolicy, OutlierDetection, PASSTHROUGH_CLUSTER,
    TcpPoolSettings, TrafficDirection, TransportSocket,
};
pub use cluster::{
    DEFAULT_WARMUP_AGGRESSION, DEFAULT_WARMUP_MINIMUM_PERCENT, LocalityDistribute,
    LocalityFailover, LocalityLbSetting, TcpKeepalive, Warmup,
};
pub use content_hash::{ContentHashes, Digest, RULE, SectionDigests, entry_digests};
pub use gateway::{
    GatewayListener, GatewayProtocol, GatewayServer, PrivateKeyPem, REDACTED, ServerTls,
    ServerTlsMode, TlsCredential, TlsMatch, TlsRoute, TlsVersion, host_matches,
    is_valid_gateway_host,
};
pub use inbound::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationRule, AuthzCondition, AuthzOperation,
    AuthzSource, InboundConfig, InboundPort, InboundUpstream, JwtRule, MtlsMode,
};
pub use matcher::{Cidr, CidrError, HeaderMatch, StringMatch};
pub use node::{Locality, Node, ProxyType, REGION_LABEL, SUBZONE_LABEL, ZONE_LABEL};
pub use outbound::{L4Match, OutboundListener, OutboundTrafficPolicy, Protocol, TcpRoute};
pub use route::{
    CorsPolicy, DirectResponseAction, FaultAbort, FaultDelay, FaultInjection, ForwardAction,
    HeaderMutation, Mirror, RedirectAction, RegexRewrite, RetryOn, RetryPolicy, Rewrite, Route,
    RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
};
pub use validate::ModelError;

use serde::{Deserialize, Serialize};

/// The version of this model's shape, carried in [`ProxyConfig::model_version`].
pub const MODEL_VERSION: &str = "weft.proxy-config/v1alpha1";

/// Everything one proxy needs: who it is, how to handle inbound traffic to its workload, the
/// outbound services it can reach and the upstream clusters behind them.
///
/// Built by the control plane for one proxy (Istio: the `Proxy` + `PushContext` pair turned into
/// listeners, routes and clusters) or loaded from a file with [`ProxyConfig::from_yaml`] /
/// [`ProxyConfig::from_json`]. Call [`ProxyConfig::validate`] before applying it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// The model's shape version; [`MODEL_VERSION`] when absent.
    #[serde(default = "default_model_version")]
    pub model_version: String,
    /// The content version: [`ProxyConfig::content_hash`] of this config, or empty when the author
    /// did not compute it (a file written by hand). Informational; the proxy reports it.
    #[serde(default)]
    pub version: String,
    /// The proxy's own identity and location.
    pub node: Node,
    /// What to do with outbound traffic to a destination no [`OutboundListener`] matches
    /// (Istio `MeshConfig.outboundTrafficPolicy.mode`).
    #[serde(default)]
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// Inbound: the workload's ports, their mTLS modes, authorization and JWT rules.
    #[serde(default)]
    pub inbound: InboundConfig,
    /// Outbound: one entry per (service, port) the proxy can reach.
    #[serde(default)]
    pub outbound: Vec<OutboundListener>,
    /// The upstream clusters referenced by outbound and gateway routes, with their endpoints.
    #[serde(default)]
    pub clusters: Vec<Cluster>,
    /// Gateway listeners (Istio `Gateway` servers), one per (bind, port); only for a
    /// [`ProxyType::Router`] proxy, empty (and not serialised) for sidecars.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<GatewayListener>,
}

fn default_model_version() -> String {
    MODEL_VERSION.to_owned()
}

/// Errors from parsing a [`ProxyConfig`] out of text.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The YAML text is not a valid `ProxyConfig` (the message names the line and the field).
    #[error("proxy config YAML is invalid: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The JSON text is not a valid `ProxyConfig` (the message names the line and the field).
    #[error("proxy config JSON is invalid: {0}")]
    Json(#[from] serde_json::Error),
    /// The config declares a model version this crate does not understand.
    #[error("proxy config model_version {found:?} is not supported (expected {MODEL_VERSION:?})")]
    ModelVersion {
        /// The `model_version` found in the text.
        found: String,
    },
}

impl ProxyConfig {
    /// Parses a config from YAML text. Does not validate it (see [`ProxyConfig::validate`]).
    ///
    /// Errors: [`ParseError::Yaml`] for malformed YAML or unknown/missing fields,
    /// [`ParseError::ModelVersion`] for a `model_version` other than [`MODEL_VERSION`].
    pub fn from_yaml(text: &str) -> Result<Self, ParseError> {
        // Enums are single-key maps (`{exact: v}`, `route: {...}`), as in Istio's YAML, not
        // serde_yaml's default `!tag` form.
        let config: Self = serde_yaml::with::singleton_map_recursive::deserialize(
            serde_yaml::Deserializer::from_str(text),
        )?;
        config.check_model_version()
    }

    /// Serialises the config as YAML in the shape [`ProxyConfig::from_yaml`] reads (enums as
    /// single-key maps).
    ///
    /// Errors: [`ParseError::Yaml`] only if serialisation fails, which the model's types do not
    /// allow in practice.
    pub fn to_yaml(&self) -> Result<String, ParseError> {
        let mut out = Vec::new();
        let mut serializer = serde_yaml::Serializer::new(&mut out);
        serde_yaml::with::singleton_map_recursive::serialize(self, &mut serializer)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Parses a config from JSON text. Does not validate it (see [`ProxyConfig::validate`]).
    ///
    /// Errors: [`ParseError::Json`] for malformed JSON or unknown/missing fields,
    /// [`ParseError::ModelVersion`] for a `model_version` other than [`MODEL_VERSION`].
    pub fn from_json(text: &str) -> Result<Self, ParseError> {
        let config: Self = serde_json::from_str(text)?;
        config.check_model_version()
    }

    fn check_model_version(self) -> Result<Self, ParseError> {
        if self.model_version == MODEL_VERSION {
            Ok(self)
        } else {
            Err(ParseError::ModelVersion {
                found: self.model_version,
            })
        }
    }

    /// The content hash: 64 lowercase hex characters, a SHA-256 over the SHA-256 of each
    /// section's and each named entry's compact JSON (`version` left out, so the hash does not
    /// depend on itself); the rule is in [`ContentHashes`]' module. Same content, same hash,
    /// whatever the map order of the text it came from (every map is a `BTreeMap`).
    ///
    /// Errors: a `serde_json::Error` only if serialisation fails, which the model's types do not
    /// allow in practice (all map keys are strings).
    pub fn content_hash(&self) -> Result<String, serde_json::Error> {
        Ok(ContentHashes::of(self)?.content_hash())
    }

    /// Sets `version` to [`ProxyConfig::content_hash`] and returns the config.
    ///
    /// Errors: as [`ProxyConfig::content_hash`].
    pub fn with_content_version(mut self) -> Result<Self, serde_json::Error> {
        self.version = self.content_hash()?;
        Ok(self)
    }

    /// A copy with every inline private key ([`TlsCredential::Inline`] and
    /// [`ClientCredential`]) replaced by [`REDACTED`], for dumps such as the proxy's
    /// `/config_dump` and `weftctl` output. The copy keeps `version`; it still validates.
    pub fn redacted(&self) -> Self {
        let mut copy = self.clone();
        for server in copy
            .gateways
            .iter_mut()
            .flat_map(|listener| listener.servers.iter_mut())
        {
            if let Some(ServerTls {
                credential: Some(TlsCredential::Inline { private_key, .. }),
                ..
            }) = &mut server.tls
            {
                *private_key = PrivateKeyPem::new(REDACTED);
            }
        }
        for cluster in &mut copy.clusters {
            cluster.transport.redact_private_key();
        }
        copy
    }

    /// The cluster named `name`, if any.
    pub fn cluster(&self, name: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|cluster| cluster.name == name)
    }
}

#[cfg(test)]
mod tests;
