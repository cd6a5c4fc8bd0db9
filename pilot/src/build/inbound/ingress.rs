//! The inbound side of the Sidecar that applies to the workload: its `ingress` listeners
//! (Istio `IstioIngressListener`) and `inboundConnectionPool`.
//!
//! As Istio's `buildInboundChainConfigs` and `InboundConnectionPoolForPort`:
//! - When the Sidecar has ingress listeners, the workload's inbound ports are exactly the
//!   listeners' ports (the ports derived from Services are not added); each listener's
//!   `port.number` is the port traffic arrives at (the Service's `targetPort`), and its protocol
//!   is `port.protocol` alone. `port.targetPort` has no effect, as in Istio ("No targetPort
//!   support in the API"). On a repeated port number the first listener wins.
//! - `defaultEndpoint` decides where the port's traffic goes: `127.0.0.1:PORT` / `[::1]:PORT`
//!   (the application on loopback), `0.0.0.0:PORT` / `[::]:PORT` (the workload's own IP);
//!   without it, the original destination (the pod IP), as without a Sidecar.
//! - A port's connection pool is its listener's `connectionPool`, else the Sidecar's
//!   `inboundConnectionPool`; it applies to every inbound port, derived from Services or not.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use weft_crds::networking::{
    CaptureMode, ConnectionPoolSettings as CrdPool, IstioIngressListener, Sidecar,
};
use weft_proxy_config::{ConnectionPoolSettings, InboundPort, MtlsMode};

use super::Context;
use crate::registry::protocol_from_name;
use crate::unsupported::Origin;
use crate::view::{name_of, namespace_of};

/// What the Sidecar says about the inbound side.
#[derive(Debug, Default)]
pub(super) struct SidecarInbound {
    /// The ingress listeners' ports by number, or `None` when the Sidecar has none (the
    /// ports then come from the Services selecting the workload).
    pub ports: Option<BTreeMap<u16, InboundPort>>,
    /// Per listener port, the listener's own connection pool.
    port_pools: BTreeMap<u16, ConnectionPoolSettings>,
    /// `inboundConnectionPool`, for every other port.
    default_pool: Option<ConnectionPoolSettings>,
}

impl SidecarInbound {
    /// Translates `sidecar`'s `ingress` and `inboundConnectionPool`, reporting what the model
    /// cannot express (each with its field path).
    pub fn new(context: &mut Context<'_>, sidecar: &Sidecar) -> Self {
        let origin = Origin {
            kind: "Sidecar",
            namespace: namespace_of(&sidecar.metadata),
            name: name_of(&sidecar.metadata),
        };
        let spec = &sidecar.spec;
        let default_pool = spec
            .inbound_connection_pool
            .as_ref()
            .map(|pool| translate_pool(context, &origin, pool, "spec.inboundConnectionPool"));
        let mut out = Self {
            ports: None,
            port_pools: BTreeMap::new(),
            default_pool,
        };
        if spec.ingress.is_empty() {
            return out;
        }
        let mut ports = BTreeMap::new();
        for (index, listener) in spec.ingress.iter().enumerate() {
            let path = format!("spec.ingress[{index}]");
            let Some(entry) = translate_listener(context, &origin, listener, &path) else {
                continue;
            };
            if ports.contains_key(&entry.port) {
                continue;
            }
            if let Some(pool) = &listener.connection_pool {
                let pool =
                    translate_pool(context, &origin, pool, &format!("{path}.connectionPool"));
                out.port_pools.insert(entry.port, pool);
            }
            ports.insert(entry.port, entry);
        }
        out.ports = Some(ports);
        out
    }

    /// Sets each of `ports`' connection pool: its listener's, else `inboundConnectionPool`.
    pub fn apply_pools(&self, ports: &mut BTreeMap<u16, InboundPort>) {
        for (number, entry) in ports.iter_mut() {
            entry.connection_pool = self
                .port_pools
                .get(number)
                .or(self.default_pool.as_ref())
                .cloned();
        }
    }
}

