//! Fuzzes `handle_inject_body` (`POST /inject`) with arbitrary request bodies, under two mesh
//! configurations (Istio's defaults; native sidecars with CNI and hold-application).
//!
//! Besides "never panics", it checks what the API server relies on: every reply is an
//! `admission.k8s.io/v1` AdmissionReview, and a returned JSON patch applies (RFC 6902, with
//! the json-patch crate) to the request's object exactly as sent, unknown fields included, and
//! yields the pod that `inject` returns.
#![no_main]

use std::collections::BTreeMap;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::api::core::v1::Pod;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use weft_webhook::InjectionConfig;
use weft_webhook::admission::handle_inject_body;

fn enabled(_: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        "istio-injection".to_string(),
        "enabled".to_string(),
    )]))
}

fn check(body: &[u8], config: &InjectionConfig) {
    let (status, reply) = handle_inject_body(body, &enabled, config);
    let reply: Value = serde_json::from_slice(&reply).expect("every reply is JSON");
    assert_eq!(reply["kind"], "AdmissionReview", "{reply}");
    assert!(
        status == 200 || status == 400,
        "unexpected status {status}: {reply}"
    );
    let Some(patch) = reply["response"]["patch"].as_str() else {
        return;
    };
    assert_eq!(status, 200);
    let patch = BASE64_STANDARD.decode(patch).expect("patch is base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch).expect("patch is a JSON Patch");

    // serde skips fields it does not know without checking them, so a body can be answered
    // although it is not valid JSON as a whole (say, bytes that are not UTF-8 inside an
    // unknown field); the API server never sends one, and there is no object to patch.
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut object = request["request"]["object"].clone();
    if let Err(error) = json_patch::patch(&mut object, &patch) {
        panic!("the patch does not apply to the object as sent: {error}\npatch: {patch:?}");
    }
    let patched: Pod = serde_json::from_value(object).expect("the patched object is a Pod");

    let mut pod: Pod =
        serde_json::from_value(request["request"]["object"].clone()).expect("the object is a Pod");
    if pod.metadata.namespace.as_deref().unwrap_or_default().is_empty()
        && let Some(namespace) = request["request"]["namespace"].as_str()
    {
        pod.metadata.namespace = Some(namespace.to_string());
    }
    let injected = weft_webhook::inject(&pod, config).expect("an injected pod injects");
    assert_eq!(patched, injected, "patch result differs from inject's pod");
}

fuzz_target!(|body: &[u8]| {
    check(body, &InjectionConfig::default());
    let other = InjectionConfig {
        native_sidecars: true,
        cni_enabled: true,
        hold_application_until_proxy_starts: true,
        ..InjectionConfig::default()
    };
    check(body, &other);
});
