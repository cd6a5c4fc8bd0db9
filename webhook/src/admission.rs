//! The admission round trips (`kube::core::admission`): for sidecar injection,
//! `AdmissionReview` in, `AdmissionReview` with an RFC 6902 JSON patch out
//! ([`handle_inject_body`]); for mesh config validation, `AdmissionReview` in, allowed with
//! warnings or denied with every problem out ([`handle_validate_body`]).
//!
//! # Failure policy
//!
//! Injection errors (an invalid annotation, a name conflict) **deny** the pod with a message
//! naming the problem. This is Istio's behaviour: its injector answers `allowed: false` with
//! the error, and its `MutatingWebhookConfiguration` uses `failurePolicy: Fail`. Failing open
//! would start a pod without its proxy, silently outside the mesh's mTLS and authorization
//! policies; failing closed makes the user fix the annotation or opt out with
//! `sidecar.istio.io/inject: "false"`. The operator should register the webhook with
//! `failurePolicy: Fail` to match, and the namespace/object selectors described in
//! [`crate::inject::should_inject`].
//!
//! Pods that are not to be injected (including already-injected ones), non-`CREATE`
//! operations and non-Pod objects are allowed unchanged.
//!
//! # The patch
//!
//! Built from the fields injection writes (`admission/patch.rs`): per-key `add`s for labels
//! and annotations, an `add` at its index (an RFC 6902 insertion) for every injected container
//! and volume, per-field `add`s for a container whose probes were rewritten. Nothing else of
//! the pod is serialized or diffed, and because insertions shift the elements after them whole,
//! fields unknown to the k8s-openapi (Kubernetes 1.33) API version survive everywhere. Should
//! the injector ever change another field, the patch falls back to `json_patch::diff` of the
//! two whole pods (Istio diffs its original and injected pods the same way).

use std::collections::BTreeMap;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use http::StatusCode;
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use kube::core::{DynamicObject, TypeMeta};

use crate::config::InjectionConfig;
use crate::inject::{inject_owned, should_inject};
use crate::validation::{Validation, validate, validate_value};

mod patch;
mod review_body;

/// Largest request body [`handle_inject_body`] reads: 3 MiB (3 × 1024 × 1024 bytes), the
/// Kubernetes API server's own limit on a request body, so no genuine AdmissionReview is larger.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Looks up a namespace's labels by name; `None` when the namespace is unknown (treated as
/// unlabelled). The operator implements it over its Namespace reflector store; any
/// `Fn(&str) -> Option<BTreeMap<String, String>>` works too.
pub trait NamespaceLabels {
    /// Returns the labels of `namespace`, or `None` if it is not known.
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>>;
}

impl<F> NamespaceLabels for F
where
    F: Fn(&str) -> Option<BTreeMap<String, String>>,
{
    fn namespace_labels(&self, namespace: &str) -> Option<BTreeMap<String, String>> {
        self(namespace)
    }
}

