//! A built config in parts: the proxy's own and the side it shares with its scope.

use std::collections::BTreeSet;
use std::sync::Arc;

use weft_proxy_config::{InboundConfig, MODEL_VERSION, Node, ProxyConfig};

use super::BuildOutput;
use super::shared::ScopeConfig;
use super::version::{self, ConfigParts};
use crate::unsupported::Unsupported;

/// One proxy's configuration as [`super::build_proxy_parts`] returns it: its node and inbound
/// side, a shared reference to its scope's outbound listeners, clusters and gateway
/// listeners (with their JSON), its content version and its warnings. It stands for the
/// `ProxyConfig` of [`ProxyParts::to_config`]; [`ProxyParts::write_json`] writes that config's
/// JSON without assembling it.
#[derive(Debug, Clone)]
pub struct ProxyParts {
    version: String,
    node: Node,
    inbound: InboundConfig,
    scope: Arc<ScopeConfig>,
    warnings: Vec<Unsupported>,
}

impl ProxyParts {
    /// The parts, with their content version computed.
    pub(super) fn new(
        node: Node,
        inbound: InboundConfig,
        scope: Arc<ScopeConfig>,
        warnings: BTreeSet<Unsupported>,
    ) -> Self {
        let mut parts = Self {
            version: String::new(),
            node,
            inbound,
            scope,
            warnings: warnings.into_iter().collect(),
        };
        // Hashing serialises maps with string keys only; it cannot fail for this model. Should
        // it ever, the version stays empty, which the proxy reports as "unversioned".
        if let Some(hash) = version::content_version(&parts.borrowed()) {
            parts.version = hash;
        }
        parts
    }

    fn borrowed(&self) -> ConfigParts<'_> {
        ConfigParts {
            node: &self.node,
            inbound: &self.inbound,
            scope: &self.scope,
        }
    }

    /// The content version: [`ProxyConfig::content_hash`] of [`ProxyParts::to_config`] (hex
    /// SHA-256), the same for every proxy whose config is the same.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The proxy's node (identity, labels, IPs).
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// Every unsupported field met while building, sorted and without duplicates.
    pub fn warnings(&self) -> &[Unsupported] {
        &self.warnings
    }

    /// Writes the compact JSON of [`ProxyParts::to_config`] to `out`, byte for byte what
    /// `serde_json::to_writer` writes for it, copying the scope's side from its cached JSON
    /// (most of the bytes: ~1 MiB for a proxy seeing 500 services).
    ///
    /// Errors: a `serde_json::Error` when `out` fails (serialisation itself cannot fail for
    /// this model).
    pub fn write_json(&self, out: &mut dyn std::io::Write) -> Result<(), serde_json::Error> {
        version::write_config(out, &self.version, &self.borrowed())
    }

    /// Whether `other` was built on the same cached scope as this (tests of the cache).
    #[cfg(test)]
    pub(crate) fn same_scope(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.scope, &other.scope)
    }

    /// The config's JSON as [`ProxyParts::write_json`] writes it, in two pieces: this proxy's
    /// own head (every field before `outbound`, written to `head`) and the tail shared with
    /// every proxy of its scope (returned, not copied: a push can send the same bytes to all).
    ///
    /// Errors: as [`ProxyParts::write_json`].
    pub fn write_json_head(
        &self,
        head: &mut dyn std::io::Write,
    ) -> Result<Arc<[u8]>, serde_json::Error> {
        version::write_head(head, &self.version, &self.borrowed())?;
        self.scope.tail()
    }

    /// The assembled config (copies the scope's side).
    pub fn to_config(&self) -> ProxyConfig {
        // A struct literal, so that a new `ProxyConfig` field fails to compile here until
        // `version::write_config` writes it too.
        ProxyConfig {
            model_version: MODEL_VERSION.to_owned(),
            version: self.version.clone(),
            node: self.node.clone(),
            outbound_traffic_policy: self.scope.outbound_traffic_policy,
            inbound: self.inbound.clone(),
            outbound: self.scope.outbound.clone(),
            clusters: self
                .scope
                .clusters
                .iter()
                .map(|cluster| cluster.value.clone())
                .collect(),
            gateways: self.scope.gateways.clone(),
        }
    }

    /// The assembled config and the warnings, as [`super::build_proxy_config`] returns them.
    pub fn into_output(self) -> BuildOutput {
        BuildOutput {
            config: self.to_config(),
            warnings: self.warnings,
        }
    }
}
