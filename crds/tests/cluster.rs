//! Against a real API server: every CRD applies and becomes Established, and every valid corpus
//! document is accepted (dry run) with its spec unchanged, so the schemas neither reject nor
//! prune anything Istio users write, while the schema's own rules (CEL) still refuse what
//! Istio's CRDs refuse.
//!
//! Needs `KUBECONFIG`. Without it the test prints `SKIPPED: no cluster (KUBECONFIG unset)` and
//! returns. With `WEFT_E2E_CLUSTER=1` (set by `make e2e-cluster`) an unreachable cluster is a
//! failure instead of a skip. The CRDs stay installed afterwards; the throwaway namespace is
//! deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::io::Write;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::Value;

const FIELD_MANAGER: &str = "weft-crds-test";

/// Prints a skip notice straight to the process's stderr: libtest captures `println!` and
/// `eprintln!` of passing tests, and a skip must be seen.
fn skipped(reason: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: no cluster ({reason})");
}

async fn client_or_skip() -> Option<kube::Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        skipped("KUBECONFIG unset");
        return None;
    }
    let required = std::env::var("WEFT_E2E_CLUSTER").is_ok_and(|v| v == "1");
    let answer = async {
        let client = kube::Client::try_default().await?;
        client.apiserver_version().await?;
        Ok::<_, kube::Error>(client)
    };
    match tokio::time::timeout(Duration::from_secs(15), answer).await {
        Ok(Ok(client)) => Some(client),
        Ok(Err(e)) if !required => {
            skipped(&format!(
                "KUBECONFIG set but the API server did not answer: {e}"
            ));
            None
        }
        Err(_) if !required => {
            skipped("KUBECONFIG set but the API server did not answer in 15s");
            None
        }
        Ok(Err(e)) => panic!("WEFT_E2E_CLUSTER=1 but the cluster did not answer: {e}"),
        Err(_) => panic!("WEFT_E2E_CLUSTER=1 but the cluster did not answer in 15s"),
    }
}

#[tokio::test]
async fn crds_establish_and_the_corpus_is_accepted_unchanged() {
    let Some(client) = client_or_skip().await else {
        return;
    };
    let crds = weft_crds::crd::all().unwrap();
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let apply = PatchParams::apply(FIELD_MANAGER).force();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        crd_api
            .patch(&name, &apply, &Patch::Apply(crd))
            .await
            .unwrap_or_else(|e| panic!("applying CRD {name}: {e}"));
    }
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap();
        let established = await_condition(crd_api.clone(), &name, conditions::is_crd_established());
        tokio::time::timeout(Duration::from_secs(60), established)
            .await
            .unwrap_or_else(|_| panic!("CRD {name} not Established within 60s"))
            .unwrap_or_else(|e| panic!("watching CRD {name}: {e}"));
    }

    let ns_name = format!("weft-crds-test-{}", std::process::id());
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns_name}
    }))
    .unwrap();
    ns_api.create(&PostParams::default(), &ns).await.unwrap();

    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_string()),
    };
    let mut errs = Vec::new();
    let mut created = 0;
    for path in support::valid_files() {
        for doc in support::documents(&path) {
            let shown = format!(
                "{} {}/{}",
                support::shown(&path),
                doc["kind"].as_str().unwrap_or("?"),
                doc["metadata"]["name"].as_str().unwrap_or("?")
            );
            let (api_version, kind) = (
                doc["apiVersion"].as_str().unwrap_or(""),
                doc["kind"].as_str().unwrap_or(""),
            );
            let Some(crd) = crds.iter().find(|c| c.spec.names.kind == kind) else {
                errs.push(format!("{shown}: no CRD for kind {kind}"));
                continue;
            };
            let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let resource = ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural);
            let namespaced = crd.spec.scope == "Namespaced";
            let api: Api<DynamicObject> = if namespaced {
                Api::namespaced_with(client.clone(), &ns_name, &resource)
            } else {
                Api::all_with(client.clone(), &resource)
            };
            let mut obj: DynamicObject = serde_json::from_value(doc.clone()).unwrap();
            if namespaced {
                obj.metadata.namespace = Some(ns_name.clone());
            } else {
                // Cluster-scoped objects (the Mesh) must not collide with a real one.
                let name = obj.metadata.name.take().unwrap_or_default();
                obj.metadata.name = Some(format!("{ns_name}-{name}"));
            }
            match api.create(&dry_run, &obj).await {
                Ok(back) => {
                    created += 1;
                    let back_spec = back.data.get("spec").cloned().unwrap_or(Value::Null);
                    if back_spec != doc["spec"] {
                        errs.push(format!(
                            "{shown}: the API server changed the spec (pruned or defaulted)\n  sent: {}\n  got:  {back_spec}",
                            doc["spec"]
                        ));
                    }
                }
                Err(e) => errs.push(format!("{shown}: refused: {e}")),
            }
        }
    }
    // Rules only the schema enforces: the API server must refuse these.
    let refused = [(
        "AuthorizationPolicy bound by selector and targetRefs",
        serde_json::json!({
            "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
            "metadata": {"name": "both-bindings"},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "targetRefs": [{"kind": "Service", "group": "", "name": "a"}]}
        }),
    )];
    for (what, doc) in refused {
        let gvk = GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "authorizationpolicies");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns_name, &resource);
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        if api.create(&dry_run, &obj).await.is_ok() {
            errs.push(format!(
                "{what}: accepted, expected the schema to refuse it"
            ));
        }
    }
    ns_api
        .delete(&ns_name, &DeleteParams::default())
        .await
        .unwrap();
    assert!(created > 0 || !errs.is_empty(), "the valid corpus is empty");
    assert!(
        errs.is_empty(),
        "corpus documents the cluster did not accept unchanged:\n{}",
        errs.join("\n")
    );
    println!("{created} corpus documents accepted by the API server (dry run)");
}
