//! The OLM bundle (format `registry+v1`): `bundle/manifests/` (the ClusterServiceVersion, the
//! CRDs, the Service and the PodDisruptionBudget), `bundle/metadata/annotations.yaml` and
//! `bundle.Dockerfile`, built from the files under `config/` ([`Inputs`]) and the tables of
//! [`crate::rbac`] and [`crate::webhooks`].
//!
//! File names follow operator-sdk's `generate bundle`: the CSV is
//! `<package>.clusterserviceversion.yaml`, CRDs keep their `<group>_<plural>.yaml` names, other
//! objects are `<name>_<group>_<version>_<kind>.yaml` (group omitted for the core group).

mod csv;
mod descriptors;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::{CHANNEL, OPERATOR_NAME, PACKAGE};

pub use csv::{CSV_FILE, cluster_service_version};
pub use descriptors::{CrdDescription, describe};

/// The bundle's manifests directory, relative to the repository root.
pub const MANIFESTS_DIR: &str = "bundle/manifests";
/// The bundle's annotations file, relative to the repository root.
pub const ANNOTATIONS_FILE: &str = "bundle/metadata/annotations.yaml";
/// The bundle image's Dockerfile, relative to the repository root.
pub const DOCKERFILE: &str = "bundle.Dockerfile";

/// The labels on every object Weft installs (Kubernetes' recommended labels).
pub fn common_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            OPERATOR_NAME.to_string(),
        ),
        ("app.kubernetes.io/part-of".to_string(), "weft".to_string()),
    ])
}

/// What the bundle is built from: the text of files under `config/`, each with its file name.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// `config/crd/bases/*.yaml`, by file name.
    pub crds: BTreeMap<String, String>,
    /// `config/manager/*.yaml` (the Deployment, Service, PodDisruptionBudget, ...), by file name.
    pub manager: BTreeMap<String, String>,
    /// `config/samples/*.yaml` except `kustomization.yaml`, by file name.
    pub samples: BTreeMap<String, String>,
    /// `config/manifests/icon.svg`.
    pub icon_svg: String,
    /// `config/manifests/description.md`: the CSV's long description (Markdown).
    pub description: String,
}

