//! The config a proxy's discovery client holds, to which delta pushes apply, with the digests
//! of its entries, so that checking a delta's result rehashes only what the delta changed.

use weft_proxy_config::{ContentHashes, ProxyConfig};

use crate::delta::{ConfigDelta, DeltaError};

/// The config the proxy last applied (the last one it ACKed on this or an earlier stream),
/// kept by the client so that a [`crate::ServerMessage::Delta`] can be turned back into the
/// whole config the proxy needs, with its [`ContentHashes`] (the digests of its sections and
/// entries) so that the content hash of a delta's result costs the hashing of the entries the
/// delta carries, not of the whole config. Pure: no I/O.
#[derive(Debug, Clone, Default)]
pub struct AppliedConfig {
    current: Option<Resolved>,
}

/// A config ready for the proxy to apply: a full push's, or a delta push's result with the
/// digests computed while checking it. [`AppliedConfig::commit`] keeps it.
#[derive(Debug, Clone)]
pub struct Resolved {
    config: ProxyConfig,
    /// The digests of `config`; `None` until computed (a full push's, at commit).
    hashes: Option<ContentHashes>,
}

impl Resolved {
    /// The config.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// The config, without the digests.
    pub fn into_config(self) -> ProxyConfig {
        self.config
    }
}

impl From<ProxyConfig> for Resolved {
    /// A config whose digests are not known yet (a full push's).
    fn from(config: ProxyConfig) -> Self {
        Self {
            config,
            hashes: None,
        }
    }
}

impl AppliedConfig {
    /// Nothing applied yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The version applied, empty when none (what the Hello's `current_version` says).
    pub fn version(&self) -> &str {
        self.current
            .as_ref()
            .map_or("", |current| current.config.version.as_str())
    }

    /// The config applied, if any.
    pub fn current(&self) -> Option<&ProxyConfig> {
        self.current.as_ref().map(|current| &current.config)
    }

    /// The config of a full push with `version`: `config` itself, its `version` set to the
    /// push's when empty.
    pub fn resolve_config(version: &str, config: ProxyConfig) -> ProxyConfig {
        let mut config = config;
        if config.version.is_empty() {
            config.version = version.to_owned();
        }
        config
    }

    /// The config a delta push gives: the current config with `delta` applied and `version`
    /// set, after checking that the push's `base_version` is the current version and that
    /// the result's content hash ([`ProxyConfig::content_hash`]) is `version`. The hash is
    /// combined from the current config's digests and those of the entries the delta carries
    /// ([`ConfigDelta::apply_hashed`]). The current config is not changed: call
    /// [`AppliedConfig::commit`] with the result once the proxy applied it.
    ///
    /// Errors: [`DeltaError::BaseMismatch`] when `base_version` is not the current version,
    /// the errors of [`ConfigDelta::apply_hashed`], and [`DeltaError::VersionMismatch`] when
    /// the result is not the config the server built.
    pub fn resolve_delta(
        &self,
        version: &str,
        base_version: &str,
        delta: ConfigDelta,
    ) -> Result<Resolved, DeltaError> {
        let current = self
            .current
            .as_ref()
            .filter(|current| current.config.version == base_version && !base_version.is_empty())
            .ok_or_else(|| DeltaError::BaseMismatch {
                base_version: base_version.to_owned(),
                current: self.version().to_owned(),
            })?;
        let (mut config, hashes) = match &current.hashes {
            Some(hashes) => {
                let (config, hashes) = delta.apply_hashed(&current.config, hashes)?;
                (config, Some(hashes))
            }
            // The current digests could not be computed (they can for this model): hash the
            // result whole.
            None => {
                let config = delta.apply(&current.config)?;
                let hashes = ContentHashes::of(&config).ok();
                (config, hashes)
            }
        };
        // Empty (no digests) never matches a version.
        let computed = hashes
            .as_ref()
            .map(ContentHashes::content_hash)
            .unwrap_or_default();
        if computed != version {
            return Err(DeltaError::VersionMismatch {
                computed,
                announced: version.to_owned(),
            });
        }
        config.version = computed;
        Ok(Resolved { config, hashes })
    }

