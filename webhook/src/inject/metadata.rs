//! Pod metadata the injector reads (workload name) and writes (labels, status annotation).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::names::{CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL};

/// What the injector added to a pod, written as JSON in `sidecar.istio.io/status` (Istio's
/// `SidecarInjectionStatus`: `{"initContainers":[..],"containers":[..],"volumes":[..],
/// "imagePullSecrets":null,"revision":"default"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SidecarStatus {
    /// Names of the injected init containers (`istio-init`, and `istio-proxy` when native).
    pub init_containers: Option<Vec<String>>,
    /// Names of the injected containers (`istio-proxy` unless native).
    pub containers: Option<Vec<String>>,
    /// Names of the injected volumes.
    pub volumes: Option<Vec<String>>,
    /// Names of the injected image pull secrets (Weft injects none).
    pub image_pull_secrets: Option<Vec<String>>,
    /// The control-plane revision that injected the pod (`default`).
    pub revision: String,
}

/// The workload a pod belongs to, as Istio derives `ISTIO_META_WORKLOAD_NAME`
/// (`GetDeployMetaFromPod`): the controlling owner's name, with a ReplicaSet's
/// `-<pod-template-hash>` removed (giving the Deployment) and a CronJob Job's `-<digits>`
/// suffix removed (giving the CronJob); a pod without owner gives its own name, or its
/// `generateName` without the trailing `-`.
pub fn workload_name(meta: &ObjectMeta) -> String {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    let owner = owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(owners.first());
    if let Some(owner) = owner {
        let name = owner.name.as_str();
        let hash = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        match owner.kind.as_str() {
            "ReplicaSet" => {
                if let Some(stripped) = hash
                    .and_then(|h| name.strip_suffix(h.as_str()))
                    .and_then(|n| n.strip_suffix('-'))
                {
                    return stripped.to_string();
                }
            }
            "Job" => {
                if let Some((base, suffix)) = name.rsplit_once('-')
                    && suffix.len() >= 8
                    && suffix.chars().all(|c| c.is_ascii_digit())
                {
                    return base.to_string();
                }
            }
            _ => {}
        }
        return name.to_string();
    }
    if let Some(name) = meta.name.as_deref().filter(|n| !n.is_empty()) {
        return name.to_string();
    }
    meta.generate_name
        .as_deref()
        .unwrap_or_default()
        .trim_end_matches('-')
        .to_string()
}

/// Istio's canonical service labels: `service.istio.io/canonical-name` from the first of that
/// label, `app.kubernetes.io/name`, `app`, or the workload name; `canonical-revision` from that
/// label, `app.kubernetes.io/version`, `version`, or `latest`. Existing values are kept.
pub(crate) fn add_canonical_labels(labels: &mut BTreeMap<String, String>, workload: &str) {
    let first = |labels: &BTreeMap<String, String>, keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k).filter(|v| !v.is_empty()).cloned())
    };
    let name = first(
        labels,
        &[CANONICAL_NAME_LABEL, "app.kubernetes.io/name", "app"],
    )
    .unwrap_or_else(|| workload.to_string());
    let revision = first(
        labels,
        &[
            CANONICAL_REVISION_LABEL,
            "app.kubernetes.io/version",
            "version",
        ],
    )
    .unwrap_or_else(|| "latest".to_string());
    labels.insert(CANONICAL_NAME_LABEL.to_string(), name);
    labels.insert(CANONICAL_REVISION_LABEL.to_string(), revision);
}
