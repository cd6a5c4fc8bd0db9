//! The OLM bundle: generated from config/, checked against OLM's rules, and checked in as
//! generated. Every rule of `weft_install::check` is shown to fail on a bundle broken for it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::BTreeMap;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use support::{csv, generated, with_csv};
use weft_install::check::{Violation, check};

const HINT: &str = "run `make bundle` (cargo run -p weft-install --bin weft-bundle) and commit";

#[test]
fn the_generated_bundle_follows_olm_rules() {
    assert_eq!(check(&generated()), Vec::<Violation>::new());
}

#[test]
fn checked_in_files_are_what_the_generator_writes() {
    let drift = weft_install::generate::drift(&support::root(), &generated()).unwrap();
    assert!(drift.is_empty(), "{}\n{HINT}", drift.join("\n"));
}

#[test]
fn the_generator_writes_into_an_empty_tree_and_removes_stale_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let files = generated();
    let stale = dir
        .path()
        .join("bundle/manifests/old.example.com_things.yaml");
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, "stale").unwrap();
    let changed = weft_install::generate::write(dir.path(), &files).unwrap();
    assert!(changed.contains(&"removed bundle/manifests/old.example.com_things.yaml".to_string()));
    assert!(!stale.exists());
    assert!(
        weft_install::generate::drift(dir.path(), &files)
            .unwrap()
            .is_empty()
    );
    let again = weft_install::generate::write(dir.path(), &files).unwrap();
    assert!(again.is_empty(), "a second run changes nothing: {again:?}");
}

fn violations_after(edit: impl FnOnce(&mut Value)) -> Vec<Violation> {
    check(&with_csv(generated(), edit))
}

fn remove(value: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    value
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key)
        .unwrap();
}

#[test]
fn every_required_csv_field_is_enforced() {
    for field in [
        "/spec/minKubeVersion",
        "/spec/icon",
        "/spec/maintainers",
        "/spec/installModes",
        "/spec/install/spec/deployments",
        "/metadata/annotations/alm-examples",
    ] {
        let found = violations_after(|csv| remove(csv, field));
        assert!(
            found.contains(&Violation::MissingField(&field[1..])),
            "{field}: {found:?}"
        );
    }
    let found = violations_after(|csv| csv["spec"]["keywords"] = json!([]));
    assert!(
        found.contains(&Violation::MissingField("spec/keywords")),
        "{found:?}"
    );
}

#[test]
fn the_csv_name_is_package_dot_v_version() {
    let found = violations_after(|csv| csv["spec"]["version"] = json!("9.9.9"));
    assert_eq!(
        found,
        vec![Violation::Name {
            found: format!("weft-operator.v{}", weft_install::VERSION),
            expected: "weft-operator.v9.9.9".into(),
        }]
    );
}

fn owned(csv: &mut Value) -> &mut Vec<Value> {
    csv.pointer_mut("/spec/customresourcedefinitions/owned")
        .unwrap()
        .as_array_mut()
        .unwrap()
}

#[test]
fn owned_crds_match_the_crd_files_version_by_version() {
    // An owned entry for a version the CRD does not serve, and the served one left unowned.
    let found = violations_after(|csv| {
        let entry = owned(csv)
            .iter_mut()
            .find(|e| e["version"] == "v1alpha3")
            .unwrap();
        entry["version"] = json!("v2");
    });
    let name = found.iter().find_map(|v| match v {
        Violation::OwnedWithoutCrd { name, version } if version == "v2" => Some(name.clone()),
        _ => None,
    });
    let name = name.unwrap_or_else(|| panic!("{found:?}"));
    assert!(
        found.contains(&Violation::CrdNotOwned {
            name,
            version: "v1alpha3".into()
        }),
        "{found:?}"
    );

    // A served kind dropped from owned.
    let found = violations_after(|csv| {
        owned(csv).retain(|e| e["name"] != "gateways.networking.istio.io");
    });
    let name = || "gateways.networking.istio.io".to_string();
    assert_eq!(
        found,
        vec![
            Violation::CrdNotOwned {
                name: name(),
                version: "v1".into()
            },
            Violation::CrdNotOwned {
                name: name(),
                version: "v1alpha3".into()
            },
            Violation::CrdNotOwned {
                name: name(),
                version: "v1beta1".into()
            },
        ]
    );

    // A kind that is not the CRD's.
    let found = violations_after(|csv| {
        let entry = owned(csv)
            .iter_mut()
            .find(|e| e["name"] == "meshes.mesh.weft.dev")
            .unwrap();
        entry["kind"] = json!("MeshConfig");
    });
    assert_eq!(
        found,
        vec![Violation::OwnedKind {
            name: "meshes.mesh.weft.dev".into(),
            owned: "MeshConfig".into(),
            crd: "Mesh".into(),
        }]
    );
}

