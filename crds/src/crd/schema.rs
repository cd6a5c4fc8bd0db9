//! The `openAPIV3Schema` of each kind, made structural.
//!
//! The schema is generated with kube's own settings and transforms (OpenAPI 3.0, inlined
//! subschemas, `nullable`, kube's structural rewrites) plus two of ours that run first:
//! [`FieldDocWins`] keeps a field's own doc comment when its type has one too (kube's
//! `OptionalEnum` would otherwise copy the type's doc over the field's), and [`EnumValueDocs`]
//! keeps the doc comment of each enum value (kube's rewrite drops them).
//!
//! [`make_structural`] then applies Kubernetes' structural-schema rules
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>)
//! and the API server's CRD validation: what can be repaired without changing what validates
//! is repaired, the rest is refused with the schema path.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaProps;
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use schemars::transform::{AddNullable, Transform, transform_subschemas};
use serde_json::{Map, Value};

/// A schema rule the generated schema breaks and that cannot be repaired. `path` names the
/// node: property names joined by `.`, `[]` for array items, `{}` for map values,
/// `oneOf[i]`-style for junctors.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// `$ref` is not allowed in CRD schemas (every subschema must be inline).
    #[error("{path}: $ref is not allowed in a CRD schema (inline the type)")]
    Ref {
        /// The schema node.
        path: String,
    },
    /// A node has no `type` and is neither int-or-string nor deliberately schemaless.
    #[error(
        "{path}: no type; give the field a concrete type, or mark it `x-kubernetes-preserve-unknown-fields` on purpose"
    )]
    Untyped {
        /// The schema node.
        path: String,
    },
    /// A node has several types (`type: [string, number]`); structural schemas allow one.
    #[error("{path}: several types; a structural schema allows exactly one")]
    MultipleTypes {
        /// The schema node.
        path: String,
    },
    /// `properties` and a schema-valued `additionalProperties` (or `patternProperties`) on the
    /// same node: the API server refuses the combination.
    #[error("{path}: properties and additionalProperties/patternProperties cannot be combined")]
    PropertiesAndMap {
        /// The schema node.
        path: String,
    },
    /// Several `patternProperties`: only one can become `additionalProperties`.
    #[error("{path}: {count} patternProperties; only a single one can become additionalProperties")]
    PatternProperties {
        /// The schema node.
        path: String,
        /// How many patterns there were.
        count: usize,
    },
    /// A keyword that the CRD schema type (`JSONSchemaProps`) cannot carry: the API server
    /// would silently drop it.
    #[error("{path}: keyword {keyword:?} is not supported in a CRD schema")]
    Unsupported {
        /// The schema node.
        path: String,
        /// The keyword.
        keyword: String,
    },
    /// The schema is not a `JSONSchemaProps` at all.
    #[error("schema is not a valid JSONSchemaProps: {0}")]
    Json(#[from] serde_json::Error),
}

/// Generates the `openAPIV3Schema` of `K` and makes it structural. Errors as
/// [`SchemaError`] describes.
pub fn structural_schema_for<K: JsonSchema>() -> Result<JSONSchemaProps, SchemaError> {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(EnumValueDocs)
        .with_transform(FieldDocWins)
        .with_transform(AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    let mut value = generator.into_root_schema_for::<K>().to_value();
    make_structural(&mut value)?;
    let props: JSONSchemaProps = serde_json::from_value(value.clone())?;
    let back = serde_json::to_value(&props)?;
    first_loss(&value, &back, "")?;
    Ok(props)
}

/// The key under which [`EnumValueDocs`] leaves the value list for [`make_structural`].
const ENUM_DOCS_KEY: &str = "x-weft-enum-docs";

/// Keeps a field's doc comment over its type's for `Option<T>` fields.
///
/// schemars writes an optional field as `{description: <field doc>, anyOf: [<T>, <null>]}`
/// where `<T>` carries the type's doc; kube's `OptionalEnum` later hoists `<T>` over the outer
/// node, so the type's doc would win. Copying the field's doc into `<T>` first keeps it.
#[derive(Debug, Clone, Copy)]
pub struct FieldDocWins;

impl Transform for FieldDocWins {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        let Some(description) = obj.get("description").cloned() else {
            return;
        };
        let Some(Value::Array(any_of)) = obj.get_mut("anyOf") else {
            return;
        };
        if any_of.len() != 2 {
            return;
        }
        // The null branch is `{type: null}`, or `{enum: [null], nullable: true}` once the
        // OpenAPI 3.0 settings have rewritten it.
        let is_null = |v: &Value| {
            v.get("type") == Some(&Value::from("null"))
                || v.get("enum") == Some(&Value::Array(vec![Value::Null]))
        };
        let inner = match (is_null(&any_of[0]), is_null(&any_of[1])) {
            (false, true) => &mut any_of[0],
            (true, false) => &mut any_of[1],
            _ => return,
        };
        if let Some(inner) = inner.as_object_mut() {
            inner.insert("description".into(), description);
        }
    }
}

