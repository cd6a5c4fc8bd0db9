//! The proxy's own identity and location (Envoy's `Node`, Istio's `Proxy`/`NodeMetadata`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Who the proxy is: the workload it serves and the identity it presents.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// Envoy node id; Istio spells it `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`.
    pub id: String,
    /// The workload's namespace.
    pub namespace: String,
    /// The workload's name (Istio `WORKLOAD_NAME`, e.g. the Deployment name).
    #[serde(default)]
    pub workload_name: String,
    /// The workload's Kubernetes service account.
    #[serde(default)]
    pub service_account: String,
    /// The workload's pod labels; matched by `source_labels` in routes.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The workload's IP addresses (pod IPs), IPv4 and/or IPv6.
    #[serde(default)]
    pub ip_addresses: Vec<IpAddr>,
    /// The SPIFFE trust domain (Istio `MeshConfig.trustDomain`, default `cluster.local`).
    #[serde(default = "default_trust_domain")]
    pub trust_domain: String,
    /// Where the workload runs.
    #[serde(default)]
    pub locality: Locality,
    /// What kind of proxy this is: a sidecar next to a workload, or a gateway (Istio's node
    /// type, the first field of the node id).
    #[serde(default)]
    pub proxy_type: ProxyType,
}

/// The kind of proxy a config is for (Istio's node types `sidecar` and `router`; a router is a
/// standalone gateway configured by `Gateway` resources).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyType {
    /// A sidecar: captures its workload's traffic (Istio `sidecar`).
    #[default]
    Sidecar,
    /// A gateway: serves the `Gateway` resources that select it, with no workload behind it
    /// (Istio `router`).
    Router,
}

impl ProxyType {
    /// Istio's spelling: `sidecar` or `router`, as in the node id `<type>~<ip>~<id>~<domain>`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sidecar => "sidecar",
            Self::Router => "router",
        }
    }
}

fn default_trust_domain() -> String {
    "cluster.local".to_owned()
}

impl Node {
    /// The workload's SPIFFE ID: `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>`
    /// (the identity Istio issues to the workload's certificate).
    pub fn spiffe_id(&self) -> String {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

/// A workload's or endpoint's location (Envoy `Locality`; Kubernetes `topology.kubernetes.io/region`,
/// `topology.kubernetes.io/zone` and Istio's `topology.istio.io/subzone` labels). Empty strings mean
/// unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Locality {
    /// The region, e.g. `us-east1`.
    #[serde(default)]
    pub region: String,
    /// The zone, e.g. `us-east1-b`.
    #[serde(default)]
    pub zone: String,
    /// The sub-zone (Istio's `topology.istio.io/subzone`).
    #[serde(default)]
    pub sub_zone: String,
}