#[test]
fn a_missing_crd_file_leaves_its_owned_entries_without_a_crd() {
    let mut files = generated();
    files
        .remove("bundle/manifests/security.istio.io_peerauthentications.yaml")
        .unwrap();
    let found = check(&files);
    let name = || "peerauthentications.security.istio.io".to_string();
    assert_eq!(
        found,
        vec![
            Violation::OwnedWithoutCrd {
                name: name(),
                version: "v1beta1".into()
            },
            Violation::OwnedWithoutCrd {
                name: name(),
                version: "v1".into()
            },
            // The sample PeerAuthentication is no longer an owned kind either.
            Violation::AlmExampleNotOwned {
                api_version: "security.istio.io/v1".into(),
                kind: "PeerAuthentication".into()
            },
        ]
    );
}

fn webhook<'a>(csv: &'a mut Value, name: &str) -> &'a mut Value {
    csv["spec"]["webhookdefinitions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|w| w["generateName"] == name)
        .unwrap()
}

#[test]
fn webhook_deployment_names_exist_and_their_ports_are_exposed() {
    let found = violations_after(|csv| {
        webhook(csv, "validation.weft.dev")["deploymentName"] = json!("istiod")
    });
    assert_eq!(
        found,
        vec![Violation::WebhookDeployment {
            webhook: "validation.weft.dev".into(),
            deployment: "istiod".into()
        }]
    );
    let found = violations_after(|csv| {
        let hook = webhook(csv, "sidecar-injector.weft.dev");
        hook["containerPort"] = json!(8443);
        hook["targetPort"] = json!(8443);
    });
    assert_eq!(
        found,
        vec![Violation::WebhookPort {
            webhook: "sidecar-injector.weft.dev".into(),
            deployment: "weft-operator".into(),
            port: 8443,
        }]
    );
    // The port removed from the Deployment instead.
    let found = violations_after(|csv| {
        let ports = csv
            .pointer_mut("/spec/install/spec/deployments/0/spec/template/spec/containers/0/ports")
            .unwrap()
            .as_array_mut()
            .unwrap();
        ports.retain(|p| p["containerPort"] != 9443);
    });
    assert_eq!(found.len(), 2, "both webhooks lose their port: {found:?}");
    assert!(
        found
            .iter()
            .all(|v| matches!(v, Violation::WebhookPort { port: 9443, .. }))
    );
}

#[test]
fn webhook_definitions_need_olm_fields() {
    let found = violations_after(|csv| remove(webhook(csv, "validation.weft.dev"), "/sideEffects"));
    assert_eq!(
        found,
        vec![Violation::WebhookField {
            webhook: "validation.weft.dev".into(),
            field: "sideEffects"
        }]
    );
}