/// Keeps the doc comment of each enum value: for a `oneOf` of documented constants (a Rust
/// enum with doc comments on its variants), records "- `VALUE`: doc" lines that
/// [`make_structural`] appends to the field's description.
#[derive(Debug, Clone, Copy)]
pub struct EnumValueDocs;

impl Transform for EnumValueDocs {
    fn transform(&mut self, schema: &mut schemars::Schema) {
        transform_subschemas(self, schema);
        let Some(obj) = schema.as_object_mut() else {
            return;
        };
        let Some(Value::Array(one_of)) = obj.get("oneOf") else {
            return;
        };
        let mut lines = Vec::new();
        for variant in one_of {
            let value = variant
                .get("const")
                .or_else(|| variant.get("enum").and_then(|e| e.get(0)));
            let (Some(Value::String(value)), Some(Value::String(doc))) =
                (value, variant.get("description"))
            else {
                return;
            };
            let doc = doc.split_whitespace().collect::<Vec<_>>().join(" ");
            lines.push(format!("- `{value}`: {doc}"));
        }
        if !lines.is_empty() {
            obj.insert(ENUM_DOCS_KEY.into(), Value::String(lines.join("\n")));
        }
    }
}

/// Keywords dropped everywhere: annotations that CRD schemas do not carry and that do not
/// change what validates (`uniqueItems` is refused by the API server; lists that must be sets
/// say so with `x-kubernetes-list-type: set`).
const DROPPED: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "$defs",
    "definitions",
    "title",
    "examples",
    "readOnly",
    "writeOnly",
    "deprecated",
    "uniqueItems",
];

/// Keywords the API server forbids inside `allOf`/`anyOf`/`oneOf`/`not`: they only describe
/// the outer node.
const NOT_IN_JUNCTORS: &[&str] = &[
    "description",
    "type",
    "default",
    "nullable",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    ENUM_DOCS_KEY,
];

/// The `format` values the API server knows; integer formats of other widths are mapped to
/// the narrowest of these that holds every value, others are dropped.
const KNOWN_FORMATS: &[&str] = &[
    "int32",
    "int64",
    "float",
    "double",
    "byte",
    "binary",
    "date",
    "date-time",
    "datetime",
    "duration",
    "password",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uri",
    "uuid",
];

/// Makes a schema structural in place:
/// - `patternProperties` with a single pattern (from integer-keyed maps) becomes
///   `additionalProperties: <schema>`;
/// - `additionalProperties: false` is removed (the API server refuses it; pruning already
///   drops unknown fields) and `additionalProperties: true` becomes
///   `x-kubernetes-preserve-unknown-fields: true`;
/// - `const` becomes a one-value `enum`; `description`, `type`, `default`, `nullable` and
///   `additionalProperties` are removed inside junctors (except the int-or-string pattern);
/// - integer formats such as `uint32` become `int64` (`minimum: 0` stays), unknown formats and
///   pure annotations (`title`, `uniqueItems`, ...) are dropped;
/// - enum value docs recorded by [`EnumValueDocs`] are appended to the description.
///
/// Errors ([`SchemaError`]) on `$ref`, untyped or multi-typed nodes, `properties` next to a
/// map schema, and several `patternProperties`.
pub fn make_structural(schema: &mut Value) -> Result<(), SchemaError> {
    let Some(obj) = schema.as_object_mut() else {
        return Err(SchemaError::Untyped {
            path: "(root)".into(),
        });
    };
    repair(obj, "", false)
}

