//! VirtualService rules (Istio `validateVirtualService`): hosts, gateways, TLS and TCP routes
//! and the destinations and weights every route kind shares. HTTP route rules are in `http`.

mod http;

use weft_crds::networking::{
    Destination, L4MatchAttributes, RouteDestination, TlsMatchAttributes, VirtualServiceSpec,
};

use super::path::Path;
use super::{Report, fields};

/// Checks a VirtualService spec.
pub(super) fn check(spec: &VirtualServiceSpec, report: &mut Report) {
    let applies_to_mesh = spec.gateways.is_empty() || spec.gateways.iter().any(|g| g == "mesh");
    let delegate = spec.hosts.is_empty();
    if delegate {
        // A VirtualService without hosts is a delegate, only reachable from another one's
        // `delegate`; it cannot bind to gateways or route TLS/TCP.
        if !spec.gateways.is_empty() {
            report.error(
                "spec.gateways",
                "a delegate VirtualService (one without hosts) must not set gateways",
            );
        }
        if !spec.tls.is_empty() || !spec.tcp.is_empty() {
            report.error(
                "spec",
                "a delegate VirtualService (one without hosts) can only have http routes",
            );
        }
    }
    let hosts = Path::from("spec.hosts");
    for (i, host) in spec.hosts.iter().enumerate() {
        let path = hosts.index(i);
        if host.parse::<std::net::IpAddr>().is_ok() {
            continue; // Istio: "a DNS name with wildcard prefix or an IP address".
        }
        if let Err(e) = fields::wildcard_domain(host) {
            report.error(path, e);
        } else if host == "*" && applies_to_mesh {
            report.error(
                path,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
        } else if host == "*" {
            report.warn(
                path,
                "host \"*\" takes every host of the bound gateways; name the hosts instead",
            );
        }
    }
    let gateways = Path::from("spec.gateways");
    for (i, gateway) in spec.gateways.iter().enumerate() {
        gateway_name(report, gateways.index(i), gateway);
    }
    if spec.http.is_empty() && spec.tls.is_empty() && spec.tcp.is_empty() {
        report.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    let http = Path::from("spec.http");
    for (i, route) in spec.http.iter().enumerate() {
        http::check_route(report, http.index(i), route, delegate);
    }
    let tls = Path::from("spec.tls");
    for (i, route) in spec.tls.iter().enumerate() {
        let path = tls.index(i);
        let matches = path.field("match");
        if route.match_.is_empty() {
            report.error(matches, "TLS route must have at least one match condition");
        }
        for (j, m) in route.match_.iter().enumerate() {
            tls_match(report, matches.index(j), m, &spec.hosts);
        }
        let routes: Vec<_> = route.route.iter().map(l4_pair).collect();
        destinations(report, path, &routes);
    }
    let tcp = Path::from("spec.tcp");
    for (i, route) in spec.tcp.iter().enumerate() {
        let path = tcp.index(i);
        let matches = path.field("match");
        for (j, m) in route.match_.iter().enumerate() {
            l4_match(report, matches.index(j), m);
        }
        let routes: Vec<_> = route.route.iter().map(l4_pair).collect();
        destinations(report, path, &routes);
    }
    fields::export_to(report, "spec.exportTo", &spec.export_to);
}

fn l4_pair(route: &RouteDestination) -> (&Destination, Option<i32>) {
    (&route.destination, route.weight)
}

/// Checks a gateway reference: `mesh`, `name`, `namespace/name` or a gateway FQDN.
pub(super) fn gateway_name<'p>(report: &mut Report, path: impl Into<Path<'p>>, gateway: &str) {
    let path = path.into();
    if gateway == "mesh" {
        return;
    }
    match gateway.split_once('/') {
        Some((ns, name)) => {
            if ns.is_empty() || name.is_empty() || name.contains('/') {
                report.error(
                    path,
                    format!("gateway {gateway:?} must be <namespace>/<name> with both parts set"),
                );
            } else if !fields::dns_label(ns, false) {
                report.error(
                    path,
                    format!("gateway {gateway:?}: {ns:?} is not a namespace name"),
                );
            } else if name == "mesh" {
                report.error(
                    path,
                    "the reserved gateway \"mesh\" cannot be qualified by a namespace",
                );
            } else if !fields::dns_subdomain(name) {
                report.error(
                    path,
                    format!("gateway {gateway:?}: {name:?} is not a Kubernetes object name"),
                );
            }
        }
        None if !fields::dns_subdomain(gateway) => report.error(
            path,
            format!("gateway {gateway:?} must be \"mesh\", <name> or <namespace>/<name>"),
        ),
        None => {}
    }
}

/// True when `sni` is one of the hosts `host` names (Istio's host `SubsetOf`).
fn host_covers(host: &str, sni: &str) -> bool {
    if host == "*" || host.eq_ignore_ascii_case(sni) {
        return true;
    }
    let Some(suffix) = host.strip_prefix('*') else {
        return false;
    };
    let sni = sni.strip_prefix('*').unwrap_or(sni);
    sni.len() > suffix.len()
        && sni
            .to_ascii_lowercase()
            .ends_with(&suffix.to_ascii_lowercase())
}

fn tls_match(report: &mut Report, path: Path<'_>, m: &TlsMatchAttributes, hosts: &[String]) {
    let sni_hosts = path.field("sniHosts");
    if m.sni_hosts.is_empty() {
        report.error(sni_hosts, "TLS match must have at least one SNI host");
    }
    for (i, sni) in m.sni_hosts.iter().enumerate() {
        let at = sni_hosts.index(i);
        if let Err(e) = fields::wildcard_domain(sni) {
            report.error(at, e);
        } else if !hosts.is_empty() && !hosts.iter().any(|h| host_covers(h, sni)) {
            report.error(
                at,
                format!("SNI host {sni:?} is not a compatible subset of any of the virtual service hosts"),
            );
        }
    }
    subnets(
        report,
        path.field("destinationSubnets"),
        &m.destination_subnets,
    );
    if let Some(port) = m.port {
        fields::port(report, path.field("port"), port);
    }
    fields::labels(report, path.field("sourceLabels"), &m.source_labels);
    let gateways = path.field("gateways");
    for (i, g) in m.gateways.iter().enumerate() {
        gateway_name(report, gateways.index(i), g);
    }
    source_namespace(report, path, m.source_namespace.as_deref());
}

fn l4_match(report: &mut Report, path: Path<'_>, m: &L4MatchAttributes) {
    subnets(
        report,
        path.field("destinationSubnets"),
        &m.destination_subnets,
    );
    if let Some(subnet) = &m.source_subnet
        && !fields::is_ip_or_cidr(subnet)
    {
        report.error(
            path.field("sourceSubnet"),
            format!("{subnet:?} must be an IP address or a CIDR block"),
        );
    }
    if let Some(port) = m.port {
        fields::port(report, path.field("port"), port);
    }
    fields::labels(report, path.field("sourceLabels"), &m.source_labels);
    let gateways = path.field("gateways");
    for (i, g) in m.gateways.iter().enumerate() {
        gateway_name(report, gateways.index(i), g);
    }
    source_namespace(report, path, m.source_namespace.as_deref());
}

fn subnets(report: &mut Report, path: Path<'_>, subnets: &[String]) {
    for (i, subnet) in subnets.iter().enumerate() {
        if !fields::is_ip_or_cidr(subnet) {
            report.error(
                path.index(i),
                format!("{subnet:?} must be an IP address or a CIDR block"),
            );
        }
    }
}

pub(super) fn source_namespace<'p>(
    report: &mut Report,
    path: impl Into<Path<'p>>,
    namespace: Option<&str>,
) {
    if let Some(ns) = namespace
        && !fields::dns_label(ns, false)
    {
        report.error(
            path.into().field("sourceNamespace"),
            format!("{ns:?} is not a namespace name"),
        );
    }
}

