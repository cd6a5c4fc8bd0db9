//! OLM's rules for a `registry+v1` bundle, checked on the files themselves (as operator-sdk's
//! `bundle validate` and OLM's install do): [`check`] returns every [`Violation`].
//!
//! Sources: OLM's `ClusterServiceVersion` API (`operators.coreos.com/v1alpha1`,
//! `WebhookDescription`, `CRDDescription`, `StrategyDetailsDeployment`) and the bundle format
//! (`operators.operatorframework.io.bundle.*` annotations, the same pairs as image labels).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::bundle::{ANNOTATIONS_FILE, CSV_FILE, DOCKERFILE, MANIFESTS_DIR, kind_of, objects};
use crate::rbac::{Scope, policy_rules};

/// One broken rule. Messages name the file or field and the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A file the bundle must have is missing or does not parse.
    #[error("{file}: {reason}")]
    File {
        /// The file, relative to the repository root.
        file: String,
        /// Missing, or the parse error.
        reason: String,
    },
    /// A field OLM or the operator hub requires is absent or empty.
    #[error("CSV: required field {0} is missing or empty")]
    MissingField(&'static str),
    /// `metadata.name` is not `<package>.v<spec.version>`.
    #[error("CSV: metadata.name {found:?} must be {expected:?} (<package>.v<spec.version>)")]
    Name {
        /// The name found.
        found: String,
        /// The name required.
        expected: String,
    },
    /// An `owned` entry names a CRD or version no CRD file serves.
    #[error("CSV: owned CRD {name} version {version} is not served by any CRD in the bundle")]
    OwnedWithoutCrd {
        /// The CRD name (`<plural>.<group>`).
        name: String,
        /// The version.
        version: String,
    },
    /// A CRD file serves a version no `owned` entry lists.
    #[error("CSV: CRD {name} version {version} is in the bundle but not owned")]
    CrdNotOwned {
        /// The CRD name.
        name: String,
        /// The version.
        version: String,
    },
    /// An `owned` entry's kind differs from its CRD's.
    #[error("CSV: owned CRD {name} says kind {owned:?}, the CRD says {crd:?}")]
    OwnedKind {
        /// The CRD name.
        name: String,
        /// The kind in the CSV.
        owned: String,
        /// The kind in the CRD.
        crd: String,
    },
    /// A webhook definition lacks a field OLM requires.
    #[error("CSV: webhookdefinition {webhook}: {field} is required")]
    WebhookField {
        /// Its `generateName`.
        webhook: String,
        /// The field.
        field: &'static str,
    },
    /// A webhook definition's `deploymentName` is not a Deployment of the install strategy.
    #[error(
        "CSV: webhookdefinition {webhook}: deploymentName {deployment:?} is not in spec.install.spec.deployments"
    )]
    WebhookDeployment {
        /// Its `generateName`.
        webhook: String,
        /// The name it gives.
        deployment: String,
    },
    /// A webhook definition's `containerPort` or `targetPort` is not a container port of its
    /// Deployment.
    #[error(
        "CSV: webhookdefinition {webhook}: port {port} is not a containerPort of Deployment {deployment}"
    )]
    WebhookPort {
        /// Its `generateName`.
        webhook: String,
        /// The Deployment.
        deployment: String,
        /// The port.
        port: i64,
    },
    /// A webhook definition's `type` is not one of OLM's, or its `generateName` is repeated.
    #[error("CSV: webhookdefinition {webhook}: {reason}")]
    WebhookDefinition {
        /// Its `generateName`.
        webhook: String,
        /// The rule broken.
        reason: &'static str,
    },
    /// A Deployment runs as a ServiceAccount that no `permissions`/`clusterPermissions` entry
    /// names: OLM creates only those, so its pods would never start.
    #[error(
        "CSV: Deployment {deployment} runs as ServiceAccount {service_account:?}, which no permissions entry names"
    )]
    DeploymentServiceAccount {
        /// The Deployment.
        deployment: String,
        /// Its `serviceAccountName` (`default` when unset).
        service_account: String,
    },
    /// A Deployment's selector does not select its own pod template (Kubernetes refuses it).
    #[error(
        "CSV: Deployment {0}: spec.selector.matchLabels do not match the pod template's labels"
    )]
    DeploymentSelector(String),
    /// `installModes` does not list each of OLM's four modes once, or supports none.
    #[error(
        "CSV: installModes must list OwnNamespace, SingleNamespace, MultiNamespace and AllNamespaces once each, at least one supported"
    )]
    InstallModes,
    /// `clusterPermissions` or `permissions` differ from [`crate::rbac::PERMISSIONS`].
    #[error("CSV: spec.install.spec.{0} differs from the permissions table (install/src/rbac.rs)")]
    Permissions(&'static str),
    /// `alm-examples` is not a JSON array of objects.
    #[error("CSV: alm-examples is not a JSON array of objects: {0}")]
    AlmExamples(String),
    /// An `alm-examples` object is of a kind the CSV does not own at that version.
    #[error("CSV: alm-examples has {api_version} {kind}, which is not an owned CRD version")]
    AlmExampleNotOwned {
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
    /// A bundle annotation and the bundle image label of the same key disagree (or one is
    /// missing).
    #[error("{key}: annotations.yaml says {annotation:?}, bundle.Dockerfile says {label:?}")]
    Label {
        /// The key.
        key: String,
        /// The annotation's value.
        annotation: Option<String>,
        /// The label's value.
        label: Option<String>,
    },
    /// A required bundle annotation is missing or wrong.
    #[error("annotations.yaml: {key} must be {expected:?}")]
    Annotation {
        /// The key.
        key: &'static str,
        /// The value required.
        expected: String,
    },
}

const REQUIRED: &[&str] = &[
    "/metadata/name",
    "/metadata/annotations/alm-examples",
    "/spec/displayName",
    "/spec/description",
    "/spec/version",
    "/spec/maturity",
    "/spec/minKubeVersion",
    "/spec/provider/name",
    "/spec/maintainers",
    "/spec/links",
    "/spec/keywords",
    "/spec/icon",
    "/spec/installModes",
    "/spec/install/strategy",
    "/spec/install/spec/deployments",
    "/spec/customresourcedefinitions/owned",
];

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn array_at<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The bundle's annotations (`annotations:` of annotations.yaml).
fn annotations(text: &str) -> Result<BTreeMap<String, String>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        annotations: BTreeMap<String, String>,
    }
    serde_yaml::from_str::<File>(text)
        .map(|f| f.annotations)
        .map_err(|e| e.to_string())
}

