//! `WorkloadEntry` (networking.istio.io): a non-Kubernetes workload (a VM or bare-metal
//! host) onboarded into the mesh, selected by services like a pod.
//!
//! Field for field as Istio's reference documents `networking.v1.WorkloadEntry`; the same
//! message is a ServiceEntry's `endpoints` entry.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::IstioStatus;

/// WorkloadEntry describes the properties of a single non-Kubernetes workload such as a VM
/// or a bare-metal server as it is onboarded into the mesh.
///
/// Selected by Kubernetes Services and ServiceEntries through its labels, like a pod. Also
/// used, without the Kubernetes wrapper, as an endpoint of a ServiceEntry.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(
    CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema,
)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "WorkloadEntry",
    plural = "workloadentries",
    namespaced,
    status = "IstioStatus",
    shortname = "we",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting VMs onboarded into the mesh. See https://istio.io/docs/reference/config/networking/workload-entry.html",
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
    ),
    printcolumn(
        name = "Address",
        type_ = "string",
        json_path = ".spec.address",
        description = "Address associated with the network endpoint."
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEntrySpec {
    /// Address of the network endpoint, without the port: an IP address, a DNS name (for
    /// DNS resolution), or a Unix domain socket `unix:///absolute/path`. Optional when
    /// `network` is set and the workload is reached through that network's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Ports of the endpoint, by service port name. A service port whose name is here is
    /// sent to the mapped port number instead of the service's target port.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<String, u32>,
    /// Labels of the endpoint, used by service selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The network the endpoint is in (an L3 domain); endpoints in other networks are
    /// reached through that network's gateway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// The locality of the endpoint, `region/zone/subzone`, for locality-aware load
    /// balancing and failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality: Option<String>,
    /// The load balancing weight of the endpoint; endpoints with higher weights receive
    /// proportionally more traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// The service account of the workload when a sidecar runs in it; must be in the same
    /// namespace as the entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse;

    const ENTRY: &str = r#"
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata:
  name: details-vm
spec:
  address: 2.2.2.2
  ports:
    http: 8080
    "9080": 9090
  labels:
    app: details
    "8080": numeric-label-key
  serviceAccount: details-legacy
"#;

    #[test]
    fn port_map_has_numeric_values_and_string_keys() {
        let we: WorkloadEntry = parse::from_yaml(ENTRY).unwrap();
        assert_eq!(we.spec.ports.get("http"), Some(&8080));
        assert_eq!(we.spec.ports.get("9080"), Some(&9090));
        assert_eq!(
            we.spec.labels.get("8080").map(String::as_str),
            Some("numeric-label-key")
        );
        let original: serde_json::Value = serde_yaml::from_str(ENTRY).unwrap();
        assert_eq!(serde_json::to_value(&we).unwrap(), original);
    }

    #[test]
    fn unquoted_integer_keys_are_read_as_strings() {
        // YAML `80: 8080` has an integer key; Kubernetes stores map keys as strings.
        let text = ENTRY.replace("\"9080\": 9090", "9080: 9090");
        let we: WorkloadEntry = parse::from_yaml(&text).unwrap();
        assert_eq!(we.spec.ports.get("9080"), Some(&9090));
    }

    #[test]
    fn port_numbers_must_be_integers() {
        let bad = ENTRY.replace("http: 8080", "http: eighty");
        let err = parse::from_yaml::<WorkloadEntry>(&bad).unwrap_err();
        assert_eq!(err.path(), Some("spec.ports.http"));
        let bad = ENTRY.replace("http: 8080", "http: -1");
        assert!(parse::from_yaml::<WorkloadEntry>(&bad).is_err());
    }
}
