//! The mesh certificate authority: Citadel's signing logic without any transport.
//!
//! Two ways to get a CA, as in Istio:
//! - [`CertificateAuthority::self_signed`]: a fresh ECDSA P-256 root (Istio's `istio-ca-secret`).
//! - [`CertificateAuthority::from_plugin`]: an operator-supplied intermediate (Istio's plug-in CA,
//!   Secret `cacerts` with `ca-cert.pem`, `ca-key.pem`, `root-cert.pem`, `cert-chain.pem`).
//!
//! Workload certificates follow Istio's layout: ECDSA P-256, empty subject, one URI SAN holding the
//! SPIFFE ID, key usage digitalSignature + keyEncipherment, extended key usage serverAuth +
//! clientAuth, `notBefore` one minute in the past for clock skew. Issued chains are the leaf
//! followed by `cert-chain.pem` (empty for a self-signed root).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::clock::Clock;
use crate::key::PrivateKeyPem;
use crate::pem::{self, PemError};
use crate::spiffe::IdentityError;
use crate::trust_bundle::{ChainError, ChainStatus, TrustBundle, TrustBundleError, TrustSource};
use crate::x509;

mod issue;
mod plugin;

/// Default lifetime of a self-signed root: 10 years, Istio's `CITADEL_SELF_SIGNED_CA_CERT_TTL`.
pub const DEFAULT_ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);

/// Default lifetime of a workload certificate: 24 hours, Istio's `DEFAULT_WORKLOAD_CERT_TTL`.
pub const DEFAULT_WORKLOAD_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How far `notBefore` is set in the past to tolerate clock skew between nodes (Istio: 1 minute).
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(60);

/// Keys of Istio's plug-in CA Secret `cacerts`, as used by [`CaPemParts`].
pub mod secret_keys {
    /// The signing (CA) certificate.
    pub const CA_CERT: &str = "ca-cert.pem";
    /// The signing key (PKCS#8).
    pub const CA_KEY: &str = "ca-key.pem";
    /// The roots workloads trust (may hold several during a root rotation).
    pub const ROOT_CERT: &str = "root-cert.pem";
    /// The chain from the CA certificate up to the root, appended to every issued leaf.
    pub const CERT_CHAIN: &str = "cert-chain.pem";
}

/// A certificate authority able to sign workload and serving certificates.
pub struct CertificateAuthority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_cert_der: Vec<u8>,
    ca_cert_pem: String,
    cert_chain_pem: String,
    trust_bundle: TrustBundle,
    not_after: SystemTime,
    clock: Arc<dyn Clock>,
}

/// A freshly issued certificate with its key.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The leaf followed by the CA's `cert-chain.pem` (intermediates, possibly the root), PEM.
    pub cert_chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM; redacted in `Debug`.
    pub private_key_pem: PrivateKeyPem,
    /// `notBefore` written in the certificate (whole seconds).
    pub not_before: SystemTime,
    /// `notAfter` written in the certificate (whole seconds).
    pub not_after: SystemTime,
    /// Serial number, lower-case hex.
    pub serial: String,
}

/// The CA's own material in Istio's plug-in layout, for storing in a Secret or files.
///
/// For a self-signed CA, `ca_cert_pem` is the root, `root_cert_pem` holds that root (plus any
/// retired roots still trusted) and `cert_chain_pem` is empty, as Istio documents for
/// `ca-cert.pem` equal to `root-cert.pem`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaPemParts {
    /// `ca-cert.pem`: the signing certificate.
    pub ca_cert_pem: String,
    /// `ca-key.pem`: the signing key, PKCS#8 PEM (redacted in `Debug`).
    pub ca_key_pem: PrivateKeyPem,
    /// `root-cert.pem`: the trust bundle.
    pub root_cert_pem: String,
    /// `cert-chain.pem`: appended to issued leaves.
    pub cert_chain_pem: String,
}

