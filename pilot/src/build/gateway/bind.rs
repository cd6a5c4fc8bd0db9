//! Binding VirtualServices to a gateway server: which VirtualServices apply (their `gateways`
//! name the Gateway, they are exported to the proxy's namespace, and their hosts intersect
//! the server's hosts under the hosts' namespace rules), and their routes for the server.

use std::collections::BTreeSet;

use weft_crds::networking::VirtualService;
use weft_proxy_config::{
    RouteConfiguration, TcpRoute, TlsMatch, TlsRoute, VirtualHost, is_valid_gateway_host,
};

use super::server::{ServerHost, Translated};
use super::{GatewayName, names_binding};
use crate::build::Context;
use crate::build::routes::{RouteInputs, virtual_service_routes};
use crate::build::scope::Scope;
use crate::build::tcp::{L4Fields, l4_match, weighted};
use crate::host::{host_matches, resolve_host};
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// Fills the routes of `translated.server` from the VirtualServices bound to `gateway`, oldest
/// first: HTTP virtual hosts for servers that serve HTTP (one per intersected host, routes of
/// later VirtualServices for the same host appended, as Istio merges them on gateways), TLS
/// routes for passthrough servers, TCP routes for TCP and terminated TLS servers.
pub(super) fn attach_routes<'a>(
    context: &mut Context<'a>,
    scope: &Scope<'a>,
    clusters: &BTreeSet<String>,
    gateway: &GatewayName,
    translated: &mut Translated,
) {
    let view = context.view;
    let proxy_namespace = context.target.namespace.clone();
    let domain = view.mesh().cluster_domain.clone();
    let port = translated.server_port;
    let inputs = RouteInputs {
        scope,
        clusters,
        port,
        gateway: Some(gateway),
    };
    let serves_http = translated.server.serves_http();
    let passthrough = translated.server.is_tls() && !translated.server.terminates_tls();
    let mut virtual_hosts: Vec<VirtualHost> = Vec::new();
    let export = &view.index().virtual_services.export_to;
    for (position, vs) in view.objects().virtual_services.iter().enumerate() {
        let namespace = namespace_of(&vs.metadata);
        let bound = !vs.spec.gateways.is_empty()
            && names_binding(&vs.spec.gateways, namespace, Some(gateway));
        let visible = export
            .get(position)
            .is_some_and(|export| export.visible_to(&proxy_namespace));
        if !bound || !visible {
            continue;
        }
        let vs_hosts: Vec<String> = vs
            .spec
            .hosts
            .iter()
            .map(|host| resolve_host(&host.to_ascii_lowercase(), namespace, &domain))
            .collect();
        let hosts = intersect(&translated.hosts, namespace, &vs_hosts);
        if hosts.is_empty() {
            continue;
        }
        let origin = Origin {
            kind: "VirtualService",
            namespace,
            name: name_of(&vs.metadata),
        };
        if serves_http {
            if vs.spec.http.is_empty() {
                continue;
            }
            let routes = virtual_service_routes(context, &inputs, vs);
            let incoming = hosts
                .iter()
                .map(|host| VirtualHost {
                    name: format!("{host}:{port}"),
                    domains: if host == "*" {
                        vec![host.clone()]
                    } else {
                        vec![host.clone(), format!("{host}:{port}")]
                    },
                    routes: routes.clone(),
                })
                .collect();
            merge_virtual_hosts(&mut virtual_hosts, incoming);
        } else if passthrough {
            let routes = tls_routes(context, &inputs, &origin, translated, vs);
            translated.server.tls_routes.extend(routes);
        } else {
            let routes = tcp_routes(context, &inputs, &origin, vs);
            translated.server.tcp_routes.extend(routes);
        }
    }
    if serves_http {
        translated.server.route_config = Some(RouteConfiguration { virtual_hosts });
    }
}

/// Appends `incoming` virtual hosts to `existing`; a virtual host whose name is already there
/// has its routes appended to the existing one's (Istio merges VirtualServices of one host on
/// gateways, earlier routes first).
pub(super) fn merge_virtual_hosts(existing: &mut Vec<VirtualHost>, incoming: Vec<VirtualHost>) {
    for vhost in incoming {
        match existing.iter_mut().find(|other| other.name == vhost.name) {
            Some(other) => other.routes.extend(vhost.routes),
            None => existing.push(vhost),
        }
    }
}

/// The hosts a VirtualService of `namespace` with (resolved) hosts `vs_hosts` serves through
/// `server` hosts: for each pair that matches either way, the more specific of the two (Istio's
/// gateway host intersection), skipping server hosts whose namespace rule does not admit the
/// VirtualService. In order, without duplicates.
fn intersect(server: &[ServerHost], namespace: &str, vs_hosts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for vs_host in vs_hosts {
        for server_host in server.iter().filter(|h| h.namespace.admits(namespace)) {
            let host = if host_matches(&server_host.host, vs_host) {
                vs_host
            } else if host_matches(vs_host, &server_host.host) {
                &server_host.host
            } else {
                continue;
            };
            if is_valid_gateway_host(host) && !out.contains(host) {
                out.push(host.clone());
            }
        }
    }
    out
}

