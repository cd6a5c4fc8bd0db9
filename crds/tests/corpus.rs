//! The YAML corpus under `testdata/`:
//! - every valid document (`valid/**`, `seeds/`) parses and serializes back to the same JSON;
//! - every invalid document (`invalid/**`, first line `# expect-error-path: <path>`) fails
//!   with an error naming exactly that path;
//! - every field of every kind is used somewhere in the valid corpus, and every kind has at
//!   least one valid document.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use weft_crds::MeshObject;

/// Spec fields that the corpus need not use, as `(kind, path)`. Keep this short and say why.
const ALLOWED_UNUSED: &[(&str, &str)] = &[];

/// Parses every document of every valid file; returns `(file, input, object)` triples.
fn valid_corpus() -> Vec<(PathBuf, Value, MeshObject)> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for path in support::valid_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let docs = match weft_crds::parse_documents(&text) {
            Ok(docs) => docs,
            Err(e) => {
                errs.push(format!("{}: {e}", support::shown(&path)));
                continue;
            }
        };
        let inputs = support::documents(&path);
        assert_eq!(
            docs.len(),
            inputs.len(),
            "{}: document count",
            support::shown(&path)
        );
        for (doc, input) in docs.into_iter().zip(inputs) {
            match doc.result {
                Ok(obj) => out.push((path.clone(), input, obj)),
                Err(e) => errs.push(format!(
                    "{} document {}: {e}",
                    support::shown(&path),
                    doc.index
                )),
            }
        }
    }
    assert!(
        errs.is_empty(),
        "valid documents that do not parse:\n{}",
        errs.join("\n")
    );
    out
}

/// JSON equality, with numbers compared by value: `10` and `10.0` are the same JSON number
/// (a float field written as an integer comes back as `10.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x == y || x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn valid_documents_parse_and_round_trip_without_loss() {
    let corpus = valid_corpus();
    assert!(!corpus.is_empty(), "the valid corpus is empty");
    let mut errs = Vec::new();
    for (path, input, obj) in corpus {
        let mut output = serde_json::to_value(&obj).unwrap();
        // One schema is served at every version and the typed object always writes the
        // storage version: compare everything else.
        output["apiVersion"] = input["apiVersion"].clone();
        if let MeshObject::Mesh(mesh) = &obj {
            let problems = mesh.spec.validate();
            if !problems.is_empty() {
                errs.push(format!(
                    "{}: Mesh does not validate: {problems:?}",
                    support::shown(&path)
                ));
            }
        }
        if !json_eq(&output, &input) {
            errs.push(format!(
                "{} ({} {}):\n  in:  {input}\n  out: {output}",
                support::shown(&path),
                obj.kind(),
                obj.meta().name.as_deref().unwrap_or("?")
            ));
        }
    }
    assert!(
        errs.is_empty(),
        "documents that change on a round trip:\n{}",
        errs.join("\n")
    );
}

#[test]
fn invalid_documents_fail_at_the_expected_path() {
    let files = support::yaml_files(&support::crate_dir().join("testdata/invalid"));
    assert!(!files.is_empty(), "no invalid corpus");
    let mut errs = Vec::new();
    for path in files {
        let shown = support::shown(&path);
        let text = std::fs::read_to_string(&path).unwrap();
        let Some(expected) = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect-error-path: "))
            .map(str::trim)
        else {
            errs.push(format!(
                "{shown}: first line must be `# expect-error-path: <path>`"
            ));
            continue;
        };
        match weft_crds::parse_documents(&text) {
            Err(e) => errs.push(format!(
                "{shown}: not YAML at all ({e}); expected an error at {expected}"
            )),
            Ok(docs) => {
                let [doc] = docs.as_slice() else {
                    errs.push(format!("{shown}: must hold exactly one document"));
                    continue;
                };
                match &doc.result {
                    Ok(_) => errs.push(format!("{shown}: parsed, expected an error at {expected}")),
                    Err(e) if e.path() == Some(expected) => {}
                    Err(e) => errs.push(format!(
                        "{shown}: error at {:?} ({e}), expected at {expected}",
                        e.path()
                    )),
                }
            }
        }
    }
    assert!(
        errs.is_empty(),
        "invalid corpus mismatches:\n{}",
        errs.join("\n")
    );
}

