//! Outbound listeners: one per visible (service, port), with HTTP routes and/or TCP routes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use weft_crds::networking::VirtualService;
use weft_proxy_config::{
    Cluster, OutboundListener, OutboundTrafficPolicy, Protocol, RouteConfiguration, VirtualHost,
};

use super::Context;
use super::routes::{RouteInputs, default_route, virtual_service_routes};
use super::scope::Scope;
use super::tcp::tcp_routes;
use crate::cache::Cached;
use crate::host::specificity;
use crate::registry::{ServiceInstance, ServiceSource};
use crate::unsupported::Unsupported;
use crate::view::sort_key;

/// The outbound listeners of a proxy, sorted by name, and the cached listeners among them.
pub(crate) struct Listeners {
    /// The listeners.
    pub listeners: Vec<OutboundListener>,
    /// The listeners taken from the view's cache (with their JSON), by name; a cached
    /// listener merged into a port-only listener is absent from `listeners`.
    pub cached: Vec<Arc<Cached<OutboundListener>>>,
}

/// Every outbound listener of the proxy, sorted by name. Services without VIPs share a
/// port-only listener (`0.0.0.0_<port>`): HTTP ones are merged into one listener with a
/// virtual host each (as Istio's wildcard HTTP listener); for other protocols the first
/// (by host name) keeps the port and the others are reported. An HTTP service port without
/// VirtualService has a proxy-independent listener, taken from the view's cache.
pub(crate) fn build<'a>(
    context: &mut Context<'a>,
    scope: &Scope<'a>,
    clusters: &[Arc<Cached<Cluster>>],
) -> Listeners {
    let cluster_names: BTreeSet<String> = clusters.iter().map(|c| c.value.name.clone()).collect();
    let view = context.view;
    let mut listeners = Vec::new();
    let mut cached = Vec::new();
    for service in &scope.services {
        for port in scope.ports_of(service) {
            let Some(service_port) = service.port(*port) else {
                continue;
            };
            let inputs = RouteInputs {
                scope,
                clusters: &cluster_names,
                port: *port,
                gateway: None,
            };
            let vs = virtual_service_for(context, scope, &service.hostname);
            let protocol = service_port.protocol;
            if vs.is_none() && protocol.is_http() {
                let same_namespace = service.namespace == context.target.namespace;
                let entry = view
                    .cache()
                    .default_listener(service, *port, same_namespace, || {
                        listener(context, &inputs, service, protocol, None)
                    });
                listeners.push(entry.value.clone());
                cached.push(entry);
            } else {
                listeners.push(listener(context, &inputs, service, protocol, vs));
            }
        }
    }
    cached.sort_by(|a, b| a.value.name.cmp(&b.value.name));
    let listeners = resolve_conflicts(context, scope, listeners);
    if scope.outbound_traffic_policy == OutboundTrafficPolicy::RegistryOnly {
        for listener in &listeners {
            let port_only = listener.addresses.is_empty() && !listener.protocol.is_http();
            if let Some(service) = scope.service(&listener.hostname).filter(|_| port_only) {
                context.warn(Unsupported::new(
                    service.kind(),
                    &service.namespace,
                    &service.name,
                    "spec.addresses",
                    format!(
                        "without addresses, port {} is matched by port alone and the model's TCP \
                         listeners cannot match SNI: REGISTRY_ONLY is not enforced for other \
                         destinations on this port",
                        listener.port
                    ),
                ));
            }
        }
    }
    Listeners { listeners, cached }
}

/// The listener of `service` on `inputs.port`, routed by `vs` when one applies.
fn listener(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    service: &ServiceInstance,
    protocol: Protocol,
    vs: Option<&VirtualService>,
) -> OutboundListener {
    let port = inputs.port;
    let http = (protocol.is_http() || protocol == Protocol::Unknown).then(|| {
        let routes = match vs {
            Some(vs) if !vs.spec.http.is_empty() => virtual_service_routes(context, inputs, vs),
            _ => vec![default_route(service, port)],
        };
        RouteConfiguration {
            virtual_hosts: vec![VirtualHost {
                name: format!("{}:{port}", service.hostname),
                domains: domains(context, service, port),
                routes,
            }],
        }
    });
    let tcp = if protocol.is_http() {
        Vec::new()
    } else {
        tcp_routes(context, inputs, service, protocol, vs)
    };
    OutboundListener {
        name: format!("{}:{port}", service.hostname),
        hostname: service.hostname.clone(),
        addresses: service.vips.clone(),
        port,
        protocol,
        http,
        tcp,
    }
}

