//! Property tests: `handle_validate_body` never panics and always answers with an
//! AdmissionReview, on random bytes, on byte-mutated reviews and on structurally mutated
//! mesh objects (any field replaced by any JSON value).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::path::Path;

use http::StatusCode;
use proptest::prelude::*;
use serde_json::{Value, json};
use weft_webhook::admission::handle_validate_body;

/// Every object of the validation testdata, valid and invalid, as JSON (read once).
fn corpus() -> &'static [Value] {
    static CORPUS: std::sync::OnceLock<Vec<Value>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(read_corpus)
}

fn read_corpus() -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/validation");
    let mut out = Vec::new();
    for kind in std::fs::read_dir(root).unwrap() {
        for file in std::fs::read_dir(kind.unwrap().path()).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            out.push(serde_yaml::from_str(&text).unwrap());
        }
    }
    out.sort_by_key(|v: &Value| v.to_string());
    out
}

fn review(object: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "u",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "operation": "CREATE",
            "userInfo": {},
            "object": object
        }
    })
}

/// Asserts the reply is a well-formed AdmissionReview with an expected status.
fn check_reply(body: &[u8]) {
    let (status, reply) = handle_validate_body(body);
    assert!(
        [StatusCode::OK, StatusCode::BAD_REQUEST].contains(&status),
        "unexpected status {status}"
    );
    let reply: Value = serde_json::from_slice(&reply).expect("reply is JSON");
    assert_eq!(reply["kind"], "AdmissionReview");
    let allowed = &reply["response"]["allowed"];
    assert!(allowed.is_boolean(), "{reply}");
    if status != StatusCode::OK {
        assert_eq!(allowed, false);
    }
}

/// JSON pointers of every node of `value`.
fn pointers(value: &Value, at: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(v, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                pointers(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(65536)),
        Just(json!("*")),
        Just(json!("")),
        Just(json!("0s")),
        Just(json!("(")),
        Just(json!("unix://")),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-zA-Z]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_reply(&body);
    }

    #[test]
    fn byte_mutated_reviews_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let objects = corpus();
        let mut body = serde_json::to_vec(&review(pick.get(objects).clone())).unwrap();
        for (at, byte, op) in edits {
            let i = at.index(body.len().max(1));
            match op {
                0 if i < body.len() => body[i] = byte,
                1 => body.insert(i.min(body.len()), byte),
                _ if i < body.len() => { body.remove(i); }
                _ => {}
            }
        }
        check_reply(&body);
    }

    #[test]
    fn field_mutated_objects_never_panic(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any_json()), 1..4),
    ) {
        let objects = corpus();
        let mut object = pick.get(objects).clone();
        for (at, replacement) in edits {
            let mut all = Vec::new();
            pointers(&object, String::new(), &mut all);
            let pointer = at.get(&all).clone();
            if let Some(slot) = object.pointer_mut(&pointer) {
                *slot = replacement;
            }
        }
        check_reply(&serde_json::to_vec(&review(object)).unwrap());
    }
}