    /// Records that the proxy applied `config` (a [`ProxyConfig`] of a full push, or what
    /// [`AppliedConfig::resolve_delta`] gave): later deltas apply to it. A full push's config
    /// is hashed here, once (about one SHA-256 pass over its JSON), so that later deltas need
    /// not hash it.
    pub fn commit(&mut self, config: impl Into<Resolved>) {
        let mut resolved = config.into();
        if resolved.hashes.is_none() {
            resolved.hashes = ContentHashes::of(&resolved.config).ok();
        }
        self.current = Some(resolved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::SectionDelta;
    use weft_proxy_config::{Cluster, MODEL_VERSION, Node};

    fn cluster(name: &str) -> Cluster {
        let yaml = format!("name: {name}");
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn config(clusters: &[&str]) -> ProxyConfig {
        ProxyConfig {
            model_version: MODEL_VERSION.to_owned(),
            version: String::new(),
            node: Node {
                id: "sidecar~198.18.0.1~web.demo~demo.svc.cluster.local".into(),
                namespace: "demo".into(),
                ..Node::default()
            },
            outbound_traffic_policy: Default::default(),
            inbound: Default::default(),
            outbound: Vec::new(),
            clusters: clusters.iter().map(|name| cluster(name)).collect(),
            gateways: Vec::new(),
        }
        .with_content_version()
        .unwrap()
    }

    #[test]
    fn a_delta_applies_to_the_current_config_and_gives_the_announced_version() {
        let (old, new) = (config(&["a", "b"]), config(&["a", "c"]));
        let mut applied = AppliedConfig::new();
        applied.commit(AppliedConfig::resolve_config(&old.version, old.clone()));
        let delta = ConfigDelta::between(&old, &new).unwrap();
        assert_eq!(
            delta.clusters,
            Some(SectionDelta::Changed {
                resources: vec![cluster("c")],
                removed_resources: vec!["b".into()],
            })
        );
        let resolved = applied
            .resolve_delta(&new.version, &old.version, delta)
            .unwrap();
        assert_eq!(resolved.config(), &new);
        assert_eq!(applied.version(), old.version, "not committed yet");
        applied.commit(resolved);
        assert_eq!(applied.current(), Some(&new));
    }

    #[test]
    fn deltas_chain_on_the_digests_of_committed_results() {
        let configs = [
            config(&["a", "b"]),
            config(&["a", "c"]),
            config(&["b", "c", "d"]),
            config(&[]),
            config(&["e"]),
        ];
        let mut applied = AppliedConfig::new();
        applied.commit(configs[0].clone());
        for pair in configs.windows(2) {
            let delta = ConfigDelta::between(&pair[0], &pair[1]).unwrap();
            let resolved = applied
                .resolve_delta(&pair[1].version, &pair[0].version, delta)
                .unwrap();
            assert_eq!(
                resolved.hashes,
                Some(ContentHashes::of(&pair[1]).unwrap()),
                "the incremental digests are the from-scratch ones"
            );
            applied.commit(resolved);
            assert_eq!(applied.version(), pair[1].version);
        }
    }

    #[test]
    fn a_delta_from_another_base_is_refused_naming_both_versions() {
        let (old, new) = (config(&["a"]), config(&["b"]));
        let delta = ConfigDelta::between(&old, &new).unwrap();
        let empty = AppliedConfig::new();
        let error = empty
            .resolve_delta(&new.version, &old.version, delta.clone())
            .unwrap_err();
        assert_eq!(
            error,
            DeltaError::BaseMismatch {
                base_version: old.version.clone(),
                current: String::new(),
            }
        );
        let mut applied = AppliedConfig::new();
        applied.commit(new.clone());
        let error = applied
            .resolve_delta(&new.version, &old.version, delta)
            .unwrap_err();
        assert!(error.to_string().contains(&old.version), "{error}");
        assert!(error.to_string().contains(&new.version), "{error}");
    }

    #[test]
    fn a_result_without_the_announced_version_is_refused() {
        let (old, new) = (config(&["a"]), config(&["a", "b"]));
        let mut applied = AppliedConfig::new();
        applied.commit(old.clone());
        // A delta that forgets the new cluster gives the old content, not `new.version`.
        let error = applied
            .resolve_delta(&new.version, &old.version, ConfigDelta::default())
            .unwrap_err();
        assert_eq!(
            error,
            DeltaError::VersionMismatch {
                computed: old.version.clone(),
                announced: new.version.clone(),
            }
        );
    }

    #[test]
    fn a_full_push_gets_the_push_version_when_it_has_none() {
        let mut unversioned = config(&["a"]);
        unversioned.version.clear();
        assert_eq!(
            AppliedConfig::resolve_config("v7", unversioned).version,
            "v7"
        );
        let versioned = config(&["a"]);
        let version = versioned.version.clone();
        assert_eq!(
            AppliedConfig::resolve_config("other", versioned).version,
            version
        );
    }
}
