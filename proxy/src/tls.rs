//! Mutual TLS between sidecars: workload certificates loaded from files and rotated without
//! dropping connections, SPIFFE-ID-based peer verification, and protocol sniffing for
//! PERMISSIVE mode.
//!
//! - [`CertStore`] loads the workload chain, key and trust bundle (Istio's `cert-chain.pem`,
//!   `key.pem`, `root-cert.pem`, or Kubernetes' `tls.crt`, `tls.key`, `ca.crt`), re-reads them
//!   when they change, and serves the current [`rustls::sign::CertifiedKey`] to every new
//!   handshake (it implements both `ResolvesServerCert` and `ResolvesClientCert`). Existing
//!   connections keep the keys they negotiated.
//! - [`client_config`] builds the outbound (upstream) side: the peer's chain must verify against
//!   the trust bundle and its URI SAN must be one of the expected SPIFFE IDs. Host names are not
//!   checked, as in Istio (`ISTIO_MUTUAL` verifies `subjectAltNames`, not the SNI).
//! - [`server_config`] builds the inbound side: a client certificate is required and verified
//!   against the bundle; [`peer_identity`] returns the client's SPIFFE ID afterwards (Istio's
//!   `source.principal`).
//! - [`sniff::detect`] classifies the first bytes of a connection (TLS ClientHello with its SNI,
//!   HTTP/1, HTTP/2 preface) for PERMISSIVE listeners.
//!
//! Only TLS 1.3 is negotiated, with rustls' ring provider. Session resumption is disabled on
//! both sides so every connection presents and verifies certificates (and sees rotated ones).
//!
//! ALPN: the client offers what the payload is, the server accepts in the order
//! [`SERVER_ALPN`]: `h2` and `http/1.1` for HTTP traffic (so the inbound side knows the codec
//! without sniffing inside TLS) and `istio` for opaque TCP between sidecars. Istio's own sidecars
//! use `istio-peer-exchange`/`istio-h2`/`istio-http/1.1` to drive Envoy filters; Weft has no
//! metadata-exchange filter, so it uses the plain protocol names plus `istio` for TCP.

pub mod sniff;
mod store;
mod verify;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;

pub use store::{CertPaths, CertSet, CertStore};
pub use verify::{BundleClientVerifier, SpiffeServerVerifier};

/// ALPN for opaque TCP between sidecars over mTLS (Istio's `istio` protocol id).
pub const ALPN_ISTIO: &[u8] = b"istio";
/// ALPN for HTTP/2.
pub const ALPN_H2: &[u8] = b"h2";
/// ALPN for HTTP/1.1.
pub const ALPN_HTTP11: &[u8] = b"http/1.1";
/// What the inbound (server) side accepts, in order of preference.
pub const SERVER_ALPN: [&[u8]; 3] = [ALPN_H2, ALPN_HTTP11, ALPN_ISTIO];

/// Errors loading certificates or building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file has no (valid) PEM `CERTIFICATE` block.
    #[error("{path}: no PEM certificate (expected the workload chain, leaf first, or a bundle)")]
    NoCertificates {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The key file has no (valid) PEM private key.
    #[error("{path}: no PEM private key (PKCS#8, PKCS#1 or SEC1 expected)")]
    NoKey {
        /// The file.
        path: std::path::PathBuf,
    },
    /// No trust anchor in the bundle could be used.
    #[error("{path}: trust bundle unusable: {reason}")]
    Bundle {
        /// The bundle file.
        path: std::path::PathBuf,
        /// Why (webpki's message).
        reason: String,
    },
    /// The private key is unsupported or does not match the leaf certificate (e.g. a rotation
    /// caught half-written).
    #[error("workload key rejected: {0} (key and cert-chain must be from the same issuance)")]
    Key(rustls::Error),
    /// The leaf certificate carries no `spiffe://` URI SAN.
    #[error("workload certificate has no spiffe:// URI SAN (not an Istio/Weft workload cert)")]
    NoSpiffeId,
    /// The leaf does not chain to the bundle (e.g. new bundle, old cert).
    #[error("workload certificate does not verify against the trust bundle: {0}")]
    Untrusted(rustls::Error),
    /// Neither of the supported file layouts exists in the directory.
    #[error(
        "{dir}: no certificate files (expected cert-chain.pem, key.pem, root-cert.pem or tls.crt, tls.key, ca.crt)"
    )]
    NoLayout {
        /// The directory searched.
        dir: std::path::PathBuf,
    },
    /// rustls rejected the configuration (e.g. TLS 1.3 unsupported by the provider).
    #[error("building the TLS configuration: {0}")]
    Config(rustls::Error),
    /// The client-certificate verifier could not be built from the bundle.
    #[error("building the client certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider used everywhere in Weft: rustls' ring provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The first `spiffe://` URI SAN of a DER certificate, if any (Istio's peer principal, e.g.
/// `spiffe://cluster.local/ns/default/sa/web`). `None` for unparsable certificates too.
pub fn spiffe_id(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_owned()),
        _ => None,
    })
}

/// The peer's SPIFFE ID after a completed handshake: the client's on a server connection
/// (Istio's `source.principal`), the server's on a client connection. `None` before the
/// handshake, when no certificate was presented, or when it has no SPIFFE URI SAN.
///
/// Takes any connection (`&ServerConnection` and `&ClientConnection` coerce to it).
pub fn peer_identity(conn: &rustls::CommonState) -> Option<String> {
    conn.peer_certificates()?.first().and_then(spiffe_id)
}

/// The outbound (client) configuration for a connection to a peer that must be one of
/// `expected_identities` (SPIFFE IDs, from the DestinationRule's `subjectAltNames` or the
/// destination's service accounts). An empty list accepts any peer whose chain verifies against
/// the bundle (Istio's behaviour when no SAN is known).
///
/// Presents the current workload certificate of `store`; verifies with the store's current
/// bundle; offers the ALPN ids in `alpn` (e.g. `[ALPN_H2]`). TLS 1.3 only, no resumption.
/// Pass any syntactically valid name to the connector (Istio uses the SNI
/// `outbound_.PORT_._.HOST`): it is sent as SNI and otherwise ignored.
///
/// Errors: [`TlsError::Config`] if the provider cannot do TLS 1.3.
pub fn client_config(
    store: &Arc<CertStore>,
    expected_identities: &[String],
    alpn: &[&[u8]],
) -> Result<ClientConfig, TlsError> {
    let provider = store.provider();
    let verifier = SpiffeServerVerifier::new(store.clone(), expected_identities.to_vec());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(store.clone());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The inbound (server) configuration: presents the store's current certificate, requires a
/// client certificate that verifies against the store's current bundle (STRICT and the TLS half
/// of PERMISSIVE), and accepts the ALPN ids in `alpn` in that order of preference (usually
/// [`SERVER_ALPN`]). TLS 1.3 only, no session tickets or cache.
///
/// Errors: [`TlsError::Config`] if the provider cannot do TLS 1.3.
pub fn server_config(store: &Arc<CertStore>, alpn: &[&[u8]]) -> Result<ServerConfig, TlsError> {
    let provider = store.provider();
    let verifier = BundleClientVerifier::new(store.clone());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(store.clone());
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}
