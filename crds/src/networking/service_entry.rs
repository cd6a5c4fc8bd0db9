//! `ServiceEntry` (networking.istio.io): adds entries to Istio's internal service registry —
//! external services (APIs, databases outside the mesh) or internal services not in the
//! platform registry (VMs).
//!
//! Field for field as Istio's reference documents `networking.v1.ServiceEntry`.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::WorkloadSelector;
use super::workload_entry::WorkloadEntrySpec;
use crate::status::IstioStatus;

/// ServiceEntry enables adding additional entries into Istio's internal service registry,
/// so that services in the mesh can access and route to them.
///
/// Its hosts can then be used in VirtualServices and DestinationRules like any mesh service.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "ServiceEntry",
    plural = "serviceentries",
    namespaced,
    status = "IstioStatus",
    shortname = "se",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting service registry. See https://istio.io/docs/reference/config/networking/service-entry.html",
    printcolumn(
        name = "Hosts",
        type_ = "string",
        json_path = ".spec.hosts",
        description = "The hosts associated with the ServiceEntry"
    ),
    printcolumn(
        name = "Location",
        type_ = "string",
        json_path = ".spec.location",
        description = "Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)"
    ),
    printcolumn(
        name = "Resolution",
        type_ = "string",
        json_path = ".spec.resolution",
        description = "Service resolution mode for the hosts (NONE, STATIC, or DNS)"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the entry is accepted, resolved and reconciled by every affected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceEntrySpec {
    /// The hosts of the service (1 to 256): DNS names with an optional wildcard prefix. For
    /// HTTP traffic they are matched against the Host/Authority header; for HTTPS/TLS against
    /// the SNI; for other TCP traffic only `addresses` and the port matter.
    pub hosts: Vec<String>,
    /// Virtual IP addresses of the service, optionally CIDR prefixes (at most 256). Traffic
    /// to them is identified as this service; without them, only the port identifies
    /// non-HTTP traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
    /// The ports of the service (at most 256). Unix domain socket endpoints need exactly
    /// one port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ServicePort>,
    /// Whether the service is external to the mesh (`MESH_EXTERNAL`: no mutual TLS) or part
    /// of it (`MESH_INTERNAL`, e.g. VMs); affects mutual TLS and metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// How the endpoints of the hosts are found: `NONE` (the address the caller dialled),
    /// `STATIC` (the `endpoints` addresses), `DNS` (asynchronous DNS, all addresses),
    /// `DNS_ROUND_ROBIN` (DNS, first address only) or `DYNAMIC_DNS` (per-host DNS for wildcard
    /// hosts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
    /// The endpoints of the service (at most 4096); exclusive with `workloadSelector`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<WorkloadEntrySpec>,
    /// Selects the pods and WorkloadEntries (in the entry's namespace) that are the
    /// endpoints of this `MESH_INTERNAL` service; exclusive with `endpoints`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
    /// Namespaces to which this entry is exported: `.` for its own namespace, `*` for all
    /// namespaces (the default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Subject alternate names accepted in the server certificate of the service's
    /// endpoints.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
}

/// A port of a ServiceEntry (Istio `ServicePort`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// A valid non-negative integer port number.
    pub number: u32,
    /// The protocol exposed on the port: `HTTP`, `HTTPS`, `GRPC`, `HTTP2`, `MONGO`, `TCP` or
    /// `TLS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Label assigned to the port.
    pub name: String,
    /// The port on the endpoints where traffic is received; default `number`. Endpoint
    /// `ports` entries override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<u32>,
}

/// Whether a service is part of the mesh (Istio `ServiceEntry.Location`): `MESH_EXTERNAL`
/// (no mutual TLS, outside the mesh) or `MESH_INTERNAL` (a mesh service, such as VMs).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Location {
    /// Outside the mesh: no mutual TLS, and metrics treat it as external.
    #[default]
    MeshExternal,
    /// Part of the mesh, typically workloads added explicitly (VMs).
    MeshInternal,
}

/// How a ServiceEntry's endpoints are found (Istio `ServiceEntry.Resolution`): `NONE`,
/// `STATIC`, `DNS`, `DNS_ROUND_ROBIN` or `DYNAMIC_DNS`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Resolution {
    /// Connections go to the address the caller dialled (passthrough).
    #[default]
    None,
    /// Use the static IP addresses of `endpoints`.
    Static,
    /// Resolve the hosts (or endpoint addresses) through DNS asynchronously, using every
    /// returned address.
    Dns,
    /// Resolve through DNS and use the first returned address only, for services with
    /// many addresses (Envoy's logical DNS).
    DnsRoundRobin,
    /// Resolve each wildcard host on demand through DNS (dynamic forward proxy).
    DynamicDns,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const ENTRY: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata:
  name: external-svc-https
spec:
  hosts:
  - api.dropboxapi.com
  location: MESH_EXTERNAL
  ports:
  - number: 443
    name: https
    protocol: TLS
  resolution: DNS_ROUND_ROBIN
  endpoints:
  - address: api.dropboxapi.com
    ports:
      https: 443
"#;

    #[test]
    fn parses_enums_and_endpoints() {
        let se: ServiceEntry = parse::from_yaml(ENTRY).unwrap();
        assert_eq!(se.spec.location, Some(Location::MeshExternal));
        assert_eq!(se.spec.resolution, Some(Resolution::DnsRoundRobin));
        assert_eq!(se.spec.endpoints[0].ports.get("https"), Some(&443));
        let original: serde_json::Value = serde_yaml::from_str(ENTRY).unwrap();
        // apiVersion is written as the storage version (v1); the spec must come back unchanged.
        assert_eq!(serde_json::to_value(&se).unwrap()["spec"], original["spec"]);
    }

    #[test]
    fn resolution_spellings() {
        for (text, value) in [
            ("NONE", Resolution::None),
            ("STATIC", Resolution::Static),
            ("DNS", Resolution::Dns),
            ("DNS_ROUND_ROBIN", Resolution::DnsRoundRobin),
            ("DYNAMIC_DNS", Resolution::DynamicDns),
        ] {
            assert_eq!(
                serde_json::from_value::<Resolution>(text.into()).unwrap(),
                value
            );
            assert_eq!(serde_json::to_value(value).unwrap(), text);
        }
        let bad = ENTRY.replace("DNS_ROUND_ROBIN", "ROUND_ROBIN");
        let err = parse::from_yaml::<ServiceEntry>(&bad).unwrap_err();
        assert_eq!(err.path(), Some("spec.resolution"));
    }

    #[test]
    fn hosts_are_required() {
        let bad = ENTRY.replace("  hosts:\n  - api.dropboxapi.com\n", "");
        let err = parse::from_yaml::<ServiceEntry>(&bad).unwrap_err();
        assert!(err.to_string().contains("hosts"), "{err}");
    }
}
