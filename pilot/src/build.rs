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
mod policy;
mod routes;
mod scope;
mod tcp;
mod version;

use std::collections::BTreeSet;

use weft_proxy_config::{InboundConfig, MODEL_VERSION, Node, ProxyConfig, ProxyType};

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
pub fn build_proxy_config(view: &ClusterView, target: &ProxyTarget) -> BuildOutput {
    let mut context = Context {
        view,
        target,
        warnings: BTreeSet::new(),
    };
    let scope = scope::Scope::new(&mut context);
    let mut clusters = clusters::build(&mut context, &scope);
    let (outbound, inbound, gateways) = match target.proxy_type {
        ProxyType::Sidecar => {
            let outbound = outbound::build(&mut context, &scope, &clusters);
            (outbound, inbound::build(&mut context), Vec::new())
        }
        ProxyType::Router => {
            // A router has no workload behind it and no per-service listeners (Istio builds
            // none for gateways); it gets the clusters its routes reach.
            let names = clusters.iter().map(|c| c.value.name.clone()).collect();
            let built = gateway::build(&mut context, &scope, &names);
            clusters.retain(|cluster| built.clusters.contains(&cluster.value.name));
            let outbound = outbound::Listeners {
                listeners: Vec::new(),
                cached: Vec::new(),
            };
            (outbound, InboundConfig::default(), built.listeners)
        }
    };
    let mesh = view.mesh();
    let first_ip = target
        .ips
        .first()
        .map_or_else(|| "0.0.0.0".to_owned(), ToString::to_string);
    let node = Node {
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
    };
    let mut config = ProxyConfig {
        model_version: MODEL_VERSION.to_owned(),
        version: String::new(),
        node,
        outbound_traffic_policy: scope.outbound_traffic_policy,
        inbound,
        outbound: outbound.listeners,
        clusters: clusters.iter().map(|c| c.value.clone()).collect(),
        gateways,
    };
    // Hashing serialises maps with string keys only; it cannot fail for this model. Should it
    // ever, the version stays empty, which the proxy reports as "unversioned".
    if let Some(hash) = version::content_version(&config, &outbound.cached, &clusters) {
        config.version = hash;
    }
    BuildOutput {
        config,
        warnings: context.warnings.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests;
