//! Whether a pod gets a sidecar: Istio's injection policy.
//!
//! Istio decides in two places: the webhook's `namespaceSelector`/`objectSelector` (which pods
//! the API server sends at all) and `injectRequired` in its `inject` package (what the webhook
//! does with them). [`should_inject`] folds both into one function so the operator can register
//! a single broad webhook and still behave as Istio does.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Pod;

use crate::config::InjectionConfig;
use crate::names::{NAMESPACE_INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT, SIDECAR_STATUS};

/// Namespaces Istio never injects (`kube-system`, `kube-public`; Istio's `ignoredNamespaces`).
pub const IGNORED_NAMESPACES: [&str; 2] = ["kube-system", "kube-public"];

/// The outcome of [`should_inject`]: whether to inject, and the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `true` when the pod should receive the sidecar.
    pub inject: bool,
    /// The rule that decided; its `Display` is a sentence fit for a log line.
    pub reason: DecisionReason,
}

/// The rule that decided an injection [`Decision`], in the order the rules are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionReason {
    /// The pod carries `sidecar.istio.io/status`: it was injected already.
    AlreadyInjected,
    /// The pod uses the node's network namespace (`spec.hostNetwork: true`), which a sidecar
    /// must never capture.
    HostNetwork,
    /// The pod is in `kube-system`, `kube-public` or the operator's own namespace.
    IgnoredNamespace(String),
    /// The namespace is labelled `istio-injection=disabled`; pod settings cannot override it.
    NamespaceDisabled,
    /// The pod label `sidecar.istio.io/inject` says yes (`true`) or no (anything else).
    PodLabel(String),
    /// The pod annotation `sidecar.istio.io/inject` says yes (`true`) or no (anything else).
    PodAnnotation(String),
    /// The namespace is labelled `istio-injection=enabled`.
    NamespaceEnabled,
    /// The namespace has no `istio-injection` label but an `istio.io/rev` label: this mesh's
    /// revision injects, any other revision belongs to another control plane.
    NamespaceRevision(String),
    /// The namespace has neither label and the pod has `istio.io/rev`: this mesh's revision
    /// injects, any other revision belongs to another control plane.
    PodRevision(String),
    /// The namespace has no `istio-injection` label; the mesh default
    /// (`enableNamespacesByDefault`) applies.
    MeshDefault,
}

impl fmt::Display for DecisionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyInjected => write!(f, "pod is already injected ({SIDECAR_STATUS} is set)"),
            Self::HostNetwork => write!(f, "pod uses hostNetwork; sidecars are never injected"),
            Self::IgnoredNamespace(ns) => {
                write!(
                    f,
                    "namespace {ns:?} is never injected (system or operator namespace)"
                )
            }
            Self::NamespaceDisabled => {
                write!(
                    f,
                    "namespace is labelled {NAMESPACE_INJECTION_LABEL}=disabled"
                )
            }
            Self::PodLabel(v) => write!(f, "pod label {SIDECAR_INJECT}={v:?}"),
            Self::PodAnnotation(v) => write!(f, "pod annotation {SIDECAR_INJECT}={v:?}"),
            Self::NamespaceEnabled => {
                write!(
                    f,
                    "namespace is labelled {NAMESPACE_INJECTION_LABEL}=enabled"
                )
            }
            Self::NamespaceRevision(rev) => {
                write!(f, "namespace is labelled {REVISION_LABEL}={rev:?}")
            }
            Self::PodRevision(rev) => write!(f, "pod is labelled {REVISION_LABEL}={rev:?}"),
            Self::MeshDefault => write!(
                f,
                "namespace has no {NAMESPACE_INJECTION_LABEL} label; mesh default applies"
            ),
        }
    }
}

/// Reads a `sidecar.istio.io/inject` value as Istio's `injectRequired` does: `y`, `yes`,
/// `true` and `on` (any case) mean yes; any other value means no.
fn truthy(value: &str) -> bool {
    matches!(
        value.to_ascii_lowercase().as_str(),
        "y" | "yes" | "true" | "on"
    )
}

