//! Which proxies a change affects.
//!
//! Two ways: [`affected_proxies`] builds every proxy's config from both views and compares the
//! content hashes (exact, two builds per proxy); [`ViewChange`] compares the two views' objects
//! once and then tells, per proxy and without building, whether its config *may* differ
//! (conservative: "no" only when the proxy's scope cannot include anything that changed). The
//! discovery server uses the latter to rebuild only the proxies a change can reach, as Istio's
//! Pilot skips proxies whose `SidecarScope` does not depend on the changed config
//! (`DefaultProxyNeedsPush`).

use std::cmp::Ordering;

use weft_crds::networking::VirtualService;
use weft_proxy_config::ProxyType;

use crate::build::build_proxy_config;
use crate::host::{ExportTo, host_matches, resolve_host};
use crate::proxy::ProxyTarget;
use crate::selector::applicable_sidecar;
use crate::view::{ClusterObjects, ClusterView, names_credential, namespace_of, sort_key};

/// The proxies of `after` (see [`ProxyTarget::all`]) whose configuration differs between
/// `before` and `after`, by content hash; a proxy new in `after` counts as affected. Costs two
/// builds per proxy: the discovery server may prefer comparing hashes it already holds.
pub fn affected_proxies(before: &ClusterView, after: &ClusterView) -> Vec<ProxyTarget> {
    ProxyTarget::all(after)
        .into_iter()
        .filter(|target| {
            let new = build_proxy_config(after, target).config.version;
            let old = build_proxy_config(before, target).config.version;
            new != old
        })
        .collect()
}

/// What changed between two views, reduced to what decides which proxies can be affected.
///
/// Computed once per pair of views by [`ViewChange::between`] (one comparison of every object
/// list); asked per proxy with [`ViewChange::may_affect`].
#[derive(Debug, Clone, PartialEq)]
pub struct ViewChange {
    reach: Reach,
    /// The views' Secrets differ: every gateway proxy (`router`) is reached, and the sidecars
    /// whose namespace has a DestinationRule with a `workloadSelector` and a `credentialName`
    /// (the only way sidecars read Secrets).
    secrets_changed: bool,
}

/// Which proxies a change can reach.
#[derive(Debug, Clone, PartialEq)]
enum Reach {
    /// The views hold equal objects and mesh settings: no proxy.
    Nothing,
    /// Only VirtualServices changed: the proxies whose scope includes one of these versions
    /// (before or after the change) of the changed VirtualServices.
    VirtualServices(Vec<ChangedVirtualService>),
    /// Anything else changed (mesh settings, services, endpoints, workloads, rules, policies):
    /// every proxy. Narrowing these kinds is future work.
    Everything,
}

/// One version (before or after) of a changed VirtualService: what Pilot's scope looks at.
#[derive(Debug, Clone, PartialEq)]
struct ChangedVirtualService {
    namespace: String,
    /// `spec.hosts`, resolved in the VirtualService's namespace.
    hosts: Vec<String>,
    export_to: ExportTo,
    /// `spec.gateways` empty or naming `mesh`: it applies to sidecars.
    bound_to_mesh: bool,
}

impl ChangedVirtualService {
    fn new(view: &ClusterView, vs: &VirtualService) -> Self {
        let namespace = namespace_of(&vs.metadata);
        Self {
            namespace: namespace.to_owned(),
            hosts: vs
                .spec
                .hosts
                .iter()
                .map(|host| resolve_host(host, namespace, &view.mesh().cluster_domain))
                .collect(),
            export_to: ExportTo::parse(&vs.spec.export_to, namespace),
            bound_to_mesh: vs.spec.gateways.is_empty()
                || vs.spec.gateways.iter().any(|gateway| gateway == "mesh"),
        }
    }
}

impl ClusterView {
    /// The change from `before` to this view: [`ViewChange::between`]`(before, self)`.
    pub fn change_since(&self, before: &ClusterView) -> ViewChange {
        ViewChange::between(before, self)
    }
}

