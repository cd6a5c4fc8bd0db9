//! The seam between the request path and the workload's mTLS material: the request path asks
//! for rustls configurations and never touches certificate files itself.

use std::sync::Arc;

use crate::tls::{CertStore, SERVER_ALPN, TlsError};

/// Produces the rustls configurations for mesh mTLS (Istio `ISTIO_MUTUAL`).
pub trait MeshTls: Send + Sync {
    /// The client configuration for connecting to a peer whose SPIFFE ID must be one of
    /// `expected_identities` (empty: any mesh identity), offering the ALPN ids in `alpn`.
    ///
    /// Errors: the TLS layer's error when the configuration cannot be built.
    fn client_config(
        &self,
        expected_identities: &[String],
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError>;

    /// The server configuration for the inbound listener (client certificate required).
    ///
    /// Errors: the TLS layer's error when the configuration cannot be built.
    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError>;
}

/// [`MeshTls`] backed by the workload certificates in a [`CertStore`] (rotated on disk).
pub struct CertStoreTls {
    store: Arc<CertStore>,
}

impl CertStoreTls {
    /// Wraps `store`.
    pub fn new(store: Arc<CertStore>) -> Self {
        Self { store }
    }
}

impl MeshTls for CertStoreTls {
    fn client_config(
        &self,
        expected_identities: &[String],
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        crate::tls::client_config(&self.store, expected_identities, alpn).map(Arc::new)
    }

    fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        crate::tls::server_config(&self.store, &SERVER_ALPN).map(Arc::new)
    }
}