/// Decides whether `pod` gets a sidecar.
///
/// Takes the pod (its namespace is read from `metadata.namespace`; the admission path fills it
/// from the request when empty), the labels of that namespace, and the mesh settings. Returns a
/// [`Decision`]; never fails. Rules, first match wins:
///
/// 1. already injected (annotation `sidecar.istio.io/status`) → no;
/// 2. `spec.hostNetwork: true` → no;
/// 3. namespace `kube-system`, `kube-public` or the operator's → no;
/// 4. namespace label `istio-injection=disabled` → no (Istio's webhook `namespaceSelector`
///    excludes such namespaces entirely, so no pod setting can override it);
/// 5. namespace without `istio-injection` but with `istio.io/rev` other than
///    `config.revision` → no (another control plane's namespace); likewise a pod's
///    `istio.io/rev` in a namespace with neither label;
/// 6. pod label `sidecar.istio.io/inject` → its value (`true`/`yes`/`y`/`on` = yes);
/// 7. namespace label `istio-injection=enabled`, or `istio.io/rev=<config.revision>` on the
///    namespace (or on the pod, when the namespace has neither label) → the pod annotation
///    `sidecar.istio.io/inject` if present, else yes;
/// 8. otherwise the mesh default `enable_namespaces_by_default`, again overridden by the pod
///    annotation when that default is on. When it is off, a pod *annotation* alone does not
///    inject, as in Istio, whose `objectSelector` can only see labels.
///
/// Rules 4-7 reproduce the selectors of Istio's `istio-sidecar-injector` webhooks
/// (`namespace.`, `object.`, `rev.namespace.` and `rev.object.sidecar-injector.istio.io`).
pub fn should_inject(
    pod: &Pod,
    namespace_labels: &BTreeMap<String, String>,
    config: &InjectionConfig,
) -> Decision {
    let decided = |inject: bool, reason: DecisionReason| Decision { inject, reason };
    let meta = &pod.metadata;
    if meta
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(SIDECAR_STATUS))
    {
        return decided(false, DecisionReason::AlreadyInjected);
    }
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return decided(false, DecisionReason::HostNetwork);
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    if IGNORED_NAMESPACES.contains(&namespace) || namespace == config.operator_namespace {
        return decided(
            false,
            DecisionReason::IgnoredNamespace(namespace.to_string()),
        );
    }
    let namespace_policy = namespace_labels
        .get(NAMESPACE_INJECTION_LABEL)
        .map(String::as_str);
    if namespace_policy == Some("disabled") {
        return decided(false, DecisionReason::NamespaceDisabled);
    }
    // `istio.io/rev` selects a control plane; it only counts without `istio-injection`.
    let namespace_revision = namespace_labels
        .get(REVISION_LABEL)
        .filter(|_| namespace_policy.is_none());
    if let Some(revision) = namespace_revision.filter(|r| **r != config.revision) {
        return decided(false, DecisionReason::NamespaceRevision(revision.clone()));
    }
    let pod_revision = meta.labels.as_ref().and_then(|l| l.get(REVISION_LABEL));
    let namespace_unlabelled = namespace_policy.is_none() && namespace_revision.is_none();
    if let Some(revision) = pod_revision.filter(|r| namespace_unlabelled && **r != config.revision)
    {
        return decided(false, DecisionReason::PodRevision(revision.clone()));
    }
    if let Some(value) = meta.labels.as_ref().and_then(|l| l.get(SIDECAR_INJECT)) {
        return decided(truthy(value), DecisionReason::PodLabel(value.clone()));
    }
    let annotation = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(SIDECAR_INJECT));
    let (default, reason) = match (namespace_policy, namespace_revision, pod_revision) {
        (Some("enabled"), _, _) => (true, DecisionReason::NamespaceEnabled),
        (_, Some(revision), _) => (true, DecisionReason::NamespaceRevision(revision.clone())),
        (None, None, Some(revision)) => (true, DecisionReason::PodRevision(revision.clone())),
        _ => (
            config.enable_namespaces_by_default,
            DecisionReason::MeshDefault,
        ),
    };
    match annotation {
        Some(value) if default => {
            decided(truthy(value), DecisionReason::PodAnnotation(value.clone()))
        }
        _ => decided(default, reason),
    }
}
