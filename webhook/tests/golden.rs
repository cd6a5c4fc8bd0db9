//! Golden-file tests for the whole injection path.
//!
//! Every `testdata/inject/<case>.yaml` (an AdmissionReview, or a bare Pod that the harness wraps
//! in a `CREATE` review) is run through [`weft_webhook::admission::mutate`]; the JSON patch is
//! applied to the original object and the result compared with `<case>.golden.yaml`. A case may
//! start with a harness-only document of `kind: TestCase` setting the mesh config toggles, the
//! namespace labels and the expected outcome (`injected`, `unchanged` or `denied`; default
//! `injected`). For a denied case the golden holds the denial message.
//!
//! `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-webhook --test golden` rewrites the goldens.
//! A golden without its input is an error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::{AdmissionReview, Operation};
use serde::Deserialize;
use serde_json::{Value, json};
use weft_webhook::InjectionConfig;
use weft_webhook::admission::mutate;

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestCase {
    #[allow(dead_code)]
    kind: String,
    #[serde(default)]
    native_sidecars: bool,
    #[serde(default)]
    cni_enabled: bool,
    #[serde(default)]
    hold_application_until_proxy_starts: bool,
    namespace_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Deserialize, Default, PartialEq, Clone, Copy)]
#[serde(rename_all = "camelCase")]
enum Expect {
    #[default]
    Injected,
    Unchanged,
    Denied,
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/inject")
}

/// Splits a case file into its optional `TestCase` document and the review (a bare Pod is
/// wrapped in a `CREATE` AdmissionReview for namespace `demo`).
fn load_case(path: &Path) -> (TestCase, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect();
    let case = if docs[0]["kind"] == "TestCase" {
        serde_json::from_value(docs.remove(0)).unwrap()
    } else {
        TestCase::default()
    };
    assert_eq!(
        docs.len(),
        1,
        "{}: expected one Pod or AdmissionReview document",
        path.display()
    );
    let doc = docs.remove(0);
    let review = if doc["kind"] == "Pod" {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "00000000-0000-0000-0000-000000000000",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "demo",
                "operation": "CREATE",
                "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
                "object": doc,
            }
        })
    } else {
        doc
    };
    (case, review)
}

fn config_for(case: &TestCase) -> InjectionConfig {
    InjectionConfig {
        native_sidecars: case.native_sidecars,
        cni_enabled: case.cni_enabled,
        hold_application_until_proxy_starts: case.hold_application_until_proxy_starts,
        ..InjectionConfig::default()
    }
}

/// Runs one case; returns the golden text it produces.
fn run_case(path: &Path) -> String {
    let (case, review_json) = load_case(path);
    let review: AdmissionReview<Pod> = serde_json::from_value(review_json.clone()).unwrap();
    let request = review.request.as_ref().unwrap();
    assert_eq!(request.operation, Operation::Create);
    let config = config_for(&case);
    let labels = case
        .namespace_labels
        .clone()
        .unwrap_or_else(|| BTreeMap::from([("istio-injection".into(), "enabled".into())]));
    let namespace = request.namespace.clone();
    let original: Value = serde_json::to_value(request.object.as_ref().unwrap()).unwrap();
    let response = mutate(review, &labels, &config);
    let name = path.display();
    match case.expect {
        Expect::Denied => {
            assert!(!response.allowed, "{name}: expected a denial");
            assert!(
                response.patch.is_none(),
                "{name}: a denial carries no patch"
            );
            return format!(
                "denied: {}\n",
                serde_json::to_string(&response.result.message).unwrap()
            );
        }
        Expect::Unchanged => {
            assert!(response.allowed, "{name}: {}", response.result.message);
            assert!(response.patch.is_none(), "{name}: expected no patch");
            return serde_yaml::to_string(&original).unwrap();
        }
        Expect::Injected => {
            assert!(response.allowed, "{name}: {}", response.result.message);
        }
    }
    let patch: json_patch::Patch = serde_json::from_slice(
        response
            .patch
            .as_deref()
            .expect("injected case has a patch"),
    )
    .unwrap();
    let mut patched = original.clone();
    json_patch::patch(&mut patched, &patch).unwrap();

    // The patch applied to the original must give exactly what `inject` returns.
    let mut pod: Pod = serde_json::from_value(original).unwrap();
    if pod.metadata.namespace.is_none() {
        pod.metadata.namespace = namespace;
    }
    let injected = weft_webhook::inject(&pod, &config).unwrap();
    pretty_assertions::assert_eq!(patched, serde_json::to_value(&injected).unwrap(), "{name}");
    serde_yaml::to_string(&patched).unwrap()
}

#[test]
fn golden_files() {
    let update = std::env::var("WEFT_UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    let mut inputs = Vec::new();
    let mut goldens = Vec::new();
    for entry in std::fs::read_dir(testdata()).unwrap() {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(case) = file.strip_suffix(".golden.yaml") {
            goldens.push(case.to_string());
        } else if let Some(case) = file.strip_suffix(".yaml") {
            inputs.push(case.to_string());
        }
    }
    inputs.sort();
    let orphans: Vec<_> = goldens.iter().filter(|g| !inputs.contains(g)).collect();
    assert!(
        orphans.is_empty(),
        "golden files without an input: {orphans:?}"
    );
    assert!(
        inputs.len() >= 10,
        "expected the golden cases, found {inputs:?}"
    );

    let mut failures = Vec::new();
    for case in &inputs {
        let actual = run_case(&testdata().join(format!("{case}.yaml")));
        let golden_path = testdata().join(format!("{case}.golden.yaml"));
        if update {
            std::fs::write(&golden_path, &actual).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden_path) {
            Ok(expected) if expected == actual => {}
            Ok(expected) => {
                eprintln!("--- {case}: output differs from its golden");
                pretty_assertions::assert_eq!(expected, actual, "{case}");
            }
            Err(_) => failures.push(format!(
                "{case}: no golden; run with WEFT_UPDATE_GOLDEN=1 to create it"
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
