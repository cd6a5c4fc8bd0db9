//! `Gateway` (networking.istio.io): a load balancer at the edge of the mesh receiving
//! incoming or outgoing HTTP/TCP connections — the ports to expose, their protocols, hosts
//! and TLS settings.
//!
//! Field for field as Istio's reference documents `networking.v1.Gateway`.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::ServerTlsSettings;
use crate::status::IstioStatus;

/// Gateway describes a load balancer operating at the edge of the mesh receiving incoming or
/// outgoing HTTP/TCP connections.
///
/// It configures L4-L6 properties (ports, TLS); L7 routing is bound to it by VirtualServices
/// that list it in their `gateways`.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "Gateway",
    plural = "gateways",
    namespaced,
    status = "IstioStatus",
    shortname = "gw",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting edge load balancer. See https://istio.io/docs/reference/config/networking/gateway.html",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the gateway is accepted, resolved and reconciled by every selected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewaySpec {
    /// The servers (listeners) of the gateway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<Server>,
    /// Labels selecting the gateway pods this configuration applies to, e.g.
    /// `istio: ingressgateway`. By default searched in all namespaces (mesh setting
    /// `PILOT_SCOPE_GATEWAY_TO_NAMESPACE` restricts it to the Gateway's namespace).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
}

/// One listener of a gateway (Istio `Server`): a port, the hosts exposed on it and its TLS
/// settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Server {
    /// The port on which the proxy listens for incoming connections.
    pub port: Port,
    /// The IP address or Unix domain socket (`unix:///path` or `unix://@abstract`) the
    /// listener binds to. Default: all addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// Hosts exposed by this server, as `[namespace/]dnsName` (with an optional wildcard
    /// prefix); the namespace part restricts which namespaces' VirtualServices may bind.
    pub hosts: Vec<String>,
    /// TLS settings of the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// The loopback IP endpoint or Unix domain socket traffic is forwarded to by default
    /// (e.g. `127.0.0.1:8080`); Istio's CRD accepts it but gateways do not use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// An optional name of the server, unique across all servers; used for stats prefixes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A port a gateway listens on (Istio `Port`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Port {
    /// A valid non-negative integer port number.
    pub number: u32,
    /// The protocol exposed on the port: `HTTP`, `HTTPS`, `GRPC`, `GRPC-WEB`, `HTTP2`,
    /// `MONGO`, `TCP` or `TLS`. TLS means the connection is routed by SNI without
    /// terminating TLS.
    pub protocol: String,
    /// Label assigned to the port.
    pub name: String,
    /// Deprecated in Istio: the port on the endpoint where traffic is received; only
    /// honoured for ServiceEntry ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::networking::{ServerTlsMode, TlsProtocol};
    use crate::parse;

    const GATEWAY: &str = r#"
apiVersion: networking.istio.io/v1beta1
kind: Gateway
metadata:
  name: bookinfo-gateway
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 443
      name: https
      protocol: HTTPS
    hosts:
    - bookinfo/bookinfo.example.com
    tls:
      mode: SIMPLE
      credentialName: bookinfo-cert
      minProtocolVersion: TLSV1_2
"#;

    #[test]
    fn parses_and_round_trips() {
        let gw: Gateway = parse::from_yaml(GATEWAY).unwrap();
        let server = &gw.spec.servers[0];
        assert_eq!(server.port.number, 443);
        let tls = server.tls.as_ref().unwrap();
        assert_eq!(tls.mode, Some(ServerTlsMode::Simple));
        assert_eq!(tls.min_protocol_version, Some(TlsProtocol::Tlsv1_2));
        let original: serde_json::Value = serde_yaml::from_str(GATEWAY).unwrap();
        // apiVersion is written as the storage version (v1); the spec must come back unchanged.
        assert_eq!(serde_json::to_value(&gw).unwrap()["spec"], original["spec"]);
    }

    #[test]
    fn port_fields_are_required() {
        let bad = GATEWAY.replace("      name: https\n", "");
        let err = parse::from_yaml::<Gateway>(&bad).unwrap_err();
        assert_eq!(err.path(), Some("spec.servers[0].port"));
        assert!(err.to_string().contains("name"), "{err}");
    }
}
