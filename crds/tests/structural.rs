//! Every generated CRD follows Kubernetes' structural-schema rules
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema>)
//! and the API server's CRD validation, and has the names, versions, subresources and printer
//! columns each kind is specified with.
//!
//! These checks walk the generated JSON independently of the repair pass in `crd::schema`, so
//! a hole in that pass shows up here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// Keywords that must not appear anywhere in a CRD schema.
const FORBIDDEN_EVERYWHERE: &[&str] = &[
    "patternProperties",
    "$ref",
    "definitions",
    "$defs",
    "$schema",
];
/// Keywords that must not appear inside `allOf`/`anyOf`/`oneOf`/`not`.
const FORBIDDEN_IN_JUNCTORS: &[&str] = &[
    "type",
    "description",
    "default",
    "nullable",
    "additionalProperties",
];

/// Whether a description holds a rustdoc intra-doc link such as "[`Foo::bar`]", which means
/// nothing to `kubectl explain` (a Markdown link "[`x`](url)" is fine).
fn rustdoc_link(doc: &str) -> bool {
    doc.match_indices("`]").any(|(i, _)| {
        let before = &doc[..i];
        let after = &doc[i + 2..];
        before.rfind("[`").is_some() && !after.starts_with('(')
    })
}

/// Walks one schema node; `junctor` is true inside `allOf`/`anyOf`/`oneOf`/`not`;
/// `is_property` is true when the node is the value of a `properties` entry.
fn walk(
    node: &Map<String, Value>,
    path: &str,
    junctor: bool,
    is_property: bool,
    errs: &mut Vec<String>,
) {
    let int_or_string = node.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    let preserve = node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    for key in FORBIDDEN_EVERYWHERE {
        if node.contains_key(*key) {
            errs.push(format!("{path}: {key} is not allowed"));
        }
    }
    if junctor {
        for key in FORBIDDEN_IN_JUNCTORS {
            if node.contains_key(*key) {
                errs.push(format!("{path}: {key} is not allowed inside a junctor"));
            }
        }
    } else {
        match node.get("type") {
            Some(Value::String(t)) => {
                if !["object", "array", "string", "integer", "number", "boolean"]
                    .contains(&t.as_str())
                {
                    errs.push(format!("{path}: unknown type {t:?}"));
                }
            }
            Some(other) => errs.push(format!("{path}: type must be one string, got {other}")),
            None if int_or_string || preserve => {}
            None => errs.push(format!("{path}: no type")),
        }
        let documented = node
            .get("description")
            .and_then(Value::as_str)
            .is_some_and(|d| !d.trim().is_empty());
        if let Some(doc) = node.get("description").and_then(Value::as_str)
            && rustdoc_link(doc)
        {
            errs.push(format!("{path}: description holds a rustdoc link: {doc:?}"));
        }
        if is_property && !documented {
            errs.push(format!("{path}: property without description"));
        }
    }
    let has_props = node
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|p| !p.is_empty());
    match node.get("additionalProperties") {
        Some(Value::Bool(false)) => {
            errs.push(format!("{path}: additionalProperties: false is refused"))
        }
        Some(_) if has_props => {
            errs.push(format!("{path}: both properties and additionalProperties"))
        }
        _ => {}
    }
    if node.get("uniqueItems") == Some(&Value::Bool(true)) {
        errs.push(format!("{path}: uniqueItems: true is refused"));
    }
    if node.get("type") == Some(&Value::from("array")) && !node.contains_key("items") {
        errs.push(format!("{path}: array without items"));
    }
    if node.get("x-kubernetes-list-type") == Some(&Value::from("map")) {
        let keys: Vec<&str> = node
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let required: Vec<&str> = node["items"]
            .get("required")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if keys.is_empty() || keys.iter().any(|k| !required.contains(k)) {
            errs.push(format!(
                "{path}: list-map keys {keys:?} must be required item fields"
            ));
        }
    }

    if let Some(Value::Object(props)) = node.get("properties") {
        for (name, sub) in props {
            let sub_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            match sub.as_object() {
                Some(sub) => walk(sub, &sub_path, junctor, !junctor, errs),
                None => errs.push(format!("{sub_path}: schema is not an object")),
            }
        }
    }
    if let Some(Value::Object(items)) = node.get("items") {
        walk(items, &format!("{path}[]"), junctor, false, errs);
    }
    if let Some(Value::Object(values)) = node.get("additionalProperties") {
        walk(values, &format!("{path}{{}}"), junctor, false, errs);
    }
    for junctor_key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(branches)) = node.get(junctor_key) {
            if int_or_string {
                // The one allowed typed junctor: `anyOf: [{type: integer}, {type: string}]`.
                continue;
            }
            for (i, branch) in branches.iter().enumerate() {
                if let Some(branch) = branch.as_object() {
                    walk(
                        branch,
                        &format!("{path}.{junctor_key}[{i}]"),
                        true,
                        false,
                        errs,
                    );
                }
            }
        }
    }
    if let Some(Value::Object(not)) = node.get("not") {
        walk(not, &format!("{path}.not"), true, false, errs);
    }
}

