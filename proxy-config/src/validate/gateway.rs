//! Validation of [`crate::ProxyConfig::gateways`]; the rules are listed on
//! [`crate::ProxyConfig::validate`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::{ModelError, check_route_configuration, check_weighted};
use crate::gateway::{
    GatewayListener, GatewayProtocol, GatewayServer, ServerTls, TlsCredential, TlsVersion,
    is_valid_gateway_host,
};

/// Checks every gateway listener and server, pushing one error per problem.
pub(super) fn check_gateways(
    listeners: &[GatewayListener],
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    let mut claimed: BTreeMap<String, &str> = BTreeMap::new();
    let mut server_names = BTreeSet::new();
    for listener in listeners {
        let name = listener.name.as_str();
        let bind = match listener.bind {
            None => "*".to_owned(),
            Some(IpAddr::V4(v4)) => v4.to_string(),
            Some(IpAddr::V6(v6)) => format!("[{v6}]"),
        };
        for key in [format!("name {name}"), format!("{bind}:{}", listener.port)] {
            if let Some(first) = claimed.get(&key) {
                errors.push(ModelError::DuplicateGatewayListener {
                    key,
                    first: (*first).to_owned(),
                    second: name.to_owned(),
                });
            } else {
                claimed.insert(key, name);
            }
        }
        if listener.port == 0 {
            errors.push(ModelError::PortZero {
                field: format!("gateways[{name}].port"),
            });
        }
        if listener.servers.is_empty() {
            errors.push(ModelError::Empty {
                field: format!("gateways[{name}].servers"),
            });
        }
        check_server_mix(listener, errors);
        for server in &listener.servers {
            if !server_names.insert(server.name.as_str()) {
                errors.push(ModelError::DuplicateGatewayServer {
                    name: server.name.clone(),
                });
            }
            let field = format!("gateways[{name}].servers[{}]", server.name);
            check_server(&field, server, clusters, errors);
        }
    }
}

/// TLS and plaintext servers cannot share a port; a TCP server is alone on its port.
fn check_server_mix(listener: &GatewayListener, errors: &mut Vec<ModelError>) {
    let tls = listener.servers.iter().filter(|s| s.is_tls()).count();
    let tcp = listener
        .servers
        .iter()
        .filter(|s| s.protocol == GatewayProtocol::Tcp)
        .count();
    let reason = if tls > 0 && tls < listener.servers.len() {
        Some("TLS servers (HTTPS, TLS) and plaintext servers cannot share a port")
    } else if tcp > 0 && listener.servers.len() > 1 {
        Some("a TCP server cannot share its port with another server")
    } else {
        None
    };
    if let Some(reason) = reason {
        errors.push(ModelError::GatewayServerConflict {
            listener: listener.name.clone(),
            reason,
        });
    }
}

fn check_server(
    field: &str,
    server: &GatewayServer,
    clusters: &BTreeSet<&str>,
    errors: &mut Vec<ModelError>,
) {
    check_hosts(&format!("{field}.hosts"), &server.hosts, errors);
    let protocol = server.protocol.as_str().to_owned();
    match (&server.tls, server.is_tls()) {
        (None, true) => errors.push(ModelError::MissingServerTls {
            field: format!("{field}.tls"),
            protocol,
        }),
        (Some(_), false) => errors.push(ModelError::UnexpectedServerTls {
            field: format!("{field}.tls"),
            protocol,
        }),
        (Some(tls), true) => check_tls(&format!("{field}.tls"), tls, errors),
        (None, false) => {}
    }
    let plaintext_http = matches!(
        server.protocol,
        GatewayProtocol::Http | GatewayProtocol::Http2 | GatewayProtocol::Grpc
    );
    if server.https_redirect && !plaintext_http {
        errors.push(ModelError::GatewayRoutes {
            field: format!("{field}.https_redirect"),
            rule: "only plaintext HTTP servers (HTTP, HTTP2, GRPC) redirect to https",
        });
    }
    match (&server.route_config, server.serves_http()) {
        (Some(routes), true) => {
            check_route_configuration(&format!("{field}.route_config"), routes, clusters, errors);
        }
        (None, true) => errors.push(ModelError::GatewayRoutes {
            field: format!("{field}.route_config"),
            rule: "a server that serves HTTP (HTTP, HTTP2, GRPC, terminated HTTPS) needs a route table",
        }),
        (Some(_), false) => errors.push(ModelError::GatewayRoutes {
            field: format!("{field}.route_config"),
            rule: "only servers that serve HTTP take a route table (not TCP, TLS or PASSTHROUGH)",
        }),
        (None, false) => {}
    }
    let passthrough = server.is_tls() && !server.terminates_tls();
    if !server.tls_routes.is_empty() && !passthrough {
        errors.push(ModelError::GatewayRoutes {
            field: format!("{field}.tls_routes"),
            rule: "only PASSTHROUGH servers take TLS routes",
        });
    }
    let tcp_allowed = server.protocol == GatewayProtocol::Tcp
        || (server.protocol == GatewayProtocol::Tls && server.terminates_tls());
    if !server.tcp_routes.is_empty() && !tcp_allowed {
        errors.push(ModelError::GatewayRoutes {
            field: format!("{field}.tcp_routes"),
            rule: "only TCP servers and TLS servers that terminate TLS take TCP routes",
        });
    }
    for (index, route) in server.tls_routes.iter().enumerate() {
        let route_field = format!("{field}.tls_routes[{index}]");
        if route.matches.is_empty() {
            errors.push(ModelError::Empty {
                field: format!("{route_field}.match"),
            });
        }
        for (m_index, tls_match) in route.matches.iter().enumerate() {
            let hosts_field = format!("{route_field}.match[{m_index}].sni_hosts");
            if tls_match.sni_hosts.is_empty() {
                errors.push(ModelError::Empty {
                    field: hosts_field.clone(),
                });
            }
            check_host_names(&hosts_field, &tls_match.sni_hosts, errors);
        }
        check_weighted(
            &format!("{route_field}.clusters"),
            &route.clusters,
            clusters,
            errors,
        );
    }
    for (index, route) in server.tcp_routes.iter().enumerate() {
        check_weighted(
            &format!("{field}.tcp_routes[{index}].clusters"),
            &route.clusters,
            clusters,
            errors,
        );
    }
}

