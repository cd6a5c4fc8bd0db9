//! Weft's install manifests, generated from one place.
//!
//! - [`rbac`]: the table of every API permission `weft-operator` uses, rendered as the
//!   ClusterRole and Role in `config/rbac/role.yaml` and as the ClusterServiceVersion's
//!   `clusterPermissions` and `permissions`.
//! - [`webhooks`]: the MutatingWebhookConfiguration `weft-sidecar-injector` (Istio's
//!   `istio-sidecar-injector` layout) and the ValidatingWebhookConfiguration `weft-validator`
//!   in `config/webhook/manifests.yaml`, and their OLM `webhookdefinitions`.
//! - [`bundle`]: the OLM bundle (`bundle/manifests`, `bundle/metadata/annotations.yaml`,
//!   `bundle.Dockerfile`) built from `config/` and the two tables above.
//! - [`check`]: OLM's rules for a bundle (required CSV fields, owned CRDs against the CRD
//!   files, webhook deployments and ports, RBAC, `alm-examples`, annotations and labels).
//! - [`generate`]: what `weft-bundle` writes, and its drift check.
//!
//! Everything here is pure: files are read and written only by [`generate`] and the binary.

#![warn(missing_docs)]

pub mod bundle;
pub mod check;
pub mod generate;
pub mod rbac;
pub mod webhooks;

/// The namespace `weft-operator` is installed in (Istio: `istio-system`).
pub const NAMESPACE: &str = "weft-system";

/// The name of the operator's Deployment, ServiceAccount, Service, ClusterRole and Role.
pub const OPERATOR_NAME: &str = "weft-operator";

/// The OLM package name (`operators.operatorframework.io.bundle.package.v1`).
pub const PACKAGE: &str = "weft-operator";

/// The OLM channel the bundle is published in, also the default channel.
pub const CHANNEL: &str = "alpha";

/// The operator's version, the workspace version (`spec.version` of the CSV).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The operator image without a tag; the bundle pins it to `v<VERSION>`.
pub const OPERATOR_IMAGE: &str = "ghcr.io/weft-mesh/weft-operator";

/// The operator's webhook server port (HTTPS: `/inject`, `/validate`), in the container.
pub const WEBHOOK_PORT: i32 = 9443;

/// The discovery port (Istio's secure xDS port 15012).
pub const DISCOVERY_PORT: i32 = 15012;

/// The monitoring port (`/metrics`, `/healthz`, `/readyz`; Istio's 15014).
pub const MONITORING_PORT: i32 = 15014;

/// Where OLM mounts the webhook serving certificate (`tls.crt`, `tls.key`) in the operator's
/// container: controller-runtime's default, which OLM writes for every webhook deployment.
pub const OLM_WEBHOOK_CERT_DIR: &str = "/tmp/k8s-webhook-server/serving-certs";
