//! The validation admission round trip: `handle_validate_body` allows valid objects (with
//! warnings), denies invalid ones listing every problem with its path, and answers malformed
//! requests with a clear error instead of panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use http::StatusCode;
use serde_json::{Value, json};
use weft_webhook::admission::{MAX_BODY_BYTES, handle_validate_body};

fn virtual_service(spec: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "bookinfo"},
        "spec": spec
    })
}

fn review(operation: &str, object: Option<Value>) -> Value {
    let mut request = json!({
        "uid": "uid-42",
        "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
        "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
        "namespace": "bookinfo",
        "name": "reviews",
        "operation": operation,
        "userInfo": {"username": "alice"}
    });
    if let Some(object) = object {
        request["object"] = object;
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// Calls the handler; returns the status and the response object.
fn call(body: &[u8]) -> (StatusCode, Value) {
    let (status, body) = handle_validate_body(body);
    let reply: Value = serde_json::from_slice(&body).expect("every reply is JSON");
    assert_eq!(reply["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(reply["kind"], "AdmissionReview");
    (status, reply["response"].clone())
}

fn call_review(review: &Value) -> (StatusCode, Value) {
    call(&serde_json::to_vec(review).unwrap())
}

fn message(response: &Value) -> &str {
    response["status"]["message"].as_str().unwrap_or_default()
}

#[test]
fn valid_object_is_allowed_without_warnings() {
    let object = virtual_service(json!({
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]
    }));
    let (status, response) = call_review(&review("CREATE", Some(object)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["uid"], "uid-42");
    assert_eq!(response["allowed"], true, "{response}");
    assert!(
        response.get("warnings").is_none_or(Value::is_null),
        "{response}"
    );
}

#[test]
fn questionable_object_is_allowed_with_warnings() {
    let object = virtual_service(json!({
        "hosts": ["*"],
        "gateways": ["istio-system/ingress"],
        "http": [{"route": [{"destination": {"host": "reviews"}}]}]
    }));
    let (status, response) = call_review(&review("UPDATE", Some(object)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], true, "{response}");
    let warnings = response["warnings"].as_array().expect("warnings listed");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().starts_with("spec.hosts[0]: "),
        "{warnings:?}"
    );
}

#[test]
fn invalid_object_is_denied_with_every_problem() {
    let object = virtual_service(json!({
        "hosts": ["reviews"],
        "http": [{
            "timeout": "0s",
            "route": [
                {"destination": {"host": "reviews", "subset": "v1"}, "weight": 120},
                {"destination": {"host": "reviews", "subset": "v2"}, "weight": 30}
            ]
        }]
    }));
    let (status, response) = call_review(&review("CREATE", Some(object)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    let text = message(&response);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "configuration is invalid:", "{text}");
    let problems = &lines[1..];
    assert_eq!(problems.len(), 3, "{text}");
    for expected in [
        "spec.http[0].route[0].weight: weight 120 must be between 0 and 100",
        "spec.http[0].route: total destination weight 150 != 100",
        "spec.http[0].timeout: duration 0s must be at least 1ms",
    ] {
        assert!(
            problems.iter().any(|l| l.starts_with(expected)),
            "{expected} missing from {text}"
        );
    }
}

#[test]
fn parse_errors_are_denied_with_their_path() {
    let object = virtual_service(json!({"hosts": ["reviews"], "http": [{"weight": 5}]}));
    let (status, response) = call_review(&review("CREATE", Some(object)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("\nspec.http[0].weight: unknown field `weight`"),
        "{response}"
    );
}

#[test]
fn unknown_kinds_and_versions_are_denied() {
    let mut filter = virtual_service(json!({}));
    filter["kind"] = "EnvoyFilter".into();
    let (status, response) = call_review(&review("CREATE", Some(filter)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    assert!(message(&response).contains("EnvoyFilter"), "{response}");
    let mut future = virtual_service(json!({"hosts": ["a"]}));
    future["apiVersion"] = "networking.istio.io/v2".into();
    let (_, response) = call_review(&review("CREATE", Some(future)));
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("networking.istio.io/v1"),
        "the served versions are named: {response}"
    );
}

#[test]
fn delete_is_allowed_without_an_object() {
    let (status, response) = call_review(&review("DELETE", None));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], true);
}

#[test]
fn create_without_an_object_is_denied() {
    let (status, response) = call_review(&review("CREATE", None));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("object is missing"),
        "{response}"
    );
}

#[test]
fn malformed_requests_get_400() {
    let (status, response) = call(b"{not json");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(response["allowed"], false);
    assert!(
        message(&response).contains("not an AdmissionReview"),
        "{response}"
    );

    let mut old = review("CREATE", Some(virtual_service(json!({}))));
    old["apiVersion"] = "admission.k8s.io/v1beta1".into();
    let (status, response) = call_review(&old);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&response).contains("admission.k8s.io/v1beta1"),
        "{response}"
    );

    let (status, response) =
        call_review(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&response).contains("no request"), "{response}");

    let mut broken = review("CREATE", None);
    broken["request"]["operation"] = "EXPLODE".into();
    let (status, response) = call_review(&broken);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        message(&response).contains("malformed AdmissionReview"),
        "{response}"
    );
}

#[test]
fn oversized_body_gets_413() {
    let body = vec![b' '; MAX_BODY_BYTES + 1];
    let (status, response) = call(&body);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(message(&response).contains("limit"), "{response}");
}

#[test]
fn out_of_range_durations_are_denied_not_a_panic() {
    let object = virtual_service(json!({
        "hosts": ["reviews"],
        "http": [{
            "route": [{"destination": {"host": "reviews"}}],
            "retries": {"attempts": 2, "perTryTimeout": "50044444444444444444444444444444444444us"}
        }]
    }));
    let (status, response) = call_review(&review("CREATE", Some(object)));
    assert_eq!(status, StatusCode::OK);
    assert_eq!(response["allowed"], false);
    assert!(message(&response).contains("perTryTimeout"), "{response}");
}
