//! `handle_validate_body` reads well-formed reviews without building a `serde_json::Value` of
//! the object; it must give byte for byte the reply of `handle_validate_body_reference` (the
//! `Value` path) for every body: every test document of every kind, under every operation,
//! and the bodies the fast path gives up on (repeated keys, escapes, deep nesting, missing or
//! null objects, wrong envelopes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};
use weft_webhook::admission::{handle_validate_body, handle_validate_body_reference};

/// Every document of every YAML file under `dir` (recursively), as JSON.
fn documents(dir: &Path) -> Vec<(PathBuf, Value)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                for document in serde_yaml::Deserializer::from_str(&text) {
                    if let Ok(value) = Value::deserialize(document) {
                        out.push((path.clone(), value));
                    }
                }
            }
        }
    }
    out
}

/// A review of `object` under `operation`; the request names the object's own kind (as the
/// API server does), or VirtualService when the object has none.
fn review(operation: &str, object: Value) -> Value {
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("VirtualService")
        .to_string();
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "uid-7",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": kind},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "namespace": "bookinfo",
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": {"kind": "Anything", "spec": {"x": [1, 2, {"y": null}]}},
            "dryRun": false
        }
    })
}

/// Asserts that both paths give the same status and bytes for `body`.
fn assert_same_reply(name: &str, body: &[u8]) {
    let (status, reply) = handle_validate_body(body);
    let (reference_status, reference_reply) = handle_validate_body_reference(body);
    assert_eq!(status, reference_status, "{name}");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&reference_reply),
        "{name}"
    );
}

#[test]
fn every_test_document_gets_the_reference_reply() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut documents = documents(&root.join("testdata/validation"));
    documents.extend(documents_of(&root.join("../crds/testdata")));
    assert!(documents.len() > 100, "found {}", documents.len());
    let (mut allowed, mut denied) = (0, 0);
    for (path, object) in &documents {
        for operation in ["CREATE", "UPDATE", "DELETE"] {
            let body = serde_json::to_vec(&review(operation, object.clone())).unwrap();
            let name = format!("{} {operation}", path.display());
            assert_same_reply(&name, &body);
            let reply: Value = serde_json::from_slice(&handle_validate_body(&body).1).unwrap();
            match reply["response"]["allowed"].as_bool() {
                Some(true) => allowed += 1,
                _ => denied += 1,
            }
        }
    }
    // Both answers are exercised.
    assert!(
        allowed > 100 && denied > 50,
        "{allowed} allowed, {denied} denied"
    );
}

/// The documents of `dir` when it exists (the crds crate's Istio examples).
fn documents_of(dir: &Path) -> Vec<(PathBuf, Value)> {
    if dir.is_dir() {
        documents(dir)
    } else {
        Vec::new()
    }
}

#[test]
fn bodies_the_fast_path_gives_up_on_get_the_reference_reply() {
    let valid = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}
    });
    let valid_text = serde_json::to_string(&valid).unwrap();
    let body = serde_json::to_string(&review("CREATE", valid.clone())).unwrap();
    let with_object = |object: &str| body.replace(&valid_text, object);
    let deep = |levels: usize| format!("{}{}", "[".repeat(levels), "]".repeat(levels));
    let cases: Vec<(&str, String)> = vec![
        ("valid", body.clone()),
        (
            "repeated spec, the last one invalid",
            with_object(&valid_text.replacen(
                "\"spec\":",
                "\"spec\":{\"hosts\":[\"*\"]},\"spec\":",
                1,
            ))
            .replacen("{\"hosts\":[\"reviews\"]", "{\"hosts\":[\"a b\"]", 1),
        ),
        (
            "repeated kind",
            with_object(&valid_text.replacen("{", "{\"kind\":\"Gateway\",", 1)),
        ),
        (
            "repeated request",
            body.replacen("{", "{\"request\":{\"uid\":\"first\"},", 1),
        ),
        (
            "escaped apiVersion",
            with_object(&valid_text.replace("networking.istio.io/v1", "networking.istio.io\\/v1")),
        ),
        (
            "escaped key",
            with_object(&valid_text.replace("\"spec\"", "\"sp\\u0065c\"")),
        ),
        (
            "kind is not a string",
            with_object(&valid_text.replace("\"VirtualService\"", "null")),
        ),
        (
            "another kind than the request names",
            with_object(&valid_text.replace("\"VirtualService\"", "\"Gateway\"")),
        ),
        (
            "the request's kind after the object",
            body.replacen(
                r#""kind":{"group":"networking.istio.io","kind":"VirtualService","version":"v1"},"#,
                "",
                1,
            )
            .replacen(
                r#""username":"alice"}"#,
                r#""username":"alice"},"kind":{"group":"g","kind":"VirtualService","version":"v1"}"#,
                1,
            ),
        ),
        (
            "the request names no kind",
            body.replacen(
                r#""kind":{"group":"networking.istio.io","kind":"VirtualService","version":"v1"},"#,
                "",
                1,
            ),
        ),
        (
            "deep in an unknown top-level field, past the limit",
            with_object(&valid_text.replacen("{", &format!("{{\"junk\":{},", deep(126)), 1)),
        ),
        (
            "lone surrogate in an unknown top-level field",
            with_object(&valid_text.replacen("{", r#"{"junk":"\udbff","#, 1)),
        ),
        (
            "lone surrogate in a skipped metadata field",
            with_object(&valid_text.replacen("\"metadata\":{", r#""metadata":{"x":"\ud800","#, 1)),
        ),
        (
            "surrogate pair in a skipped metadata field",
            with_object(&valid_text.replacen(
                "\"metadata\":{",
                r#""metadata":{"x":"\ud83d\ude00","#,
                1,
            )),
        ),
        (
            "lone surrogate in oldObject",
            body.replace("\"Anything\"", r#""\udfff""#),
        ),
        ("null object", with_object("null")),
        ("object is a string", with_object("\"text\"")),
        (
            "no object",
            body.replace(&format!(",\"object\":{valid_text}"), ""),
        ),
        (
            "unknown field",
            with_object(&valid_text.replacen("{", "{\"extra\":1,", 1)),
        ),
        (
            "deep in metadata, near the limit",
            with_object(&valid_text.replacen(
                "\"metadata\":{",
                &format!("\"metadata\":{{\"junk\":{},", deep(120)),
                1,
            )),
        ),
        (
            "deep in metadata, past the limit",
            with_object(&valid_text.replacen(
                "\"metadata\":{",
                &format!("\"metadata\":{{\"junk\":{},", deep(130)),
                1,
            )),
        ),
        (
            "deep oldObject",
            body.replace("[1,2,", &format!("[1,{},", deep(126))),
        ),
        (
            "wrong envelope",
            body.replace("admission.k8s.io/v1", "admission.k8s.io/v1beta1"),
        ),
        (
            "no request",
            "{\"apiVersion\":\"admission.k8s.io/v1\",\"kind\":\"AdmissionReview\"}".into(),
        ),
        (
            "request is an array",
            body.replacen("\"request\":{", "\"request\":[{", 1),
        ),
        ("connect", body.replace("CREATE", "CONNECT")),
        ("trailing garbage", format!("{body} x")),
        ("not json", "{".into()),
    ];
    for (name, case) in &cases[1..] {
        assert_ne!(case, &body, "{name}: the case changes the valid body");
    }
    for (name, body) in &cases {
        assert_same_reply(name, body.as_bytes());
    }
}