/// Answers one injection `AdmissionReview`.
///
/// Takes the review (its request must be present), the labels of the request's namespace and
/// the mesh settings. Returns the response to wrap with
/// [`AdmissionResponse::into_review`]: allowed with a JSON patch when the pod is injected;
/// allowed without a patch when [`should_inject`] says no, the operation is not `CREATE` or
/// the object is not a `v1` Pod; denied, with the error's message, when injection fails (see
/// the module docs for why) or the review has no request or no object.
pub fn mutate(
    review: AdmissionReview<Pod>,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectionConfig,
) -> AdmissionResponse {
    let mut request: AdmissionRequest<Pod> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return AdmissionResponse::invalid("AdmissionReview has no request"),
    };
    let response = AdmissionResponse::from(&request);
    let is_pod =
        request.kind.group.is_empty() && request.kind.version == "v1" && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create {
        return response;
    }
    let Some(mut pod) = request.object.take() else {
        return response.deny("AdmissionReview request.object is missing for a Pod CREATE");
    };
    // Pods created by controllers may reach admission without a namespace; Istio fills it
    // from the request the same way, so the patch then adds /metadata/namespace.
    let filled_namespace = pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default()
        .is_empty()
        && request.namespace.is_some();
    let sent_namespace = pod.metadata.namespace.clone();
    if filled_namespace {
        pod.metadata.namespace = request.namespace.take();
    }
    if !should_inject(&pod, namespace_labels, config).inject {
        return response;
    }
    // The pod as the API server sent it: the patch applies to that object.
    let mut before = pod.clone();
    before.metadata.namespace = sent_namespace;
    let injected = match inject_owned(pod, config) {
        Ok(injected) => injected,
        Err(error) => return response.deny(format!("weft sidecar injection failed: {error}")),
    };
    let patch = match patch::pod_patch(before, injected) {
        Ok(patch) => patch,
        Err(error) => return response.deny(format!("weft sidecar injection: {error}")),
    };
    // `with_patch` takes the patch as a `json_patch::Patch` to serialize; the patch is already
    // JSON text, so an empty one sets the patch type and the text replaces its `[]`.
    match response.clone().with_patch(json_patch::Patch(Vec::new())) {
        Ok(mut patched) => {
            patched.patch = Some(patch);
            patched
        }
        Err(error) => response.deny(format!("weft sidecar injection: {error}")),
    }
}

/// A 400 reply for an envelope that is not an `admission.k8s.io/v1` AdmissionReview.
fn check_envelope(types: &TypeMeta) -> Option<(StatusCode, Vec<u8>)> {
    if types.kind == META_KIND && types.api_version == META_API_VERSION_V1 {
        return None;
    }
    Some(error_reply(
        StatusCode::BAD_REQUEST,
        format!(
            "unsupported {}/{}: only kind {META_KIND} with apiVersion {META_API_VERSION_V1} is \
             accepted",
            types.api_version, types.kind
        ),
    ))
}

/// The 400 reply for a body that did not parse as an `AdmissionReview<Pod>`: a wrong envelope
/// is reported as such (not as a field error deep inside), anything else with the parser's
/// message.
fn parse_error_reply(body: &[u8], error: &serde_json::Error) -> (StatusCode, Vec<u8>) {
    match serde_json::from_slice::<TypeMeta>(body) {
        Ok(types) => check_envelope(&types).unwrap_or_else(|| {
            error_reply(
                StatusCode::BAD_REQUEST,
                format!("malformed AdmissionReview for a v1 Pod: {error}"),
            )
        }),
        Err(_) => error_reply(
            StatusCode::BAD_REQUEST,
            format!("body is not an AdmissionReview (apiVersion and kind): {error}"),
        ),
    }
}

/// Serializes `response` as an AdmissionReview, with the patch as base64 text.
///
/// `AdmissionResponse.patch` is a Go `[]byte`, documented on the wire as a base64 string;
/// kube-core serializes its `Vec<u8>` as an array of numbers (kube-rs issue #1781), which Go's
/// decoder happens to accept. Weft sends the documented form.
fn encode_review(mut response: AdmissionResponse) -> Result<Vec<u8>, serde_json::Error> {
    // Take the bytes out first: serializing them through a `Value` would build one JSON
    // number per byte.
    let patch = response.patch.take();
    let mut review = serde_json::to_value(response.into_review())?;
    if let (Some(patch), Some(fields)) = (
        patch,
        review.get_mut("response").and_then(|r| r.as_object_mut()),
    ) {
        let encoded = serde_json::Value::String(BASE64_STANDARD.encode(patch));
        fields.insert("patch".to_string(), encoded);
    }
    serde_json::to_vec(&review)
}

/// Serializes an `invalid` AdmissionReview carrying `message`, for error replies.
fn error_reply(status: StatusCode, message: String) -> (StatusCode, Vec<u8>) {
    let review = AdmissionResponse::invalid(&message).into_review();
    match serde_json::to_vec(&review) {
        Ok(body) => (status, body),
        Err(_) => (status, message.into_bytes()),
    }
}

