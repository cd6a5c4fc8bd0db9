//! Sidecar rules (Istio `validateSidecar`): ingress and egress listeners, egress hosts in
//! `namespace/dnsName` form, ports and the outbound traffic policy.

use std::collections::BTreeSet;

use weft_crds::networking::{OutboundTrafficMode, SidecarPort, SidecarSpec};

use super::{Report, fields, gateway, virtual_service};

/// Checks a Sidecar spec.
pub(super) fn check(spec: &SidecarSpec, report: &mut Report) {
    if spec.ingress.is_empty()
        && spec.egress.is_empty()
        && spec.outbound_traffic_policy.is_none()
        && spec.inbound_connection_pool.is_none()
    {
        report.error("spec", "sidecar: empty configuration provided");
    }
    if let Some(selector) = &spec.workload_selector {
        fields::labels(report, "spec.workloadSelector.labels", &selector.labels);
    }
    let mut ingress_ports = BTreeSet::new();
    for (i, listener) in spec.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        match listener.port.number {
            Some(number) => {
                if !ingress_ports.insert((listener.bind.clone(), number)) {
                    report.error(
                        format!("{path}.port.number"),
                        format!("sidecar: ports on IP bound listeners must be unique: {number}"),
                    );
                }
            }
            None => report.error(
                format!("{path}.port.number"),
                "ingress port number is required",
            ),
        }
        port(report, &format!("{path}.port"), &listener.port);
        if let Some(bind) = &listener.bind {
            fields::bind(report, &format!("{path}.bind"), bind);
        }
        if let Some(endpoint) = &listener.default_endpoint {
            default_endpoint(report, &format!("{path}.defaultEndpoint"), endpoint);
        }
        if let Some(tls) = &listener.tls {
            gateway::server_tls(report, &format!("{path}.tls"), tls);
        }
    }
    let mut egress_ports = BTreeSet::new();
    for (i, listener) in spec.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        match &listener.port {
            Some(p) => {
                port(report, &format!("{path}.port"), p);
                if let Some(number) = p.number
                    && !egress_ports.insert((listener.bind.clone(), number))
                {
                    report.error(
                        format!("{path}.port.number"),
                        format!("sidecar: ports on IP bound listeners must be unique: {number}"),
                    );
                }
            }
            None if i + 1 != spec.egress.len() => report.error(
                format!("{path}.port"),
                "sidecar: the egress listener with empty port should be the last listener in the list",
            ),
            None => {}
        }
        if let Some(bind) = &listener.bind {
            fields::bind(report, &format!("{path}.bind"), bind);
        }
        if listener.hosts.is_empty() {
            report.error(
                format!("{path}.hosts"),
                "sidecar: egress listener must contain at least one host",
            );
        }
        for (j, host) in listener.hosts.iter().enumerate() {
            egress_host(report, &format!("{path}.hosts[{j}]"), host);
        }
    }
    if let Some(policy) = &spec.outbound_traffic_policy
        && let Some(proxy) = &policy.egress_proxy
    {
        let path = "spec.outboundTrafficPolicy.egressProxy";
        if policy.mode != Some(OutboundTrafficMode::AllowAny) {
            report.error(
                path,
                "sidecar: egressProxy must be set only with the ALLOW_ANY outbound traffic policy mode",
            );
        }
        virtual_service::destination(report, path, proxy);
        if proxy.port.as_ref().and_then(|p| p.number).is_none() {
            report.error(
                format!("{path}.port"),
                "sidecar: egressProxy must have a port",
            );
        }
    }
}

fn port(report: &mut Report, path: &str, p: &SidecarPort) {
    if let Some(number) = p.number {
        fields::port(report, &format!("{path}.number"), number);
    }
    if let Some(target) = p.target_port {
        fields::port(report, &format!("{path}.targetPort"), target);
    }
    if let Some(protocol) = &p.protocol
        && !fields::is_protocol(protocol)
    {
        report.error(
            format!("{path}.protocol"),
            format!("invalid protocol {protocol:?}"),
        );
    }
}

/// `namespace/dnsName`: namespace `*`, `.`, `~` or a namespace name; dnsName `*` or a
/// (wildcard) DNS name.
fn egress_host(report: &mut Report, path: &str, host: &str) {
    let Some((ns, name)) = host.split_once('/') else {
        report.error(
            path,
            format!("sidecar: egress host {host:?} must be of the form namespace/dnsName"),
        );
        return;
    };
    if !matches!(ns, "*" | "." | "~") && !fields::dns_label(ns, false) {
        report.error(
            path,
            format!("egress host {host:?}: namespace {ns:?} must be \"*\", \".\", \"~\" or a namespace name"),
        );
    }
    if let Err(e) = fields::wildcard_domain(name) {
        report.error(path, e);
    }
}

/// `127.0.0.1:<port>`, `0.0.0.0:<port>`, `[::1]:<port>`, `[::]:<port>` or `unix://<path>`.
fn default_endpoint(report: &mut Report, path: &str, endpoint: &str) {
    if endpoint
        .strip_prefix("unix://")
        .is_some_and(|p| !p.is_empty())
    {
        return;
    }
    let ok = endpoint
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| (a.ip().is_loopback() || a.ip().is_unspecified()) && a.port() != 0);
    if !ok {
        report.error(
            path,
            format!("defaultEndpoint {endpoint:?} must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>"),
        );
    }
}