/// Checks one destination (Istio `validateDestination`): a host other than `*`, a subset
/// name that is a DNS label, a port from 1 to 65535.
pub(super) fn destination<'p>(report: &mut Report, path: impl Into<Path<'p>>, dest: &Destination) {
    let path = path.into();
    if dest.host == "*" {
        report.error(
            path.field("host"),
            "destination host must not be the wildcard *",
        );
    } else if let Err(e) = fields::wildcard_domain(&dest.host) {
        report.error(path.field("host"), e);
    }
    if let Some(subset) = &dest.subset
        && !fields::dns_label(subset, false)
    {
        report.error(
            path.field("subset"),
            format!(
                "subset name {subset:?} must be a DNS label (1-63 lowercase letters, digits or '-')"
            ),
        );
    }
    if let Some(number) = dest.port.as_ref().and_then(|p| p.number) {
        fields::port(report, path.field("port").field("number"), number);
    }
}

/// Checks a route's destination list at `{path}.route`: at least one; each destination;
/// weights 0-100 summing to 100 when there is more than one destination (Istio: "total
/// destination weight != 100"); a zero-weight destination in a split is a warning.
pub(super) fn destinations<'p>(
    report: &mut Report,
    path: impl Into<Path<'p>>,
    routes: &[(&Destination, Option<i32>)],
) {
    let parent = path.into();
    let path = parent.field("route");
    if routes.is_empty() {
        report.error(path, "route must have at least one destination");
        return;
    }
    let mut total: i64 = 0;
    for (i, (dest, weight)) in routes.iter().enumerate() {
        let at = path.index(i);
        destination(report, at.field("destination"), dest);
        let weight = weight.unwrap_or(0);
        if !(0..=100).contains(&weight) {
            report.error(
                at.field("weight"),
                format!("weight {weight} must be between 0 and 100"),
            );
        }
        total += i64::from(weight);
    }
    if routes.len() > 1 {
        if total != 100 {
            report.error(
                path,
                format!("total destination weight {total} != 100: weights must sum to 100"),
            );
        } else if let Some(i) = routes.iter().position(|(_, w)| w.unwrap_or(0) == 0) {
            report.warn(
                path.index(i).field("weight"),
                "weight 0: this destination receives no traffic",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::host_covers;

    #[test]
    fn sni_subsets() {
        assert!(host_covers("*.example.com", "a.example.com"));
        assert!(host_covers("*.example.com", "*.a.example.com"));
        assert!(host_covers("*", "x"));
        assert!(host_covers("a.com", "A.com"));
        assert!(!host_covers("*.example.com", "example.com"));
        assert!(!host_covers("a.com", "b.com"));
    }
}