/// Handles the raw body of a `POST /inject` request; the fuzzing entry point.
///
/// Takes the body bytes, a namespace-label lookup and the mesh settings. Returns the HTTP
/// status and the JSON body to send; never panics. Replies:
/// - `200 OK` with an `admission.k8s.io/v1` AdmissionReview from [`mutate`], its patch
///   base64-encoded as the Kubernetes API documents;
/// - `413 Payload Too Large` when the body exceeds [`MAX_BODY_BYTES`];
/// - `400 Bad Request` when the body is not JSON, not an `AdmissionReview`, not
///   `admission.k8s.io/v1` (the only version the operator registers), has no `request`, or its
///   object is not a valid Pod;
/// - `500 Internal Server Error` if the reply cannot be encoded.
///
/// Error bodies are AdmissionReviews whose response is denied with a message saying what was
/// wrong.
pub fn handle_inject_body(
    body: &[u8],
    namespaces: &impl NamespaceLabels,
    config: &InjectionConfig,
) -> (StatusCode, Vec<u8>) {
    if body.len() > MAX_BODY_BYTES {
        return error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is {} bytes; the limit is {MAX_BODY_BYTES} bytes",
                body.len()
            ),
        );
    }
    let review: AdmissionReview<Pod> = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(error) => return parse_error_reply(body, &error),
    };
    if let Some(reply) = check_envelope(&review.types) {
        return reply;
    }
    let Some(request) = review.request.as_ref() else {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "AdmissionReview has no request".into(),
        );
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| {
            request
                .object
                .as_ref()
                .and_then(|p| p.metadata.namespace.clone())
        })
        .unwrap_or_default();
    let labels = namespaces.namespace_labels(&namespace).unwrap_or_default();
    let response = mutate(review, &labels, config);
    match encode_review(response) {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the AdmissionReview response: {error}"),
        ),
    }
}

/// Answers one validation `AdmissionReview` for a mesh object (Istio's Galley webhook).
///
/// Takes the parsed review. Returns the response: allowed, with every warning of
/// [`crate::validate()`] as an admission warning (`path: rule`), when the object has no errors;
/// denied with `configuration is invalid:` followed by every problem, one per line as
/// `path: rule`, when parsing (`MeshObject::from_value`: wrong types, unknown fields, unknown
/// kinds or versions) or validation finds any (see
/// [`crate::validation::validate_value`]). `DELETE` (and `CONNECT`) requests are allowed
/// unchecked; a `CREATE`/`UPDATE` without an object is denied.
pub fn validate_review(mut review: AdmissionReview<DynamicObject>) -> AdmissionResponse {
    let object = review
        .request
        .as_mut()
        .and_then(|r| r.object.take())
        .map(serde_json::to_value);
    match object {
        Some(Err(error)) => {
            AdmissionResponse::invalid(format!("configuration is invalid:\n{error}"))
        }
        Some(Ok(object)) => validate_request(review, Some(object)),
        None => validate_request(review, None),
    }
}

/// [`validate_review`] with the object already taken out of the review as JSON.
fn validate_request(
    review: AdmissionReview<DynamicObject>,
    object: Option<serde_json::Value>,
) -> AdmissionResponse {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(_) => return AdmissionResponse::invalid("AdmissionReview has no request"),
    };
    let response = AdmissionResponse::from(&request);
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return response;
    }
    let Some(value) = object else {
        return response.deny("AdmissionReview request.object is missing for a CREATE or UPDATE");
    };
    respond(response, validate_value(value))
}

/// The answer to a `CREATE` or `UPDATE` whose object has the `outcome`: denied listing every
/// error, or allowed with every warning.
fn respond(response: AdmissionResponse, outcome: Validation) -> AdmissionResponse {
    if !outcome.errors.is_empty() {
        let lines: Vec<String> = outcome.errors.iter().map(ToString::to_string).collect();
        return response.deny(format!("configuration is invalid:\n{}", lines.join("\n")));
    }
    let mut response = response;
    if !outcome.warnings.is_empty() {
        response.warnings = Some(outcome.warnings.iter().map(ToString::to_string).collect());
    }
    response
}

