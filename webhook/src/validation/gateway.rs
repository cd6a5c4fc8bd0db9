//! Gateway rules (Istio `validateGateway` and `validateServer`): servers with hosts in
//! `namespace/host` form, ports, protocols and the TLS settings each protocol needs.

use std::collections::BTreeMap;

use weft_crds::networking::{GatewaySpec, Server, ServerTlsMode, ServerTlsSettings};

use super::{Report, fields};

/// Checks a Gateway spec.
pub(super) fn check(spec: &GatewaySpec, report: &mut Report) {
    if spec.servers.is_empty() {
        report.error("spec.servers", "gateway must have at least one server");
    }
    let mut port_names: BTreeMap<&str, usize> = BTreeMap::new();
    let mut port_protocols: BTreeMap<u32, String> = BTreeMap::new();
    let mut server_names: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, server) in spec.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        check_server(report, &path, server);
        let name = server.port.name.as_str();
        if let Some(first) = port_names.insert(name, i) {
            report.error(
                format!("{path}.port.name"),
                format!("port names in servers must be unique: {name:?} is also used by spec.servers[{first}]"),
            );
        }
        let protocol = server.port.protocol.to_ascii_uppercase();
        match port_protocols.get(&server.port.number) {
            Some(other) if *other != protocol => report.error(
                format!("{path}.port.number"),
                format!(
                    "port {} is used with protocols {other} and {protocol}; servers sharing a port number must share its protocol",
                    server.port.number
                ),
            ),
            Some(_) => {}
            None => {
                port_protocols.insert(server.port.number, protocol);
            }
        }
        if let Some(name) = server.name.as_deref()
            && let Some(first) = server_names.insert(name, i)
        {
            report.error(
                format!("{path}.name"),
                format!(
                    "server names must be unique: {name:?} is also used by spec.servers[{first}]"
                ),
            );
        }
    }
    fields::labels(report, "spec.selector", &spec.selector);
}

fn check_server(report: &mut Report, path: &str, server: &Server) {
    if server.hosts.is_empty() {
        report.error(
            format!("{path}.hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, host) in server.hosts.iter().enumerate() {
        let at = format!("{path}.hosts[{i}]");
        let (ns, name) = match host.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, host.as_str()),
        };
        if let Some(ns) = ns
            && !matches!(ns, "*" | ".")
            && !fields::dns_label(ns, false)
        {
            report.error(
                &at,
                format!("host {host:?}: namespace {ns:?} must be \"*\", \".\" or a namespace name"),
            );
        }
        if let Err(e) = fields::wildcard_domain(name) {
            report.error(&at, e);
        }
    }
    let port = &server.port;
    fields::port(report, &format!("{path}.port.number"), port.number);
    if let Some(target) = port.target_port {
        fields::port(report, &format!("{path}.port.targetPort"), target);
    }
    if !fields::is_protocol(&port.protocol) {
        report.error(
            format!("{path}.port.protocol"),
            format!("invalid protocol {:?}", port.protocol),
        );
    }
    if port.name.is_empty() {
        report.error(format!("{path}.port.name"), "port name must be set");
    }
    if let Some(bind) = &server.bind {
        fields::bind(report, &format!("{path}.bind"), bind);
    }
    let tls_protocol = ["HTTPS", "TLS"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(&port.protocol));
    match &server.tls {
        None if tls_protocol => report.error(
            format!("{path}.tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        None => {}
        Some(tls) => {
            let at = format!("{path}.tls");
            if tls.https_redirect == Some(true) && !port.protocol.eq_ignore_ascii_case("HTTP") {
                report.error(
                    format!("{at}.httpsRedirect"),
                    "httpsRedirect is only valid on HTTP ports",
                );
            }
            let only_redirect = tls.mode.is_none() && !has_credentials(tls);
            if !tls_protocol && !only_redirect {
                report.error(
                    &at,
                    "server cannot have TLS settings for plain text ports (only httpsRedirect)",
                );
            }
            if tls_protocol {
                server_tls(report, &at, tls);
            }
        }
    }
}

fn has_credentials(tls: &ServerTlsSettings) -> bool {
    tls.server_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.credential_name.is_some()
        || !tls.credential_names.is_empty()
        || !tls.tls_certificates.is_empty()
}

/// Server TLS (Istio `validateTLSOptions`/`validateServerTLS`): SIMPLE, MUTUAL and
/// OPTIONAL_MUTUAL need certificates (a credential name or file paths; MUTUAL also a CA),
/// PASSTHROUGH, AUTO_PASSTHROUGH and ISTIO_MUTUAL need none. A credential name and
/// certificate files are exclusive; a CA file may accompany a credential name.
pub(super) fn server_tls(report: &mut Report, path: &str, tls: &ServerTlsSettings) {
    let mode = tls.mode.unwrap_or_default();
    let credential = tls
        .credential_name
        .as_deref()
        .is_some_and(|c| !c.is_empty())
        || !tls.credential_names.is_empty();
    let files = tls.server_certificate.is_some() || tls.private_key.is_some();
    let needs_certs = matches!(
        mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if needs_certs {
        if credential && files {
            report.error(
                path,
                "only one of credentialName or serverCertificate/privateKey can be set",
            );
        }
        if !credential && tls.tls_certificates.is_empty() {
            if tls
                .server_certificate
                .as_deref()
                .unwrap_or_default()
                .is_empty()
            {
                report.error(
                    format!("{path}.serverCertificate"),
                    format!("{mode:?} TLS requires serverCertificate (or credentialName)"),
                );
            }
            if tls.private_key.as_deref().unwrap_or_default().is_empty() {
                report.error(
                    format!("{path}.privateKey"),
                    format!("{mode:?} TLS requires privateKey (or credentialName)"),
                );
            }
            if mode != ServerTlsMode::Simple
                && tls
                    .ca_certificates
                    .as_deref()
                    .unwrap_or_default()
                    .is_empty()
            {
                report.error(
                    format!("{path}.caCertificates"),
                    format!("{mode:?} TLS requires caCertificates (or credentialName)"),
                );
            }
        }
    } else if has_credentials(tls) {
        report.error(
            path,
            format!("{mode:?} TLS takes no certificates: credentialName and certificate paths must not be set"),
        );
    }
}
