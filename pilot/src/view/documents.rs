//! Reading a view from a multi-document YAML stream (standalone mode and golden tests).

use serde::Deserialize;
use serde::de::DeserializeOwned;
use weft_crds::MeshObject;
use weft_crds::object::ObjectError;

use super::ClusterObjects;

/// Errors from reading a multi-document YAML stream into a view.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The stream is not valid YAML.
    #[error("document {index}: malformed YAML: {message}")]
    Syntax {
        /// The 0-based document index in the stream.
        index: usize,
        /// The parser's message.
        message: String,
    },
    /// A Kubernetes object (`Service`, `EndpointSlice`, `Pod`, `Namespace`, `ServiceAccount`)
    /// whose fields do not match the Kubernetes API.
    #[error("document {index}: {kind} does not match the Kubernetes API: {message}")]
    Kube {
        /// The 0-based document index.
        index: usize,
        /// The document's kind.
        kind: String,
        /// The decoder's message (names the field).
        message: String,
    },
    /// A mesh object that does not parse, or a kind that is neither a mesh kind nor one of the
    /// Kubernetes kinds read here.
    #[error("document {index}: {source}")]
    Mesh {
        /// The 0-based document index.
        index: usize,
        /// The mesh-object parser's error (names the field path).
        source: ObjectError,
    },
}

/// Splits `text` into mesh objects and Kubernetes objects. Empty documents are skipped.
pub(super) fn parse(text: &str) -> Result<(Vec<MeshObject>, ClusterObjects), DocumentError> {
    let mut mesh = Vec::new();
    let mut kube = ClusterObjects::default();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_json::Value::deserialize(document).map_err(|error| DocumentError::Syntax {
                index,
                message: error.to_string(),
            })?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_owned();
        match kind.as_str() {
            "Service" => kube.services.push(decode(index, &kind, value)?),
            "EndpointSlice" => kube.endpoint_slices.push(decode(index, &kind, value)?),
            "Pod" => kube.pods.push(decode(index, &kind, value)?),
            "Namespace" => kube.namespaces.push(decode(index, &kind, value)?),
            "ServiceAccount" => kube.service_accounts.push(decode(index, &kind, value)?),
            _ => mesh.push(
                MeshObject::from_value(value)
                    .map_err(|source| DocumentError::Mesh { index, source })?,
            ),
        }
    }
    Ok((mesh, kube))
}

fn decode<T: DeserializeOwned>(
    index: usize,
    kind: &str,
    value: serde_json::Value,
) -> Result<T, DocumentError> {
    serde_json::from_value(value).map_err(|error| DocumentError::Kube {
        index,
        kind: kind.to_owned(),
        message: error.to_string(),
    })
}
