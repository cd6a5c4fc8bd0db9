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

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, Visitor,
};
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

/// Where [`read_kind`] reads an object from: a parsed JSON value, or the top-level fields of
/// an object as a serde map (see [`ObjectSeed`]).
trait Source<'de> {
    /// The error reading gives.
    type Error;
    /// Reads the whole object as `T` with plain serde.
    fn read<T: DeserializeOwned>(self) -> Result<T, Self::Error>;
}

impl Source<'_> for &Value {
    type Error = serde_json::Error;
    fn read<T: DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
}

/// Reads `source` as the type of the mesh kind `kind`. Returns `None` when `kind` is not a
/// mesh kind, else the object or the error reading it gave.
fn read_kind<'de, S: Source<'de>>(kind: &str, source: S) -> Option<Result<MeshObject, S::Error>> {
    served(kind)?;
    Some(match kind {
        "VirtualService" => source
            .read::<VirtualService>()
            .map(MeshObject::VirtualService),
        "DestinationRule" => source
            .read::<DestinationRule>()
            .map(MeshObject::DestinationRule),
        "Gateway" => source.read::<Gateway>().map(MeshObject::Gateway),
        "ServiceEntry" => source.read::<ServiceEntry>().map(MeshObject::ServiceEntry),
        "Sidecar" => source.read::<Sidecar>().map(MeshObject::Sidecar),
        "WorkloadEntry" => source
            .read::<WorkloadEntry>()
            .map(MeshObject::WorkloadEntry),
        "PeerAuthentication" => source
            .read::<PeerAuthentication>()
            .map(MeshObject::PeerAuthentication),
        "AuthorizationPolicy" => source
            .read::<AuthorizationPolicy>()
            .map(MeshObject::AuthorizationPolicy),
        "RequestAuthentication" => source
            .read::<RequestAuthentication>()
            .map(MeshObject::RequestAuthentication),
        _ => source.read::<Mesh>().map(MeshObject::Mesh),
    })
}

/// True when `api_version` is `<group>/<version>` with a group and version `kind` is
/// served at (see [`served`]).
fn is_served(api_version: &str, kind: &str) -> bool {
    served(kind).is_some_and(|(group, versions)| {
        api_version
            .split_once('/')
            .is_some_and(|(g, v)| g == group && versions.contains(&v))
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
    if !is_served(api_version, kind) {
        return None;
    }
    read_kind(kind, value)?.ok()
}

/// Reads an admission request's object straight from the request body into the mesh object
/// it is, without a `serde_json::Value` of its spec (the admission fast path).
///
/// Holds the kind the request names (`request.kind.kind`), as a guess of the object's own:
/// the object's fields are read into that kind's type as they come. The result is the object
/// [`read_fast`] returns for the same object parsed as a `Value`; wherever that cannot be
/// certain, reading fails (with a serde error saying why), and the caller takes the `Value`
/// path instead:
/// - the object's own `apiVersion` and `kind` (strings; the last one when repeated, as in a
///   `Value`) are not a served version of the guessed kind;
/// - a field the type refuses, a key repeated in a struct (a `Value` keeps the last one,
///   serde refuses the repeat), JSON nested too deep or a string with a lone UTF-16
///   surrogate escape anywhere in the object.
///
/// The last two need every part of the object to be read, not skipped (serde_json checks
/// neither nesting nor escapes in a value it skips): `spec` is read by the kind's spec type,
/// whose structs all refuse unknown fields; `metadata`, `status` and any other top-level
/// field are read as `Value`s (exactly the checks of the `Value` path), then `metadata` and
/// `status` into their types.
pub(crate) struct ObjectSeed<'k> {
    /// The kind the request names, e.g. `VirtualService`.
    pub(crate) kind: &'k str,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = MeshObject;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<MeshObject, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = MeshObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} object", self.kind)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<MeshObject, A::Error> {
        let mut types = TypeFields::default();
        let fields = TopLevel {
            map,
            types: &mut types,
            next: None,
        };
        let object = read_kind(self.kind, fields).ok_or_else(|| {
            de::Error::custom(format!("request.kind {:?} is not a mesh kind", self.kind))
        })??;
        match (types.api_version, types.kind) {
            (Some(api_version), Some(kind))
                if kind == self.kind && is_served(&api_version, &kind) =>
            {
                Ok(object)
            }
            (api_version, kind) => Err(de::Error::custom(format!(
                "object apiVersion {api_version:?} and kind {kind:?} are not a served version of request.kind {:?}",
                self.kind
            ))),
        }
    }
}

/// The object's `apiVersion` and `kind`, as [`TopLevel`] found them: the last of each.
#[derive(Default)]
struct TypeFields {
    api_version: Option<String>,
    kind: Option<String>,
}

/// A top-level field of an object, as [`TopLevel`] tells them apart.
#[derive(Clone, Copy)]
enum Field {
    ApiVersion,
    Kind,
    Metadata,
    Spec,
    Status,
    /// Any other field, which the kinds' types skip.
    Other,
}

