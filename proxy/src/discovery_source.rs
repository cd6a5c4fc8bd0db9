//! The discovery stream as a [`ConfigSource`]: configs pushed by `weft-operator` over mutual
//! TLS are applied to the [`ConfigStore`] and ACKed; a config that fails to apply is NACKed with
//! the reason and the previous one keeps serving; when the control plane is away the proxy keeps
//! its last config and reconnects with back-off (Istio's sidecar behaviour toward istiod).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use weft_discovery::client::{ClientSettings, run as run_client};
use weft_discovery::{Hello, ProxyType};
use weft_proxy_config::ProxyConfig;

use crate::config::{ConfigSource, ConfigStore};
use crate::tls::{CertStore, TlsError, client_config};

/// The control plane's service account: its SPIFFE ID is
/// `spiffe://<trust domain>/ns/<control-plane namespace>/sa/weft-operator`.
pub const CONTROL_PLANE_SERVICE_ACCOUNT: &str = "weft-operator";

/// Streams configs from the discovery service.
pub struct DiscoverySource {
    settings: ClientSettings,
}

impl DiscoverySource {
    /// A source connecting to `address` (`host:port`) with the workload certificate of `certs`,
    /// accepting only a server whose SPIFFE ID is the control plane's in `trust_domain` and
    /// `control_plane_namespace`, and introducing itself as workload `namespace`/`workload`.
    ///
    /// Errors: [`TlsError`] when the TLS client configuration cannot be built.
    pub fn new(
        address: String,
        certs: &Arc<CertStore>,
        trust_domain: &str,
        control_plane_namespace: &str,
        namespace: String,
        workload: String,
    ) -> Result<Self, TlsError> {
        let expected = format!(
            "spiffe://{trust_domain}/ns/{control_plane_namespace}/sa/{CONTROL_PLANE_SERVICE_ACCOUNT}"
        );
        let tls = client_config(certs, &[expected], &[b"h2"])?;
        Ok(Self {
            settings: ClientSettings {
                address,
                tls: Arc::new(tls),
                hello: Hello {
                    namespace,
                    workload,
                    proxy_version: env!("CARGO_PKG_VERSION").to_string(),
                    current_version: String::new(),
                    proxy_type: ProxyType::Sidecar,
                    incremental: true,
                },
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(10),
            },
        })
    }
}

impl DiscoverySource {
    /// Introduces the proxy as `proxy_type` in its Hello (the constructor says
    /// [`ProxyType::Sidecar`]; `weft-proxy gateway` says [`ProxyType::Router`], Istio's node type
    /// `router`, so the control plane builds a gateway config). Returns the source.
    pub fn with_proxy_type(mut self, proxy_type: ProxyType) -> Self {
        self.settings.hello.proxy_type = proxy_type;
        self
    }
}

impl ConfigSource for DiscoverySource {
    fn run(
        self: Box<Self>,
        store: Arc<ConfigStore>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let apply = move |config: ProxyConfig| match store.apply(config) {
                Ok(version) => {
                    tracing::info!(%version, "applied config from the discovery service");
                    Ok(())
                }
                Err(error) => {
                    tracing::warn!(%error, "refused config from the discovery service; keeping the previous one");
                    Err(error.to_string())
                }
            };
            tokio::select! {
                _ = run_client(self.settings, apply) => {}
                _ = shutdown.cancelled() => {}
            }
        })
    }
}