/// The VirtualService's `tls` routes for a passthrough server: each match's `sniHosts`
/// intersected with the server's hosts; matches that cannot apply (no SNI in common, another
/// port, gateways not naming this one, source labels or namespace the proxy lacks) dropped.
fn tls_routes(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    translated: &Translated,
    vs: &VirtualService,
) -> Vec<TlsRoute> {
    let mut routes = Vec::new();
    for (index, route) in vs.spec.tls.iter().enumerate() {
        let path = format!("spec.tls[{index}]");
        let mut matches = Vec::new();
        for (match_index, attributes) in route.match_.iter().enumerate() {
            let sni: Vec<String> = attributes
                .sni_hosts
                .iter()
                .map(|host| host.to_ascii_lowercase())
                .collect();
            let sni_hosts = intersect(&translated.hosts, origin.namespace, &sni);
            if sni_hosts.is_empty() {
                continue;
            }
            let l4 = l4_match(
                context,
                inputs,
                origin,
                &format!("{path}.match[{match_index}]"),
                L4Fields {
                    port: attributes.port,
                    destination_subnets: &attributes.destination_subnets,
                    source_labels: &attributes.source_labels,
                    gateways: &attributes.gateways,
                    source_namespace: attributes.source_namespace.as_deref(),
                    source_subnet: None,
                },
            );
            if let Some(l4) = l4 {
                matches.push(TlsMatch {
                    sni_hosts,
                    destination_subnets: l4.destination_subnets,
                });
            }
        }
        if matches.is_empty() {
            continue;
        }
        let clusters = weighted(context, inputs, origin, &path, &route.route);
        routes.push(TlsRoute { matches, clusters });
    }
    routes
}

/// The VirtualService's `tcp` routes for a TCP or terminated TLS server; routes whose every
/// match cannot apply are dropped.
fn tcp_routes(
    context: &mut Context<'_>,
    inputs: &RouteInputs<'_, '_>,
    origin: &Origin<'_>,
    vs: &VirtualService,
) -> Vec<TcpRoute> {
    let mut routes = Vec::new();
    for (index, route) in vs.spec.tcp.iter().enumerate() {
        let path = format!("spec.tcp[{index}]");
        let mut matches = Vec::new();
        for (match_index, attributes) in route.match_.iter().enumerate() {
            let l4 = l4_match(
                context,
                inputs,
                origin,
                &format!("{path}.match[{match_index}]"),
                L4Fields {
                    port: attributes.port,
                    destination_subnets: &attributes.destination_subnets,
                    source_labels: &attributes.source_labels,
                    gateways: &attributes.gateways,
                    source_namespace: attributes.source_namespace.as_deref(),
                    source_subnet: attributes.source_subnet.as_deref(),
                },
            );
            matches.extend(l4);
        }
        if !route.match_.is_empty() && matches.is_empty() {
            continue;
        }
        let clusters = weighted(context, inputs, origin, &path, &route.route);
        routes.push(TcpRoute { matches, clusters });
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::super::server::HostNamespace;
    use super::*;

    fn host(namespace: HostNamespace, host: &str) -> ServerHost {
        ServerHost {
            namespace,
            host: host.to_owned(),
        }
    }

    #[test]
    fn hosts_intersect_to_the_more_specific_under_namespace_rules() {
        let server = [
            host(HostNamespace::Any, "*.example.com"),
            host(HostNamespace::Named("prod".to_owned()), "*"),
        ];
        let vs = ["a.example.com".to_owned(), "other.org".to_owned()];
        assert_eq!(intersect(&server, "dev", &vs), vec!["a.example.com"]);
        assert_eq!(
            intersect(&server, "prod", &vs),
            vec!["a.example.com", "other.org"]
        );
        let wildcard = ["*".to_owned()];
        assert_eq!(intersect(&server, "dev", &wildcard), vec!["*.example.com"]);
    }

    #[test]
    fn repeated_virtual_hosts_append_routes() {
        let vhost = |name: &str, route: &str| VirtualHost {
            name: name.to_owned(),
            domains: vec![name.to_owned()],
            routes: vec![weft_proxy_config::Route {
                name: route.to_owned(),
                matches: Vec::new(),
                action: weft_proxy_config::RouteAction::DirectResponse(
                    weft_proxy_config::DirectResponseAction {
                        status: 200,
                        body: None,
                    },
                ),
            }],
        };
        let mut existing = vec![vhost("a", "first")];
        merge_virtual_hosts(
            &mut existing,
            vec![vhost("a", "second"), vhost("b", "third")],
        );
        assert_eq!(existing.len(), 2);
        let names: Vec<&str> = existing[0].routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, vec!["first", "second"]);
    }
}
