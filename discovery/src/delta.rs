//! Incremental pushes: what changed between two [`ProxyConfig`]s, by section and by name, and
//! how a proxy applies it to the config it holds.
//!
//! The model is Envoy's incremental ("delta") xDS: named resources are upserted or removed,
//! and the client keeps every resource the push does not name. Here the resources are the
//! entries of the config's named sections — `outbound` listeners (with their routes),
//! `clusters` (with their endpoints) and `gateways` listeners — while the small sections
//! (`node`, `inbound` with its policies, `outbound_traffic_policy`) travel whole when they
//! changed and are left out when they did not.
//!
//! Order is part of a config (its content hash is over the JSON, and a proxy tries listeners
//! and routes in order). A section whose entries are sorted by name without duplicates, before
//! and after, travels as [`SectionDelta::Changed`], and the client puts each new entry at its
//! sorted place; any other section that changed travels whole ([`SectionDelta::Replaced`]).
//! Pilot sorts `outbound` and `clusters` by name; gateway listeners are sorted by port.

use serde::{Deserialize, Serialize};
use weft_proxy_config::{
    Cluster, ContentHashes, Digest, GatewayListener, InboundConfig, Node, OutboundListener,
    OutboundTrafficPolicy, ProxyConfig,
};

/// An entry of a named section of [`ProxyConfig`]: its unique name (Envoy's resource name).
pub trait Named {
    /// The entry's name, unique in its section (`OutboundListener::name`, `Cluster::name`,
    /// `GatewayListener::name`).
    fn name(&self) -> &str;
}

impl Named for OutboundListener {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for Cluster {
    fn name(&self) -> &str {
        &self.name
    }
}

impl Named for GatewayListener {
    fn name(&self) -> &str {
        &self.name
    }
}

/// What changed in one named section of a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SectionDelta<T> {
    /// Entries by name, as Envoy's `DeltaDiscoveryResponse`: `resources` are added or
    /// replace the entry of the same name, `removed_resources` are dropped, every other entry
    /// is kept. Only for a section sorted by name without duplicates before and after; both
    /// lists are sorted by name and disjoint.
    Changed {
        /// The new or changed entries, sorted by name.
        resources: Vec<T>,
        /// The names of the entries to remove, sorted.
        removed_resources: Vec<String>,
    },
    /// The whole new section, replacing the old one (a section not sorted by name).
    Replaced(Vec<T>),
}

/// The difference between two configs of one proxy: the sections that changed, each as
/// [`SectionDelta`] (named sections) or whole (small sections). A field left out (`None`)
/// means "unchanged". The `model_version` and `version` are not part of it: a delta is only
/// made between configs of the same model version, and the push carries the new version.
///
/// The field order is the JSON's (the server writes it without this type, byte for byte as
/// serde would): the proxy's own sections first, then those it shares with its scope.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDelta {
    /// The new node, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    /// The new inbound side (ports, mTLS modes, authorization policies, JWT rules), when it
    /// changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound: Option<InboundConfig>,
    /// The new outbound traffic policy, when it changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// The outbound listeners (and their routes) that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound: Option<SectionDelta<OutboundListener>>,
    /// The clusters (and their endpoints) that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<SectionDelta<Cluster>>,
    /// The gateway listeners that changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<SectionDelta<GatewayListener>>,
}

