//! `DestinationRule` (networking.istio.io). PLACEHOLDER: the full field set is being written.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::IstioStatus;

/// DestinationRule (placeholder spec).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(derive = "PartialEq", group = "networking.istio.io", version = "v1", kind = "DestinationRule", plural = "destinationrules", namespaced, status = "IstioStatus", category = "istio-io", category = "networking-istio-io")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRuleSpec {
    /// Placeholder.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
}