/// One listener as an inbound port, or `None` (reported) when its port number is missing or
/// not a port.
fn translate_listener(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    listener: &IstioIngressListener,
    path: &str,
) -> Option<InboundPort> {
    let Some(number) = listener
        .port
        .number
        .and_then(|number| u16::try_from(number).ok())
        .filter(|number| *number > 0)
    else {
        context.warn(origin.unsupported(
            format!("{path}.port.number"),
            "the listener needs a port number from 1 to 65535; it is left out",
        ));
        return None;
    };
    let protocol = protocol_from_name(listener.port.protocol.as_deref(), "");
    let mut entry = InboundPort::new(number, protocol, MtlsMode::Permissive);
    if let Some(bind) = listener.bind.as_deref().filter(|bind| !is_wildcard(bind)) {
        context.warn(origin.unsupported(
            format!("{path}.bind"),
            format!(
                "inbound listeners bound to one address ({bind}) are not expressible; the \
                 port's traffic to every address of the workload is handled"
            ),
        ));
    }
    if listener.capture_mode == Some(CaptureMode::None) {
        context.warn(origin.unsupported(
            format!("{path}.captureMode"),
            "captureMode NONE (the proxy binding the port itself) is not expressible; traffic \
             to the port is captured by iptables as with DEFAULT",
        ));
    }
    if let Some(endpoint) = &listener.default_endpoint {
        match parse_default_endpoint(endpoint) {
            Ok(address) => entry.default_endpoint = Some(address),
            Err(reason) => context.warn(origin.unsupported(
                format!("{path}.defaultEndpoint"),
                format!("{reason}; the port's traffic goes to its original destination"),
            )),
        }
    }
    if listener.tls.is_some() {
        context.warn(origin.unsupported(
            format!("{path}.tls"),
            "TLS termination at the sidecar is not expressible; the port is served with the \
             mesh's mTLS modes (PeerAuthentication)",
        ));
    }
    Some(entry)
}

/// Whether `bind` is the default of an ingress listener: the unspecified address.
fn is_wildcard(bind: &str) -> bool {
    matches!(bind, "0.0.0.0" | "::" | "[::]")
}

/// Parses `defaultEndpoint` (Istio: `127.0.0.1:PORT`, `[::1]:PORT`, `0.0.0.0:PORT`,
/// `[::]:PORT` or `unix:///path`). Errors (as text for the warning) on a Unix domain socket,
/// which the model cannot express, and on anything else Istio's validation refuses.
fn parse_default_endpoint(endpoint: &str) -> Result<SocketAddr, String> {
    if endpoint.starts_with("unix://") {
        return Err(format!(
            "Unix domain socket endpoints ({endpoint}) are not expressible"
        ));
    }
    match endpoint.parse::<SocketAddr>() {
        Ok(address)
            if address.port() > 0
                && (address.ip().is_loopback() || address.ip().is_unspecified()) =>
        {
            Ok(address)
        }
        _ => Err(format!(
            "{endpoint:?} is not 127.0.0.1:PORT, [::1]:PORT, 0.0.0.0:PORT or [::]:PORT"
        )),
    }
}

