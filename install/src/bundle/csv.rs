//! The ClusterServiceVersion (`operators.coreos.com/v1alpha1`), field names as in OLM's
//! `ClusterServiceVersionSpec`.

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

use super::descriptors::owned_entries;
use super::{BuildError, Inputs, kind_of, manager_objects, name_of, objects};
use crate::rbac::{Scope, policy_rules};
use crate::{NAMESPACE, OLM_WEBHOOK_CERT_DIR, OPERATOR_IMAGE, OPERATOR_NAME, PACKAGE, VERSION};

/// The CSV's file name in `bundle/manifests/`.
pub const CSV_FILE: &str = "weft-operator.clusterserviceversion.yaml";

/// The oldest Kubernetes the operator supports: 1.29, the first release with native sidecars
/// (`Mesh.spec.proxy.nativeSidecars`) on by default; every API the operator uses
/// (EndpointSlice v1, server-side apply, `kubernetes.io/metadata.name`) is older.
pub const MIN_KUBE_VERSION: &str = "1.29.0";

/// The container arguments OLM's install adds: OLM mounts the webhook serving certificate at
/// [`OLM_WEBHOOK_CERT_DIR`] and writes the webhook configurations' `caBundle` itself.
pub fn olm_args() -> Vec<String> {
    vec![
        format!("--webhook-cert-dir={OLM_WEBHOOK_CERT_DIR}"),
        "--manage-webhook-ca-bundle=false".to_string(),
    ]
}

fn render_err(what: &'static str) -> impl Fn(serde_json::Error) -> BuildError {
    move |e| BuildError::Render {
        what,
        reason: e.to_string(),
    }
}

/// Parses the CRD files of `inputs`.
pub fn crds(inputs: &Inputs) -> Result<Vec<CustomResourceDefinition>, BuildError> {
    inputs
        .crds
        .iter()
        .map(|(file, text)| {
            serde_yaml::from_str(text).map_err(|e| BuildError::Input {
                file: format!("crd/bases/{file}"),
                reason: e.to_string(),
            })
        })
        .collect()
}

/// The Deployment `weft-operator` of `config/manager` as OLM's `StrategyDeploymentSpec`
/// (`name`, `label`, `spec`): image pinned to `v<VERSION>`, [`olm_args`] appended to every
/// container that runs the operator.
fn deployment_spec(inputs: &Inputs) -> Result<Value, BuildError> {
    let deployment = manager_objects(inputs)?
        .into_iter()
        .find(|o| kind_of(o) == "Deployment" && name_of(o) == OPERATOR_NAME)
        .ok_or(BuildError::Missing {
            kind: "Deployment",
            name: OPERATOR_NAME,
        })?;
    let label = deployment
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let mut spec = deployment.get("spec").cloned().unwrap_or(json!({}));
    let containers = spec
        .pointer_mut("/template/spec/containers")
        .and_then(Value::as_array_mut);
    for container in containers.into_iter().flatten() {
        let runs_operator = container
            .get("image")
            .and_then(Value::as_str)
            .is_some_and(|i| i.starts_with(OPERATOR_IMAGE));
        if !runs_operator {
            continue;
        }
        container["image"] = json!(format!("{OPERATOR_IMAGE}:v{VERSION}"));
        let mut args = container
            .get("args")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        args.extend(olm_args().into_iter().map(Value::String));
        container["args"] = Value::Array(args);
    }
    Ok(json!({"name": OPERATOR_NAME, "label": label, "spec": spec}))
}

/// `alm-examples`: every object of the sample files, as a JSON array.
fn alm_examples(inputs: &Inputs) -> Result<String, BuildError> {
    let mut all = Vec::new();
    for (file, text) in &inputs.samples {
        all.extend(objects(&format!("samples/{file}"), text)?);
    }
    serde_json::to_string_pretty(&all).map_err(render_err("alm-examples"))
}

/// The ClusterServiceVersion `weft-operator.v<VERSION>`.
///
/// Install modes: only AllNamespaces. The `Mesh` is cluster-scoped; the operator must see
/// Services, Pods and mesh configuration in every namespace (a VirtualService in one namespace
/// routes traffic of proxies in all others, `exportTo` permitting) and registers cluster-wide
/// webhooks; watching a subset of namespaces would build wrong proxy configurations.
///
/// Errors: [`BuildError`] for unreadable inputs or a missing Deployment.
pub fn cluster_service_version(inputs: &Inputs) -> Result<Value, BuildError> {
    let crds = crds(inputs)?;
    let owned: Vec<Value> = crds.iter().flat_map(owned_entries).collect();
    let webhooks =
        crate::webhooks::olm_definitions(&crds).map_err(render_err("webhookdefinitions"))?;
    let rules = |scope| serde_json::to_value(policy_rules(scope)).map_err(render_err("RBAC"));
    let icon = BASE64_STANDARD.encode(inputs.icon_svg.as_bytes());
    Ok(json!({
        "apiVersion": "operators.coreos.com/v1alpha1",
        "kind": "ClusterServiceVersion",
        "metadata": {
            "name": format!("{PACKAGE}.v{VERSION}"),
            "namespace": "placeholder",
            "annotations": {
                "alm-examples": alm_examples(inputs)?,
                "capabilities": "Basic Install",
                "categories": "Networking, Security",
                "containerImage": format!("{OPERATOR_IMAGE}:v{VERSION}"),
                "description": "A Kubernetes service mesh in Rust that speaks Istio's API: sidecar injection, mTLS, routing and authorization from unchanged Istio YAML.",
                "operatorframework.io/suggested-namespace": NAMESPACE,
                "operators.operatorframework.io/builder": format!("weft-bundle-v{VERSION}"),
                "repository": "https://github.com/weft-mesh/weft",
                "support": "Weft",
            },
        },
        "spec": {
            "displayName": "Weft",
            "description": inputs.description,
            "version": VERSION,
            "maturity": "alpha",
            "minKubeVersion": MIN_KUBE_VERSION,
            "provider": {"name": "Weft", "url": "https://github.com/weft-mesh/weft"},
            "maintainers": [{"name": "Weft maintainers", "email": "maintainers@weft.dev"}],
            "links": [
                {"name": "Source", "url": "https://github.com/weft-mesh/weft"},
                {"name": "Architecture", "url": "https://github.com/weft-mesh/weft/blob/main/docs/architecture.md"},
            ],
            "keywords": ["service mesh", "istio", "mtls", "sidecar", "networking", "security"],
            "icon": [{"base64data": icon, "mediatype": "image/svg+xml"}],
            "installModes": [
                {"type": "OwnNamespace", "supported": false},
                {"type": "SingleNamespace", "supported": false},
                {"type": "MultiNamespace", "supported": false},
                {"type": "AllNamespaces", "supported": true},
            ],
            "install": {
                "strategy": "deployment",
                "spec": {
                    "deployments": [deployment_spec(inputs)?],
                    "clusterPermissions": [
                        {"serviceAccountName": OPERATOR_NAME, "rules": rules(Scope::Cluster)?},
                    ],
                    "permissions": [
                        {"serviceAccountName": OPERATOR_NAME, "rules": rules(Scope::OperatorNamespace)?},
                    ],
                },
            },
            "customresourcedefinitions": {"owned": owned},
            "webhookdefinitions": webhooks,
        },
    }))
}
