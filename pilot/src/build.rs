//! `build_proxy_config`: one proxy's configuration from the cluster view.
//!
//! The steps follow Istio's sidecar config generation: the proxy's scope (what it may see:
//! `exportTo`, then the Sidecar resource), the clusters of every visible service port and
//! DestinationRule subset, the outbound listeners and their routes (VirtualServices), then the
//! inbound side (PeerAuthentication, AuthorizationPolicy, RequestAuthentication). A router
//! (gateway proxy) gets instead the listeners of the Gateways selecting it, with the routes of
//! the VirtualServices bound to them, and only the clusters those routes reach.

mod clusters;
mod destination_rule;
mod gateway;
mod inbound;
mod outbound;
mod parts;
mod policy;
mod routes;
mod scope;
mod shared;
mod tcp;
mod version;

use std::collections::BTreeSet;

use weft_proxy_config::{InboundConfig, Node, ProxyConfig, ProxyType};

pub use parts::ProxyParts;
pub(crate) use shared::ScopeConfig;

use crate::proxy::ProxyTarget;
use crate::unsupported::Unsupported;
use crate::view::ClusterView;

/// What [`build_proxy_config`] returns: the config and the warnings about fields that apply
/// to this proxy but that the model cannot express.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutput {
    /// The proxy's configuration, sorted, with `version` set to its content hash.
    pub config: ProxyConfig,
    /// Every unsupported field met while building, sorted and without duplicates.
    pub warnings: Vec<Unsupported>,
}

/// State shared by the build steps of one proxy.
pub(crate) struct Context<'a> {
    pub view: &'a ClusterView,
    pub target: &'a ProxyTarget,
    pub warnings: BTreeSet<Unsupported>,
}

impl Context<'_> {
    /// Records a warning.
    pub fn warn(&mut self, warning: Unsupported) {
        self.warnings.insert(warning);
    }
}

/// Builds the configuration of the proxy serving `target` from `view`.
///
/// Takes an immutable view and a target; returns the config (deterministic: every list
/// sorted; `config.version` is [`ProxyConfig::content_hash`]) and the warnings. Never fails:
/// a reference that cannot be resolved (an unknown destination host or subset) is routed to
/// `BlackHoleCluster`, as Istio's missing cluster would fail the request, and reported.
/// Equal to [`build_proxy_parts`] followed by [`ProxyParts::into_output`].
pub fn build_proxy_config(view: &ClusterView, target: &ProxyTarget) -> BuildOutput {
    build_proxy_parts(view, target).into_output()
}

/// Builds the configuration of the proxy serving `target` from `view`, in parts: the
/// proxy's own (node, inbound side) and the side it shares with every proxy of its scope
/// (outbound listeners, clusters, gateway listeners; see [`ProxyParts`]). The shared side is
/// built once per scope of a view and kept in the view, with its JSON, so that building the
/// thousand proxies of a few namespaces builds and serialises a few scopes, not a thousand
/// (Istio computes a `SidecarScope` per Sidecar resource the same way).
///
/// Returns the parts, with the content version and the warnings of [`build_proxy_config`].
/// Never fails (see [`build_proxy_config`]).
pub fn build_proxy_parts(view: &ClusterView, target: &ProxyTarget) -> ProxyParts {
    let scope = shared::scope_config(view, target);
    let mut context = Context {
        view,
        target,
        warnings: scope.warnings.iter().cloned().collect(),
    };
    let inbound = match target.proxy_type {
        ProxyType::Sidecar => inbound::build(&mut context),
        // A router has no workload behind it (Istio builds no inbound listeners for gateways).
        ProxyType::Router => InboundConfig::default(),
    };
    ProxyParts::new(node(view, target), inbound, scope, context.warnings)
}

/// The proxy's node: Istio's node ID `<type>~<ip>~<instance>.<namespace>~<namespace>.svc.<domain>`
/// and its identity, labels, IPs and locality.
fn node(view: &ClusterView, target: &ProxyTarget) -> Node {
    let mesh = view.mesh();
    let first_ip = target
        .ips
        .first()
        .map_or_else(|| "0.0.0.0".to_owned(), ToString::to_string);
    Node {
        id: format!(
            "{}~{first_ip}~{}.{}~{}.svc.{}",
            target.proxy_type.as_str(),
            target.instance_name,
            target.namespace,
            target.namespace,
            mesh.cluster_domain
        ),
        namespace: target.namespace.clone(),
        workload_name: target.workload_name.clone(),
        service_account: target.service_account.clone(),
        labels: target.labels.clone(),
        ip_addresses: target.ips.clone(),
        trust_domain: mesh.trust_domain.clone(),
        locality: target.locality.clone(),
        proxy_type: target.proxy_type,
    }
}

#[cfg(test)]
mod tests;
