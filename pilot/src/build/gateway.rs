//! Gateway listeners for a router proxy (Istio's gateway config generation): the `Gateway`s
//! whose `selector` matches the proxy's labels, their servers merged per port, and the
//! VirtualServices bound to each gateway translated into each server's routes.

mod bind;
mod server;
mod tls;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use weft_crds::networking::Gateway;
use weft_proxy_config::{
    ClusterName, GatewayListener, GatewayProtocol, GatewayServer, RouteAction, ServerTlsMode,
    TrafficDirection,
};

use super::Context;
use super::scope::Scope;
use crate::host::host_matches;
use crate::selector::selects;
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// A gateway's identity as VirtualServices name it: `<namespace>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GatewayName {
    pub namespace: String,
    pub name: String,
}

/// Whether the `gateways` list of a VirtualService (or of one of its matches) written in
/// namespace `vs_namespace` names `binding`: the gateway being built, or `None` for the
/// sidecars' reserved name `mesh`. Entries are resolved as Istio's `resolveGatewayName`:
/// `mesh`; `<namespace>/<name>`; a dotted legacy name `<name>.<namespace>[.svc...]`; or a short
/// name in the VirtualService's namespace.
pub(crate) fn names_binding(
    gateways: &[String],
    vs_namespace: &str,
    binding: Option<&GatewayName>,
) -> bool {
    gateways.iter().any(|entry| match binding {
        None => entry == "mesh",
        Some(gateway) => {
            if entry == "mesh" {
                return false;
            }
            let (namespace, name) = match entry.split_once('/') {
                Some((namespace, name)) => (namespace, name),
                None => match entry.split_once('.') {
                    Some((name, rest)) => (rest.split('.').next().unwrap_or(rest), name),
                    None => (vs_namespace, entry.as_str()),
                },
            };
            namespace == gateway.namespace && name == gateway.name
        }
    })
}

/// The gateway listeners of the proxy, sorted by port then bind address, and the names of the
/// clusters their routes reach.
pub(crate) struct GatewayListeners {
    pub listeners: Vec<GatewayListener>,
    pub clusters: BTreeSet<String>,
}

/// Builds every listener of the router `context.target`: each Gateway selecting its labels
/// (in any namespace, oldest first, as Istio merges them), each server translated (see
/// [`server::translate`]) with its routes, then merged per (bind, port). A server that cannot
/// share its port with the servers already there (TLS with plaintext, anything with TCP, an
/// SNI host already served) is left out and reported, as Istio keeps the first.
pub(crate) fn build<'a>(
    context: &mut Context<'a>,
    scope: &Scope<'a>,
    clusters: &BTreeSet<String>,
) -> GatewayListeners {
    let view = context.view;
    let target = context.target;
    let mut listeners: BTreeMap<(u16, Option<IpAddr>), GatewayListener> = BTreeMap::new();
    let mut names = BTreeSet::new();
    let selected = view
        .objects()
        .gateways
        .iter()
        .filter(|gateway| selects(&gateway.spec.selector, &target.labels));
    for gateway in selected {
        let gateway_name = GatewayName {
            namespace: namespace_of(&gateway.metadata).to_owned(),
            name: name_of(&gateway.metadata).to_owned(),
        };
        let origin = Origin {
            kind: "Gateway",
            namespace: &gateway_name.namespace,
            name: &gateway_name.name,
        };
        for (index, spec) in gateway.spec.servers.iter().enumerate() {
            let path = format!("spec.servers[{index}]");
            let Some(mut translated) = server::translate(context, &origin, &path, spec) else {
                continue;
            };
            translated.server.name = unique_name(&mut names, gateway, spec, index);
            bind::attach_routes(context, scope, clusters, &gateway_name, &mut translated);
            let key = (translated.server_port, translated.bind);
            let listener = listeners.entry(key).or_insert_with(|| GatewayListener {
                name: format!(
                    "{}_{}",
                    translated
                        .bind
                        .map_or_else(|| "0.0.0.0".to_owned(), |ip| ip.to_string()),
                    translated.server_port
                ),
                port: translated.server_port,
                bind: translated.bind,
                servers: Vec::new(),
            });
            merge(context, &origin, &path, listener, translated.server);
        }
    }
    let listeners: Vec<GatewayListener> = listeners
        .into_values()
        .filter(|listener| !listener.servers.is_empty())
        .collect();
    let mut reached = referenced_clusters(&listeners);
    reached.extend(auto_passthrough_clusters(&listeners, clusters));
    GatewayListeners {
        listeners,
        clusters: reached,
    }
}