/// Why the bundle could not be built. Messages name the input file and the rule.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An input file is not YAML, or a document is not a Kubernetes object.
    #[error("{file}: {reason}")]
    Input {
        /// The file (relative to `config/`).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// An object the bundle needs is missing from `config/manager`.
    #[error("config/manager: no {kind} named {name}")]
    Missing {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: &'static str,
    },
    /// The CRDs could not be generated (for the validator's rules).
    #[error("CRDs: {0}")]
    Crd(#[from] weft_crds::crd::CrdError),
    /// Serialization failed.
    #[error("rendering {what}: {reason}")]
    Render {
        /// What was being rendered.
        what: &'static str,
        /// serde's message.
        reason: String,
    },
}

/// Parses every YAML document of `text` (the file `file`) as a JSON value, skipping empty
/// documents. Errors with [`BuildError::Input`] when a document is not YAML or not a mapping
/// with `apiVersion`, `kind` and `metadata.name`.
pub fn objects(file: &str, text: &str) -> Result<Vec<Value>, BuildError> {
    use serde::Deserialize;
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| BuildError::Input {
            file: file.to_string(),
            reason: format!("document {i}: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        for field in ["/apiVersion", "/kind", "/metadata/name"] {
            if !value.pointer(field).is_some_and(Value::is_string) {
                return Err(BuildError::Input {
                    file: file.to_string(),
                    reason: format!("document {i}: {} missing or not a string", &field[1..]),
                });
            }
        }
        out.push(value);
    }
    Ok(out)
}

/// The `kind` of an object parsed by [`objects`] (empty when absent).
pub fn kind_of(value: &Value) -> &str {
    value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The `metadata.name` of an object parsed by [`objects`] (empty when absent).
pub fn name_of(value: &Value) -> &str {
    value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Every object of the `config/manager` files, in file-name order.
pub fn manager_objects(inputs: &Inputs) -> Result<Vec<Value>, BuildError> {
    let mut out = Vec::new();
    for (file, text) in &inputs.manager {
        out.extend(objects(&format!("manager/{file}"), text)?);
    }
    Ok(out)
}

/// The `operators.operatorframework.io.bundle.*` annotations, in the order OLM's docs list
/// them: media type `registry+v1`, `manifests/` and `metadata/` directories, package, channels
/// and default channel. The same pairs are the bundle image's labels.
pub fn bundle_annotations() -> Vec<(&'static str, String)> {
    vec![
        (
            "operators.operatorframework.io.bundle.mediatype.v1",
            "registry+v1".to_string(),
        ),
        (
            "operators.operatorframework.io.bundle.manifests.v1",
            "manifests/".to_string(),
        ),
        (
            "operators.operatorframework.io.bundle.metadata.v1",
            "metadata/".to_string(),
        ),
        (
            "operators.operatorframework.io.bundle.package.v1",
            PACKAGE.to_string(),
        ),
        (
            "operators.operatorframework.io.bundle.channels.v1",
            CHANNEL.to_string(),
        ),
        (
            "operators.operatorframework.io.bundle.channel.default.v1",
            CHANNEL.to_string(),
        ),
    ]
}

/// `bundle/metadata/annotations.yaml`.
pub fn annotations_yaml() -> String {
    let mut out = format!("{}\nannotations:\n", crate::generate::HEADER);
    for (k, v) in bundle_annotations() {
        out.push_str(&format!("  {k}: {v}\n"));
    }
    out
}

/// `bundle.Dockerfile`: a `scratch` image with the [`bundle_annotations`] as labels and the
/// two bundle directories at `/manifests/` and `/metadata/`.
pub fn dockerfile() -> String {
    let mut out = format!("{}\nFROM scratch\n\n", crate::generate::HEADER);
    for (k, v) in bundle_annotations() {
        out.push_str(&format!("LABEL {k}={v}\n"));
    }
    out.push_str("\nCOPY bundle/manifests /manifests/\nCOPY bundle/metadata /metadata/\n");
    out
}

fn render(what: &'static str, value: &Value) -> Result<String, BuildError> {
    serde_yaml::to_string(value)
        .map(|body| format!("{}\n{body}", crate::generate::HEADER))
        .map_err(|e| BuildError::Render {
            what,
            reason: e.to_string(),
        })
}

/// The file name operator-sdk gives a non-CSV, non-CRD object in `manifests/`.
fn manifest_name(object: &Value) -> String {
    let api_version = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let group_version = api_version.replace('/', "_").replace(".k8s.io", "");
    format!(
        "{}_{}_{}.yaml",
        name_of(object),
        group_version,
        kind_of(object).to_lowercase()
    )
}

/// Builds the bundle: every file by its path relative to the repository root
/// ([`MANIFESTS_DIR`], [`ANNOTATIONS_FILE`], [`DOCKERFILE`]).
///
/// The Service and PodDisruptionBudget of `config/manager` are copied without their namespace
/// (OLM installs into the OperatorGroup's namespace); the CRD files are copied byte for byte.
/// Errors: [`BuildError`].
pub fn build(inputs: &Inputs) -> Result<BTreeMap<String, String>, BuildError> {
    let mut files = BTreeMap::new();
    let csv = cluster_service_version(inputs)?;
    files.insert(
        format!("{MANIFESTS_DIR}/{CSV_FILE}"),
        render("the CSV", &csv)?,
    );
    for (name, text) in &inputs.crds {
        files.insert(format!("{MANIFESTS_DIR}/{name}"), text.clone());
    }
    for mut object in manager_objects(inputs)? {
        if !matches!(kind_of(&object), "Service" | "PodDisruptionBudget") {
            continue;
        }
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("namespace");
        }
        files.insert(
            format!("{MANIFESTS_DIR}/{}", manifest_name(&object)),
            render("a manifest", &object)?,
        );
    }
    files.insert(ANNOTATIONS_FILE.to_string(), annotations_yaml());
    files.insert(DOCKERFILE.to_string(), dockerfile());
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_skip_empty_documents_and_refuse_nameless_ones() {
        let two = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n";
        let names: Vec<String> = objects("f.yaml", two)
            .unwrap()
            .iter()
            .map(|o| name_of(o).to_string())
            .collect();
        assert_eq!(names, ["a", "b"]);
        let error = objects("f.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "f.yaml: document 0: metadata/name missing or not a string"
        );
        assert!(objects("f.yaml", "a: [").is_err());
    }

    #[test]
    fn manifest_names_follow_operator_sdk() {
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "weft-operator"}});
        assert_eq!(
            manifest_name(&pdb),
            "weft-operator_policy_v1_poddisruptionbudget.yaml"
        );
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}});
        assert_eq!(manifest_name(&role), "r_rbac.authorization_v1_role.yaml");
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}});
        assert_eq!(manifest_name(&svc), "s_v1_service.yaml");
    }

    #[test]
    fn the_dockerfile_labels_are_the_annotations() {
        let dockerfile = dockerfile();
        let annotations = annotations_yaml();
        for (k, v) in bundle_annotations() {
            assert!(dockerfile.contains(&format!("LABEL {k}={v}\n")), "{k}");
            assert!(annotations.contains(&format!("  {k}: {v}\n")), "{k}");
        }
    }
}