impl Field {
    /// The field's name, as the kinds' types know it.
    fn name(self) -> &'static str {
        match self {
            Field::Metadata => "metadata",
            Field::Spec => "spec",
            Field::Status => "status",
            Field::ApiVersion | Field::Kind | Field::Other => "",
        }
    }
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

struct FieldVisitor;

impl Visitor<'_> for FieldVisitor {
    type Value = Field;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
        Ok(match name {
            "apiVersion" => Field::ApiVersion,
            "kind" => Field::Kind,
            "metadata" => Field::Metadata,
            "spec" => Field::Spec,
            "status" => Field::Status,
            _ => Field::Other,
        })
    }
}

/// An object's top-level fields as the kind's type reads them: `apiVersion` and `kind` go
/// to `types` (the types skip them), `spec` is read straight from the map, every other field
/// through a `Value` (see [`ObjectSeed`] for why).
struct TopLevel<'t, A> {
    map: A,
    types: &'t mut TypeFields,
    /// The field whose key the type has just read.
    next: Option<Field>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for TopLevel<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        while let Some(field) = self.map.next_key::<Field>()? {
            match field {
                Field::ApiVersion => self.types.api_version = Some(self.map.next_value()?),
                Field::Kind => self.types.kind = Some(self.map.next_value()?),
                Field::Other => {
                    self.map.next_value::<Value>()?;
                }
                Field::Metadata | Field::Spec | Field::Status => {
                    self.next = Some(field);
                    return seed.deserialize(field.name().into_deserializer()).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        if let Some(Field::Spec) = self.next.take() {
            return self.map.next_value_seed(seed);
        }
        let value: Value = self.map.next_value()?;
        seed.deserialize(value).map_err(de::Error::custom)
    }
}

impl<'de, A: MapAccess<'de>> Source<'de> for TopLevel<'_, A> {
    type Error = A::Error;
    fn read<T: DeserializeOwned>(self) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(self))
    }
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

    /// Reads `text` with [`ObjectSeed`] guessing `kind`; `None` on any error.
    fn read_seeded(kind: &str, text: &str) -> Option<MeshObject> {
        ObjectSeed { kind }
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .ok()
    }

    #[test]
    fn reading_in_one_pass_agrees_with_reading_from_a_value_on_every_test_document() {
        let mut read = 0;
        for (name, value) in &documents() {
            let text = serde_json::to_string(value).unwrap();
            let kind = value
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let seeded = read_seeded(kind, &text);
            // The documents have no repeated keys: one pass reads whatever a value reads.
            assert_eq!(seeded, read_fast(value), "{name}");
            read += usize::from(seeded.is_some());
        }
        assert!(read > 50, "{read}");
    }

    #[test]
    fn reading_in_one_pass_gives_up_where_it_could_differ() {
        let (api_version, kind) = ("networking.istio.io/v1", "VirtualService");
        let spec = r#"{"hosts": ["a"], "http": [{"route": [{"destination": {"host": "a"}}]}]}"#;
        let object = |spec_key: &str| {
            format!(
                r#"{{"apiVersion": "{api_version}", "kind": "{kind}", "metadata": {{"name": "a"}}, "{spec_key}": {spec}}}"#
            )
        };
        let plain = object("spec");
        assert!(read_seeded(kind, &plain).is_some());
        // A repeated field: a `Value` keeps the last, serde refuses the repeat.
        let repeated = format!(r#"{{"spec": {{}}, {}"#, &plain[1..]);
        assert!(read_seeded(kind, &repeated).is_none());
        // The object is not of the kind the request names, or not of a mesh kind.
        assert!(read_seeded("Gateway", &plain).is_none());
        assert!(read_seeded("Pod", &plain.replace(kind, "Pod")).is_none());
        // Where a `Value` reads the same, so does one pass: an escaped key, a repeated or
        // escaped `kind` (the last one counts), a field the types skip.
        for text in [
            object("sp\\u0065c"),
            plain.replacen('{', r#"{"kind": "Gateway", "#, 1),
            plain.replace(
                r#""kind": "VirtualService""#,
                r#""kind": "Virtual\u0053ervice""#,
            ),
            plain.replacen('{', r#"{"extra": {"a": [1, null]}, "#, 1),
        ] {
            let value: Value = serde_json::from_str(&text).unwrap();
            assert!(read_fast(&value).is_some(), "{text}");
            assert_eq!(read_seeded(kind, &text), read_fast(&value), "{text}");
        }
        // And where a `Value` refuses or reads otherwise, one pass gives up.
        for text in [
            plain
                .replacen('{', r#"{"kind": "VirtualService", "#, 1)
                .replace(
                    r#""kind": "VirtualService", "metadata""#,
                    r#""kind": "Gateway", "metadata""#,
                ),
            plain.replace(api_version, "networking.istio.io/v9"),
            plain.replace(r#""kind": "VirtualService", "#, ""),
            plain.replacen('{', r#"{"extra": "\ud800", "#, 1),
        ] {
            assert!(read_seeded(kind, &text).is_none(), "{text}");
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