/// The clusters an `AUTO_PASSTHROUGH` server may send to: its clients name the destination in
/// the SNI (`outbound_.<port>_.<subset>_.<host>`), so the gateway needs every outbound cluster,
/// subsets included, of the services its hosts cover (Istio builds an SNI-DNAT cluster for
/// each). Returns their names, taken from `clusters` (the clusters the gateway's scope sees).
fn auto_passthrough_clusters(
    listeners: &[GatewayListener],
    clusters: &BTreeSet<String>,
) -> BTreeSet<String> {
    let hosts: Vec<&str> = listeners
        .iter()
        .flat_map(|listener| &listener.servers)
        .filter(|server| {
            server
                .tls
                .as_ref()
                .is_some_and(|tls| tls.mode == ServerTlsMode::AutoPassthrough)
        })
        .flat_map(|server| server.hosts.iter().map(String::as_str))
        .collect();
    if hosts.is_empty() {
        return BTreeSet::new();
    }
    clusters
        .iter()
        .filter(|name| {
            name.parse::<ClusterName>().is_ok_and(|parsed| {
                parsed.direction == TrafficDirection::Outbound
                    && hosts
                        .iter()
                        .any(|pattern| host_matches(pattern, &parsed.hostname))
            })
        })
        .cloned()
        .collect()
}

/// `<namespace>/<gateway>/<server name or index>`, made unique (Istio requires server names to
/// be unique; a repeated one falls back to the index, then gets `#<index>`).
fn unique_name(
    names: &mut BTreeSet<String>,
    gateway: &Gateway,
    spec: &weft_crds::networking::Server,
    index: usize,
) -> String {
    let prefix = format!(
        "{}/{}",
        namespace_of(&gateway.metadata),
        name_of(&gateway.metadata)
    );
    let candidates = [
        spec.name
            .as_deref()
            .filter(|name| !name.is_empty())
            .map(|name| format!("{prefix}/{name}")),
        Some(format!("{prefix}/{index}")),
        Some(format!("{prefix}/{index}#{index}")),
    ];
    for candidate in candidates.into_iter().flatten() {
        if names.insert(candidate.clone()) {
            return candidate;
        }
    }
    // Unreachable in practice: `<index>#<index>` is only ever produced for this index.
    format!("{prefix}/{index}#{}", names.len())
}

/// Adds `server` to `listener`, following Istio's merge of servers on one port: plaintext HTTP
/// servers with the same hosts and redirect setting become one (their virtual hosts merged,
/// routes of a repeated domain appended); otherwise the server is added unless it conflicts
/// with the servers already there.
fn merge(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    listener: &mut GatewayListener,
    mut server: GatewayServer,
) {
    let port = listener.port;
    if let Some(first) = listener.servers.first() {
        let conflict = if first.is_tls() != server.is_tls() {
            Some(format!(
                "port {port} is already served by {} servers (first: {}); Istio keeps the first, \
                 so this server is left out",
                if first.is_tls() { "TLS" } else { "plaintext" },
                first.name
            ))
        } else if first.protocol == GatewayProtocol::Tcp || server.protocol == GatewayProtocol::Tcp
        {
            Some(format!(
                "a TCP server cannot share port {port} with another server (first: {}); this \
                 server is left out",
                first.name
            ))
        } else {
            None
        };
        if let Some(reason) = conflict {
            context.warn(origin.unsupported(format!("{path}.port"), reason));
            return;
        }
    }
    if server.is_tls() {
        let served: BTreeSet<&str> = listener
            .servers
            .iter()
            .flat_map(|existing| existing.hosts.iter().map(String::as_str))
            .collect();
        let (kept, repeated): (Vec<String>, Vec<String>) = server
            .hosts
            .into_iter()
            .partition(|host| !served.contains(host.as_str()));
        for host in &repeated {
            context.warn(origin.unsupported(
                format!("{path}.hosts"),
                format!(
                    "host {host:?} is already served on port {port} by an earlier TLS server; \
                     connections with that SNI go there"
                ),
            ));
        }
        if kept.is_empty() {
            return;
        }
        server.hosts = kept;
        listener.servers.push(server);
        return;
    }
    let same = listener.servers.iter_mut().find(|existing| {
        existing.serves_http()
            && server.serves_http()
            && existing.hosts == server.hosts
            && existing.https_redirect == server.https_redirect
    });
    match same {
        Some(existing) => {
            let incoming = server.route_config.unwrap_or_default().virtual_hosts;
            let routes = existing.route_config.get_or_insert_with(Default::default);
            bind::merge_virtual_hosts(&mut routes.virtual_hosts, incoming);
        }
        None => listener.servers.push(server),
    }
}

/// Every cluster a route, mirror, TLS route or TCP route of `listeners` names.
fn referenced_clusters(listeners: &[GatewayListener]) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for server in listeners.iter().flat_map(|listener| &listener.servers) {
        let routes = server
            .route_config
            .iter()
            .flat_map(|config| &config.virtual_hosts)
            .flat_map(|vhost| &vhost.routes);
        for route in routes {
            if let RouteAction::Route(forward) = &route.action {
                names.extend(forward.clusters.iter().map(|c| c.cluster.clone()));
                names.extend(forward.mirrors.iter().map(|m| m.cluster.clone()));
            }
        }
        for route in &server.tls_routes {
            names.extend(route.clusters.iter().map(|c| c.cluster.clone()));
        }
        for route in &server.tcp_routes {
            names.extend(route.clusters.iter().map(|c| c.cluster.clone()));
        }
    }
    names
}

#[cfg(test)]
mod tests;