impl ViewChange {
    /// The change from `before` to `after`. Objects are compared whole (metadata and spec),
    /// so any edit counts, including one that does not alter the config.
    pub fn between(before: &ClusterView, after: &ClusterView) -> Self {
        let (old, new) = (before.objects(), after.objects());
        let secrets_changed = !before.same_secrets(after);
        // JWKS key sets reach every proxy whose RequestAuthentication names the URI.
        if before.mesh() != after.mesh() || !others_equal(old, new) || !before.same_jwks(after) {
            return Self {
                reach: Reach::Everything,
                secrets_changed,
            };
        }
        let mut changed = Vec::new();
        let (mut left, mut right) = (
            old.virtual_services.iter().peekable(),
            new.virtual_services.iter().peekable(),
        );
        loop {
            let order = match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some(a), Some(b)) => sort_key(&a.metadata).cmp(&sort_key(&b.metadata)),
            };
            match order {
                Ordering::Less => changed.extend(left.next().map(|vs| (before, vs))),
                Ordering::Greater => changed.extend(right.next().map(|vs| (after, vs))),
                Ordering::Equal => {
                    if let (Some(a), Some(b)) = (left.next(), right.next())
                        && a != b
                    {
                        changed.push((before, a));
                        changed.push((after, b));
                    }
                }
            }
        }
        // A VirtualService without hosts is a delegate, reachable through any parent.
        if changed.iter().any(|(_, vs)| vs.spec.hosts.is_empty()) {
            return Self {
                reach: Reach::Everything,
                secrets_changed,
            };
        }
        let reach = if changed.is_empty() {
            Reach::Nothing
        } else {
            Reach::VirtualServices(
                changed
                    .into_iter()
                    .map(|(view, vs)| ChangedVirtualService::new(view, vs))
                    .collect(),
            )
        };
        Self {
            reach,
            secrets_changed,
        }
    }

    /// Whether nothing that reaches a proxy changed.
    pub fn is_empty(&self) -> bool {
        self.reach == Reach::Nothing && !self.secrets_changed
    }

    /// Whether the config of `target` (a proxy of the view `after` given to
    /// [`ViewChange::between`]) may differ between the two views. `false` only when it cannot:
    /// no changed VirtualService is in the proxy's scope, under Istio's rules — bound to the
    /// `mesh` gateway, exported to the proxy's namespace (`exportTo`), and one of its hosts
    /// covered by the egress hosts of the Sidecar that applies to the proxy (a Sidecar
    /// selecting the workload, else its namespace's default, else the root namespace's).
    /// Gateway proxies (`router`) are reported as affected by any change, including one of
    /// Secrets only; so are sidecars that may read Secrets (`credentialName`) when Secrets
    /// changed.
    pub fn may_affect(&self, after: &ClusterView, target: &ProxyTarget) -> bool {
        if self.secrets_changed
            && (target.proxy_type != ProxyType::Sidecar || reads_secrets(after, target))
        {
            return true;
        }
        let changed = match &self.reach {
            Reach::Nothing => return false,
            Reach::Everything => return true,
            Reach::VirtualServices(changed) => changed,
        };
        if target.proxy_type != ProxyType::Sidecar {
            return true;
        }
        let egress = applicable_sidecar(after, target)
            .map(|sidecar| &sidecar.spec.egress)
            .filter(|egress| !egress.is_empty());
        changed.iter().any(|vs| {
            vs.bound_to_mesh
                && vs.export_to.visible_to(&target.namespace)
                && egress.is_none_or(|egress| {
                    egress
                        .iter()
                        .flat_map(|listener| &listener.hosts)
                        .filter_map(|entry| entry.split_once('/'))
                        .any(|(namespace, pattern)| {
                            egress_namespace_covers(namespace, &target.namespace, &vs.namespace)
                                && vs.hosts.iter().any(|host| {
                                    host_matches(pattern, host) || host_matches(host, pattern)
                                })
                        })
                })
        })
    }
}

/// Whether sidecar `target` may read Secrets: a DestinationRule of its namespace with a
/// `workloadSelector` names a `credentialName` (Istio applies `credentialName` at sidecars only
/// through such rules). Conservative: the selector is not matched.
fn reads_secrets(view: &ClusterView, target: &ProxyTarget) -> bool {
    view.objects().destination_rules.iter().any(|rule| {
        namespace_of(&rule.metadata) == target.namespace
            && rule
                .spec
                .workload_selector
                .as_ref()
                .is_some_and(|selector| !selector.match_labels.is_empty())
            && names_credential(rule)
    })
}

/// Whether every object list other than VirtualServices is equal in both views.
fn others_equal(a: &ClusterObjects, b: &ClusterObjects) -> bool {
    // Destructured so that a new kind fails to compile here instead of being ignored.
    let ClusterObjects {
        services,
        endpoint_slices,
        pods,
        namespaces,
        service_accounts,
        virtual_services: _,
        destination_rules,
        gateways,
        service_entries,
        sidecars,
        workload_entries,
        peer_authentications,
        authorization_policies,
        request_authentications,
        nodes,
    } = a;
    *services == b.services
        && *endpoint_slices == b.endpoint_slices
        && *pods == b.pods
        && *namespaces == b.namespaces
        && *service_accounts == b.service_accounts
        && *destination_rules == b.destination_rules
        && *gateways == b.gateways
        && *service_entries == b.service_entries
        && *sidecars == b.sidecars
        && *workload_entries == b.workload_entries
        && *peer_authentications == b.peer_authentications
        && *authorization_policies == b.authorization_policies
        && *request_authentications == b.request_authentications
        && *nodes == b.nodes
}

/// The namespace part of a Sidecar egress `hosts` entry (`*` any, `.` the proxy's own, `~`
/// none, else a namespace name) covers an object of `namespace` for a proxy of
/// `proxy_namespace` (Istio `IstioEgressListener.hosts`).
fn egress_namespace_covers(entry: &str, proxy_namespace: &str, namespace: &str) -> bool {
    match entry {
        "*" => true,
        "~" => false,
        "." => namespace == proxy_namespace,
        other => other == namespace,
    }
}

#[cfg(test)]
mod tests;
