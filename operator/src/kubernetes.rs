//! The Kubernetes mode of `weft-operator`: Pilot fed by reflectors, Citadel under leader
//! election, the admission webhooks and the discovery service, wired as the standalone runner
//! wires its file-based equivalents.
//!
//! - [`stores`]: one reflector per kind; every change rebuilds the [`weft_pilot::ClusterView`]
//!   and hands a new [`Snapshot`] to the [`DiscoveryServer`] (whose debounce batches pushes).
//! - [`own_certs`]: every replica loads the mesh CA and issues its own discovery (SPIFFE) and
//!   webhook serving (DNS) certificates; re-issued at the rotation point or when the CA or
//!   trust domain changes. The trust bundle proxies are verified with is the CA's whole
//!   `root-cert.pem`, so during a root rotation both roots are trusted.
//! - [`leader`]: only the leader runs [`crate::citadel::run`] and patches the webhook
//!   configurations ([`webhook_config`]); every replica serves webhooks and discovery.
//! - [`injection`]: the injector's settings from the `Mesh` and the operator's namespace.
//! - [`status`]: the leader writes `status.conditions` (`Accepted`, `Resolved`, `Reconciled`,
//!   `Ready`) and `validationMessages` of every mesh config object, with Warning Events.

pub mod injection;
pub mod leader;
pub mod mesh_controller;
pub mod own_certs;
pub mod runtime;
pub mod status;
pub mod stores;
pub mod webhook_config;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use runtime::run;

/// The operator's namespace when `--namespace`/`POD_NAMESPACE` is not given.
pub const DEFAULT_NAMESPACE: &str = "weft-system";

/// Where the operator writes its own certificates when `--state-dir` is not given: below
/// `/tmp`, the only writable path of the install's read-only root filesystem.
pub const DEFAULT_STATE_DIR: &str = "/tmp/weft-operator";

/// Settings of the Kubernetes mode (the command line of the install contract).
#[derive(Debug, Clone, PartialEq)]
pub struct KubernetesSettings {
    /// The operator's namespace (`--namespace`, env `POD_NAMESPACE`, default `weft-system`):
    /// where the CA Secrets and the Lease live and the Service `weft-operator` is.
    pub namespace: String,
    /// Elect a leader on the Lease `weft-operator-leader` (`--leader-elect`); without it this
    /// replica always leads.
    pub leader_elect: bool,
    /// This replica's identity in the election (the pod name).
    pub identity: String,
    /// Discovery (mTLS) listen address, Istio's 15012.
    pub discovery_addr: SocketAddr,
    /// Monitoring listen address, Istio's 15014.
    pub monitoring_addr: SocketAddr,
    /// Webhook (HTTPS) listen address, 9443.
    pub webhook_addr: SocketAddr,
    /// Serve the webhooks with `tls.crt`/`tls.key` from this directory (re-read on change;
    /// OLM's layout) instead of a certificate issued from the mesh CA.
    pub webhook_cert_dir: Option<PathBuf>,
    /// Patch the `caBundle` of `weft-sidecar-injector` and `weft-validator` (false under OLM).
    pub manage_webhook_ca_bundle: bool,
    /// `https://host:port` under which the API server reaches the webhooks when the operator
    /// runs outside the cluster: the webhook configurations get `url:` instead of `service:`.
    pub webhook_url: Option<String>,
    /// Where the operator's own certificate files are written.
    pub state_dir: PathBuf,
    /// The proxy image injected when the Mesh sets no `spec.proxy.image` (`--proxy-image`,
    /// env `WEFT_PROXY_IMAGE`); `None` means the injector's default
    /// `ghcr.io/weft-mesh/weft-proxy:latest`.
    pub proxy_image: Option<String>,
}

/// The host part of a webhook URL base (`https://host:9443` → `host`), for the serving
/// certificate's DNS names. `None` when the URL has no host.
pub fn webhook_url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_url_host_strips_scheme_port_and_path() {
        assert_eq!(
            webhook_url_host("https://dev.example:9443"),
            Some("dev.example")
        );
        assert_eq!(
            webhook_url_host("https://dev.example/x"),
            Some("dev.example")
        );
        assert_eq!(webhook_url_host("dev.example:9443"), Some("dev.example"));
        assert_eq!(webhook_url_host("https://:9443"), None);
    }
}
