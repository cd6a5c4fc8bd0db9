//! Patching the webhook configurations' caBundle (and `url:` for `make run`) against an
//! in-process fake API server (`tower_test::mock`): every request is checked and answered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use base64::Engine as _;
use futures::FutureExt;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use weft_operator::kubernetes::webhook_config::ensure_webhook_configurations;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const MUTATING: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector";
const VALIDATING: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/weft-validator";
const PATCH_QUERY: &str = "?&fieldManager=weft-operator";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Takes the next request, checks method and URI, answers, returns the body as JSON.
async fn expect(handle: &mut Handle, method: Method, uri: &str, reply: (u16, Value)) -> Value {
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().to_string(), uri);
    if method == Method::PATCH {
        assert_eq!(
            request.headers()["content-type"],
            "application/strategic-merge-patch+json",
            "webhooks are merged by name"
        );
    }
    let body = request.into_body().collect_bytes().await.unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    respond.send_response(
        Response::builder()
            .status(reply.0)
            .body(Body::from(serde_json::to_vec(&reply.1).unwrap()))
            .unwrap(),
    );
    body
}

fn no_more_requests(handle: &mut Handle) {
    if let Some(Some((request, _))) = handle.next_request().now_or_never() {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn webhook(name: &str, path: &str, bundle: Option<&[u8]>) -> Value {
    let mut client = json!({"service": {"name": "weft-operator", "namespace": "weft-system",
                                        "path": path, "port": 443}});
    if let Some(bundle) = bundle {
        client["caBundle"] = json!(b64(bundle));
    }
    json!({"name": name, "clientConfig": client, "sideEffects": "None",
           "admissionReviewVersions": ["v1"]})
}

fn configuration(kind: &str, name: &str, webhooks: Vec<Value>) -> Value {
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
           "metadata": {"name": name}, "webhooks": webhooks})
}

#[tokio::test]
async fn stale_bundles_are_patched_current_ones_and_missing_configurations_left_alone() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task =
        tokio::spawn(async move { ensure_webhook_configurations(&client, b"ROOTS", None).await });
    let mutating = configuration(
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector",
        vec![
            webhook(
                "namespace.sidecar-injector.weft.dev",
                "/inject",
                Some(b"OLD"),
            ),
            webhook(
                "object.sidecar-injector.weft.dev",
                "/inject",
                Some(b"ROOTS"),
            ),
        ],
    );
    expect(&mut handle, Method::GET, MUTATING, (200, mutating.clone())).await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        &format!("{MUTATING}{PATCH_QUERY}"),
        (200, mutating),
    )
    .await;
    assert_eq!(
        patch,
        json!({"webhooks": [{"name": "namespace.sidecar-injector.weft.dev",
                             "clientConfig": {"caBundle": b64(b"ROOTS")}}]})
    );
    expect(&mut handle, Method::GET, VALIDATING, not_found()).await;
    assert_eq!(task.await.unwrap().unwrap(), 1, "one configuration patched");
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn current_configurations_are_not_written() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task =
        tokio::spawn(async move { ensure_webhook_configurations(&client, b"ROOTS", None).await });
    let mutating = configuration(
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector",
        vec![webhook("a.weft.dev", "/inject", Some(b"ROOTS"))],
    );
    let validating = configuration(
        "ValidatingWebhookConfiguration",
        "weft-validator",
        vec![webhook("validation.weft.dev", "/validate", Some(b"ROOTS"))],
    );
    expect(&mut handle, Method::GET, MUTATING, (200, mutating)).await;
    expect(&mut handle, Method::GET, VALIDATING, (200, validating)).await;
    assert_eq!(task.await.unwrap().unwrap(), 0);
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn a_webhook_url_points_both_configurations_at_the_local_process() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task = tokio::spawn(async move {
        ensure_webhook_configurations(&client, b"ROOTS", Some("https://dev.example:9443")).await
    });
    let mutating = configuration(
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector",
        vec![webhook("a.weft.dev", "/inject", Some(b"ROOTS"))],
    );
    let validating = configuration(
        "ValidatingWebhookConfiguration",
        "weft-validator",
        vec![webhook("validation.weft.dev", "/validate", None)],
    );
    expect(&mut handle, Method::GET, MUTATING, (200, mutating.clone())).await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        &format!("{MUTATING}{PATCH_QUERY}"),
        (200, mutating),
    )
    .await;
    assert_eq!(
        patch["webhooks"][0]["clientConfig"],
        json!({"url": "https://dev.example:9443/inject", "service": null})
    );
    expect(
        &mut handle,
        Method::GET,
        VALIDATING,
        (200, validating.clone()),
    )
    .await;
    let patch = expect(
        &mut handle,
        Method::PATCH,
        &format!("{VALIDATING}{PATCH_QUERY}"),
        (200, validating),
    )
    .await;
    assert_eq!(
        patch["webhooks"][0]["clientConfig"],
        json!({"caBundle": b64(b"ROOTS"), "url": "https://dev.example:9443/validate",
               "service": null})
    );
    assert_eq!(task.await.unwrap().unwrap(), 2);
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn api_errors_name_the_configuration() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let task =
        tokio::spawn(async move { ensure_webhook_configurations(&client, b"ROOTS", None).await });
    let forbidden = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                           "reason": "Forbidden", "code": 403, "message": "forbidden"});
    expect(&mut handle, Method::GET, MUTATING, (403, forbidden)).await;
    let error = task.await.unwrap().unwrap_err().to_string();
    assert!(
        error.starts_with("get MutatingWebhookConfiguration weft-sidecar-injector"),
        "{error}"
    );
    no_more_requests(&mut handle);
}
