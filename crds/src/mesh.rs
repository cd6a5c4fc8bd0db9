//! Weft's own `Mesh` kind (`mesh.weft.dev/v1alpha1`): the mesh-wide settings.
//! PLACEHOLDER: the full field set is being written.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::status::IstioStatus;

/// The API group of Weft's own kinds.
pub const GROUP: &str = "mesh.weft.dev";

/// Mesh-wide settings (placeholder).
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(derive = "PartialEq", group = "mesh.weft.dev", version = "v1alpha1", kind = "Mesh", plural = "meshes", status = "IstioStatus", category = "weft")]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshSpec {
    /// The trust domain of the mesh's SPIFFE identities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
}
