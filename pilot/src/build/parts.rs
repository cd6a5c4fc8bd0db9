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

    /// The JSON of weft-discovery's `ConfigDelta` from `base` (an earlier build for the same
    /// proxy, the config it acknowledged) to this config, in two pieces as
    /// [`ProxyParts::write_json_head`]: this proxy's own changed fields (`node`, `inbound`,
    /// whole) after the object's `{`, written to `head`, and the changed fields of the scope's
    /// side with the closing `}`, returned — computed once per pair of scopes and shared by
    /// every proxy of the scope (see `ScopeConfig::delta_since`). The two pieces together
    /// are byte for byte `serde_json::to_vec(&ConfigDelta::between(base, self))`.
    ///
    /// Returns `Ok(None)` (and writes nothing) when no delta can be written (a scope without
    /// its cached JSON, which cannot happen for this model): send the full config.
    ///
    /// Errors: a `serde_json::Error` when `head` fails.
    pub fn write_delta_json_head(
        &self,
        base: &ProxyParts,
        head: &mut dyn std::io::Write,
    ) -> Result<Option<Arc<[u8]>>, serde_json::Error> {
        let Some(shared) = self.scope.delta_since(&base.scope) else {
            return Ok(None);
        };
        let mut fields = 0;
        let mut field = |head: &mut dyn std::io::Write, name: &str| {
            let separator: &[u8] = if fields == 0 { b"{\"" } else { b",\"" };
            fields += 1;
            head.write_all(separator)
                .and_then(|()| head.write_all(name.as_bytes()))
                .and_then(|()| head.write_all(b"\":"))
                .map_err(serde_json::Error::io)
        };
        if self.node != base.node {
            field(head, "node")?;
            serde_json::to_writer(&mut *head, &self.node)?;
        }
        if self.inbound != base.inbound {
            field(head, "inbound")?;
            serde_json::to_writer(&mut *head, &self.inbound)?;
        }
        let open: &[u8] = match (fields, &*shared) {
            (0, _) => b"{",
            (_, b"}") => b"",
            _ => b",",
        };
        head.write_all(open).map_err(serde_json::Error::io)?;
        Ok(Some(shared))
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