/// The VirtualService bound to the mesh whose hosts cover `hostname` most specifically
/// (exact over wildcard); among equals the oldest, as Istio keeps the first of conflicting
/// VirtualServices for sidecars.
fn virtual_service_for<'a>(
    context: &Context<'a>,
    scope: &Scope<'a>,
    hostname: &str,
) -> Option<&'a VirtualService> {
    let view = context.view;
    let list = &view.objects().virtual_services;
    let mut best: Option<((bool, usize), &'a VirtualService)> = None;
    for (host, position) in view.index().virtual_services.matching(hostname) {
        if !scope
            .virtual_services
            .get(position)
            .copied()
            .unwrap_or(false)
        {
            continue;
        }
        let Some(vs) = list.get(position) else {
            continue;
        };
        let rank = specificity(host);
        let better = match &best {
            None => true,
            Some((best_rank, best_vs)) => {
                rank > *best_rank
                    || (rank == *best_rank && sort_key(&vs.metadata) < sort_key(&best_vs.metadata))
            }
        };
        if better {
            best = Some((rank, vs));
        }
    }
    best.map(|(_, vs)| vs)
}

/// The authorities a service answers to, as Istio's `generateVirtualHostDomains`: the host
/// name; for Kubernetes Services `name.namespace`, `name.namespace.svc` and, from the same
/// namespace, `name`; the VIPs; each alone and with `:<port>`.
fn domains(context: &Context<'_>, service: &ServiceInstance, port: u16) -> Vec<String> {
    let mut names = vec![service.hostname.clone()];
    if matches!(service.source, ServiceSource::Kubernetes { .. }) {
        let short = format!("{}.{}", service.name, service.namespace);
        names.push(format!("{short}.svc"));
        names.push(short);
        if service.namespace == context.target.namespace {
            names.push(service.name.clone());
        }
    }
    for vip in &service.vips {
        names.push(vip.to_string());
    }
    let mut domains = Vec::new();
    for name in names {
        let with_port = match name.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
            _ => format!("{name}:{port}"),
        };
        domains.push(name);
        domains.push(with_port);
    }
    domains
}

fn resolve_conflicts(
    context: &mut Context<'_>,
    scope: &Scope<'_>,
    listeners: Vec<OutboundListener>,
) -> Vec<OutboundListener> {
    let mut out: Vec<OutboundListener> = Vec::new();
    let mut wildcard: BTreeMap<u16, Vec<OutboundListener>> = BTreeMap::new();
    let mut claimed: BTreeMap<(IpAddr, u16), String> = BTreeMap::new();
    for listener in listeners {
        if listener.addresses.is_empty() {
            wildcard.entry(listener.port).or_default().push(listener);
            continue;
        }
        let taken = listener
            .addresses
            .iter()
            .find_map(|address| claimed.get(&(*address, listener.port)).cloned());
        if let Some(first) = taken {
            report_conflict(context, scope, &listener, &first);
            continue;
        }
        for address in &listener.addresses {
            claimed.insert((*address, listener.port), listener.name.clone());
        }
        out.push(listener);
    }
    for (port, mut group) in wildcard {
        if group.len() == 1 {
            out.append(&mut group);
            continue;
        }
        let all_http = group.iter().all(|listener| listener.protocol.is_http());
        if all_http {
            let protocol = group.first().map_or(Protocol::Http, |l| l.protocol);
            let virtual_hosts = group
                .into_iter()
                .flat_map(|listener| listener.http.into_iter().flat_map(|h| h.virtual_hosts))
                .collect();
            out.push(OutboundListener {
                name: format!("0.0.0.0_{port}"),
                hostname: "*".to_owned(),
                addresses: Vec::new(),
                port,
                protocol,
                http: Some(RouteConfiguration { virtual_hosts }),
                tcp: Vec::new(),
            });
        } else {
            let mut rest = group.into_iter();
            if let Some(first) = rest.next() {
                for other in rest {
                    report_conflict(context, scope, &other, &first.name);
                }
                out.push(first);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn report_conflict(
    context: &mut Context<'_>,
    scope: &Scope<'_>,
    listener: &OutboundListener,
    first: &str,
) {
    if let Some(service) = scope.service(&listener.hostname) {
        context.warn(Unsupported::new(
            service.kind(),
            &service.namespace,
            &service.name,
            "spec.ports",
            format!(
                "host {} port {} shares its address and port with {first}, which keeps it; the \
                 model's listeners cannot tell them apart",
                listener.hostname, listener.port
            ),
        ));
    }
}