/// Why a delta cannot be applied to the config a proxy holds. The proxy NACKs the push with
/// this message and keeps its config; the server answers with a full config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeltaError {
    /// The push is a delta from another version than the one the proxy applies (a push was
    /// lost, refused, or crossed another on the stream).
    #[error(
        "delta base_version {base_version:?} is not the current version {current:?}: a delta applies only to the config it was computed from"
    )]
    BaseMismatch {
        /// The version the delta was computed from.
        base_version: String,
        /// The version the proxy applies (empty: none yet).
        current: String,
    },
    /// A `changed` section for a section of the current config that is not sorted by name
    /// without duplicates, so new entries have no defined place.
    #[error("delta {section}: the current section is not sorted by name without duplicates")]
    UnsortedBase {
        /// The section (`outbound`, `clusters`, `gateways`).
        section: &'static str,
    },
    /// `resources` or `removed_resources` of a `changed` section are not sorted by name
    /// without duplicates, or name an entry in both.
    #[error(
        "delta {section}: resources and removed_resources must be sorted by name, without duplicates, and disjoint"
    )]
    UnsortedDelta {
        /// The section.
        section: &'static str,
    },
    /// `removed_resources` names an entry the current config does not have.
    #[error("delta {section}: removed resource {name:?} is not in the current config")]
    MissingRemoved {
        /// The section.
        section: &'static str,
        /// The name.
        name: String,
    },
    /// An entry of the delta could not be hashed (serialisation failed, which it cannot for
    /// this model).
    #[error("delta {section}: an entry cannot be hashed: {reason}")]
    Hash {
        /// The section.
        section: &'static str,
        /// The serialisation error.
        reason: String,
    },
    /// The config the delta gives does not have the content version the push announced.
    #[error(
        "delta applied gives version {computed:?}, not the announced {announced:?}: the config is not the one the server built"
    )]
    VersionMismatch {
        /// The content hash of the result.
        computed: String,
        /// The version the push carried.
        announced: String,
    },
}

impl ConfigDelta {
    /// The delta that turns `base` into `new`: every section that differs (entries compared
    /// with `==`). Returns `None` when the two configs have different `model_version`s (no
    /// delta between model shapes: send the whole config).
    pub fn between(base: &ProxyConfig, new: &ProxyConfig) -> Option<Self> {
        // Destructured so that a new `ProxyConfig` field fails to compile here until the
        // delta carries it.
        let ProxyConfig {
            model_version,
            version: _,
            node,
            outbound_traffic_policy,
            inbound,
            outbound,
            clusters,
            gateways,
        } = new;
        if *model_version != base.model_version {
            return None;
        }
        Some(Self {
            node: changed(&base.node, node).cloned(),
            inbound: changed(&base.inbound, inbound).cloned(),
            outbound_traffic_policy: changed(
                &base.outbound_traffic_policy,
                outbound_traffic_policy,
            )
            .copied(),
            outbound: section_delta(&base.outbound, outbound),
            clusters: section_delta(&base.clusters, clusters),
            gateways: section_delta(&base.gateways, gateways),
        })
    }

    /// Whether the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The config this delta gives from `base`: `base`'s entries that the delta does not
    /// name, copied, and the delta's, in place. The result's `version` is left as `base`'s:
    /// the caller sets (and checks) it.
    ///
    /// Errors: [`DeltaError::UnsortedBase`], [`DeltaError::UnsortedDelta`] and
    /// [`DeltaError::MissingRemoved`] when the delta was not computed from a config like
    /// `base`.
    pub fn apply(self, base: &ProxyConfig) -> Result<ProxyConfig, DeltaError> {
        self.apply_tracked(base, None).map(|(config, _)| config)
    }

    /// [`ConfigDelta::apply`], and the [`ContentHashes`] of the result from `hashes`, those of
    /// `base`: only the sections and entries the delta carries are hashed, the others' digests
    /// are copied (a digest missing from `hashes` is computed). The result's content hash is
    /// then `ContentHashes::content_hash`, without hashing the whole config again.
    ///
    /// Errors: those of [`ConfigDelta::apply`], and [`DeltaError::Hash`] if an entry cannot
    /// be hashed (it cannot for this model).
    pub fn apply_hashed(
        self,
        base: &ProxyConfig,
        hashes: &ContentHashes,
    ) -> Result<(ProxyConfig, ContentHashes), DeltaError> {
        let (config, hashes) = self.apply_tracked(base, Some(hashes))?;
        // `apply_tracked` gives hashes whenever it is given some.
        Ok((config, hashes.unwrap_or_default()))
    }