/// Handles the raw body of a `POST /validate` request; the fuzzing entry point.
///
/// Takes the body bytes. Returns the HTTP status and the JSON body to send; never panics.
/// Replies:
/// - `200 OK` with an `admission.k8s.io/v1` AdmissionReview from [`validate_review`]
///   (allowed with warnings, or denied listing every problem with its field path);
/// - `413 Payload Too Large` when the body exceeds [`MAX_BODY_BYTES`];
/// - `400 Bad Request` when the body is not JSON, not an `AdmissionReview`, not
///   `admission.k8s.io/v1`, or has no `request`;
/// - `500 Internal Server Error` if the reply cannot be encoded.
pub fn handle_validate_body(body: &[u8]) -> (StatusCode, Vec<u8>) {
    if body.len() <= MAX_BODY_BYTES
        && let Some(reply) = validate_fast(body)
    {
        return reply;
    }
    handle_validate_body_reference(body)
}

/// The common case of [`handle_validate_body`], read without a `serde_json::Value` of the
/// object: a well-formed `CREATE` or `UPDATE` review whose object parses as the mesh object
/// its request names.
/// Returns the reply [`handle_validate_body_reference`] gives for `body`, or `None` for any
/// other request (which then takes that path).
fn validate_fast(body: &[u8]) -> Option<(StatusCode, Vec<u8>)> {
    let review_body::Split { review, object } = review_body::split(body)?;
    if check_envelope(&review.types).is_some() {
        return None;
    }
    let request: AdmissionRequest<DynamicObject> = review.try_into().ok()?;
    if !matches!(request.operation, Operation::Create | Operation::Update) {
        return None;
    }
    let outcome = validate(&object?);
    let response = respond(AdmissionResponse::from(&request), outcome);
    encode_review(response)
        .ok()
        .map(|body| (StatusCode::OK, body))
}

/// [`handle_validate_body`] on its reference path, which reads every body (well-formed or
/// not) through a `serde_json::Value`; [`handle_validate_body`] gives the same reply for
/// every body, faster for the common case. Public for the differential tests and the fuzz
/// target, which check that the two agree.
///
/// Takes the body bytes; returns the HTTP status and the JSON body, as
/// [`handle_validate_body`] documents.
pub fn handle_validate_body_reference(body: &[u8]) -> (StatusCode, Vec<u8>) {
    if body.len() > MAX_BODY_BYTES {
        return error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body is {} bytes; the limit is {MAX_BODY_BYTES} bytes",
                body.len()
            ),
        );
    }
    // The object is taken out as plain JSON and read once, by `validate_value`: reading it
    // into a `DynamicObject` and back would cost more than validating it.
    let mut document: serde_json::Value = match serde_json::from_slice(body) {
        Ok(document) => document,
        Err(error) => {
            return error_reply(
                StatusCode::BAD_REQUEST,
                format!("body is not an AdmissionReview (apiVersion and kind): {error}"),
            );
        }
    };
    let object = document
        .pointer_mut("/request/object")
        .map(serde_json::Value::take)
        .filter(|o| !o.is_null());
    if let Some(old) = document.pointer_mut("/request/oldObject") {
        old.take();
    }
    let review: AdmissionReview<DynamicObject> = match serde_json::from_value(document) {
        Ok(review) => review,
        Err(error) => {
            return match serde_json::from_slice::<TypeMeta>(body) {
                Ok(types) => check_envelope(&types).unwrap_or_else(|| {
                    error_reply(
                        StatusCode::BAD_REQUEST,
                        format!("malformed AdmissionReview: {error}"),
                    )
                }),
                Err(_) => error_reply(
                    StatusCode::BAD_REQUEST,
                    format!("body is not an AdmissionReview (apiVersion and kind): {error}"),
                ),
            };
        }
    };
    if let Some(reply) = check_envelope(&review.types) {
        return reply;
    }
    if review.request.is_none() {
        return error_reply(
            StatusCode::BAD_REQUEST,
            "AdmissionReview has no request".into(),
        );
    }
    match encode_review(validate_request(review, object)) {
        Ok(body) => (StatusCode::OK, body),
        Err(error) => error_reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the AdmissionReview response: {error}"),
        ),
    }
}