/// The `LABEL key=value` pairs of a Dockerfile.
fn labels(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("LABEL "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').to_string()))
        .collect()
}

fn check_crds(csv: &Value, crds: &[Value], out: &mut Vec<Violation>) -> BTreeSet<(String, String)> {
    // (CRD name, version) -> kind, and (apiVersion, kind) owned.
    let mut served = BTreeMap::new();
    for crd in crds {
        let name = str_at(crd, "/metadata/name").to_string();
        for v in array_at(crd, "/spec/versions") {
            if v.get("served").and_then(Value::as_bool) == Some(true) {
                let group = str_at(crd, "/spec/group");
                let kind = str_at(crd, "/spec/names/kind").to_string();
                served.insert(
                    (name.clone(), str_at(v, "/name").to_string()),
                    (group.to_string(), kind),
                );
            }
        }
    }
    let mut owned = BTreeSet::new();
    let mut api_kinds = BTreeSet::new();
    for entry in array_at(csv, "/spec/customresourcedefinitions/owned") {
        let key = (
            str_at(entry, "/name").to_string(),
            str_at(entry, "/version").to_string(),
        );
        match served.get(&key) {
            None => out.push(Violation::OwnedWithoutCrd {
                name: key.0.clone(),
                version: key.1.clone(),
            }),
            Some((group, kind)) => {
                if str_at(entry, "/kind") != kind {
                    out.push(Violation::OwnedKind {
                        name: key.0.clone(),
                        owned: str_at(entry, "/kind").to_string(),
                        crd: kind.clone(),
                    });
                }
                api_kinds.insert((format!("{group}/{}", key.1), kind.clone()));
            }
        }
        owned.insert(key);
    }
    for (name, version) in served.keys() {
        if !owned.contains(&(name.clone(), version.clone())) {
            out.push(Violation::CrdNotOwned {
                name: name.clone(),
                version: version.clone(),
            });
        }
    }
    api_kinds
}

const WEBHOOK_TYPES: [&str; 3] = [
    "ValidatingAdmissionWebhook",
    "MutatingAdmissionWebhook",
    "ConversionWebhook",
];

fn check_webhooks(csv: &Value, out: &mut Vec<Violation>) {
    let deployments = array_at(csv, "/spec/install/spec/deployments");
    let mut names = BTreeSet::new();
    for hook in array_at(csv, "/spec/webhookdefinitions") {
        let webhook = str_at(hook, "/generateName").to_string();
        if !names.insert(webhook.clone()) {
            out.push(Violation::WebhookDefinition {
                webhook: webhook.clone(),
                reason: "generateName is used by another webhookdefinition",
            });
        }
        let kind = str_at(hook, "/type");
        if !kind.is_empty() && !WEBHOOK_TYPES.contains(&kind) {
            out.push(Violation::WebhookDefinition {
                webhook: webhook.clone(),
                reason: "type must be ValidatingAdmissionWebhook, MutatingAdmissionWebhook or ConversionWebhook",
            });
        }
        for (field, pointer) in [
            ("generateName", "/generateName"),
            ("type", "/type"),
            ("sideEffects", "/sideEffects"),
            ("admissionReviewVersions", "/admissionReviewVersions"),
            ("webhookPath", "/webhookPath"),
            ("rules", "/rules"),
        ] {
            if hook.pointer(pointer).is_none_or(empty) {
                out.push(Violation::WebhookField {
                    webhook: webhook.clone(),
                    field,
                });
            }
        }
        let deployment = str_at(hook, "/deploymentName").to_string();
        let Some(found) = deployments
            .iter()
            .find(|d| str_at(d, "/name") == deployment)
        else {
            out.push(Violation::WebhookDeployment {
                webhook,
                deployment,
            });
            continue;
        };
        let exposed: BTreeSet<i64> = array_at(found, "/spec/template/spec/containers")
            .iter()
            .flat_map(|c| array_at(c, "/ports"))
            .filter_map(|p| p.get("containerPort").and_then(Value::as_i64))
            .collect();
        // OLM's defaults: containerPort 443, targetPort = containerPort.
        let container_port = hook
            .get("containerPort")
            .and_then(Value::as_i64)
            .unwrap_or(443);
        let target_port = hook
            .get("targetPort")
            .and_then(Value::as_i64)
            .unwrap_or(container_port);
        for port in BTreeSet::from([container_port, target_port]) {
            if !exposed.contains(&port) {
                out.push(Violation::WebhookPort {
                    webhook: webhook.clone(),
                    deployment: deployment.clone(),
                    port,
                });
            }
        }
    }
}

fn check_deployments(csv: &Value, out: &mut Vec<Violation>) {
    let accounts: BTreeSet<&str> = ["permissions", "clusterPermissions"]
        .iter()
        .flat_map(|f| array_at(csv, &format!("/spec/install/spec/{f}")))
        .map(|p| str_at(p, "/serviceAccountName"))
        .collect();
    for deployment in array_at(csv, "/spec/install/spec/deployments") {
        let name = str_at(deployment, "/name").to_string();
        let account = match str_at(deployment, "/spec/template/spec/serviceAccountName") {
            "" => "default",
            other => other,
        };
        if !accounts.contains(account) {
            out.push(Violation::DeploymentServiceAccount {
                deployment: name.clone(),
                service_account: account.to_string(),
            });
        }
        let selector = deployment
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object);
        let labels = deployment.pointer("/spec/template/metadata/labels");
        let selects = selector.is_some_and(|m| {
            !m.is_empty()
                && m.iter()
                    .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        });
        if !selects {
            out.push(Violation::DeploymentSelector(name));
        }
    }
    let modes: Vec<(&str, bool)> = array_at(csv, "/spec/installModes")
        .iter()
        .map(|m| {
            let supported = m.get("supported").and_then(Value::as_bool).unwrap_or(false);
            (str_at(m, "/type"), supported)
        })
        .collect();
    let types: BTreeSet<&str> = modes.iter().map(|(t, _)| *t).collect();
    let all = BTreeSet::from([
        "OwnNamespace",
        "SingleNamespace",
        "MultiNamespace",
        "AllNamespaces",
    ]);
    if !modes.is_empty() && (types != all || modes.len() != 4 || !modes.iter().any(|(_, s)| *s)) {
        out.push(Violation::InstallModes);
    }
}

