//! `PeerAuthentication` (security.istio.io): what kind of mutual TLS a workload accepts.
//!
//! Field for field as Istio's reference documents `security.v1.PeerAuthentication`.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::WorkloadSelector;
use crate::status::IstioStatus;

/// PeerAuthentication defines how traffic will be tunneled (or not) to the sidecar.
///
/// Policies in the root namespace apply mesh-wide; a policy without selector applies to its
/// whole namespace; a policy with a selector to the matching workloads. The narrowest wins.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "security.istio.io",
    version = "v1",
    kind = "PeerAuthentication",
    plural = "peerauthentications",
    namespaced,
    status = "IstioStatus",
    shortname = "pa",
    category = "istio-io",
    category = "security-istio-io",
    doc = "PeerAuthentication defines how traffic will be tunneled (or not) to the sidecar.",
    printcolumn(
        name = "Mode",
        type_ = "string",
        json_path = ".spec.mtls.mode",
        description = "Defines the mTLS mode used for peer authentication."
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the policy is accepted, resolved and reconciled by every affected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationSpec {
    /// The selector determines the workloads to apply the PeerAuthentication on. If not set,
    /// the policy will be applied to all workloads in the same namespace as the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Mutual TLS settings for workload. If not defined, inherit from parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<MutualTls>,
    /// Port specific mutual TLS settings. The key is the workload (container) port number.
    /// Only allowed together with a `selector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub port_level_mtls: BTreeMap<u32, MutualTls>,
}

/// Mutual TLS settings (Istio `PeerAuthentication.MutualTLS`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MutualTls {
    /// Defines the mTLS mode used for peer authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<MtlsMode>,
}

/// The mTLS mode (Istio `PeerAuthentication.MutualTLS.Mode`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Inherit from parent, if has one. Otherwise treated as PERMISSIVE.
    #[default]
    Unset,
    /// Connection is not tunneled.
    Disable,
    /// Connection can be either plaintext or mTLS tunnel.
    Permissive,
    /// Connection is an mTLS tunnel (TLS with client cert must be presented).
    Strict,
}