    /// [`ConfigDelta::apply`], tracking the digests when `hashes` is given.
    fn apply_tracked(
        self,
        base: &ProxyConfig,
        hashes: Option<&ContentHashes>,
    ) -> Result<(ProxyConfig, Option<ContentHashes>), DeltaError> {
        // The digest of a small section: `base`'s when unchanged (or not tracked).
        fn whole<T: Serialize>(
            section: &'static str,
            new: Option<&T>,
            base: Option<Digest>,
        ) -> Result<Option<Digest>, DeltaError> {
            match (new, base) {
                (Some(new), Some(_)) => digest(section, new).map(Some),
                (_, base) => Ok(base),
            }
        }
        let tracked = hashes.map(|hashes| hashes.model_version);
        let node = whole("node", self.node.as_ref(), hashes.map(|h| h.node))?;
        let policy = whole(
            "outbound_traffic_policy",
            self.outbound_traffic_policy.as_ref(),
            hashes.map(|h| h.outbound_traffic_policy),
        )?;
        let inbound = whole("inbound", self.inbound.as_ref(), hashes.map(|h| h.inbound))?;
        let (outbound, outbound_digests) = apply_section(
            "outbound",
            &base.outbound,
            hashes.map(|h| &h.outbound[..]),
            self.outbound,
        )?;
        let (clusters, cluster_digests) = apply_section(
            "clusters",
            &base.clusters,
            hashes.map(|h| &h.clusters[..]),
            self.clusters,
        )?;
        let (gateways, gateway_digests) = apply_section(
            "gateways",
            &base.gateways,
            hashes.map(|h| &h.gateways[..]),
            self.gateways,
        )?;
        let hashes = match (tracked, node, policy, inbound) {
            (Some(model_version), Some(node), Some(policy), Some(inbound)) => Some(ContentHashes {
                model_version,
                node,
                outbound_traffic_policy: policy,
                inbound,
                outbound: outbound_digests.unwrap_or_default(),
                clusters: cluster_digests.unwrap_or_default(),
                gateways: gateway_digests.unwrap_or_default(),
            }),
            _ => None,
        };
        let config = ProxyConfig {
            model_version: base.model_version.clone(),
            version: base.version.clone(),
            node: self.node.unwrap_or_else(|| base.node.clone()),
            outbound_traffic_policy: self
                .outbound_traffic_policy
                .unwrap_or(base.outbound_traffic_policy),
            inbound: self.inbound.unwrap_or_else(|| base.inbound.clone()),
            outbound,
            clusters,
            gateways,
        };
        Ok((config, hashes))
    }
}

/// [`Digest::of_json`] of `value`, an entry of `section`.
///
/// Errors: [`DeltaError::Hash`] when serialisation fails (it cannot for this model).
fn digest<T: Serialize + ?Sized>(section: &'static str, value: &T) -> Result<Digest, DeltaError> {
    Digest::of_json(value).map_err(|error| DeltaError::Hash {
        section,
        reason: error.to_string(),
    })
}

/// `new` when it differs from `old`.
fn changed<'a, T: PartialEq>(old: &T, new: &'a T) -> Option<&'a T> {
    (old != new).then_some(new)
}

/// Whether `entries` are sorted by name without duplicates.
pub(crate) fn sorted_by_name<T: Named>(entries: &[T]) -> bool {
    entries
        .windows(2)
        .all(|pair| pair[0].name() < pair[1].name())
}

