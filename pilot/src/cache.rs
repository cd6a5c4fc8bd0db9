//! The per-view cache of config parts that do not depend on the proxy.
//!
//! A cluster (`outbound|<port>|<subset>|<host>`) is a function of the service, the port and the
//! DestinationRule that applies; which rule applies depends on the proxy (namespace, labels),
//! but once chosen the cluster is the same for every proxy. Istio caches these per push
//! context (its `CdsCache`); Weft caches them in the [`crate::ClusterView`] they were built
//! from, with their compact JSON, so that 1,000 proxies seeing 500 services build and
//! serialise each cluster once instead of 1,000 times.
//!
//! On top of these parts it caches, per proxy scope (Istio's `SidecarScope`: namespace, the
//! applicable Sidecar, the proxy type and the label selectors that pick the proxy), the whole
//! proxy-independent side of a config: outbound listeners, clusters, gateway listeners and
//! their JSON (see [`crate::build`]'s `ScopeConfig`). Proxies of one scope share it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde::Serialize;
use weft_crds::networking::DestinationRule;
use weft_proxy_config::{Cluster, OutboundListener, ProxyType};

use crate::build::ScopeConfig;
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
    /// The shared side of the configs, per scope; each entry built once (later callers of
    /// the same key wait for the first build instead of repeating it).
    scopes: Mutex<HashMap<ScopeKey, Arc<OnceLock<Arc<ScopeConfig>>>>>,
    /// The view's label selectors that decide a proxy's outbound side (see [`ScopeKey`]).
    selectors: OnceLock<Vec<BTreeMap<String, String>>>,
}

/// Identifies the proxies that get the same outbound listeners, clusters and gateway
/// listeners from one view: same namespace, same proxy type, same applicable Sidecar (its
/// address in the view, as [`ClusterKey`]), and the same answer from each label selector the
/// outbound side consults (VirtualService `sourceLabels`, DestinationRule
/// `workloadSelector`, Gateway `selector`). Istio shares a `SidecarScope` the same way.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ScopeKey {
    /// The proxy's namespace.
    pub namespace: String,
    /// Sidecar or router.
    pub proxy_type: ProxyType,
    /// The address of the Sidecar resource that applies, if any.
    pub sidecar: Option<usize>,
    /// Per selector of [`BuildCache::selectors`], in order: whether it selects the proxy.
    pub selected: Vec<bool>,
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

impl BuildCache {
    /// The label selectors of the view that the outbound side of a config depends on, from
    /// `collect` the first time (then kept for the view's life).
    pub fn selectors(
        &self,
        collect: impl FnOnce() -> Vec<BTreeMap<String, String>>,
    ) -> &[BTreeMap<String, String>] {
        self.selectors.get_or_init(collect)
    }

    /// The shared side of the configs of scope `key`, from the cache or from `build` (then
    /// cached). Concurrent callers with the same key wait for one build.
    pub fn scope(&self, key: ScopeKey, build: impl FnOnce() -> ScopeConfig) -> Arc<ScopeConfig> {
        let cell = {
            let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
            scopes.entry(key).or_default().clone()
        };
        cell.get_or_init(|| Arc::new(build())).clone()
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
