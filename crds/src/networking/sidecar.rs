//! `Sidecar` (networking.istio.io): the configuration of the sidecar proxy of selected
//! workloads — the ports and protocols it accepts inbound, the services it can reach
//! outbound, and what happens to traffic to unknown destinations.
//!
//! Field for field as Istio's reference documents `networking.v1.Sidecar`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ConnectionPoolSettings, Destination, ServerTlsSettings, WorkloadSelector};
use crate::status::IstioStatus;

/// Sidecar describes the configuration of the sidecar proxy that mediates inbound and
/// outbound communication of the workload instance it is attached to.
///
/// A namespace has at most one Sidecar without `workloadSelector` (its default); one in the
/// root namespace without selector is the mesh-wide default.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "Sidecar",
    plural = "sidecars",
    namespaced,
    status = "IstioStatus",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting network reachability of a sidecar. See https://istio.io/docs/reference/config/networking/sidecar.html",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the configuration is accepted, resolved and reconciled by every selected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarSpec {
    /// Selects the pods/VMs (in the Sidecar's namespace) this configuration applies to;
    /// without it, the configuration applies to every workload in the namespace that has no
    /// more specific Sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Listeners for inbound traffic to the workload. When empty, Istio derives them from
    /// the workload's services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingress: Vec<IstioIngressListener>,
    /// Listeners for outbound traffic from the workload to other services. When empty,
    /// every reachable service in the mesh is visible.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<IstioEgressListener>,
    /// Connection pool settings for inbound connections, applied to every inbound port
    /// unless the ingress listener sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_connection_pool: Option<ConnectionPoolSettings>,
    /// What the proxy does with outbound traffic to destinations not in the registry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
}

/// A listener for inbound traffic to the workload (Istio `IstioIngressListener`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioIngressListener {
    /// The port the listener receives traffic on.
    pub port: SidecarPort,
    /// The IP address (IPv4 or IPv6) the listener binds to. Default: the instance's
    /// addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic to the listener is captured: `DEFAULT` (as the environment defines),
    /// `IPTABLES` or `NONE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Where traffic is forwarded: a loopback address with port (`127.0.0.1:8080`), a Unix
    /// domain socket (`unix:///path`), or `0.0.0.0:<port>` / `[::]:<port>` for the
    /// instance's own IP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<String>,
    /// TLS termination for requests from outside the mesh; the sidecar then terminates TLS
    /// with these settings instead of Istio's mutual TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ServerTlsSettings>,
    /// Connection pool settings for connections to this listener; override
    /// `inboundConnectionPool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

/// A listener for outbound traffic from the workload (Istio `IstioEgressListener`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IstioEgressListener {
    /// The port the listener receives traffic on. Without it, the listener is the catch-all
    /// for every port not claimed by another listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<SidecarPort>,
    /// The IP address or Unix domain socket the listener binds to; required with a Unix
    /// domain socket or a non-wildcard address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// How traffic to the listener is captured (only when `bind` is an IP address):
    /// `DEFAULT`, `IPTABLES` or `NONE` (the application must target the listener directly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<CaptureMode>,
    /// Service hosts exposed by the listener, as `namespace/dnsName`. The namespace may be
    /// `*` (any), `.` (the Sidecar's own) or `~` (none); the name may have a wildcard
    /// prefix.
    pub hosts: Vec<String>,
}

/// A port of a Sidecar listener (Istio `SidecarPort`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SidecarPort {
    /// A valid non-negative integer port number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// The protocol exposed on the port: `HTTP`, `HTTPS`, `HTTP2`, `GRPC`, `MONGO`, `TCP` or
    /// `TLS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Label assigned to the port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Accepted by Istio's CRD; has no effect on Sidecar listeners.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// How traffic to a listener is captured (Istio `CaptureMode`): `DEFAULT`, `IPTABLES` or
/// `NONE`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CaptureMode {
    /// The capture mode defined by the environment.
    #[default]
    Default,
    /// Traffic is captured with iptables redirection.
    Iptables,
    /// No capture: the application talks to the listener's address directly.
    None,
}

/// The handling of outbound traffic to unknown destinations (Istio
/// `OutboundTrafficPolicy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// Whether traffic to destinations outside the registry is allowed: `REGISTRY_ONLY`
    /// (blocked) or `ALLOW_ANY` (passed through, or to `egressProxy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
    /// Where traffic to unknown destinations goes when `mode` is `ALLOW_ANY` (e.g. an
    /// egress gateway), instead of passing through directly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_proxy: Option<Destination>,
}

/// Whether outbound traffic to unknown destinations is allowed (Istio
/// `OutboundTrafficPolicy.Mode`): `REGISTRY_ONLY` or `ALLOW_ANY`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficMode {
    /// Only hosts in the registry (services and ServiceEntries) are reachable.
    #[default]
    RegistryOnly,
    /// Traffic to unknown destinations passes through.
    AllowAny,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const SIDECAR: &str = r#"
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata:
  name: ratings
  namespace: prod-us1
spec:
  workloadSelector:
    labels:
      app: ratings
  ingress:
  - port:
      number: 9080
      protocol: HTTP
      name: somename
    defaultEndpoint: unix:///var/run/someuds.sock
    captureMode: IPTABLES
  egress:
  - port:
      number: 9080
      protocol: HTTP
      name: egresshttp
    hosts:
    - "prod-us1/*"
  - hosts:
    - "istio-system/*"
  outboundTrafficPolicy:
    mode: ALLOW_ANY
    egressProxy:
      host: istio-egressgateway.istio-system.svc.cluster.local
      port:
        number: 443
"#;

    #[test]
    fn parses_and_round_trips() {
        let sc: Sidecar = parse::from_yaml(SIDECAR).unwrap();
        assert_eq!(sc.spec.ingress[0].capture_mode, Some(CaptureMode::Iptables));
        assert!(sc.spec.egress[1].port.is_none());
        let policy = sc.spec.outbound_traffic_policy.as_ref().unwrap();
        assert_eq!(policy.mode, Some(OutboundTrafficMode::AllowAny));
        let original: serde_json::Value = serde_yaml::from_str(SIDECAR).unwrap();
        assert_eq!(serde_json::to_value(&sc).unwrap(), original);
    }

    #[test]
    fn egress_hosts_are_required() {
        let bad = SIDECAR.replace(
            "  - hosts:\n    - \"istio-system/*\"\n",
            "  - bind: 127.0.0.1\n",
        );
        let err = parse::from_yaml::<Sidecar>(&bad).unwrap_err();
        assert_eq!(err.path(), Some("spec.egress[1]"));
        assert!(err.to_string().contains("hosts"), "{err}");
    }
}
