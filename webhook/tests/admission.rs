//! The raw-body entry point: status codes and messages for bad input, and the happy path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::BTreeMap;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http::StatusCode;
use serde_json::{Value, json};
use weft_webhook::InjectionConfig;
use weft_webhook::admission::{MAX_BODY_BYTES, handle_inject_body};

fn enabled(_: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        "istio-injection".to_string(),
        "enabled".to_string(),
    )]))
}

fn review(operation: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "abc-123",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "demo",
            "operation": operation,
            "userInfo": {"username": "alice"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "web", "annotations": annotations},
                "spec": {"containers": [{"name": "web", "image": "nginx"}]}
            }
        }
    })
}

/// Calls the handler and returns the status, the response object and its message.
fn call(body: &[u8]) -> (StatusCode, Value) {
    let (status, body) = handle_inject_body(body, &enabled, &InjectionConfig::default());
    let reply: Value = serde_json::from_slice(&body).expect("every reply is JSON");
    assert_eq!(reply["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply["kind"], "AdmissionReview");
    (status, reply["response"].clone())
}

#[test]
fn create_is_answered_with_a_json_patch_and_the_request_uid() {
    let (status, response) = call(&serde_json::to_vec(&review("CREATE", json!({}))).unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["uid"], "abc-123");
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");
    // The patch is a Go []byte on the wire: base64 text.
    let text = response["patch"].as_str().expect("patch is base64 text");
    let bytes = BASE64_STANDARD.decode(text).unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut pod = review("CREATE", json!({}))["request"]["object"].clone();
    json_patch::patch(&mut pod, &patch).unwrap();
    let names: Vec<&str> = pod["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "istio-proxy"]);
    assert_eq!(pod["metadata"]["namespace"], "demo");
}

#[test]
fn non_create_operations_are_allowed_without_patch() {
    let (status, response) = call(&serde_json::to_vec(&review("UPDATE", json!({}))).unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
}

#[test]
fn injection_errors_deny_with_a_message_naming_the_annotation() {
    let bad = json!({"traffic.sidecar.istio.io/excludeOutboundPorts": "mysql"});
    let (status, response) = call(&serde_json::to_vec(&review("CREATE", bad)).unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("traffic.sidecar.istio.io/excludeOutboundPorts"),
        "{message}"
    );
}

#[test]
fn malformed_bodies_get_400_with_a_reason() {
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("not json", b"{not json".to_vec(), "not an AdmissionReview"),
        ("empty", Vec::new(), "not an AdmissionReview"),
        (
            "v1beta1",
            serde_json::to_vec(&{
                let mut r = review("CREATE", json!({}));
                r["apiVersion"] = "admission.k8s.io/v1beta1".into();
                r
            })
            .unwrap(),
            "only kind AdmissionReview with apiVersion admission.k8s.io/v1",
        ),
        (
            "no request",
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(),
            "has no request",
        ),
        (
            "object not a pod",
            serde_json::to_vec(&{
                let mut r = review("CREATE", json!({}));
                r["request"]["object"]["spec"] = json!({"containers": "nope"});
                r
            })
            .unwrap(),
            "malformed AdmissionReview",
        ),
    ];
    for (name, body, expected) in cases {
        let (status, response) = call(&body);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(response["allowed"], false, "{name}");
        let message = response["status"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn bodies_over_the_limit_get_413() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, response) = call(&body);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let message = response["status"]["message"].as_str().unwrap();
    assert!(message.contains(&MAX_BODY_BYTES.to_string()), "{message}");
}

#[test]
fn a_pod_sent_without_metadata_gets_a_patch_that_applies_to_it() {
    // Found by the handle_inject_body fuzz target (a mangled `metadata` key): k8s-openapi reads
    // the pod with empty metadata, but the object the patch applies to has no `/metadata`.
    let mut body = review("CREATE", json!({}));
    let object = body["request"]["object"].as_object_mut().unwrap();
    object.remove("metadata");
    let sent = Value::Object(object.clone());
    let (status, response) = call(&serde_json::to_vec(&body).unwrap());
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], true, "{response}");
    let bytes = BASE64_STANDARD
        .decode(response["patch"].as_str().unwrap())
        .unwrap();
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut pod = sent;
    json_patch::patch(&mut pod, &patch).unwrap();
    assert_eq!(pod["metadata"]["namespace"], "demo");
    assert_eq!(pod["spec"]["containers"][1]["name"], "istio-proxy");
}