/// The delta of one section, `None` when it did not change.
fn section_delta<T: Named + Clone + PartialEq>(old: &[T], new: &[T]) -> Option<SectionDelta<T>> {
    if old == new {
        return None;
    }
    if !(sorted_by_name(old) && sorted_by_name(new)) {
        return Some(SectionDelta::Replaced(new.to_vec()));
    }
    let (mut resources, mut removed_resources) = (Vec::new(), Vec::new());
    let (mut old, mut new) = (old.iter().peekable(), new.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(gone), None) => {
                removed_resources.push(gone.name().to_owned());
                old.next();
            }
            (None, Some(added)) => {
                resources.push((*added).clone());
                new.next();
            }
            (Some(before), Some(after)) => match before.name().cmp(after.name()) {
                std::cmp::Ordering::Less => {
                    removed_resources.push(before.name().to_owned());
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    resources.push((*after).clone());
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if before != after {
                        resources.push((*after).clone());
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    Some(SectionDelta::Changed {
        resources,
        removed_resources,
    })
}

/// `base` with `delta` applied (a copy of `base` when `delta` is `None`), and when
/// `digests` (those of `base`'s entries, in order) is given, the digests of the result's
/// entries: copied for the entries kept, computed for the delta's (and for any entry of
/// `base` without a digest).
fn apply_section<T: Named + Clone + Serialize>(
    section: &'static str,
    base: &[T],
    digests: Option<&[Digest]>,
    delta: Option<SectionDelta<T>>,
) -> Result<(Vec<T>, Option<Vec<Digest>>), DeltaError> {
    // The digest of `base`'s entry `index`.
    let kept = |index: usize, entry: &T| match digests
        .filter(|digests| digests.len() == base.len())
        .and_then(|digests| digests.get(index))
    {
        Some(digest) => Ok(*digest),
        None => digest(section, entry),
    };
    let (resources, removed) = match delta {
        None => {
            let digests = match digests {
                Some(_) => Some(
                    base.iter()
                        .enumerate()
                        .map(|(index, entry)| kept(index, entry))
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            };
            return Ok((base.to_vec(), digests));
        }
        Some(SectionDelta::Replaced(entries)) => {
            let digests = match digests {
                Some(_) => Some(
                    entries
                        .iter()
                        .map(|entry| digest(section, entry))
                        .collect::<Result<_, _>>()?,
                ),
                None => None,
            };
            return Ok((entries, digests));
        }
        Some(SectionDelta::Changed {
            resources,
            removed_resources,
        }) => (resources, removed_resources),
    };
    if !sorted_by_name(base) {
        return Err(DeltaError::UnsortedBase { section });
    }
    let removed_sorted = removed.windows(2).all(|pair| pair[0] < pair[1]);
    let disjoint = || {
        resources.iter().all(|entry| {
            removed
                .binary_search_by(|name| name.as_str().cmp(entry.name()))
                .is_err()
        })
    };
    if !sorted_by_name(&resources) || !removed_sorted || !disjoint() {
        return Err(DeltaError::UnsortedDelta { section });
    }
    let mut out = Vec::with_capacity(base.len() + resources.len());
    let mut out_digests = digests.map(|_| Vec::with_capacity(out.capacity()));
    let mut push = |out: &mut Vec<T>, entry: T, known: Option<Digest>| {
        if let Some(out_digests) = &mut out_digests {
            out_digests.push(match known {
                Some(known) => known,
                None => digest(section, &entry)?,
            });
        }
        out.push(entry);
        Ok::<(), DeltaError>(())
    };
    let mut removed = removed.into_iter().peekable();
    let mut upserts = resources.into_iter().peekable();
    for (index, entry) in base.iter().enumerate() {
        if let Some(name) = removed.next_if(|name| name.as_str() < entry.name()) {
            return Err(DeltaError::MissingRemoved { section, name });
        }
        while let Some(added) = upserts.next_if(|added| added.name() < entry.name()) {
            push(&mut out, added, None)?;
        }
        if removed.next_if(|name| name == entry.name()).is_some() {
            continue;
        }
        match upserts.next_if(|changed| changed.name() == entry.name()) {
            Some(changed) => push(&mut out, changed, None)?,
            None => {
                let known = match digests {
                    Some(_) => Some(kept(index, entry)?),
                    None => None,
                };
                push(&mut out, entry.clone(), known)?;
            }
        }
    }
    if let Some(name) = removed.next() {
        return Err(DeltaError::MissingRemoved { section, name });
    }
    for added in upserts {
        push(&mut out, added, None)?;
    }
    Ok((out, out_digests))
}

#[cfg(test)]
mod tests;
