//! Certificate verifiers bound to a [`CertStore`], so a rotated trust bundle applies to the
//! next handshake without rebuilding configurations.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::{CertStore, spiffe_id};

/// Verifies a server (upstream sidecar) certificate the way Istio's `ISTIO_MUTUAL` does: the
/// chain must verify against the store's current trust bundle (webpki, via rustls'
/// `verify_server_cert_signed_by_trust_anchor`), and the leaf's SPIFFE URI SAN must be one of
/// the expected identities. The server name (SNI) is not compared with the certificate.
pub struct SpiffeServerVerifier {
    store: Arc<CertStore>,
    expected: Vec<String>,
}

impl SpiffeServerVerifier {
    /// A verifier accepting any of `expected` (SPIFFE IDs); an empty list accepts any peer
    /// trusted by the bundle.
    pub fn new(store: Arc<CertStore>, expected: Vec<String>) -> Self {
        SpiffeServerVerifier { store, expected }
    }
}

impl fmt::Debug for SpiffeServerVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpiffeServerVerifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

fn schemes(store: &CertStore) -> Vec<SignatureScheme> {
    store
        .provider()
        .signature_verification_algorithms
        .supported_schemes()
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let roots = self.store.current().roots.clone();
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots,
            intermediates,
            now,
            self.store.provider().signature_verification_algorithms.all,
        )?;
        let Some(identity) = spiffe_id(end_entity) else {
            tracing::debug!("upstream certificate has no SPIFFE ID");
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        };
        if !self.expected.is_empty() && !self.expected.contains(&identity) {
            tracing::debug!(%identity, expected = ?self.expected, "upstream identity mismatch");
            return Err(Error::InvalidCertificate(CertificateError::NotValidForName));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.store.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.store.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.store)
    }
}

/// Requires and verifies client certificates against the store's current trust bundle
/// (rustls' `WebPkiClientVerifier`, rebuilt with each loaded bundle). No root hints are sent:
/// sidecars always present their single workload certificate.
pub struct BundleClientVerifier {
    store: Arc<CertStore>,
}

impl BundleClientVerifier {
    /// A verifier reading the bundle from `store` at each handshake.
    pub fn new(store: Arc<CertStore>) -> Self {
        BundleClientVerifier { store }
    }
}

impl fmt::Debug for BundleClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BundleClientVerifier")
            .finish_non_exhaustive()
    }
}

impl ClientCertVerifier for BundleClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.store
            .current()
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.store.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.store.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes(&self.store)
    }
}
