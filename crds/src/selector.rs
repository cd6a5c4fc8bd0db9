//! Workload selectors shared by several kinds (Istio `type.v1beta1.WorkloadSelector`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Selects the pods or VMs a policy applies to, by labels, within the policy's namespace.
///
/// Mirrors Istio's `istio.type.v1beta1.WorkloadSelector`. An absent selector selects every
/// workload in the namespace (or, in the root namespace, the whole mesh).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// One or more labels that indicate a specific set of pods/VMs on which a policy should be
    /// applied. The scope of label search is restricted to the configuration namespace in which
    /// the resource is present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub match_labels: BTreeMap<String, String>,
}

/// Selects a policy's target by reference (Istio `type.v1beta1.PolicyTargetReference`), used by
/// `targetRef`/`targetRefs` on security policies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicyTargetReference {
    /// Group is the group of the target resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Kind is kind of the target resource (for example `Service` or `Gateway`).
    pub kind: String,
    /// Name is the name of the target resource.
    pub name: String,
    /// Namespace is the namespace of the referent. Only the policy's own namespace is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}
