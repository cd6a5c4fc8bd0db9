//! The shared side of a proxy's config: what Istio derives from the proxy's `SidecarScope`
//! (outbound listeners and routes, clusters, and for a router its gateway listeners), built
//! once per scope of a view and shared by every proxy of that scope, with its JSON, and the
//! JSON of what changed since an earlier scope (`delta`), computed once per pair of scopes.

mod delta;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};

use weft_proxy_config::{
    Cluster, GatewayListener, OutboundListener, OutboundTrafficPolicy, ProxyType,
};

use super::{Context, clusters, gateway, outbound, version};
use crate::cache::{Cached, ScopeKey};
use crate::proxy::ProxyTarget;
use crate::selector::{applicable_sidecar, selects};
use crate::unsupported::Unsupported;
use crate::view::ClusterView;

use super::scope::Scope;

/// The proxy-independent side of the configs of one scope.
#[derive(Debug)]
pub(crate) struct ScopeConfig {
    /// The outbound traffic policy (the Sidecar's, else the mesh's).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// The outbound listeners, sorted by name (none for a router).
    pub outbound: Vec<OutboundListener>,
    /// The clusters, sorted by name, as held by the view's cache.
    pub clusters: Vec<Arc<Cached<Cluster>>>,
    /// The gateway listeners (a router's only).
    pub gateways: Vec<GatewayListener>,
    /// The warnings met while building this side, sorted, without duplicates.
    pub warnings: Vec<Unsupported>,
    /// The JSON of the config's fields from `outbound` on, with the closing brace (see
    /// [`version::tail_json`]), shared by every push to the scope's proxies; empty if
    /// serialisation failed, which it cannot for this model.
    pub tail_json: Arc<[u8]>,
    /// Where each listener, cluster and gateway listener lies in `tail_json`.
    pub(super) spans: version::TailSpans,
    /// The digests of this side's sections, for the content version of each proxy of the
    /// scope; `None` if serialisation failed, which it cannot for this model.
    pub(super) digests: Option<version::ScopeDigests>,
    /// The delta JSON from earlier scopes to this one (see [`ScopeConfig::delta_since`]),
    /// each computed once; entries whose earlier scope is gone are dropped.
    deltas: Mutex<Vec<(Weak<ScopeConfig>, DeltaCell)>>,
}

/// The delta JSON from one earlier scope, computed by the first caller (`None`: no delta).
type DeltaCell = Arc<OnceLock<Option<Arc<[u8]>>>>;

impl ScopeConfig {
    /// The config's JSON from the `outbound` field to the closing brace: the cached bytes,
    /// or the fields serialised again when there are none.
    ///
    /// Errors: a `serde_json::Error` only if serialisation fails (it cannot for this model).
    pub fn tail(&self) -> Result<Arc<[u8]>, serde_json::Error> {
        if self.tail_json.is_empty() {
            let (json, _) =
                version::tail_json(&self.outbound, &[], &self.clusters, &self.gateways)?;
            Ok(json.into())
        } else {
            Ok(self.tail_json.clone())
        }
    }

    /// The scope's side of the JSON of a `ConfigDelta` (weft-discovery's incremental push)
    /// from a config built on `base` to one built on this scope: the fields that changed —
    /// `outbound_traffic_policy` whole, `outbound`, `clusters` and `gateways` as section
    /// deltas — separated by commas, then the delta object's closing `}` (so `}` alone when
    /// nothing changed). Computed once per pair of scopes and shared by every push between
    /// them (Istio's pushes are per `SidecarScope` in the same way).
    ///
    /// Returns `None` when either scope has no cached JSON (serialisation failed, which it
    /// cannot for this model): send the full config.
    pub fn delta_since(&self, base: &Arc<ScopeConfig>) -> Option<Arc<[u8]>> {
        if std::ptr::eq(Arc::as_ptr(base), self) {
            return Some(Arc::from(&b"}"[..]));
        }
        let cell = {
            let mut deltas = self.deltas.lock().unwrap_or_else(PoisonError::into_inner);
            let found = deltas
                .iter()
                .find(|(earlier, _)| std::ptr::eq(earlier.as_ptr(), Arc::as_ptr(base)));
            match found {
                Some((_, cell)) => cell.clone(),
                None => {
                    deltas.retain(|(earlier, _)| earlier.strong_count() > 0);
                    let cell = Arc::new(OnceLock::new());
                    deltas.push((Arc::downgrade(base), cell.clone()));
                    cell
                }
            }
        };
        cell.get_or_init(|| delta::scope_delta_json(base, self).map(Arc::from))
            .clone()
    }
}

