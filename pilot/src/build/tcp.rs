//! TCP and TLS routes: a VirtualService's `tls` and `tcp` routes for one (service, port), or
//! the default route to the service's cluster.

use weft_crds::networking::{RouteDestination, VirtualService};
use weft_proxy_config::{ClusterName, L4Match, Protocol, TcpRoute, WeightedCluster};

use super::Context;
use super::gateway::names_binding;
use super::routes::{RouteInputs, destination_cluster};
use crate::host::{host_matches, resolve_host};
use crate::registry::ServiceInstance;
use crate::selector::selects;
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// The TCP routes of the listener for `service` port `inputs.port` speaking `protocol`: for
/// TLS, the `tls` routes whose `sniHosts` cover the service host, then the `tcp` routes; for
/// TCP and unknown protocols, the `tcp` routes; then, unless a translated route matches every
/// connection, the default route to the service's cluster (Istio's fallback filter chain).
/// Matches that cannot apply to this proxy are dropped, as for HTTP.
pub(crate) fn tcp_routes(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    service: &ServiceInstance,
    protocol: Protocol,
    vs: Option<&VirtualService>,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    if let Some(vs) = vs {
        let namespace = namespace_of(&vs.metadata);
        let origin = Origin {
            kind: "VirtualService",
            namespace,
            name: name_of(&vs.metadata),
        };
        let domain = context.view.mesh().cluster_domain.clone();
        if protocol == Protocol::Tls {
            for (index, route) in vs.spec.tls.iter().enumerate() {
                let path = format!("spec.tls[{index}]");
                let mut matches = Vec::new();
                for (match_index, attributes) in route.match_.iter().enumerate() {
                    let covers = attributes.sni_hosts.iter().any(|sni| {
                        let sni = resolve_host(sni, namespace, &domain);
                        host_matches(&sni, &service.hostname)
                            || host_matches(&service.hostname, &sni)
                    });
                    if !covers {
                        continue;
                    }
                    if let Some(l4) = l4_match(
                        context,
                        inputs,
                        &origin,
                        &format!("{path}.match[{match_index}]"),
                        L4Fields {
                            port: attributes.port,
                            destination_subnets: &attributes.destination_subnets,
                            source_labels: &attributes.source_labels,
                            gateways: &attributes.gateways,
                            source_namespace: attributes.source_namespace.as_deref(),
                            source_subnet: None,
                        },
                    ) {
                        matches.push(l4);
                    }
                }
                if matches.is_empty() {
                    continue;
                }
                let clusters = weighted(context, inputs, &origin, &path, &route.route);
                routes.push(TcpRoute { matches, clusters });
            }
        }
        for (index, route) in vs.spec.tcp.iter().enumerate() {
            let path = format!("spec.tcp[{index}]");
            let mut matches = Vec::new();
            for (match_index, attributes) in route.match_.iter().enumerate() {
                if let Some(l4) = l4_match(
                    context,
                    inputs,
                    &origin,
                    &format!("{path}.match[{match_index}]"),
                    L4Fields {
                        port: attributes.port,
                        destination_subnets: &attributes.destination_subnets,
                        source_labels: &attributes.source_labels,
                        gateways: &attributes.gateways,
                        source_namespace: attributes.source_namespace.as_deref(),
                        source_subnet: attributes.source_subnet.as_deref(),
                    },
                ) {
                    matches.push(l4);
                }
            }
            if !route.match_.is_empty() && matches.is_empty() {
                continue;
            }
            let clusters = weighted(context, inputs, &origin, &path, &route.route);
            routes.push(TcpRoute { matches, clusters });
        }
    }
    let catch_all = routes.iter().any(|route| {
        route.matches.is_empty() || route.matches.iter().any(|m| *m == L4Match::default())
    });
    if !catch_all {
        routes.push(TcpRoute {
            matches: Vec::new(),
            clusters: vec![WeightedCluster {
                cluster: ClusterName::outbound(inputs.port, "", &service.hostname).to_string(),
                weight: 100,
            }],
        });
    }
    routes
}

/// The L4 match attributes common to Istio's `L4MatchAttributes` and `TLSMatchAttributes`.
pub(super) struct L4Fields<'a> {
    pub port: Option<u32>,
    pub destination_subnets: &'a [String],
    pub source_labels: &'a std::collections::BTreeMap<String, String>,
    pub gateways: &'a [String],
    pub source_namespace: Option<&'a str>,
    pub source_subnet: Option<&'a str>,
}

/// The model's match for `fields`, or `None` when it cannot apply to this proxy (another port,
/// gateways not naming the binding, source labels or namespace the proxy lacks).
pub(super) fn l4_match(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    path: &str,
    fields: L4Fields<'_>,
) -> Option<L4Match> {
    let target = context.target;
    if fields
        .port
        .is_some_and(|port| port != u32::from(inputs.port))
        || (!fields.gateways.is_empty()
            && !names_binding(fields.gateways, origin.namespace, inputs.gateway))
        || !selects(fields.source_labels, &target.labels)
        || fields
            .source_namespace
            .is_some_and(|ns| ns != target.namespace)
    {
        return None;
    }
    if fields.source_subnet.is_some() {
        context.warn(origin.unsupported(
            format!("{path}.sourceSubnet"),
            "matching the source subnet is not expressible; ignored",
        ));
    }
    let mut destination_subnets = Vec::new();
    for (index, subnet) in fields.destination_subnets.iter().enumerate() {
        match subnet.parse() {
            Ok(cidr) => destination_subnets.push(cidr),
            Err(_) => context.warn(origin.unsupported(
                format!("{path}.destinationSubnets[{index}]"),
                format!("{subnet:?} is not an IP block; ignored"),
            )),
        }
    }
    Some(L4Match {
        port: None,
        destination_subnets,
        source_labels: Default::default(),
    })
}

/// The weighted clusters of Istio `RouteDestination`s (a single destination defaults to weight
/// 100, several to 0).
pub(super) fn weighted(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    path: &str,
    destinations: &[RouteDestination],
) -> Vec<WeightedCluster> {
    let single = destinations.len() == 1;
    destinations
        .iter()
        .enumerate()
        .map(|(index, destination)| WeightedCluster {
            cluster: destination_cluster(
                context,
                inputs,
                origin,
                &format!("{path}.route[{index}].destination"),
                &destination.destination,
            ),
            weight: destination
                .weight
                .map_or(if single { 100 } else { 0 }, |w| {
                    u32::try_from(w).unwrap_or(0)
                }),
        })
        .collect()
}
