//! The messages of the discovery stream.

use serde::{Deserialize, Serialize};
use weft_proxy_config::{ProxyConfig, ProxyType};

use crate::delta::ConfigDelta;

/// What the proxy says it is, in its first frame. The server checks it against the peer's
/// certificate: the SPIFFE ID's namespace and service account must be the workload's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hello {
    /// The workload's namespace (Istio `POD_NAMESPACE`).
    pub namespace: String,
    /// The workload's name: the pod name on Kubernetes, the WorkloadEntry name in standalone
    /// mode (Istio `POD_NAME`).
    pub workload: String,
    /// The proxy's software version, for `weftctl proxy-status`.
    #[serde(default)]
    pub proxy_version: String,
    /// The version the proxy currently applies (after a reconnect), empty when it has none. The
    /// server pushes anyway when its computed version differs.
    #[serde(default)]
    pub current_version: String,
    /// Whether the proxy is a sidecar or a gateway (Istio's node type); a sidecar when absent.
    #[serde(default)]
    pub proxy_type: ProxyType,
    /// Whether the proxy applies [`ServerMessage::Delta`] pushes (Envoy's incremental xDS);
    /// without it the server sends only full [`ServerMessage::Config`]s.
    #[serde(default)]
    pub incremental: bool,
}

/// A frame from proxy to server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first frame of a stream.
    Hello(Hello),
    /// The proxy applied the config with this version and nonce.
    Ack {
        /// The version applied.
        version: String,
        /// The nonce of the push being acknowledged.
        nonce: u64,
    },
    /// The proxy refused the config with this version and nonce, and keeps its previous one.
    Nack {
        /// The version refused.
        version: String,
        /// The nonce of the push being refused.
        nonce: u64,
        /// Why (the validation error), shown by `weftctl proxy-status`.
        reason: String,
    },
}

/// A frame from server to proxy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    /// A full configuration for the proxy (state of the world, as xDS SotW).
    Config {
        /// The content version (the config's content hash).
        version: String,
        /// A number unique per push on this stream, echoed in the ACK/NACK.
        nonce: u64,
        /// The configuration.
        config: Box<ProxyConfig>,
    },
    /// What changed since the config with `base_version` (Envoy's incremental xDS), sent
    /// only to a proxy whose Hello set `incremental` and that acknowledged `base_version`.
    /// The proxy applies it to its current config ([`crate::client::AppliedConfig`]); the
    /// result's content hash is `version`. A proxy whose current version is not
    /// `base_version` NACKs it, and the server answers with a full `Config`.
    Delta {
        /// The content version of the config the delta gives (its content hash).
        version: String,
        /// The version the delta applies to: the last one the proxy acknowledged.
        base_version: String,
        /// A number unique per push on this stream, echoed in the ACK/NACK.
        nonce: u64,
        /// The sections that changed.
        delta: Box<ConfigDelta>,
    },
    /// The server refuses the stream (e.g. identity mismatch); the proxy should back off.
    Error {
        /// Why, naming the rule.
        message: String,
    },
}
