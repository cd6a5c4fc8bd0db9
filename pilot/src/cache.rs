//! The per-view cache of config parts that do not depend on the proxy.
//!
//! A cluster (`outbound|<port>|<subset>|<host>`) is a function of the service, the port and the
//! DestinationRule that applies; which rule applies depends on the proxy (namespace, labels),
//! but once chosen the cluster is the same for every proxy. Istio caches these per push
//! context (its `CdsCache`); Weft caches them in the [`crate::ClusterView`] they were built
//! from, with their compact JSON, so that 1,000 proxies seeing 500 services build and
//! serialise each cluster once instead of 1,000 times.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use weft_crds::networking::DestinationRule;
use weft_proxy_config::{Cluster, OutboundListener};

use crate::registry::ServiceInstance;
use crate::unsupported::Unsupported;

/// One cached part and its compact JSON (what `serde_json::to_vec` writes for it, the bytes
/// it contributes to the config's content hash).
#[derive(Debug)]
pub(crate) struct Cached<T> {
    /// The part.
    pub value: T,
    /// `serde_json::to_vec(&value)`; empty when serialisation failed (it cannot for this
    /// model), in which case the hash falls back to serialising the value again.
    pub json: Box<[u8]>,
}

impl<T: Serialize> Cached<T> {
    /// `value` with its JSON.
    pub fn new(value: T) -> Self {
        let json = serde_json::to_vec(&value).unwrap_or_default().into();
        Self { value, json }
    }
}

/// The clusters of one (service, port, DestinationRule): the default cluster first, then one
/// per subset, and the warnings met while building them.
#[derive(Debug, Default)]
pub(crate) struct PortClusters {
    /// The clusters, unsorted.
    pub clusters: Vec<Arc<Cached<Cluster>>>,
    /// Warnings to report to every proxy that receives these clusters.
    pub warnings: Vec<Unsupported>,
}

/// Identifies a listener without VirtualService: (service, port, whether the proxy is in the
/// service's namespace, which adds the short name to its domains). Addresses as [`ClusterKey`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ListenerKey {
    service: usize,
    port: u16,
    same_namespace: bool,
}

/// Identifies a (service, port, rule) of one view by the addresses of the view's own objects.
/// The view is immutable and owns this cache, so an address names one object for the cache's
/// whole life; a cloned view starts with an empty cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct ClusterKey {
    service: usize,
    port: u16,
    rule: Option<usize>,
}

/// The cache held by a [`crate::ClusterView`]: filled lazily by the proxies' builds, shared by
/// concurrent builds (one short lock per lookup, never held while building).
#[derive(Debug, Default)]
pub(crate) struct BuildCache {
    clusters: Mutex<HashMap<ClusterKey, Arc<PortClusters>>>,
    listeners: Mutex<HashMap<ListenerKey, Arc<Cached<OutboundListener>>>>,
}

impl Clone for BuildCache {
    /// An empty cache: entries are keyed by the addresses of the original view's objects.
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl BuildCache {
    /// The clusters of `service` on `port` under `rule`, from the cache or from `build` (then
    /// cached). Two concurrent builds of the same entry may both run `build`; the results are
    /// equal and the first stored wins.
    pub fn clusters(
        &self,
        service: &ServiceInstance,
        port: u16,
        rule: Option<&DestinationRule>,
        build: impl FnOnce() -> PortClusters,
    ) -> Arc<PortClusters> {
        let key = ClusterKey {
            service: std::ptr::from_ref(service).addr(),
            port,
            rule: rule.map(|rule| std::ptr::from_ref(rule).addr()),
        };
        get_or_build(&self.clusters, key, build)
    }

    /// The outbound listener of `service` on `port` for a proxy with no VirtualService for the
    /// service (the default route; domains depend only on `same_namespace`), from the cache or
    /// from `build` (then cached).
    pub fn default_listener(
        &self,
        service: &ServiceInstance,
        port: u16,
        same_namespace: bool,
        build: impl FnOnce() -> OutboundListener,
    ) -> Arc<Cached<OutboundListener>> {
        let key = ListenerKey {
            service: std::ptr::from_ref(service).addr(),
            port,
            same_namespace,
        };
        get_or_build(&self.listeners, key, || Cached::new(build()))
    }
}

/// The entry `key` of `map`, or `build`'s result, stored. The lock is not held while building.
fn get_or_build<K: Eq + std::hash::Hash, V>(
    map: &Mutex<HashMap<K, Arc<V>>>,
    key: K,
    build: impl FnOnce() -> V,
) -> Arc<V> {
    let lock = || map.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(found) = lock().get(&key) {
        return found.clone();
    }
    let built = Arc::new(build());
    lock().entry(key).or_insert(built).clone()
}
