//! Reading an object for validation without field-path tracking, for the common case of an
//! object that parses.
//!
//! `MeshObject::from_value` reads through `serde_path_to_error`, which records the path of
//! every field on the way so that an error can name it; on a 20-route VirtualService that
//! bookkeeping is most of the parse. [`read_fast`] reads the same types with plain serde and
//! gives up on any problem; [`super::validate_value`] then re-reads with `from_value`, whose
//! error (and path) is the one reported. Both read the same `Deserialize` impls from the same
//! JSON, so they accept exactly the same objects; the `served` table below mirrors
//! `weft_crds::object`'s `apiVersion` check with the crate's public constants.

use serde::Deserialize;
use serde_json::Value;
use weft_crds::MeshObject;
use weft_crds::mesh::{self, Mesh};
use weft_crds::networking::{
    self, DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use weft_crds::security::{self, AuthorizationPolicy, PeerAuthentication, RequestAuthentication};

/// The API group and served versions of `kind`, as `MeshObject::from_value` checks them.
fn served(kind: &str) -> Option<(&'static str, &'static [&'static str])> {
    match kind {
        "VirtualService" | "DestinationRule" | "Gateway" | "ServiceEntry" | "Sidecar"
        | "WorkloadEntry" => Some((networking::GROUP, networking::SERVED_VERSIONS)),
        "PeerAuthentication" | "AuthorizationPolicy" | "RequestAuthentication" => {
            Some((security::GROUP, security::SERVED_VERSIONS))
        }
        "Mesh" => Some((mesh::GROUP, &[mesh::VERSION])),
        _ => None,
    }
}

/// Reads `value` as the mesh object its `apiVersion` and `kind` name, with plain serde.
///
/// Takes the object's JSON. Returns the object, or `None` whenever
/// `MeshObject::from_value` would fail (missing or unserved `apiVersion`/`kind`, a field
/// its type refuses); the caller re-reads it with `from_value` for the error.
pub(super) fn read_fast(value: &Value) -> Option<MeshObject> {
    let api_version = value.get("apiVersion")?.as_str()?;
    let kind = value.get("kind")?.as_str()?;
    let (group, versions) = served(kind)?;
    let (g, v) = api_version.split_once('/')?;
    if g != group || !versions.contains(&v) {
        return None;
    }
    fn read<'a, T: Deserialize<'a>>(value: &'a Value) -> Option<T> {
        T::deserialize(value).ok()
    }
    Some(match kind {
        "VirtualService" => MeshObject::VirtualService(read::<VirtualService>(value)?),
        "DestinationRule" => MeshObject::DestinationRule(read::<DestinationRule>(value)?),
        "Gateway" => MeshObject::Gateway(read::<Gateway>(value)?),
        "ServiceEntry" => MeshObject::ServiceEntry(read::<ServiceEntry>(value)?),
        "Sidecar" => MeshObject::Sidecar(read::<Sidecar>(value)?),
        "WorkloadEntry" => MeshObject::WorkloadEntry(read::<WorkloadEntry>(value)?),
        "PeerAuthentication" => MeshObject::PeerAuthentication(read::<PeerAuthentication>(value)?),
        "AuthorizationPolicy" => {
            MeshObject::AuthorizationPolicy(read::<AuthorizationPolicy>(value)?)
        }
        "RequestAuthentication" => {
            MeshObject::RequestAuthentication(read::<RequestAuthentication>(value)?)
        }
        _ => MeshObject::Mesh(read::<Mesh>(value)?),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::path::Path;

    use serde_json::json;

    use super::*;

    /// Every document under `testdata/validation`, as JSON.
    fn documents() -> Vec<(String, Value)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/validation");
        let mut out = Vec::new();
        for dir in std::fs::read_dir(root).unwrap() {
            for file in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap();
                for document in serde_yaml::Deserializer::from_str(&text) {
                    let value = Value::deserialize(document).unwrap();
                    out.push((path.display().to_string(), value));
                }
            }
        }
        out
    }

    /// `read_fast` agrees with `MeshObject::from_value` on `value`: the same object when it
    /// parses, `None` when it does not.
    fn assert_agrees(name: &str, value: &Value) {
        match (read_fast(value), MeshObject::from_value(value.clone())) {
            (Some(fast), Ok(reference)) => assert_eq!(fast, reference, "{name}"),
            (None, Err(_)) => {}
            (fast, reference) => panic!("{name}: fast {fast:?}, reference {reference:?}"),
        }
    }

    #[test]
    fn agrees_with_the_path_tracking_parser_on_every_test_document() {
        let documents = documents();
        assert!(documents.len() > 100, "found {}", documents.len());
        let parsed = documents
            .iter()
            .filter(|(_, v)| MeshObject::from_value(v.clone()).is_ok())
            .count();
        // Both outcomes are exercised.
        assert!(parsed > 50 && parsed < documents.len(), "{parsed}");
        for (name, value) in &documents {
            assert_agrees(name, value);
        }
    }

    #[test]
    fn refuses_what_the_type_meta_check_refuses() {
        let spec = json!({"hosts": ["a"]});
        for (api_version, kind) in [
            ("networking.istio.io/v2", "VirtualService"),
            ("security.istio.io/v1", "VirtualService"),
            ("networking.istio.io", "VirtualService"),
            ("networking.istio.io/v1", "Pod"),
            ("mesh.weft.dev/v1", "Mesh"),
        ] {
            let value = json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "a"}, "spec": spec});
            assert!(read_fast(&value).is_none(), "{api_version} {kind}");
            assert_agrees(api_version, &value);
        }
        let served = json!({"apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService", "metadata": {"name": "a"}, "spec": spec});
        assert!(read_fast(&served).is_some());
        assert_agrees("v1alpha3", &served);
    }
}