fn check_permissions(csv: &Value, out: &mut Vec<Violation>) {
    for (field, scope) in [
        ("clusterPermissions", Scope::Cluster),
        ("permissions", Scope::OperatorNamespace),
    ] {
        let want = serde_json::to_value(policy_rules(scope)).unwrap_or_default();
        let have = array_at(csv, &format!("/spec/install/spec/{field}"));
        let ok = matches!(have, [only] if only.get("rules") == Some(&want)
            && str_at(only, "/serviceAccountName") == crate::OPERATOR_NAME);
        if !ok {
            out.push(Violation::Permissions(field));
        }
    }
}

fn check_examples(csv: &Value, owned: &BTreeSet<(String, String)>, out: &mut Vec<Violation>) {
    let text = str_at(csv, "/metadata/annotations/alm-examples");
    let examples: Vec<Value> = match serde_json::from_str::<Vec<Value>>(text) {
        Ok(v) if v.iter().all(Value::is_object) => v,
        Ok(_) => return out.push(Violation::AlmExamples("an element is not an object".into())),
        Err(e) => return out.push(Violation::AlmExamples(e.to_string())),
    };
    for example in examples {
        let key = (
            str_at(&example, "/apiVersion").to_string(),
            kind_of(&example).to_string(),
        );
        if !owned.contains(&key) {
            out.push(Violation::AlmExampleNotOwned {
                api_version: key.0,
                kind: key.1,
            });
        }
    }
}