fn child(path: &str, step: &str) -> String {
    if path.is_empty() || step.starts_with('[') || step.starts_with('{') {
        format!("{path}{step}")
    } else {
        format!("{path}.{step}")
    }
}

fn shown(path: &str) -> String {
    if path.is_empty() {
        "(root)".into()
    } else {
        path.into()
    }
}

fn repair(node: &mut Map<String, Value>, path: &str, in_junctor: bool) -> Result<(), SchemaError> {
    for key in DROPPED {
        node.remove(*key);
    }
    if node.contains_key("$ref") {
        return Err(SchemaError::Ref { path: shown(path) });
    }
    if let Some(value) = node.remove("const")
        && !node.contains_key("enum")
    {
        node.insert("enum".into(), Value::Array(vec![value]));
    }
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    if in_junctor {
        for key in NOT_IN_JUNCTORS {
            node.remove(*key);
        }
    }
    if let Some(Value::String(docs)) = node.remove(ENUM_DOCS_KEY) {
        let description = match node.get("description").and_then(Value::as_str) {
            Some(d) => format!("{d}\n\nValues:\n{docs}"),
            None => format!("Values:\n{docs}"),
        };
        node.insert("description".into(), Value::String(description));
    }
    repair_maps(node, path)?;
    repair_format(node);
    if !in_junctor {
        check_type(node, path, int_or_string)?;
    }

    if let Some(Value::Object(props)) = node.get_mut("properties") {
        for (name, sub) in props.iter_mut() {
            if let Some(sub) = sub.as_object_mut() {
                repair(sub, &child(path, name), in_junctor)?;
            }
        }
    }
    if let Some(Value::Object(items)) = node.get_mut("items") {
        repair(items, &child(path, "[]"), in_junctor)?;
    }
    if let Some(Value::Object(values)) = node.get_mut("additionalProperties") {
        repair(values, &child(path, "{}"), in_junctor)?;
    }
    for junctor in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = node.get_mut(junctor) {
            for (i, branch) in branches.iter_mut().enumerate() {
                if let Some(branch) = branch.as_object_mut() {
                    let step = format!("{junctor}[{i}]");
                    if int_or_string {
                        // The int-or-string pattern `anyOf: [{type: integer}, {type: string}]`
                        // is the one place where junctors may carry a type.
                        continue;
                    }
                    repair(branch, &child(path, &step), true)?;
                }
            }
        }
    }
    if let Some(Value::Object(not)) = node.get_mut("not") {
        repair(not, &child(path, "not"), true)?;
    }
    Ok(())
}

fn repair_maps(node: &mut Map<String, Value>, path: &str) -> Result<(), SchemaError> {
    let has_props = node
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    if let Some(Value::Object(patterns)) = node.remove("patternProperties") {
        let count = patterns.len();
        let mut schemas = patterns.into_iter().map(|(_, schema)| schema);
        let (Some(schema), None) = (schemas.next(), schemas.next()) else {
            return Err(SchemaError::PatternProperties {
                path: shown(path),
                count,
            });
        };
        if has_props || matches!(node.get("additionalProperties"), Some(Value::Object(_))) {
            return Err(SchemaError::PropertiesAndMap { path: shown(path) });
        }
        node.insert("additionalProperties".into(), schema);
    }
    match node.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            node.remove("additionalProperties");
        }
        Some(Value::Bool(true)) => {
            node.remove("additionalProperties");
            node.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
        Some(Value::Object(_)) if has_props => {
            return Err(SchemaError::PropertiesAndMap { path: shown(path) });
        }
        _ => {}
    }
    Ok(())
}

fn repair_format(node: &mut Map<String, Value>) {
    let Some(Value::String(format)) = node.get("format") else {
        return;
    };
    let mapped = match format.as_str() {
        "int8" | "int16" | "uint8" | "uint16" => Some("int32"),
        "uint32" | "uint64" | "uint" | "int" => Some("int64"),
        known if KNOWN_FORMATS.contains(&known) => return,
        _ => None,
    };
    match mapped {
        Some(f) => {
            node.insert("format".into(), Value::String(f.into()));
        }
        None => {
            node.remove("format");
        }
    }
}

