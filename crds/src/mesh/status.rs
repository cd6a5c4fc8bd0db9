//! The `status` of the `Mesh` kind: the mesh's own conditions and what the operator counts.
//!
//! Conditions use the Kubernetes `metav1.Condition` shape shared with every Weft kind
//! ([`crate::status::Condition`]); the condition types are the ones issue 7 of the operator
//! names: `Ready` (the summary read by the printer column), `CertificateAuthorityReady`,
//! `WebhooksReady` and `DiscoveryReady`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::Condition;

pub use crate::status::CONDITION_READY;

/// Condition type: the mesh CA is loaded (Istio's plug-in `cacerts` or Weft's self-signed
/// root) and the trust bundle is published.
pub const CONDITION_CERTIFICATE_AUTHORITY_READY: &str = "CertificateAuthorityReady";
/// Condition type: both webhook configurations exist and trust the mesh CA (`caBundle`).
pub const CONDITION_WEBHOOKS_READY: &str = "WebhooksReady";
/// Condition type: the discovery service (Istio's xDS port 15012) is serving.
pub const CONDITION_DISCOVERY_READY: &str = "DiscoveryReady";

/// The status subresource of a `Mesh`, written only by the operator's leader.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeshStatus {
    /// `Ready`, `CertificateAuthorityReady`, `WebhooksReady` and `DiscoveryReady`, one entry
    /// per type, each with reason, message and observedGeneration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The `.metadata.generation` of the Mesh this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// How many proxies hold an open discovery stream to the operator replica that wrote this
    /// status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_proxies: Option<u32>,
    /// How many pods carry the injector's `sidecar.istio.io/status` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_pods: Option<u32>,
    /// The earliest `notAfter` (RFC 3339) among the workload certificate Secrets the operator
    /// issued; absent when there are none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub nearest_certificate_expiry: Option<String>,
}

impl MeshStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_camel_case_names_and_omits_what_is_unset() {
        let status = MeshStatus {
            conditions: vec![Condition {
                type_: CONDITION_READY.into(),
                status: "True".into(),
                ..Condition::default()
            }],
            observed_generation: Some(3),
            connected_proxies: Some(2),
            injected_pods: None,
            nearest_certificate_expiry: Some("2026-01-01T00:00:00Z".into()),
        };
        let json = serde_json::to_value(&status).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "conditions": [{"type": "Ready", "status": "True"}],
                "observedGeneration": 3,
                "connectedProxies": 2,
                "nearestCertificateExpiry": "2026-01-01T00:00:00Z",
            })
        );
        let back: MeshStatus = serde_json::from_value(json).unwrap();
        assert_eq!(back, status);
        assert_eq!(back.condition("Ready").unwrap().status, "True");
        assert!(back.condition(CONDITION_WEBHOOKS_READY).is_none());
    }
}
