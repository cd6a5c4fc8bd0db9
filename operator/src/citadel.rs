//! Citadel on Kubernetes: the mesh CA, one workload certificate Secret per ServiceAccount and
//! the trust-bundle ConfigMap in every namespace with mesh workloads.
//!
//! Istio's rules, followed here:
//! - **The CA.** When the Secret `cacerts` exists in the operator's namespace (keys
//!   `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`: Istio's "plug in CA
//!   certificates"), it signs as an intermediate. Otherwise a self-signed root is created once
//!   and kept in the Secret [`CA_SECRET_NAME`] (`weft-ca-secret`, type `istio.io/ca-root`, same
//!   four keys), Istio's `istio-ca-secret` under Weft's name so that installing Weft next to an
//!   Istio control plane never overwrites Istio's root. To keep an Istio mesh's root when
//!   migrating, copy it into `cacerts`.
//! - **The trust bundle.** ConfigMap `istio-ca-root-cert`, key `root-cert.pem`, in every
//!   namespace labelled `istio-injection=enabled` (what the injected proxies mount).
//! - **Workload certificates.** For every ServiceAccount in such a namespace, a
//!   `kubernetes.io/tls` Secret named by the injector's rule
//!   ([`weft_webhook::inject::workload_cert_secret_name`], `weft-workload-cert-<sa>`) with
//!   `tls.crt` (leaf + chain), `tls.key` and `ca.crt` (trust bundle), for
//!   `spiffe://<trust domain>/ns/<ns>/sa/<sa>`, owned by the ServiceAccount so that it is
//!   garbage-collected with it. It is re-issued at the rotation point
//!   ([`weft_identity::RotationPolicy`], Istio's `SECRET_GRACE_PERIOD_RATIO`) or when missing,
//!   malformed, signed by another CA or for another identity; the reconcile is requeued at the
//!   exact rotation time.
//!
//! Layout: [`plan`] holds the pure decisions (no client), [`controller`] the kube-runtime
//! controllers that read the cluster, call the plan and write with server-side apply under the
//! field manager [`FIELD_MANAGER`]. Private keys are never logged: the plan's `Debug` output
//! names Secrets but never prints their data.

pub mod controller;
pub mod plan;

pub use controller::{Context, run};
pub use plan::{PlanError, SecretAction, SecretPlan, SecretReason};

use weft_crds::mesh::MeshSpec;

/// The field manager of every server-side apply made by the operator.
pub const FIELD_MANAGER: &str = "weft-operator";

/// Istio's plug-in CA Secret, read from the operator's namespace.
pub const PLUGIN_CA_SECRET_NAME: &str = "cacerts";

/// The Secret holding the self-signed root when there is no `cacerts` (Istio: `istio-ca-secret`).
pub const CA_SECRET_NAME: &str = "weft-ca-secret";

/// The type of [`CA_SECRET_NAME`] (Istio's `istio.io/ca-root`).
pub const CA_SECRET_TYPE: &str = "istio.io/ca-root";

/// The trust-bundle ConfigMap (Istio's `istio-ca-root-cert`), shared with the injector.
pub const ROOT_CERT_CONFIGMAP: &str = weft_webhook::inject::CA_ROOT_CERT_CONFIGMAP;

/// The namespace label selecting namespaces with mesh workloads (Istio's `istio-injection`).
pub const INJECTION_LABEL: &str = "istio-injection";

/// The value of [`INJECTION_LABEL`] that enables the mesh in a namespace.
pub const INJECTION_ENABLED: &str = "enabled";

/// The Secret type of workload certificates (Kubernetes' `kubernetes.io/tls`).
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// Keys of a `kubernetes.io/tls` Secret (Kubernetes' `tls.crt`, `tls.key`, and cert-manager's
/// `ca.crt` for the trust bundle).
pub mod tls_keys {
    /// The leaf certificate followed by its chain, PEM.
    pub const CERT: &str = "tls.crt";
    /// The leaf's private key, PKCS#8 PEM.
    pub const KEY: &str = "tls.key";
    /// The trust bundle, PEM.
    pub const CA: &str = "ca.crt";
}

/// Label marking the objects this module writes, so that the controllers watch only those.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// Label naming what a Secret written here holds.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";

/// [`COMPONENT_LABEL`] value of workload certificate Secrets.
pub const WORKLOAD_CERT_COMPONENT: &str = "workload-certificate";

/// Settings of the Kubernetes Citadel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CitadelSettings {
    /// The operator's namespace, where `cacerts` is read and [`CA_SECRET_NAME`] is kept
    /// (Istio: istiod's namespace, `istio-system`).
    pub namespace: String,
    /// The mesh settings: trust domain, workload and root certificate lifetimes, rotation
    /// fraction (the `Mesh` resource's spec).
    pub mesh: MeshSpec,
}

/// Errors of the Kubernetes Citadel. Messages name the object and never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CitadelError {
    /// A call to the Kubernetes API failed.
    #[error("{verb} {kind} {namespace}/{name}: {source}")]
    Kube {
        /// The verb: `get`, `create`, `apply`.
        verb: &'static str,
        /// The kind of the object.
        kind: &'static str,
        /// Its namespace (empty for cluster-scoped objects).
        namespace: String,
        /// Its name.
        name: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// The plan refused the object (invalid name, bad CA Secret, signing failure).
    #[error(transparent)]
    Plan(#[from] PlanError),
}

impl CitadelError {
    /// Whether retrying with back-off may succeed: API errors other than 400 Bad Request and
    /// 422 Unprocessable Entity (the request itself is wrong) are transient — connection
    /// failures, timeouts, 403 (RBAC may be fixed), 409, 429, 5xx. Plan errors are permanent:
    /// they need a changed object or operator action.
    pub fn is_transient(&self) -> bool {
        match self {
            CitadelError::Kube {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 422),
            CitadelError::Kube { .. } => true,
            CitadelError::Plan(_) => false,
        }
    }
}