fn check_tls(field: &str, tls: &ServerTls, errors: &mut Vec<ModelError>) {
    let credential_field = format!("{field}.credential");
    let rule = match &tls.credential {
        None if tls.mode.needs_credential() => Some("needs a credential"),
        Some(_) if !tls.mode.needs_credential() => {
            Some("takes no credential (passthrough, or the proxy's own mesh certificate)")
        }
        Some(credential)
            if tls.mode.needs_client_ca() && credential.ca_certificates().is_none() =>
        {
            Some("needs ca_certificates in the credential to verify clients")
        }
        _ => None,
    };
    if let Some(rule) = rule {
        errors.push(ModelError::TlsCredential {
            field: credential_field.clone(),
            mode: tls.mode.as_str().to_owned(),
            rule,
        });
    }
    if let Some(credential) = &tls.credential {
        check_credential(&credential_field, credential, errors);
    }
    let auto = |version: Option<TlsVersion>| version.filter(|v| *v != TlsVersion::Auto);
    if let (Some(min), Some(max)) = (
        auto(tls.min_protocol_version),
        auto(tls.max_protocol_version),
    ) && min > max
    {
        errors.push(ModelError::TlsVersionRange {
            field: field.to_owned(),
            min: min.as_str().to_owned(),
            max: max.as_str().to_owned(),
        });
    }
}

fn check_credential(field: &str, credential: &TlsCredential, errors: &mut Vec<ModelError>) {
    let (kind, parts) = match credential {
        TlsCredential::Files {
            server_certificate,
            private_key,
            ca_certificates,
        } => (
            "files",
            [
                ("server_certificate", Some(server_certificate.as_str())),
                ("private_key", Some(private_key.as_str())),
                ("ca_certificates", ca_certificates.as_deref()),
            ],
        ),
        TlsCredential::Inline {
            server_certificate,
            private_key,
            ca_certificates,
            ..
        } => (
            "inline",
            [
                ("server_certificate", Some(server_certificate.as_str())),
                ("private_key", Some(private_key.expose())),
                ("ca_certificates", ca_certificates.as_deref()),
            ],
        ),
    };
    for (name, value) in parts {
        if value.is_some_and(|text| text.trim().is_empty()) {
            errors.push(ModelError::EmptyCredentialPart {
                field: format!("{field}.{kind}.{name}"),
            });
        }
    }
}

fn check_hosts(field: &str, hosts: &[String], errors: &mut Vec<ModelError>) {
    if hosts.is_empty() {
        errors.push(ModelError::Empty {
            field: field.to_owned(),
        });
    }
    check_host_names(field, hosts, errors);
}

fn check_host_names(field: &str, hosts: &[String], errors: &mut Vec<ModelError>) {
    for host in hosts {
        let valid = is_valid_gateway_host(host);
        if !valid {
            errors.push(ModelError::GatewayHost {
                field: field.to_owned(),
                host: host.clone(),
            });
        }
    }
}