/// Why a CA could not be built or could not issue. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// PEM input could not be read (the field names which file).
    #[error(transparent)]
    Pem(#[from] PemError),
    /// `root-cert.pem` could not be read as a trust bundle.
    #[error("root-cert.pem: {0}")]
    TrustBundle(#[source] TrustBundleError),
    /// `ca-cert.pem` must hold exactly one certificate.
    #[error("ca-cert.pem: expected exactly one certificate, found {found}")]
    CaCertCount {
        /// How many certificates were found.
        found: usize,
    },
    /// `ca-key.pem` is not a key ring can load (ECDSA P-256/P-384, Ed25519 or RSA in PKCS#8).
    #[error(
        "ca-key.pem: not a supported PKCS#8 private key (ECDSA P-256/P-384, Ed25519 or RSA): {reason}"
    )]
    UnsupportedKey {
        /// What rcgen reported.
        reason: String,
    },
    /// `ca-key.pem` is not the key of `ca-cert.pem`.
    #[error(
        "ca-key.pem does not match the public key in ca-cert.pem ({subject}); check both come from the same CA"
    )]
    KeyMismatch {
        /// Subject of `ca-cert.pem`.
        subject: String,
    },
    /// `ca-cert.pem` cannot sign certificates.
    #[error("ca-cert.pem ({subject}) cannot sign certificates: {rule}")]
    NotACa {
        /// Subject of `ca-cert.pem`.
        subject: String,
        /// The RFC 5280 rule that is not met.
        rule: &'static str,
    },
    /// `cert-chain.pem` does not start with `ca-cert.pem`.
    #[error(
        "cert-chain.pem must start with ca-cert.pem (Istio's plug-in CA layout); its first certificate is {first}"
    )]
    ChainDoesNotStartWithCaCert {
        /// Subject of the first certificate of `cert-chain.pem`.
        first: String,
    },
    /// `ca-cert.pem` + `cert-chain.pem` do not verify to `root-cert.pem`.
    #[error("ca-cert.pem and cert-chain.pem do not verify to root-cert.pem: {0}")]
    ChainDoesNotVerify(#[source] ChainError),
    /// The CA certificate has expired or is not yet valid.
    #[error(
        "the CA certificate is not valid now (notAfter {not_after_unix} Unix seconds); rotate the CA"
    )]
    CaExpired {
        /// `notAfter` of the CA certificate, Unix seconds.
        not_after_unix: i64,
    },
    /// The trust domain of a self-signed root is not valid.
    #[error("cannot create a root for this trust domain: {0}")]
    InvalidTrustDomain(#[source] IdentityError),
    /// The identity to certify is not valid.
    #[error("cannot issue for this identity: {0}")]
    InvalidIdentity(#[from] IdentityError),
    /// A DNS name for a serving certificate is not valid.
    #[error("DNS name {name:?} is not a valid DNS subdomain: {rule}")]
    InvalidDnsName {
        /// The name as given.
        name: String,
        /// The rule that is broken.
        rule: &'static str,
    },
    /// A serving certificate needs at least one DNS name.
    #[error("a serving certificate needs at least one DNS name")]
    NoDnsNames,
    /// The requested lifetime cannot be used.
    #[error("{field} {ttl:?} is invalid: {rule}")]
    InvalidTtl {
        /// Which lifetime (`ttl`, `root ttl`).
        field: &'static str,
        /// The value given.
        ttl: Duration,
        /// The rule that is broken.
        rule: &'static str,
    },
    /// rcgen failed to generate a key or to sign.
    #[error("{step} failed: {source}")]
    Rcgen {
        /// What was being done.
        step: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

impl CertificateAuthority {
    /// Creates a self-signed root CA: ECDSA P-256, basicConstraints `CA:TRUE`, key usage
    /// keyCertSign + cRLSign, subject `O=<trust_domain>` (as Istio's self-signed root), valid from
    /// one minute ago for `ttl` ([`DEFAULT_ROOT_TTL`], 10 years, when `None`).
    ///
    /// Errors: [`CaError::InvalidTrustDomain`], [`CaError::InvalidTtl`] for a
    /// zero or unrepresentable lifetime, [`CaError::Rcgen`].
    pub fn self_signed(
        trust_domain: &str,
        ttl: Option<Duration>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CaError> {
        crate::spiffe::validate_trust_domain(trust_domain).map_err(CaError::InvalidTrustDomain)?;
        let ttl = ttl.unwrap_or(DEFAULT_ROOT_TTL);
        let now = clock.now();
        let (not_before, not_after) = issue::validity_window(now, ttl, None, "root ttl")?;
        let params = issue::root_params(trust_domain, not_before, not_after);
        let key = rcgen::KeyPair::generate().map_err(|source| CaError::Rcgen {
            step: "generating the root key",
            source,
        })?;
        let cert = params.self_signed(&key).map_err(|source| CaError::Rcgen {
            step: "self-signing the root",
            source,
        })?;
        let ca_cert_der = cert.der().to_vec();
        let mut trust_bundle = TrustBundle::new();
        trust_bundle
            .add_pem(&cert.pem())
            .map_err(CaError::TrustBundle)?;
        Ok(CertificateAuthority {
            issuer: rcgen::Issuer::new(params, key),
            ca_cert_pem: cert.pem(),
            ca_cert_der,
            cert_chain_pem: String::new(),
            trust_bundle,
            not_after: x509::system_time(not_after.unix_timestamp()),
            clock,
        })
    }

    /// Loads Istio's plug-in CA layout (Secret `cacerts`): the CA signs as `ca-cert.pem`, issued
    /// chains are the leaf followed by `cert-chain.pem`, and `root-cert.pem` is the trust bundle.
    ///
    /// Checks, in order: `ca-cert.pem` holds one certificate, is a CA (basicConstraints `CA:TRUE`,
    /// keyCertSign when key usage is present) and is valid now; `ca-key.pem` is PKCS#8 and matches
    /// it; `cert-chain.pem` is empty or starts with `ca-cert.pem`; `ca-cert.pem` followed by the
    /// rest of `cert-chain.pem` verifies to a root in `root-cert.pem`. When `cert-chain.pem` is
    /// empty and `ca-cert.pem` is not itself a root, the chain defaults to `ca-cert.pem`.
    /// `ca-key.pem` must be PKCS#8 (`BEGIN PRIVATE KEY`, what OpenSSL 3 and Istio's
    /// `tools/certs` Makefiles write); SEC1/PKCS#1 keys are refused with an `openssl pkcs8` hint
    /// because ring cannot load them.
    ///
    /// Errors: [`CaError::Pem`], [`CaError::TrustBundle`], [`CaError::CaCertCount`],
    /// [`CaError::NotACa`], [`CaError::CaExpired`], [`CaError::UnsupportedKey`],
    /// [`CaError::KeyMismatch`], [`CaError::ChainDoesNotStartWithCaCert`],
    /// [`CaError::ChainDoesNotVerify`].
    pub fn from_plugin(
        ca_cert_pem: &str,
        ca_key_pem: &str,
        root_cert_pem: &str,
        cert_chain_pem: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CaError> {
        plugin::load(
            ca_cert_pem,
            ca_key_pem,
            root_cert_pem,
            cert_chain_pem,
            clock,
        )
    }

    /// Rebuilds a CA from [`CertificateAuthority::to_pem_parts`] output (same checks as
    /// [`CertificateAuthority::from_plugin`]).
    pub fn from_pem_parts(parts: &CaPemParts, clock: Arc<dyn Clock>) -> Result<Self, CaError> {
        Self::from_plugin(
            &parts.ca_cert_pem,
            parts.ca_key_pem.expose_secret(),
            &parts.root_cert_pem,
            &parts.cert_chain_pem,
            clock,
        )
    }

    /// The CA's material in Istio's plug-in layout, for storing in a Secret or in files.
    pub fn to_pem_parts(&self) -> CaPemParts {
        CaPemParts {
            ca_cert_pem: self.ca_cert_pem.clone(),
            ca_key_pem: PrivateKeyPem::new(self.issuer.key().serialize_pem()),
            root_cert_pem: self.trust_bundle.to_pem(),
            cert_chain_pem: self.cert_chain_pem.clone(),
        }
    }

    /// The roots workloads must trust: this CA's root plus any retired roots kept for a rotation.
    pub fn trust_bundle(&self) -> &TrustBundle {
        &self.trust_bundle
    }

    /// [`CertificateAuthority::trust_bundle`] as a PEM concatenation (Istio's `root-cert.pem`,
    /// the `istio-ca-root-cert` ConfigMap's `root-cert.pem`).
    pub fn trust_bundle_pem(&self) -> String {
        self.trust_bundle.to_pem()
    }

    /// Keeps trusting the roots of `retired` alongside this CA's own during a root rotation, so
    /// certificates issued under them still verify until re-issued. Returns how many were new.
    pub fn trust_retired_roots(&mut self, retired: &TrustBundle) -> usize {
        self.trust_bundle.merge(retired)
    }

    /// Stops trusting every root other than the one this CA chains to (the end of a root
    /// rotation, once [`CertificateAuthority::chain_status`] reports every workload as current).
    /// Returns how many roots were dropped.
    pub fn drop_retired_roots(&mut self) -> Result<usize, CaError> {
        let chain = self.signing_chain()?;
        let verified = self
            .trust_bundle
            .verify_chain(&chain, self.clock.now())
            .map_err(CaError::ChainDoesNotVerify)?;
        Ok(self.trust_bundle.retain_only(&verified.root_der))
    }

    /// PEM of the certificate that signs workload certificates (`ca-cert.pem`).
    pub fn ca_cert_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    /// `notAfter` of the CA certificate; issued certificates never outlive it.
    pub fn not_after(&self) -> SystemTime {
        self.not_after
    }

    /// Whether `chain_pem` was issued by this CA's current signing certificate, or only verifies
    /// through a retired root still in the bundle (and must be re-issued).
    ///
    /// Errors: [`ChainError`] when the chain does not verify to the bundle at all.
    pub fn chain_status(&self, chain_pem: &str) -> Result<ChainStatus, ChainError> {
        self.trust_bundle
            .chain_status(chain_pem, &self.ca_cert_der, self.clock.now())
    }

    /// `ca-cert.pem` followed by `cert-chain.pem` without its leading copy of `ca-cert.pem`.
    fn signing_chain(&self) -> Result<Vec<Vec<u8>>, CaError> {
        let mut chain = vec![self.ca_cert_der.clone()];
        chain.extend(
            pem::parse_certificates(&self.cert_chain_pem, secret_keys::CERT_CHAIN)?
                .into_iter()
                .filter(|der| *der != self.ca_cert_der),
        );
        Ok(chain)
    }
}

impl TrustSource for CertificateAuthority {
    fn trust_bundle(&self) -> &TrustBundle {
        &self.trust_bundle
    }

    fn current_issuer_der(&self) -> Option<&[u8]> {
        Some(&self.ca_cert_der)
    }
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = x509::parse(&self.ca_cert_der)
            .map(|cert| cert.subject().to_string())
            .unwrap_or_default();
        f.debug_struct("CertificateAuthority")
            .field("subject", &subject)
            .field("not_after", &self.not_after)
            .field("roots", &self.trust_bundle.len())
            .field("key", &"[redacted]")
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests;