/// The shared side for `target`: from the view's cache when a proxy of the same scope was
/// built from `view` before, else built now (and cached).
pub(super) fn scope_config(view: &ClusterView, target: &ProxyTarget) -> Arc<ScopeConfig> {
    let key = scope_key(view, target);
    view.cache().scope(key, || build(view, target))
}

/// The cache key of `target`'s scope (see [`ScopeKey`]). Everything of the target that the
/// outbound and gateway steps read must be in it: the namespace (`exportTo`, Sidecar `.`,
/// DestinationRule precedence, `sourceNamespace`, short-name domains), the proxy type, the
/// applicable Sidecar, and the labels through the selectors that read them.
fn scope_key(view: &ClusterView, target: &ProxyTarget) -> ScopeKey {
    let sidecar = match target.proxy_type {
        ProxyType::Sidecar => {
            applicable_sidecar(view, target).map(|sidecar| std::ptr::from_ref(sidecar).addr())
        }
        // Sidecar resources do not apply to routers (see `Scope::new`).
        ProxyType::Router => None,
    };
    let selectors = view.cache().selectors(|| label_selectors(view));
    ScopeKey {
        namespace: target.namespace.clone(),
        proxy_type: target.proxy_type,
        sidecar,
        selected: selectors
            .iter()
            .map(|selector| selects(selector, &target.labels))
            .collect(),
    }
}

/// Every non-empty label selector the outbound and gateway steps match against the proxy's
/// labels: VirtualService `sourceLabels` (HTTP, TLS and TCP matches), DestinationRule
/// `workloadSelector.matchLabels` and Gateway `selector`; without duplicates. (The Sidecar's
/// `workloadSelector` is covered by the key's `sidecar`.) Empty selectors select every proxy
/// and so never tell two proxies apart.
fn label_selectors(view: &ClusterView) -> Vec<BTreeMap<String, String>> {
    let objects = view.objects();
    let mut selectors: BTreeSet<&BTreeMap<String, String>> = BTreeSet::new();
    for vs in &objects.virtual_services {
        let spec = &vs.spec;
        let http = spec.http.iter().flat_map(|route| &route.match_);
        selectors.extend(http.map(|request| &request.source_labels));
        let tls = spec.tls.iter().flat_map(|route| &route.match_);
        selectors.extend(tls.map(|attributes| &attributes.source_labels));
        let tcp = spec.tcp.iter().flat_map(|route| &route.match_);
        selectors.extend(tcp.map(|attributes| &attributes.source_labels));
    }
    let rules = objects.destination_rules.iter();
    selectors.extend(rules.filter_map(|rule| {
        let selector = rule.spec.workload_selector.as_ref()?;
        Some(&selector.match_labels)
    }));
    selectors.extend(
        objects
            .gateways
            .iter()
            .map(|gateway| &gateway.spec.selector),
    );
    selectors
        .into_iter()
        .filter(|selector| !selector.is_empty())
        .cloned()
        .collect()
}

/// Builds the shared side for `target` (any proxy of its scope gives the same result): the
/// scope, the clusters, then the outbound listeners (sidecar) or the gateway listeners and
/// only the clusters their routes reach (router: Istio builds no per-service listeners for
/// gateways).
fn build(view: &ClusterView, target: &ProxyTarget) -> ScopeConfig {
    let mut context = Context {
        view,
        target,
        warnings: BTreeSet::new(),
    };
    let scope = Scope::new(&mut context);
    let mut clusters = clusters::build(&mut context, &scope);
    let (outbound, cached, gateways) = match target.proxy_type {
        ProxyType::Sidecar => {
            let built = outbound::build(&mut context, &scope, &clusters);
            (built.listeners, built.cached, Vec::new())
        }
        ProxyType::Router => {
            let names = clusters.iter().map(|c| c.value.name.clone()).collect();
            let built = gateway::build(&mut context, &scope, &names);
            clusters.retain(|cluster| built.clusters.contains(&cluster.value.name));
            (Vec::new(), Vec::new(), built.listeners)
        }
    };
    let (tail_json, spans) =
        version::tail_json(&outbound, &cached, &clusters, &gateways).unwrap_or_default();
    let digests = version::scope_digests(
        scope.outbound_traffic_policy,
        &outbound,
        &clusters,
        &gateways,
        &tail_json,
        &spans,
    );
    ScopeConfig {
        outbound_traffic_policy: scope.outbound_traffic_policy,
        outbound,
        clusters,
        gateways,
        warnings: context.warnings.into_iter().collect(),
        tail_json: tail_json.into(),
        spans,
        digests,
        deltas: Mutex::new(Vec::new()),
    }
}

#[cfg(test)]
mod tests;