#[test]
fn csv_rbac_is_the_permissions_table() {
    let found = violations_after(|csv| {
        csv.pointer_mut("/spec/install/spec/clusterPermissions/0/rules")
            .unwrap()
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert_eq!(found, vec![Violation::Permissions("clusterPermissions")]);
    let found = violations_after(|csv| {
        csv.pointer_mut("/spec/install/spec/permissions/0/rules/0/verbs")
            .unwrap()
            .as_array_mut()
            .unwrap()
            .push(json!("delete"));
    });
    assert_eq!(found, vec![Violation::Permissions("permissions")]);
    let found = violations_after(|csv| {
        csv["spec"]["install"]["spec"]["permissions"][0]["serviceAccountName"] = json!("default");
    });
    assert_eq!(found, vec![Violation::Permissions("permissions")]);
}

#[test]
fn alm_examples_parse_and_are_owned_kinds() {
    let found =
        violations_after(|csv| csv["metadata"]["annotations"]["alm-examples"] = json!("[{"));
    assert!(
        matches!(found.as_slice(), [Violation::AlmExamples(_)]),
        "{found:?}"
    );
    let found = violations_after(|csv| {
        let text = csv["metadata"]["annotations"]["alm-examples"]
            .as_str()
            .unwrap();
        let mut examples: Vec<Value> = serde_json::from_str(text).unwrap();
        examples.push(json!({"apiVersion": "telemetry.istio.io/v1", "kind": "Telemetry", "metadata": {"name": "t"}}));
        // A served kind at a version that is not served.
        examples.push(json!({"apiVersion": "security.istio.io/v1alpha3", "kind": "PeerAuthentication", "metadata": {"name": "p"}}));
        csv["metadata"]["annotations"]["alm-examples"] =
            json!(serde_json::to_string(&examples).unwrap());
    });
    assert_eq!(
        found,
        vec![
            Violation::AlmExampleNotOwned {
                api_version: "telemetry.istio.io/v1".into(),
                kind: "Telemetry".into()
            },
            Violation::AlmExampleNotOwned {
                api_version: "security.istio.io/v1alpha3".into(),
                kind: "PeerAuthentication".into()
            },
        ]
    );
}

fn replace_in(files: &mut BTreeMap<String, String>, path: &str, from: &str, to: &str) {
    let text = files.get_mut(path).unwrap();
    assert!(text.contains(from), "{path} has no {from:?}");
    *text = text.replace(from, to);
}

#[test]
fn annotations_and_dockerfile_labels_agree() {
    let mut files = generated();
    replace_in(
        &mut files,
        "bundle.Dockerfile",
        "channels.v1=alpha",
        "channels.v1=stable",
    );
    assert_eq!(
        check(&files),
        vec![Violation::Label {
            key: "operators.operatorframework.io.bundle.channels.v1".into(),
            annotation: Some("alpha".into()),
            label: Some("stable".into()),
        }]
    );
    let mut files = generated();
    replace_in(
        &mut files,
        "bundle.Dockerfile",
        "LABEL operators.operatorframework.io.bundle.package.v1=weft-operator\n",
        "",
    );
    assert_eq!(
        check(&files),
        vec![Violation::Label {
            key: "operators.operatorframework.io.bundle.package.v1".into(),
            annotation: Some("weft-operator".into()),
            label: None,
        }]
    );
}

#[test]
fn bundle_annotations_follow_the_registry_v1_format() {
    let mut files = generated();
    replace_in(
        &mut files,
        "bundle/metadata/annotations.yaml",
        "registry+v1",
        "helm",
    );
    replace_in(&mut files, "bundle.Dockerfile", "registry+v1", "helm");
    assert_eq!(
        check(&files),
        vec![Violation::Annotation {
            key: "operators.operatorframework.io.bundle.mediatype.v1",
            expected: "registry+v1".into()
        }]
    );
    let mut files = generated();
    replace_in(
        &mut files,
        "bundle/metadata/annotations.yaml",
        "channel.default.v1: alpha",
        "channel.default.v1: beta",
    );
    replace_in(
        &mut files,
        "bundle.Dockerfile",
        "channel.default.v1=alpha",
        "channel.default.v1=beta",
    );
    assert_eq!(
        check(&files),
        vec![Violation::Annotation {
            key: "operators.operatorframework.io.bundle.channel.default.v1",
            expected: "one of the channels".into()
        }]
    );
    let mut files = generated();
    files.remove("bundle/metadata/annotations.yaml");
    assert_eq!(
        check(&files),
        vec![Violation::File {
            file: "bundle/metadata/annotations.yaml".into(),
            reason: "missing".into()
        }]
    );
}

#[test]
fn the_csv_installs_the_operator_as_the_contract_says() {
    let csv = csv(&generated());
    let spec = &csv["spec"];
    let modes: Vec<(&str, bool)> = spec["installModes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["type"].as_str().unwrap(),
                m["supported"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        modes,
        vec![
            ("OwnNamespace", false),
            ("SingleNamespace", false),
            ("MultiNamespace", false),
            ("AllNamespaces", true)
        ]
    );
    assert_eq!(spec["maturity"], "alpha");
    assert_eq!(spec["install"]["strategy"], "deployment");
    let deployment = &spec["install"]["spec"]["deployments"][0];
    assert_eq!(deployment["name"], "weft-operator");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        vec![
            "--namespace=$(POD_NAMESPACE)",
            "--leader-elect",
            "--log-format=json",
            "--proxy-image=ghcr.io/weft-mesh/weft-proxy:latest",
            "--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs",
            "--manage-webhook-ca-bundle=false",
        ]
    );
    assert_eq!(
        container["image"],
        format!("ghcr.io/weft-mesh/weft-operator:v{}", weft_install::VERSION)
    );
    assert_eq!(
        csv["metadata"]["annotations"]["containerImage"],
        container["image"]
    );
    // The icon is the SVG of config/manifests, base64.
    use base64::Engine;
    let icon = base64::prelude::BASE64_STANDARD
        .decode(spec["icon"][0]["base64data"].as_str().unwrap())
        .unwrap();
    assert!(String::from_utf8(icon).unwrap().starts_with("<svg"));
    // Mesh and the main Istio kinds carry spec and status descriptors.
    for kind in [
        "Mesh",
        "VirtualService",
        "DestinationRule",
        "PeerAuthentication",
        "AuthorizationPolicy",
    ] {
        let entries: Vec<&Value> = spec["customresourcedefinitions"]["owned"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == kind)
            .collect();
        assert!(!entries.is_empty(), "{kind}");
        for e in entries {
            assert!(
                !e["specDescriptors"].as_array().unwrap().is_empty(),
                "{kind}"
            );
            assert!(
                !e["statusDescriptors"].as_array().unwrap().is_empty(),
                "{kind}"
            );
            assert!(!e["description"].as_str().unwrap().is_empty(), "{kind}");
        }
    }
}

#[test]
fn under_olm_the_injector_is_one_entry_that_fails_open() {
    let csv = csv(&generated());
    let hooks = csv["spec"]["webhookdefinitions"].as_array().unwrap();
    let types: Vec<(&str, &str, &str)> = hooks
        .iter()
        .map(|h| {
            (
                h["type"].as_str().unwrap(),
                h["generateName"].as_str().unwrap(),
                h["failurePolicy"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        types,
        vec![
            (
                "MutatingAdmissionWebhook",
                "sidecar-injector.weft.dev",
                "Ignore"
            ),
            ("ValidatingAdmissionWebhook", "validation.weft.dev", "Fail"),
        ]
    );
    assert!(
        hooks.iter().all(|h| h.get("namespaceSelector").is_none()),
        "OLM owns namespaceSelector"
    );
}

#[test]
fn a_missing_or_unreadable_csv_or_dockerfile_is_reported() {
    let csv_path = support::csv_path();
    let mut files = generated();
    files.remove(&csv_path);
    assert_eq!(
        check(&files),
        vec![Violation::File {
            file: csv_path.clone(),
            reason: "missing".into()
        }]
    );
    let mut files = generated();
    files.insert(csv_path.clone(), "spec: [".into());
    assert!(
        matches!(check(&files).as_slice(), [Violation::File { file, .. }] if *file == csv_path)
    );
    let mut files = generated();
    files.remove("bundle.Dockerfile");
    assert_eq!(
        check(&files),
        vec![Violation::File {
            file: "bundle.Dockerfile".into(),
            reason: "missing".into()
        }]
    );
}

#[test]
fn webhook_definitions_have_unique_names_and_olm_types() {
    let found = violations_after(|csv| {
        webhook(csv, "validation.weft.dev")["type"] = json!("ValidatingWebhook")
    });
    assert_eq!(
        found,
        vec![Violation::WebhookDefinition {
            webhook: "validation.weft.dev".into(),
            reason: "type must be ValidatingAdmissionWebhook, MutatingAdmissionWebhook or ConversionWebhook",
        }]
    );
    let found = violations_after(|csv| {
        webhook(csv, "validation.weft.dev")["generateName"] = json!("sidecar-injector.weft.dev")
    });
    assert_eq!(
        found,
        vec![Violation::WebhookDefinition {
            webhook: "sidecar-injector.weft.dev".into(),
            reason: "generateName is used by another webhookdefinition",
        }]
    );
}

#[test]
fn deployments_run_as_a_permitted_service_account_and_select_their_pods() {
    let pod = "/spec/install/spec/deployments/0/spec/template";
    let found = violations_after(|csv| {
        csv.pointer_mut(&format!("{pod}/spec")).unwrap()["serviceAccountName"] = json!("istiod")
    });
    assert_eq!(
        found,
        vec![Violation::DeploymentServiceAccount {
            deployment: "weft-operator".into(),
            service_account: "istiod".into()
        }]
    );
    let found = violations_after(|csv| remove(csv, &format!("{pod}/spec/serviceAccountName")));
    assert_eq!(
        found,
        vec![Violation::DeploymentServiceAccount {
            deployment: "weft-operator".into(),
            service_account: "default".into()
        }]
    );
    let found = violations_after(|csv| {
        csv.pointer_mut(&format!("{pod}/metadata/labels")).unwrap()["app.kubernetes.io/name"] =
            json!("other")
    });
    assert_eq!(
        found,
        vec![Violation::DeploymentSelector("weft-operator".into())]
    );
}

#[test]
fn install_modes_list_the_four_modes_once() {
    let found = violations_after(|csv| {
        csv["spec"]["installModes"]
            .as_array_mut()
            .unwrap()
            .remove(0);
    });
    assert_eq!(found, vec![Violation::InstallModes]);
    let found = violations_after(|csv| {
        for mode in csv["spec"]["installModes"].as_array_mut().unwrap() {
            mode["supported"] = json!(false);
        }
    });
    assert_eq!(found, vec![Violation::InstallModes]);
}
