//! What deleting the `Mesh` removes: the pure plan behind the finalizer
//! [`super::FINALIZER`]. Only objects the operator created are deleted, recognised by name
//! and by the label `app.kubernetes.io/managed-by=weft-operator` it puts on them:
//!
//! - the self-signed root Secret `weft-ca-secret` in the operator's namespace (never Istio's
//!   plug-in `cacerts`, which belongs to the user);
//! - the workload certificate Secrets (`app.kubernetes.io/component=workload-certificate`);
//! - the trust-bundle ConfigMaps `istio-ca-root-cert` it published.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::ResourceExt;

use crate::citadel::{
    CA_SECRET_NAME, COMPONENT_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL, ROOT_CERT_CONFIGMAP,
    WORKLOAD_CERT_COMPONENT,
};

/// The kind of an object to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeletionKind {
    /// A core/v1 Secret.
    Secret,
    /// A core/v1 ConfigMap.
    ConfigMap,
}

/// One object the cleanup deletes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deletion {
    /// Its kind.
    pub kind: DeletionKind,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// What the cleanup reads: the CA Secret `weft-ca-secret` of the operator's namespace (if
/// any), every Secret labelled as a workload certificate, and every ConfigMap named
/// `istio-ca-root-cert`.
#[derive(Clone, Debug, Default)]
pub struct Owned<'a> {
    /// The operator's namespace.
    pub namespace: &'a str,
    /// `weft-ca-secret` in the operator's namespace.
    pub ca_secret: Option<&'a Secret>,
    /// Secrets found by the workload certificate label selector.
    pub workload_secrets: &'a [Secret],
    /// ConfigMaps found by the name `istio-ca-root-cert`.
    pub root_configmaps: &'a [ConfigMap],
}

fn managed_by_operator(labels: &std::collections::BTreeMap<String, String>) -> bool {
    labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(FIELD_MANAGER)
}

fn deletion(kind: DeletionKind, object: &impl ResourceExt) -> Deletion {
    Deletion {
        kind,
        namespace: object.namespace().unwrap_or_default(),
        name: object.name_any(),
    }
}

/// The objects to delete when the Mesh is deleted: the workload certificate Secrets, then the
/// trust-bundle ConfigMaps (each group sorted by namespace and name, so that the executor's
/// requests are deterministic), then the CA Secret last, so that a cleanup interrupted half-way
/// still has the CA the remaining objects were made from.
///
/// Takes what [`Owned`] lists and re-checks every rule on each object rather than trusting
/// the selectors: the CA Secret must be named `weft-ca-secret`, be in the operator's
/// namespace and be labelled `managed-by=weft-operator`; a workload Secret must carry both
/// the managed-by and the component label; a ConfigMap must be named `istio-ca-root-cert`
/// and be labelled managed-by. Istio's `cacerts` is never listed: it is the user's.
pub fn cleanup_plan(owned: &Owned<'_>) -> Vec<Deletion> {
    let mut secrets: Vec<Deletion> = owned
        .workload_secrets
        .iter()
        .filter(|secret| {
            let labels = secret.labels();
            managed_by_operator(labels)
                && labels.get(COMPONENT_LABEL).map(String::as_str) == Some(WORKLOAD_CERT_COMPONENT)
        })
        .map(|secret| deletion(DeletionKind::Secret, secret))
        .collect();
    let mut configmaps: Vec<Deletion> = owned
        .root_configmaps
        .iter()
        .filter(|cm| cm.name_any() == ROOT_CERT_CONFIGMAP && managed_by_operator(cm.labels()))
        .map(|cm| deletion(DeletionKind::ConfigMap, cm))
        .collect();
    for group in [&mut secrets, &mut configmaps] {
        group.sort();
        group.dedup();
    }
    let mut plan = secrets;
    plan.append(&mut configmaps);
    if let Some(ca) = owned.ca_secret
        && ca.name_any() == CA_SECRET_NAME
        && ca.namespace().as_deref() == Some(owned.namespace)
        && managed_by_operator(ca.labels())
    {
        plan.push(deletion(DeletionKind::Secret, ca));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn meta(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        }
    }

    fn secret(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: meta(namespace, name, labels),
            ..Secret::default()
        }
    }

    fn configmap(namespace: &str, name: &str, labels: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: meta(namespace, name, labels),
            ..ConfigMap::default()
        }
    }

    const MANAGED: (&str, &str) = (MANAGED_BY_LABEL, FIELD_MANAGER);
    const WORKLOAD: (&str, &str) = (COMPONENT_LABEL, WORKLOAD_CERT_COMPONENT);

    fn names(plan: &[Deletion]) -> Vec<String> {
        plan.iter()
            .map(|d| format!("{:?} {}/{}", d.kind, d.namespace, d.name))
            .collect()
    }

    #[test]
    fn deletes_what_the_operator_created_and_nothing_else_the_ca_last() {
        let ca = secret("weft-system", CA_SECRET_NAME, &[MANAGED]);
        let workload = [
            secret("demo", "weft-workload-cert-reviews", &[MANAGED, WORKLOAD]),
            secret("demo", "someone-elses", &[WORKLOAD]),
            secret(
                "demo",
                "weft-workload-cert-b",
                &[("app.kubernetes.io/managed-by", "helm"), WORKLOAD],
            ),
        ];
        let configmaps = [
            configmap("demo", ROOT_CERT_CONFIGMAP, &[MANAGED]),
            configmap(
                "istio-app",
                ROOT_CERT_CONFIGMAP,
                &[("istio.io/config", "true")],
            ),
            configmap("demo", "other", &[MANAGED]),
        ];
        let plan = cleanup_plan(&Owned {
            namespace: "weft-system",
            ca_secret: Some(&ca),
            workload_secrets: &workload,
            root_configmaps: &configmaps,
        });
        assert_eq!(
            names(&plan),
            [
                "Secret demo/weft-workload-cert-reviews",
                "ConfigMap demo/istio-ca-root-cert",
                "Secret weft-system/weft-ca-secret",
            ]
        );
    }

    #[test]
    fn never_deletes_a_ca_secret_it_did_not_create() {
        let unlabelled = secret("weft-system", CA_SECRET_NAME, &[]);
        let elsewhere = secret("other", CA_SECRET_NAME, &[MANAGED]);
        let plugged_in = secret("weft-system", "cacerts", &[MANAGED]);
        for ca in [&unlabelled, &elsewhere, &plugged_in] {
            let plan = cleanup_plan(&Owned {
                namespace: "weft-system",
                ca_secret: Some(ca),
                ..Owned::default()
            });
            assert!(
                plan.is_empty(),
                "{:?} must survive: {plan:?}",
                ca.metadata.name
            );
        }
    }

    #[test]
    fn nothing_owned_means_nothing_to_delete() {
        assert!(cleanup_plan(&Owned::default()).is_empty());
    }
}
