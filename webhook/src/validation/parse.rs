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

use serde::de::DeserializeOwned;
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

/// Where [`read_typed`] reads an object from: a parsed JSON value or the JSON text itself.
trait Source {
    /// Reads the whole object as `T` with plain serde; `None` on any error.
    fn read<T: DeserializeOwned>(&self) -> Option<T>;
}

impl Source for &Value {
    fn read<T: DeserializeOwned>(&self) -> Option<T> {
        T::deserialize(*self).ok()
    }
}

/// An object's JSON text, as an admission request carries it.
struct Text<'a>(&'a str);

impl Source for Text<'_> {
    fn read<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(self.0).ok()
    }
}

/// Reads `source` as the mesh object `api_version` and `kind` name, or `None` when the kind
/// or version is not served or the object does not parse.
fn read_typed(api_version: &str, kind: &str, source: impl Source) -> Option<MeshObject> {
    let (group, versions) = served(kind)?;
    let (g, v) = api_version.split_once('/')?;
    if g != group || !versions.contains(&v) {
        return None;
    }
    Some(match kind {
        "VirtualService" => MeshObject::VirtualService(source.read::<VirtualService>()?),
        "DestinationRule" => MeshObject::DestinationRule(source.read::<DestinationRule>()?),
        "Gateway" => MeshObject::Gateway(source.read::<Gateway>()?),
        "ServiceEntry" => MeshObject::ServiceEntry(source.read::<ServiceEntry>()?),
        "Sidecar" => MeshObject::Sidecar(source.read::<Sidecar>()?),
        "WorkloadEntry" => MeshObject::WorkloadEntry(source.read::<WorkloadEntry>()?),
        "PeerAuthentication" => {
            MeshObject::PeerAuthentication(source.read::<PeerAuthentication>()?)
        }
        "AuthorizationPolicy" => {
            MeshObject::AuthorizationPolicy(source.read::<AuthorizationPolicy>()?)
        }
        "RequestAuthentication" => {
            MeshObject::RequestAuthentication(source.read::<RequestAuthentication>()?)
        }
        _ => MeshObject::Mesh(source.read::<Mesh>()?),
    })
}

/// Reads `value` as the mesh object its `apiVersion` and `kind` name, with plain serde.
///
/// Takes the object's JSON. Returns the object, or `None` whenever
/// `MeshObject::from_value` would fail (missing or unserved `apiVersion`/`kind`, a field
/// its type refuses); the caller re-reads it with `from_value` for the error.
pub(super) fn read_fast(value: &Value) -> Option<MeshObject> {
    let api_version = value.get("apiVersion")?.as_str()?;
    let kind = value.get("kind")?.as_str()?;
    read_typed(api_version, kind, value)
}

/// Reads the JSON text `text` of an object whose `apiVersion` and `kind` are given straight
/// into the mesh object they name, without building a `serde_json::Value` first.
///
/// Takes the object's `apiVersion` and `kind` (as the caller found them in `text`) and its
/// JSON text. Returns the object [`read_fast`] would return for the same document parsed as a
/// `Value`, or `None` when it cannot be sure of that: whenever `read_fast` would give up, and
/// also when a key repeats in a struct (serde refuses the repeat where a `Value` keeps the
/// last one) or a numeric map key is written with escapes. The caller then takes the `Value`
/// path, so such objects get exactly its outcome.
pub(crate) fn read_fast_text(api_version: &str, kind: &str, text: &str) -> Option<MeshObject> {
    read_typed(api_version, kind, Text(text))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::path::Path;

    use serde::Deserialize;
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
    fn reading_from_text_agrees_with_reading_from_a_value_on_every_test_document() {
        let mut read = 0;
        for (name, value) in &documents() {
            let text = serde_json::to_string(value).unwrap();
            let field = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
            let from_text = read_fast_text(field("apiVersion"), field("kind"), &text);
            // The documents have no repeated keys or escapes: text reads whatever a value reads.
            assert_eq!(from_text, read_fast(value), "{name}");
            read += usize::from(from_text.is_some());
        }
        assert!(read > 50, "{read}");
    }

    #[test]
    fn reading_from_text_gives_up_where_it_could_differ() {
        let (api_version, kind) = ("networking.istio.io/v1", "VirtualService");
        let spec = r#"{"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]}"#;
        let object = |spec_key: &str| {
            format!(
                r#"{{"apiVersion": "{api_version}", "kind": "{kind}", "metadata": {{"name": "a"}}, "{spec_key}": {spec}}}"#
            )
        };
        let plain = object("spec");
        assert!(read_fast_text(api_version, kind, &plain).is_some());
        // A repeated field: a `Value` keeps the last, serde refuses the repeat.
        let repeated = format!(r#"{{"spec": {{}}, {}"#, &plain[1..]);
        assert!(read_fast_text(api_version, kind, &repeated).is_none());
        assert!(read_fast_text(api_version, "Pod", &plain).is_none());
        // An escaped key is read as the key it spells, in both paths.
        let escaped = object("sp\\u0065c");
        let value: Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(
            read_fast_text(api_version, kind, &escaped),
            read_fast(&value)
        );
        assert!(read_fast(&value).is_some(), "{escaped}");
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