/// The inbound limits of `pool` (Istio `ConnectionPoolSettings`, at `path`):
/// `tcp.maxConnections`, `http.http1MaxPendingRequests` and `http.http2MaxRequests` (negative
/// values are unset). Every other field present is reported: the inbound side does not apply
/// it.
fn translate_pool(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    pool: &CrdPool,
    path: &str,
) -> ConnectionPoolSettings {
    let limit = |value: Option<i32>| value.and_then(|value| u32::try_from(value).ok());
    let mut out = ConnectionPoolSettings::default();
    let mut ignored: Vec<&str> = Vec::new();
    if let Some(tcp) = &pool.tcp {
        out.tcp.max_connections = limit(tcp.max_connections);
        for (present, name) in [
            (tcp.connect_timeout.is_some(), "tcp.connectTimeout"),
            (tcp.tcp_keepalive.is_some(), "tcp.tcpKeepalive"),
            (
                tcp.max_connection_duration.is_some(),
                "tcp.maxConnectionDuration",
            ),
            (tcp.idle_timeout.is_some(), "tcp.idleTimeout"),
        ] {
            if present {
                ignored.push(name);
            }
        }
    }
    if let Some(http) = &pool.http {
        out.http.http1_max_pending_requests = limit(http.http1_max_pending_requests);
        out.http.http2_max_requests = limit(http.http2_max_requests);
        for (present, name) in [
            (
                http.max_requests_per_connection.is_some(),
                "http.maxRequestsPerConnection",
            ),
            (http.max_retries.is_some(), "http.maxRetries"),
            (http.idle_timeout.is_some(), "http.idleTimeout"),
            (http.h2_upgrade_policy.is_some(), "http.h2UpgradePolicy"),
            (http.use_client_protocol.is_some(), "http.useClientProtocol"),
            (
                http.max_concurrent_streams.is_some(),
                "http.maxConcurrentStreams",
            ),
        ] {
            if present {
                ignored.push(name);
            }
        }
    }
    for name in ignored {
        context.warn(origin.unsupported(
            format!("{path}.{name}"),
            "not applied on the inbound side (only tcp.maxConnections, \
             http.http1MaxPendingRequests and http.http2MaxRequests are); the proxy's default \
             applies",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterView, ProxyTarget, build_proxy_config};

    /// A pod `server-0` (app `server`, 10.0.1.2) selected by Service `server` (port 80 to
    /// target port 8080, HTTP, and 90 to 9090, TCP), plus `extra`.
    fn build(extra: &str) -> crate::BuildOutput {
        let yaml = format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: server-0
  namespace: team
  labels: {{app: server}}
  annotations: {{sidecar.istio.io/status: x}}
status: {{podIP: 10.0.1.2}}
---
apiVersion: v1
kind: Service
metadata: {{name: server, namespace: team}}
spec:
  clusterIP: 10.96.0.2
  selector: {{app: server}}
  ports:
  - {{name: http, port: 80, targetPort: 8080}}
  - {{name: tcp, port: 90, targetPort: 9090}}
---
{extra}"#
        );
        let view = ClusterView::from_yaml(&yaml).unwrap();
        let target = ProxyTarget::for_pod(&view, "team", "server-0").unwrap();
        build_proxy_config(&view, &target)
    }

    fn sidecar(spec: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: server, \
             namespace: team}}\nspec:\n  workloadSelector: {{labels: {{app: server}}}}\n{spec}"
        )
    }

    #[test]
    fn ingress_listeners_replace_the_service_ports() {
        let output = build(&sidecar(
            "  ingress:\n  - port: {number: 8080, protocol: HTTP, name: web}\n    \
             defaultEndpoint: 127.0.0.1:7070\n  - port: {number: 7000, protocol: TCP, name: raw}\n    \
             defaultEndpoint: 0.0.0.0:7001\n",
        ));
        let ports = &output.config.inbound.ports;
        let numbers: Vec<u16> = ports.iter().map(|port| port.port).collect();
        assert_eq!(
            numbers,
            [7000, 8080],
            "the Service's 9090 is gone: {ports:?}"
        );
        let web = output.config.inbound.port(8080).unwrap();
        assert_eq!(web.protocol, weft_proxy_config::Protocol::Http);
        assert_eq!(
            web.default_endpoint,
            Some("127.0.0.1:7070".parse().unwrap())
        );
        let raw = output.config.inbound.port(7000).unwrap();
        assert_eq!(raw.protocol, weft_proxy_config::Protocol::Tcp);
        assert_eq!(raw.default_endpoint, Some("0.0.0.0:7001".parse().unwrap()));
        assert!(
            output.warnings.is_empty(),
            "ingress listeners are no longer unsupported: {:?}",
            output.warnings
        );
    }

    #[test]
    fn without_a_sidecar_the_ports_come_from_services_without_endpoints() {
        let output = build("");
        let ports = &output.config.inbound.ports;
        let numbers: Vec<u16> = ports.iter().map(|port| port.port).collect();
        assert_eq!(numbers, [8080, 9090]);
        assert!(ports.iter().all(|port| port.default_endpoint.is_none()));
        assert!(ports.iter().all(|port| port.connection_pool.is_none()));
    }

    #[test]
    fn a_listener_pool_overrides_the_inbound_connection_pool() {
        let output = build(&sidecar(
            "  inboundConnectionPool:\n    tcp: {maxConnections: 5}\n    \
             http: {http1MaxPendingRequests: 6, http2MaxRequests: 7}\n  ingress:\n  \
             - port: {number: 8080, protocol: HTTP, name: web}\n    \
             connectionPool: {tcp: {maxConnections: 1}}\n  \
             - port: {number: 9090, protocol: TCP, name: raw}\n",
        ));
        let inbound = &output.config.inbound;
        let own = inbound.port(8080).unwrap().connection_pool.clone().unwrap();
        assert_eq!(own.tcp.max_connections, Some(1));
        assert_eq!(
            own.http.http1_max_pending_requests, None,
            "the listener's pool is whole"
        );
        let shared = inbound.port(9090).unwrap().connection_pool.clone().unwrap();
        assert_eq!(shared.tcp.max_connections, Some(5));
        assert_eq!(shared.http.http1_max_pending_requests, Some(6));
        assert_eq!(shared.http.http2_max_requests, Some(7));
        assert!(output.warnings.is_empty(), "{:?}", output.warnings);
    }

    #[test]
    fn the_inbound_connection_pool_applies_to_service_ports() {
        let output = build(&sidecar(
            "  inboundConnectionPool:\n    tcp: {maxConnections: 2, connectTimeout: 1s}\n",
        ));
        for port in &output.config.inbound.ports {
            let pool = port.connection_pool.as_ref().unwrap();
            assert_eq!(pool.tcp.max_connections, Some(2), "port {}", port.port);
        }
        let paths: Vec<&str> = output
            .warnings
            .iter()
            .map(|warning| warning.field_path.as_str())
            .collect();
        assert_eq!(paths, ["spec.inboundConnectionPool.tcp.connectTimeout"]);
    }

    #[test]
    fn what_the_model_cannot_express_is_reported_by_field() {
        let output = build(&sidecar(
            "  ingress:\n  - port: {number: 8080, protocol: HTTP, name: web}\n    \
             defaultEndpoint: unix:///var/run/app.sock\n    bind: 10.0.1.2\n    \
             captureMode: NONE\n    tls: {mode: SIMPLE, credentialName: cert}\n",
        ));
        let paths: Vec<&str> = output
            .warnings
            .iter()
            .map(|warning| warning.field_path.as_str())
            .collect();
        assert_eq!(
            paths,
            [
                "spec.ingress[0].bind",
                "spec.ingress[0].captureMode",
                "spec.ingress[0].defaultEndpoint",
                "spec.ingress[0].tls",
            ]
        );
        let port = output.config.inbound.port(8080).unwrap();
        assert_eq!(
            port.default_endpoint, None,
            "the original destination instead"
        );
    }

    #[test]
    fn default_endpoint_accepts_istio_forms_only() {
        for ok in ["127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080", "[::]:8080"] {
            assert!(parse_default_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "unix:///var/run/app.sock",
            "10.0.0.1:8080",
            "127.0.0.1:0",
            "localhost:8080",
            "127.0.0.1",
        ] {
            assert!(parse_default_endpoint(bad).is_err(), "{bad}");
        }
    }
}
