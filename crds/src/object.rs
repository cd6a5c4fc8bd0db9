//! Any mesh object, read from a multi-document YAML stream and dispatched by
//! `apiVersion`/`kind`.

use serde::{Deserialize, Serialize};

use crate::mesh::{self, Mesh};
use crate::networking::{
    self, DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use crate::parse::{self, ParseError};
use crate::security::{self, AuthorizationPolicy, PeerAuthentication, RequestAuthentication};

/// One mesh object of any kind Weft serves.
// The variants differ in size (a VirtualService is large), but objects are parsed once and
// then read in place; boxing them would only add an indirection to every match.
#[allow(clippy::large_enum_variant)]
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(untagged)]
pub enum MeshObject {
    /// networking.istio.io VirtualService.
    VirtualService(VirtualService),
    /// networking.istio.io DestinationRule.
    DestinationRule(DestinationRule),
    /// networking.istio.io Gateway.
    Gateway(Gateway),
    /// networking.istio.io ServiceEntry.
    ServiceEntry(ServiceEntry),
    /// networking.istio.io Sidecar.
    Sidecar(Sidecar),
    /// networking.istio.io WorkloadEntry.
    WorkloadEntry(WorkloadEntry),
    /// security.istio.io PeerAuthentication.
    PeerAuthentication(PeerAuthentication),
    /// security.istio.io AuthorizationPolicy.
    AuthorizationPolicy(AuthorizationPolicy),
    /// security.istio.io RequestAuthentication.
    RequestAuthentication(RequestAuthentication),
    /// mesh.weft.dev Mesh.
    Mesh(Mesh),
}

/// Why a document is not a mesh object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The document is not a mapping with string `apiVersion` and `kind`.
    #[error("{0}: required string field missing")]
    MissingTypeMeta(&'static str),
    /// The `apiVersion`/`kind` pair is not one Weft serves.
    #[error(
        "apiVersion {api_version:?} kind {kind:?} is not a mesh kind served by Weft (served: {served})"
    )]
    UnknownKind {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
        /// The versions served for that kind, when the kind is known.
        served: String,
    },
    /// The document is of a known kind but a field is wrong.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl ObjectError {
    /// The field path of the error, when it concerns a field.
    pub fn path(&self) -> Option<&str> {
        match self {
            ObjectError::MissingTypeMeta(field) => Some(field),
            ObjectError::UnknownKind { .. } => Some("apiVersion"),
            ObjectError::Parse(e) => e.path(),
        }
    }
}

fn served(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
    match kind {
        "VirtualService" | "DestinationRule" | "Gateway" | "ServiceEntry" | "Sidecar"
        | "WorkloadEntry" => Some((networking::GROUP, networking::SERVED_VERSIONS)),
        "PeerAuthentication" | "AuthorizationPolicy" | "RequestAuthentication" => {
            Some((security::GROUP, security::SERVED_VERSIONS))
        }
        "Mesh" => Some((mesh::GROUP, &["v1alpha1"])),
        _ => None,
    }
}

impl MeshObject {
    /// Reads one object from a JSON value, checking that `apiVersion` is a served version of
    /// the kind's group. Errors name the field path.
    pub fn from_value(value: serde_json::Value) -> Result<Self, ObjectError> {
        let api_version = value
            .get("apiVersion")
            .and_then(|v| v.as_str())
            .ok_or(ObjectError::MissingTypeMeta("apiVersion"))?
            .to_string();
        let kind = value
            .get("kind")
            .and_then(|v| v.as_str())
            .ok_or(ObjectError::MissingTypeMeta("kind"))?
            .to_string();
        let unknown = |served: String| ObjectError::UnknownKind {
            api_version: api_version.clone(),
            kind: kind.clone(),
            served,
        };
        let (group, versions) = served(&kind).ok_or_else(|| unknown(String::new()))?;
        let ok = api_version
            .split_once('/')
            .is_some_and(|(g, v)| g == group && versions.contains(&v));
        if !ok {
            let list: Vec<String> = versions.iter().map(|v| format!("{group}/{v}")).collect();
            return Err(unknown(list.join(", ")));
        }
        Ok(match kind.as_str() {
            "VirtualService" => MeshObject::VirtualService(parse::from_value(value)?),
            "DestinationRule" => MeshObject::DestinationRule(parse::from_value(value)?),
            "Gateway" => MeshObject::Gateway(parse::from_value(value)?),
            "ServiceEntry" => MeshObject::ServiceEntry(parse::from_value(value)?),
            "Sidecar" => MeshObject::Sidecar(parse::from_value(value)?),
            "WorkloadEntry" => MeshObject::WorkloadEntry(parse::from_value(value)?),
            "PeerAuthentication" => MeshObject::PeerAuthentication(parse::from_value(value)?),
            "AuthorizationPolicy" => MeshObject::AuthorizationPolicy(parse::from_value(value)?),
            "RequestAuthentication" => MeshObject::RequestAuthentication(parse::from_value(value)?),
            _ => MeshObject::Mesh(parse::from_value(value)?),
        })
    }

    /// The object's kind, e.g. `VirtualService`.
    pub fn kind(&self) -> &'static str {
        match self {
            MeshObject::VirtualService(_) => "VirtualService",
            MeshObject::DestinationRule(_) => "DestinationRule",
            MeshObject::Gateway(_) => "Gateway",
            MeshObject::ServiceEntry(_) => "ServiceEntry",
            MeshObject::Sidecar(_) => "Sidecar",
            MeshObject::WorkloadEntry(_) => "WorkloadEntry",
            MeshObject::PeerAuthentication(_) => "PeerAuthentication",
            MeshObject::AuthorizationPolicy(_) => "AuthorizationPolicy",
            MeshObject::RequestAuthentication(_) => "RequestAuthentication",
            MeshObject::Mesh(_) => "Mesh",
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &kube::core::ObjectMeta {
        match self {
            MeshObject::VirtualService(o) => &o.metadata,
            MeshObject::DestinationRule(o) => &o.metadata,
            MeshObject::Gateway(o) => &o.metadata,
            MeshObject::ServiceEntry(o) => &o.metadata,
            MeshObject::Sidecar(o) => &o.metadata,
            MeshObject::WorkloadEntry(o) => &o.metadata,
            MeshObject::PeerAuthentication(o) => &o.metadata,
            MeshObject::AuthorizationPolicy(o) => &o.metadata,
            MeshObject::RequestAuthentication(o) => &o.metadata,
            MeshObject::Mesh(o) => &o.metadata,
        }
    }
}

/// One document of a YAML stream: its index (0-based) and what it held. Empty documents
/// (e.g. a trailing `---`) are skipped and keep their index in the count.
#[derive(Debug)]
pub struct Document {
    /// The 0-based position of the document in the stream.
    pub index: usize,
    /// The object, or why it is not one.
    pub result: Result<MeshObject, ObjectError>,
}

/// Splits a multi-document YAML stream and reads every document. One bad document does not
/// spoil the others. Errors when the stream itself is not YAML.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, ParseError> {
    let mut out = Vec::new();
    for (index, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = serde_json::Value::deserialize(de)
            .map_err(|e| ParseError::Syntax(format!("document {index}: {e}")))?;
        if value.is_null() {
            continue;
        }
        out.push(Document {
            index,
            result: MeshObject::from_value(value),
        });
    }
    Ok(out)
}