/// Collects the leaf property paths of a schema node: `.` between properties, `[]` for array
/// items, `{}` for map values.
fn schema_leaves(node: &Value, path: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = node
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
    {
        for (name, sub) in props {
            schema_leaves(sub, &format!("{path}.{name}"), out);
        }
    } else if let Some(items) = node.get("items") {
        schema_leaves(items, &format!("{path}[]"), out);
    } else if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
        schema_leaves(values, &format!("{path}{{}}"), out);
    } else {
        out.insert(path.to_string());
    }
}

/// Collects the leaf paths a document uses, walking it alongside its schema so that map keys
/// become `{}`.
fn used_leaves(value: &Value, schema: &Value, path: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema
        .get("properties")
        .and_then(Value::as_object)
        .filter(|p| !p.is_empty())
    {
        if let Some(obj) = value.as_object() {
            for (key, sub) in obj {
                if let Some(sub_schema) = props.get(key) {
                    used_leaves(sub, sub_schema, &format!("{path}.{key}"), out);
                }
            }
        }
    } else if let Some(items) = schema.get("items") {
        for item in value.as_array().into_iter().flatten() {
            used_leaves(item, items, &format!("{path}[]"), out);
        }
    } else if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        for sub in value.as_object().into_iter().flat_map(|o| o.values()) {
            used_leaves(sub, values, &format!("{path}{{}}"), out);
        }
    } else if !value.is_null() {
        out.insert(path.to_string());
    }
}

#[test]
fn every_field_of_every_kind_with_a_corpus_is_used() {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let crds = support::crds();
    for (_, input, obj) in valid_corpus() {
        let crd = crds
            .iter()
            .find(|c| c["spec"]["names"]["kind"] == obj.kind())
            .unwrap();
        let spec_schema = &support::storage_schema(crd)["properties"]["spec"];
        used_leaves(
            &input["spec"],
            spec_schema,
            "spec",
            used.entry(obj.kind().to_string()).or_default(),
        );
    }
    let mut report = Vec::new();
    for (kind, used) in &used {
        let crd = support::crd_of(kind);
        let mut all = BTreeSet::new();
        schema_leaves(
            &support::storage_schema(&crd)["properties"]["spec"],
            "spec",
            &mut all,
        );
        let unused: Vec<&String> = all
            .iter()
            .filter(|p| !used.contains(*p))
            .filter(|p| !ALLOWED_UNUSED.contains(&(kind.as_str(), p.as_str())))
            .collect();
        if !unused.is_empty() {
            report.push(format!(
                "{kind}: {} of {} fields unused:\n  {}",
                unused.len(),
                all.len(),
                unused
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            ));
        }
    }
    assert!(
        report.is_empty(),
        "fields never used in the valid corpus:\n{}",
        report.join("\n")
    );
}

#[test]
fn every_kind_has_a_valid_document() {
    let kinds: BTreeSet<&str> = valid_corpus().iter().map(|(_, _, o)| o.kind()).collect();
    let missing: Vec<&str> = support::KINDS
        .iter()
        .map(|k| k.kind)
        .filter(|k| !kinds.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "kinds without a valid document: {missing:?}"
    );
}

#[test]
fn the_coverage_walk_sees_maps_and_lists() {
    // The coverage check can fail: a schema with a list, a map and a scalar, used partly.
    let schema = serde_json::json!({"type": "object", "properties": {
        "list": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "map": {"type": "object", "additionalProperties": {"type": "string"}},
        "scalar": {"type": "string"}
    }});
    let mut all = BTreeSet::new();
    schema_leaves(&schema, "spec", &mut all);
    assert_eq!(
        all.iter().map(String::as_str).collect::<Vec<_>>(),
        ["spec.list[].a", "spec.map{}", "spec.scalar"]
    );
    let mut used = BTreeSet::new();
    used_leaves(
        &serde_json::json!({"list": [{"a": "x"}], "map": {"k": "v"}}),
        &schema,
        "spec",
        &mut used,
    );
    assert_eq!(
        used.iter().map(String::as_str).collect::<Vec<_>>(),
        ["spec.list[].a", "spec.map{}"]
    );
}