fn check_type(
    node: &mut Map<String, Value>,
    path: &str,
    int_or_string: bool,
) -> Result<(), SchemaError> {
    match node.get("type") {
        Some(Value::String(_)) => Ok(()),
        Some(_) => Err(SchemaError::MultipleTypes { path: shown(path) }),
        None if int_or_string => Ok(()),
        None if node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) => {
            Ok(())
        }
        None => Err(SchemaError::Untyped { path: shown(path) }),
    }
}

/// Finds the first keyword lost when the schema goes through `JSONSchemaProps` (numbers are
/// compared as numbers, so `0` and `0.0` are equal).
fn first_loss(before: &Value, after: &Value, path: &str) -> Result<(), SchemaError> {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            for (key, bv) in b {
                let step = child(path, key);
                match a.get(key) {
                    None => {
                        return Err(SchemaError::Unsupported {
                            path: shown(path),
                            keyword: key.clone(),
                        });
                    }
                    Some(av) => first_loss(bv, av, &step)?,
                }
            }
            Ok(())
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (bv, av)) in b.iter().zip(a).enumerate() {
                first_loss(bv, av, &child(path, &format!("[{i}]")))?;
            }
            Ok(())
        }
        (Value::Number(b), Value::Number(a)) if b.as_f64() == a.as_f64() => Ok(()),
        (b, a) if b == a => Ok(()),
        _ => Err(SchemaError::Unsupported {
            path: shown(path),
            keyword: "(value changed)".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pattern_properties_become_additional_properties() {
        let mut s = json!({
            "type": "object",
            "properties": {"ports": {
                "type": "object", "additionalProperties": false,
                "patternProperties": {"^\\d+$": {"type": "string"}}
            }}
        });
        make_structural(&mut s).unwrap();
        assert_eq!(
            s["properties"]["ports"],
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
    }

    #[test]
    fn junctors_lose_descriptions_and_types() {
        let mut s = json!({
            "type": "object",
            "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
            "oneOf": [{"required": ["a"], "description": "x", "type": "object", "nullable": true},
                      {"required": ["b"]}]
        });
        make_structural(&mut s).unwrap();
        assert_eq!(
            s["oneOf"],
            json!([{"required": ["a"]}, {"required": ["b"]}])
        );
    }

    #[test]
    fn int_or_string_pattern_is_kept() {
        let mut s = json!({
            "x-kubernetes-int-or-string": true,
            "anyOf": [{"type": "integer"}, {"type": "string"}]
        });
        let before = s.clone();
        make_structural(&mut s).unwrap();
        assert_eq!(s, before);
    }

    #[test]
    fn refuses_untyped_and_refs_with_the_path() {
        let mut s = json!({"type": "object", "properties": {"spec": {"type": "object",
            "properties": {"free": {"description": "anything"}}}}});
        let err = make_structural(&mut s).unwrap_err();
        assert!(
            matches!(&err, SchemaError::Untyped { path } if path == "spec.free"),
            "{err}"
        );
        let mut s = json!({"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}}});
        assert!(matches!(
            make_structural(&mut s),
            Err(SchemaError::Ref { .. })
        ));
    }

    #[test]
    fn unsigned_formats_map_to_int64_and_const_to_enum() {
        let mut s = json!({"type": "object", "properties": {
            "n": {"type": "integer", "format": "uint32", "minimum": 0},
            "k": {"type": "string", "const": "X"}}});
        make_structural(&mut s).unwrap();
        assert_eq!(s["properties"]["n"]["format"], "int64");
        assert_eq!(s["properties"]["k"]["enum"], json!(["X"]));
    }

    #[test]
    fn refuses_maps_it_cannot_express() {
        let mut s = json!({"type": "object", "patternProperties": {
            "^a$": {"type": "string"}, "^b$": {"type": "string"}}});
        assert!(matches!(
            make_structural(&mut s),
            Err(SchemaError::PatternProperties { count: 2, .. })
        ));
        let mut s = json!({"type": "object", "properties": {"a": {"type": "string"}},
            "additionalProperties": {"type": "string"}});
        assert!(matches!(
            make_structural(&mut s),
            Err(SchemaError::PropertiesAndMap { .. })
        ));
    }

    #[test]
    fn additional_properties_true_preserves_unknown_fields() {
        let mut s = json!({"type": "object", "additionalProperties": true});
        make_structural(&mut s).unwrap();
        assert_eq!(
            s,
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
    }
}
