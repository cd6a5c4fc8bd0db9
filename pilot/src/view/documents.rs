//! Reading a view from a multi-document YAML stream (standalone mode and golden tests).

use k8s_openapi::api::core::v1::Secret;
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
    /// A Kubernetes object (`Service`, `EndpointSlice`, `Pod`, `Namespace`, `ServiceAccount`,
    /// `Secret`)
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

/// The non-empty documents of a multi-document YAML stream as JSON values, each with its
/// 0-based index in the stream (empty documents are skipped but counted).
///
/// Errors: [`DocumentError::Syntax`] naming the first document that is not valid YAML.
pub fn yaml_documents(text: &str) -> Result<Vec<(usize, serde_json::Value)>, DocumentError> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value =
            serde_json::Value::deserialize(document).map_err(|error| DocumentError::Syntax {
                index,
                message: error.to_string(),
            })?;
        if !value.is_null() {
            out.push((index, value));
        }
    }
    Ok(out)
}

/// The documents of a stream, by destination: mesh objects, Kubernetes objects, Secrets.
type Parsed = (Vec<MeshObject>, ClusterObjects, Vec<Secret>);

/// Splits `text` into mesh objects, Kubernetes objects and Secrets. Empty documents are
/// skipped.
pub(super) fn parse(text: &str) -> Result<Parsed, DocumentError> {
    let mut mesh = Vec::new();
    let mut kube = ClusterObjects::default();
    let mut secrets = Vec::new();
    for (index, value) in yaml_documents(text)? {
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
            "Secret" => secrets.push(decode_secret(index, value)?),
            _ => mesh.push(
                MeshObject::from_value(value)
                    .map_err(|source| DocumentError::Mesh { index, source })?,
            ),
        }
    }
    Ok((mesh, kube, secrets))
}

/// Decodes a Secret; the decoder's message is withheld, as it may quote the secret data.
fn decode_secret(index: usize, value: serde_json::Value) -> Result<Secret, DocumentError> {
    serde_json::from_value(value).map_err(|_| DocumentError::Kube {
        index,
        kind: "Secret".to_owned(),
        message: "a field does not decode (the decoder's message is withheld because it may \
                  quote secret data; check that `data` values are base64 and `stringData` values \
                  are strings)"
            .to_owned(),
    })
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