fn check_metadata(files: &BTreeMap<String, String>, csv: &Value, out: &mut Vec<Violation>) {
    let annotations = match files.get(ANNOTATIONS_FILE).map(|t| annotations(t)) {
        Some(Ok(a)) => a,
        Some(Err(reason)) => {
            return out.push(Violation::File {
                file: ANNOTATIONS_FILE.into(),
                reason,
            });
        }
        None => {
            return out.push(Violation::File {
                file: ANNOTATIONS_FILE.into(),
                reason: "missing".into(),
            });
        }
    };
    for (key, expected) in [
        (
            "operators.operatorframework.io.bundle.mediatype.v1",
            "registry+v1",
        ),
        (
            "operators.operatorframework.io.bundle.manifests.v1",
            "manifests/",
        ),
        (
            "operators.operatorframework.io.bundle.metadata.v1",
            "metadata/",
        ),
    ] {
        if annotations.get(key).map(String::as_str) != Some(expected) {
            out.push(Violation::Annotation {
                key,
                expected: expected.to_string(),
            });
        }
    }
    for key in [
        "operators.operatorframework.io.bundle.package.v1",
        "operators.operatorframework.io.bundle.channels.v1",
    ] {
        if annotations.get(key).is_none_or(String::is_empty) {
            out.push(Violation::Annotation {
                key,
                expected: "a non-empty value".into(),
            });
        }
    }
    if let Some(default) =
        annotations.get("operators.operatorframework.io.bundle.channel.default.v1")
    {
        let channels = annotations.get("operators.operatorframework.io.bundle.channels.v1");
        if !channels.is_some_and(|c| c.split(',').any(|x| x.trim() == default)) {
            out.push(Violation::Annotation {
                key: "operators.operatorframework.io.bundle.channel.default.v1",
                expected: "one of the channels".into(),
            });
        }
    }
    let package = annotations
        .get("operators.operatorframework.io.bundle.package.v1")
        .cloned()
        .unwrap_or_default();
    let expected = format!("{package}.v{}", str_at(csv, "/spec/version"));
    let found = str_at(csv, "/metadata/name");
    if found != expected {
        out.push(Violation::Name {
            found: found.to_string(),
            expected,
        });
    }
    let Some(dockerfile) = files.get(DOCKERFILE) else {
        return out.push(Violation::File {
            file: DOCKERFILE.into(),
            reason: "missing".into(),
        });
    };
    let labels = labels(dockerfile);
    let keys: BTreeSet<&String> = annotations.keys().chain(labels.keys()).collect();
    for key in keys
        .into_iter()
        .filter(|k| k.starts_with("operators.operatorframework.io.bundle."))
    {
        let (a, l) = (annotations.get(key), labels.get(key));
        if a != l {
            out.push(Violation::Label {
                key: key.clone(),
                annotation: a.cloned(),
                label: l.cloned(),
            });
        }
    }
}

/// Checks a bundle given as files by path relative to the repository root
/// (`bundle/manifests/*`, `bundle/metadata/annotations.yaml`, `bundle.Dockerfile`). Returns
/// every violation found, empty when the bundle follows the rules.
pub fn check(files: &BTreeMap<String, String>) -> Vec<Violation> {
    let mut out = Vec::new();
    let csv_path = format!("{MANIFESTS_DIR}/{CSV_FILE}");
    let csv = match files
        .get(&csv_path)
        .map(|t| serde_yaml::from_str::<Value>(t))
    {
        Some(Ok(csv)) => csv,
        Some(Err(e)) => {
            out.push(Violation::File {
                file: csv_path,
                reason: e.to_string(),
            });
            return out;
        }
        None => {
            out.push(Violation::File {
                file: csv_path,
                reason: "missing".into(),
            });
            return out;
        }
    };
    for pointer in REQUIRED {
        if csv.pointer(pointer).is_none_or(empty) {
            out.push(Violation::MissingField(&pointer[1..]));
        }
    }
    let mut crds = Vec::new();
    for (path, text) in files
        .iter()
        .filter(|(p, _)| p.starts_with(MANIFESTS_DIR) && **p != csv_path)
    {
        match objects(path, text) {
            Ok(objs) => crds.extend(
                objs.into_iter()
                    .filter(|o| kind_of(o) == "CustomResourceDefinition"),
            ),
            Err(e) => out.push(Violation::File {
                file: path.clone(),
                reason: e.to_string(),
            }),
        }
    }
    let owned = check_crds(&csv, &crds, &mut out);
    check_webhooks(&csv, &mut out);
    check_deployments(&csv, &mut out);
    check_permissions(&csv, &mut out);
    check_examples(&csv, &owned, &mut out);
    check_metadata(files, &csv, &mut out);
    out
}
