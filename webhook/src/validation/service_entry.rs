//! ServiceEntry rules (Istio `validateServiceEntry`): hosts, addresses, ports and the
//! combinations of resolution, addresses, endpoints and workload selector.

use std::collections::BTreeMap;

use weft_crds::networking::{Resolution, ServiceEntrySpec};

use super::{Report, fields, workload_entry};

/// Checks a ServiceEntry spec.
pub(super) fn check(spec: &ServiceEntrySpec, report: &mut Report) {
    if spec.hosts.is_empty() {
        report.error("spec.hosts", "service entry must have at least one host");
    }
    let resolution = spec.resolution.unwrap_or_default();
    let dns = matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    for (i, host) in spec.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if host == "*" {
            report.error(path, "invalid host *: a service entry must name its hosts");
        } else if let Err(e) = fields::wildcard_domain(host) {
            report.error(path, e);
        } else if dns && host.starts_with('*') {
            report.error(
                path,
                format!("wildcard host {host:?} cannot be resolved: not allowed with {resolution:?} resolution"),
            );
        }
    }
    for (i, address) in spec.addresses.iter().enumerate() {
        if !fields::is_ip_or_cidr(address) {
            report.error(
                format!("spec.addresses[{i}]"),
                format!("{address:?} must be an IP address or a CIDR block"),
            );
        }
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut numbers: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        fields::port(report, &format!("{path}.number"), port.number);
        fields::port_name(report, &format!("{path}.name"), &port.name);
        if let Some(target) = port.target_port {
            fields::port(report, &format!("{path}.targetPort"), target);
        }
        if let Some(protocol) = &port.protocol
            && !fields::is_protocol(protocol)
        {
            report.error(
                format!("{path}.protocol"),
                format!("invalid protocol {protocol:?}"),
            );
        }
        if let Some(first) = names.insert(&port.name, i) {
            report.error(
                format!("{path}.name"),
                format!(
                    "port name {:?} already defined by spec.ports[{first}]",
                    port.name
                ),
            );
        }
        if let Some(first) = numbers.insert(port.number, i) {
            report.error(
                format!("{path}.number"),
                format!(
                    "port number {} already defined by spec.ports[{first}]",
                    port.number
                ),
            );
        }
    }
    if spec.workload_selector.is_some() && !spec.endpoints.is_empty() {
        report.error(
            "spec",
            "only one of workloadSelector or endpoints is allowed in a service entry",
        );
    }
    if let Some(selector) = &spec.workload_selector {
        fields::labels(report, "spec.workloadSelector.labels", &selector.labels);
    }
    resolution_rules(report, spec, resolution);
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        let path = format!("spec.endpoints[{i}]");
        workload_entry::check(endpoint, &path, report);
        for name in endpoint.ports.keys() {
            if !names.contains_key(name.as_str()) {
                report.error(
                    format!("{path}.ports.{name}"),
                    format!("endpoint port {name:?} is not defined by the service entry's ports"),
                );
            }
        }
    }
    for (i, san) in spec.subject_alt_names.iter().enumerate() {
        if san.is_empty() {
            report.error(
                format!("spec.subjectAltNames[{i}]"),
                "subject alt name must not be empty",
            );
        }
    }
    fields::export_to(report, "spec.exportTo", &spec.export_to);
}

fn resolution_rules(report: &mut Report, spec: &ServiceEntrySpec, resolution: Resolution) {
    match resolution {
        Resolution::None => {
            if !spec.endpoints.is_empty() {
                report.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type NONE",
                );
            }
            if spec.addresses.is_empty() {
                // Without an address, a TCP port can only be matched by port number: the
                // entry would capture every connection to that port.
                for (i, port) in spec.ports.iter().enumerate() {
                    let protocol = port.protocol.as_deref().unwrap_or("TCP");
                    let routable = fields::is_http_protocol(protocol)
                        || ["HTTPS", "TLS"]
                            .iter()
                            .any(|p| p.eq_ignore_ascii_case(protocol));
                    if !routable {
                        report.error(
                            format!("spec.ports[{i}].protocol"),
                            format!("resolution NONE with no addresses cannot serve {protocol} ports: set addresses or use an HTTP/TLS protocol"),
                        );
                    }
                }
            }
        }
        Resolution::Static => {
            if spec.endpoints.is_empty() && spec.workload_selector.is_none() {
                report.error(
                    "spec.endpoints",
                    "endpoints or a workloadSelector must be provided for resolution STATIC",
                );
            }
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                if let Some(address) = endpoint.address.as_deref()
                    && address.parse::<std::net::IpAddr>().is_err()
                    && !address.starts_with("unix://")
                {
                    report.error(
                        format!("spec.endpoints[{i}].address"),
                        format!(
                            "{address:?}: STATIC resolution needs an IP address or a unix socket"
                        ),
                    );
                }
            }
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if resolution == Resolution::DnsRoundRobin && spec.endpoints.len() > 1 {
                report.error(
                    "spec.endpoints",
                    "DNS_ROUND_ROBIN resolution allows at most one endpoint",
                );
            }
            for (i, endpoint) in spec.endpoints.iter().enumerate() {
                if endpoint
                    .address
                    .as_deref()
                    .is_some_and(|a| a.starts_with("unix://"))
                {
                    report.error(
                        format!("spec.endpoints[{i}].address"),
                        "DNS resolution cannot use a unix socket address",
                    );
                }
            }
        }
        Resolution::DynamicDns => {
            if !spec.endpoints.is_empty() {
                report.error(
                    "spec.endpoints",
                    "no endpoints should be provided for resolution type DYNAMIC_DNS",
                );
            }
        }
    }
}