#[test]
fn every_schema_is_structural_and_documented() {
    let mut errs = Vec::new();
    for crd in support::crds() {
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        for version in crd["spec"]["versions"].as_array().unwrap() {
            let name = version["name"].as_str().unwrap();
            let Some(schema) = version["schema"]["openAPIV3Schema"].as_object() else {
                errs.push(format!("{kind} {name}: no openAPIV3Schema"));
                continue;
            };
            if schema.get("type") != Some(&Value::from("object")) {
                errs.push(format!("{kind} {name}: root schema is not type: object"));
            }
            for part in ["spec", "status"] {
                if !schema["properties"].get(part).is_some_and(Value::is_object) {
                    errs.push(format!("{kind} {name}: no {part} in the schema"));
                }
            }
            let mut local = Vec::new();
            walk(schema, "", false, false, &mut local);
            errs.extend(local.into_iter().map(|e| format!("{kind} {name}: {e}")));
        }
    }
    assert!(
        errs.is_empty(),
        "schema rule violations:\n{}",
        errs.join("\n")
    );
}

#[test]
fn the_walk_catches_what_the_api_server_refuses() {
    // Proof that the checker above can fail: a schema with one of each violation.
    let bad = serde_json::json!({
        "type": "object",
        "properties": {
            "a": {"description": "untyped"},
            "b": {"type": "object", "patternProperties": {"^x$": {"type": "string"}}, "description": "p"},
            "c": {"type": "string"},
            "d": {"type": "object", "description": "d", "properties": {"e": {"type": "string", "description": "e"}},
                  "oneOf": [{"required": ["e"], "description": "not here"}]}
        }
    });
    let mut errs = Vec::new();
    walk(bad.as_object().unwrap(), "", false, false, &mut errs);
    let text = errs.join("\n");
    assert!(text.contains("a: no type"), "{text}");
    assert!(
        text.contains("b: patternProperties is not allowed"),
        "{text}"
    );
    assert!(text.contains("c: property without description"), "{text}");
    assert!(
        text.contains("d.oneOf[0]: description is not allowed inside a junctor"),
        "{text}"
    );
    assert!(rustdoc_link("Read it through [`JwtRule::jwks_uri`]."));
    assert!(!rustdoc_link(
        "See [`Duration`](https://example.com) and `a` [b]."
    ));
}

#[test]
fn names_versions_subresources_and_columns_are_as_specified() {
    let crds = support::crds();
    assert_eq!(crds.len(), support::KINDS.len(), "one CRD per kind");
    for want in support::KINDS {
        let crd = support::crd_of(want.kind);
        let spec = &crd["spec"];
        let kind = want.kind;
        assert_eq!(spec["group"], want.group, "{kind}: group");
        let plural = spec["names"]["plural"].as_str().unwrap();
        assert_eq!(
            crd["metadata"]["name"],
            format!("{plural}.{}", want.group),
            "{kind}: CRD name"
        );
        let scope = if want.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        };
        assert_eq!(spec["scope"], scope, "{kind}: scope");
        let short: Vec<&str> = spec["names"]["shortNames"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(short, want.short_names, "{kind}: short names");

        let versions = spec["versions"].as_array().unwrap();
        let names: Vec<&str> = versions
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, want.versions, "{kind}: served versions");
        let storage: Vec<&str> = versions
            .iter()
            .filter(|v| v["storage"] == true)
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            storage,
            [want.storage],
            "{kind}: exactly one storage version"
        );
        let first_schema = &versions[0]["schema"];
        for v in versions {
            let name = v["name"].as_str().unwrap();
            assert_eq!(v["served"], true, "{kind} {name}: served");
            assert!(
                v["subresources"]["status"].is_object(),
                "{kind} {name}: status subresource"
            );
            assert_eq!(
                &v["schema"], first_schema,
                "{kind} {name}: every version has the same schema"
            );
            let columns: BTreeSet<&str> = v["additionalPrinterColumns"]
                .as_array()
                .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            let expected: BTreeSet<&str> = want.columns.iter().copied().collect();
            assert_eq!(columns, expected, "{kind} {name}: printer columns");
            for column in v["additionalPrinterColumns"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let path = column["jsonPath"].as_str().unwrap_or_default();
                assert!(
                    path.starts_with('.'),
                    "{kind} {name}: column jsonPath {path:?}"
                );
                if column["name"] == "Ready" {
                    assert_eq!(
                        path,
                        weft_crds::status::READY_COLUMN_JSON_PATH,
                        "{kind}: Ready column"
                    );
                }
                if let Some(field) = path.strip_prefix(".spec.") {
                    let mut node = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
                    for step in field.split('.') {
                        node = &node["properties"][step];
                    }
                    assert!(
                        node.is_object(),
                        "{kind}: column {path} names no spec field"
                    );
                }
            }
        }
    }
}
