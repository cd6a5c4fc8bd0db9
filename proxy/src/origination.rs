//! TLS origination to upstreams outside the mesh (Istio DestinationRule `trafficPolicy.tls`
//! modes `SIMPLE` and `MUTUAL`, e.g. Istio's "Egress TLS Origination" task): the application
//! speaks plaintext to the sidecar, which opens TLS to the endpoint, verifying the server
//! against the given CA bundle (or the system bundle) and the SNI host name.
//!
//! `subjectAltNames` are not checked beyond the host-name verification of the SNI (rustls
//! verifies the name the connection is made to).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Where the system CA bundle is looked for when a cluster gives no `ca_certificates`
/// (Debian/Ubuntu/Alpine, RHEL/Fedora, then BSD-style paths).
pub const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// Errors building an origination client configuration; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum OriginationError {
    /// No CA bundle was given and none of [`SYSTEM_CA_BUNDLES`] exists.
    #[error("no CA bundle: set ca_certificates or install one of {SYSTEM_CA_BUNDLES:?}")]
    NoBundle,
    /// A PEM file could not be read or has no usable item.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// rustls rejected the configuration (e.g. the key does not match the certificate).
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn pem_error(path: &str, reason: impl ToString) -> OriginationError {
    OriginationError::Pem {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// A client configuration trusting the CAs in `ca_certificates` (PEM; the system bundle when
/// `None`), presenting `client` (`(certificate chain PEM, private key PEM)` files) for
/// `MUTUAL`, offering the ALPN ids `alpn`. TLS 1.2 and 1.3 with rustls' ring provider.
///
/// Errors: [`OriginationError`] naming the unreadable or unusable file.
pub fn client_config(
    ca_certificates: Option<&str>,
    client: Option<(&str, &str)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, OriginationError> {
    let bundle = match ca_certificates {
        Some(path) => path,
        None => SYSTEM_CA_BUNDLES
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .ok_or(OriginationError::NoBundle)?,
    };
    let mut roots = RootCertStore::empty();
    let certificates = CertificateDer::pem_file_iter(bundle)
        .map_err(|error| pem_error(bundle, error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_error(bundle, error))?;
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(pem_error(bundle, "no usable CA certificate"));
    }
    let builder = ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((chain_path, key_path)) => {
            let chain = CertificateDer::pem_file_iter(chain_path)
                .map_err(|error| pem_error(chain_path, error))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|error| pem_error(chain_path, error))?;
            if chain.is_empty() {
                return Err(pem_error(chain_path, "no certificate"));
            }
            let key = PrivateKeyDer::from_pem_file(key_path)
                .map_err(|error| pem_error(key_path, error))?;
            builder.with_client_auth_cert(chain, key)?
        }
    };
    config.alpn_protocols = alpn.iter().map(|id| id.to_vec()).collect();
    Ok(Arc::new(config))
}
