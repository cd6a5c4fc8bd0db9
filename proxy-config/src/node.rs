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

/// Kubernetes' region label of nodes (and so of pods and endpoints).
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Kubernetes' zone label.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Istio's sub-zone label.
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";

impl Locality {
    /// Whether this locality matches `pattern`, `region/zone/sub-zone` where `*` matches any
    /// segment and a missing zone or sub-zone matches any (Istio `util.LocalityMatch`, used by
    /// `LocalityLoadBalancerSetting.distribute`). E.g. `us-east1/*` matches every zone of
    /// `us-east1`.
    pub fn matches(&self, pattern: &str) -> bool {
        let mut parts = pattern.splitn(3, '/');
        let region = parts.next().unwrap_or_default();
        let zone = parts.next().unwrap_or_default();
        let sub_zone = parts.next().unwrap_or_default();
        let segment = |want: &str, have: &str, optional: bool| {
            want == "*" || (optional && want.is_empty()) || want == have
        };
        segment(region, &self.region, false)
            && segment(zone, &self.zone, true)
            && segment(sub_zone, &self.sub_zone, true)
    }

    /// The value this locality gives the topology label `key` ([`REGION_LABEL`],
    /// [`ZONE_LABEL`], [`SUBZONE_LABEL`]), as Istio adds them to proxy and endpoint labels;
    /// `None` for other keys or an unknown part.
    pub fn label(&self, key: &str) -> Option<&str> {
        let value = match key {
            REGION_LABEL => &self.region,
            ZONE_LABEL => &self.zone,
            SUBZONE_LABEL => &self.sub_zone,
            _ => return None,
        };
        (!value.is_empty()).then_some(value.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(region: &str, zone: &str, sub_zone: &str) -> Locality {
        Locality {
            region: region.into(),
            zone: zone.into(),
            sub_zone: sub_zone.into(),
        }
    }

    #[test]
    fn locality_patterns_match_as_istio_reads_them() {
        let here = at("us-east1", "us-east1-b", "rack3");
        for pattern in [
            "us-east1",
            "us-east1/*",
            "us-east1/us-east1-b",
            "us-east1/us-east1-b/*",
            "us-east1/us-east1-b/rack3",
            "*",
            "*/us-east1-b",
        ] {
            assert!(here.matches(pattern), "{pattern} should match");
        }
        for pattern in ["us-west1", "us-east1/us-east1-c", "us-east1/*/rack4", ""] {
            assert!(!here.matches(pattern), "{pattern} should not match");
        }
    }

    #[test]
    fn topology_labels_read_the_locality() {
        let here = at("r1", "z1", "");
        assert_eq!(here.label(REGION_LABEL), Some("r1"));
        assert_eq!(here.label(ZONE_LABEL), Some("z1"));
        assert_eq!(here.label(SUBZONE_LABEL), None);
        assert_eq!(here.label("app"), None);
    }
}
