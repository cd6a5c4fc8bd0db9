//! One Istio `Server` of a Gateway: its port, bind address, protocol, hosts and TLS settings.

use std::net::IpAddr;

use weft_crds::networking::Server;
use weft_proxy_config::{GatewayProtocol, GatewayServer, is_valid_gateway_host};

use super::tls;
use crate::build::Context;
use crate::unsupported::Origin;

/// Which namespaces' VirtualServices a server host admits (the `namespace/` prefix of Istio's
/// `Server.hosts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HostNamespace {
    /// No prefix, or `*/`: any namespace.
    Any,
    /// `<namespace>/`, or `./` (the Gateway's own namespace): that namespace only.
    Named(String),
}

impl HostNamespace {
    /// Whether a VirtualService of `namespace` may bind through this host.
    pub fn admits(&self, namespace: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Named(named) => named == namespace,
        }
    }
}

/// One server host: the namespace rule and the DNS part (`*`, `*.suffix` or a name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ServerHost {
    pub namespace: HostNamespace,
    pub host: String,
}

/// A translated server before routes are attached and names made unique.
pub(super) struct Translated {
    /// The port to listen on.
    pub server_port: u16,
    /// The address to bind, `None` for all.
    pub bind: Option<IpAddr>,
    /// The server (routes empty, name empty).
    pub server: GatewayServer,
    /// The hosts with their namespace rules, for binding VirtualServices.
    pub hosts: Vec<ServerHost>,
}

/// Translates `spec` (at `path` of the Gateway `origin`). Returns `None`, after reporting why,
/// for a server the model cannot express: a port outside 1–65535, a Unix-socket or non-IP
/// `bind`, an unknown protocol, no usable host, or TLS settings that cannot be met (see
/// [`tls::translate`]).
pub(super) fn translate(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    path: &str,
    spec: &Server,
) -> Option<Translated> {
    let Some(port) = u16::try_from(spec.port.number).ok().filter(|p| *p > 0) else {
        context.warn(origin.unsupported(
            format!("{path}.port.number"),
            format!(
                "port {} is outside 1-65535; the server is left out",
                spec.port.number
            ),
        ));
        return None;
    };
    let bind = match spec.bind.as_deref().filter(|bind| !bind.is_empty()) {
        None => None,
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                context.warn(origin.unsupported(
                    format!("{path}.bind"),
                    format!(
                        "bind {text:?} is not an IP address (Unix domain sockets are not \
                         expressible); the server is left out"
                    ),
                ));
                return None;
            }
        },
    };
    let Some(protocol) = protocol(&spec.port.protocol) else {
        context.warn(origin.unsupported(
            format!("{path}.port.protocol"),
            format!(
                "protocol {:?} is not supported on gateways; the server is left out",
                spec.port.protocol
            ),
        ));
        return None;
    };
    let mut hosts = Vec::new();
    for (index, entry) in spec.hosts.iter().enumerate() {
        let (namespace, host) = match entry.split_once('/') {
            None | Some(("*", _)) => (
                HostNamespace::Any,
                entry.rsplit('/').next().unwrap_or(entry),
            ),
            Some((".", host)) => (HostNamespace::Named(origin.namespace.to_owned()), host),
            Some((namespace, host)) => (HostNamespace::Named(namespace.to_owned()), host),
        };
        if !is_valid_gateway_host(host) {
            context.warn(origin.unsupported(
                format!("{path}.hosts[{index}]"),
                format!("host {entry:?} is not `[namespace/]dnsName`; it is left out"),
            ));
            continue;
        }
        hosts.push(ServerHost {
            namespace,
            host: host.to_ascii_lowercase(),
        });
    }
    if hosts.is_empty() {
        context.warn(origin.unsupported(
            format!("{path}.hosts"),
            "the server has no usable host; it is left out",
        ));
        return None;
    }
    let (tls, https_redirect) = tls::translate(context, origin, path, spec, protocol)?;
    let mut names: Vec<String> = Vec::new();
    for host in &hosts {
        if !names.contains(&host.host) {
            names.push(host.host.clone());
        }
    }
    Some(Translated {
        server_port: port,
        bind,
        server: GatewayServer {
            name: String::new(),
            protocol,
            hosts: names,
            https_redirect,
            tls,
            route_config: None,
            tls_routes: Vec::new(),
            tcp_routes: Vec::new(),
        },
        hosts,
    })
}

/// Istio `Port.protocol` on a gateway, case-insensitive: `HTTP`, `HTTPS`, `HTTP2`, `GRPC`,
/// `TLS`, `TCP`; `GRPC-WEB` is served as HTTP and `MONGO`, `REDIS` and `MYSQL` as TCP, as
/// Istio does without their protocol filters.
fn protocol(text: &str) -> Option<GatewayProtocol> {
    Some(match text.to_ascii_uppercase().as_str() {
        "HTTP" | "GRPC-WEB" => GatewayProtocol::Http,
        "HTTPS" => GatewayProtocol::Https,
        "HTTP2" => GatewayProtocol::Http2,
        "GRPC" => GatewayProtocol::Grpc,
        "TLS" => GatewayProtocol::Tls,
        "TCP" | "MONGO" | "REDIS" | "MYSQL" => GatewayProtocol::Tcp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_namespaces_admit_as_istio() {
        assert!(HostNamespace::Any.admits("anything"));
        assert!(HostNamespace::Named("prod".to_owned()).admits("prod"));
        assert!(!HostNamespace::Named("prod".to_owned()).admits("dev"));
        assert_eq!(protocol("https"), Some(GatewayProtocol::Https));
        assert_eq!(protocol("GRPC-WEB"), Some(GatewayProtocol::Http));
        assert_eq!(protocol("MONGO"), Some(GatewayProtocol::Tcp));
        assert_eq!(protocol("UDP"), None);
    }
}
