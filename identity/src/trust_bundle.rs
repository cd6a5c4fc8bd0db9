//! The set of root certificates workloads trust, and chain verification against it.
//!
//! During a root rotation the bundle holds the new root and the retired one(s), so certificates
//! issued under either verify until every workload has been re-issued (Istio's plug-in CA rotation:
//! `root-cert.pem` carries both roots for the overlap). Chains are verified by checking every
//! signature with x509-parser (`verify` feature, ring) and the CA flag of every issuer; names are
//! never trusted on their own.

use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;

use crate::pem::{self, PemError};
use crate::x509;

/// Roots to trust, as DER, without duplicates, in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustBundle {
    roots: Vec<Vec<u8>>,
}

/// Why roots could not be added to a [`TrustBundle`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrustBundleError {
    /// The PEM text could not be read.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// A certificate is not a CA (basicConstraints `CA:TRUE` is missing), so it cannot be a root.
    #[error(
        "trust bundle: certificate {index} ({subject}) is not a CA certificate (basicConstraints CA:TRUE missing; RFC 5280 §4.2.1.9)"
    )]
    NotACa {
        /// Zero-based index of the certificate in the input.
        index: usize,
        /// Its subject, for the operator.
        subject: String,
    },
}

/// Why a certificate chain does not verify against a [`TrustBundle`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The chain text could not be read.
    #[error(transparent)]
    Pem(#[from] PemError),
    /// The chain holds no certificate.
    #[error("certificate chain is empty")]
    Empty,
    /// The bundle holds no root.
    #[error("trust bundle is empty; no chain can verify")]
    EmptyBundle,
    /// A certificate in the chain is outside its validity period at the time checked.
    #[error(
        "certificate {index} ({subject}) is not valid at the time checked (notBefore {not_before}, notAfter {not_after}, Unix seconds)"
    )]
    OutsideValidity {
        /// Zero-based index in the chain (0 is the leaf).
        index: usize,
        /// Its subject.
        subject: String,
        /// `notBefore`, Unix seconds.
        not_before: i64,
        /// `notAfter`, Unix seconds.
        not_after: i64,
    },
    /// The certificate after `index` in the chain did not sign it, or is not a CA.
    #[error(
        "certificate {index} ({subject}) is not signed by the next certificate in the chain ({reason})"
    )]
    BrokenLink {
        /// Zero-based index in the chain of the certificate whose issuer is wrong.
        index: usize,
        /// Its subject.
        subject: String,
        /// What failed: the signature, or the next certificate is not a CA.
        reason: String,
    },
    /// No root in the bundle signed the last certificate of the chain.
    #[error(
        "certificate {index} ({subject}, issuer {issuer}) is not signed by any root in the trust bundle"
    )]
    Untrusted {
        /// Zero-based index of the topmost certificate reached.
        index: usize,
        /// Its subject.
        subject: String,
        /// Its issuer name (for the operator; not used for the decision).
        issuer: String,
    },
    /// A certificate could not be re-parsed (should not happen after PEM parsing).
    #[error("certificate {index} is not valid X.509 ({reason})")]
    InvalidCertificate {
        /// Zero-based index in the chain.
        index: usize,
        /// What the parser reported.
        reason: String,
    },
}

/// The result of a successful [`TrustBundle::verify_chain`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedChain {
    /// DER of the bundle root the chain verified to.
    pub root_der: Vec<u8>,
    /// How many certificates of the chain were used, leaf included (the rest, e.g. a copy of the
    /// root at the end of Istio's `cert-chain.pem`, was not needed).
    pub certificates_used: usize,
    /// DER of the certificate whose key signed the leaf (the root itself, or `chain[1]`).
    pub leaf_signer_der: Vec<u8>,
}

impl VerifiedChain {
    /// Whether the leaf was signed by the key of certificate `issuer_der` (compared by public key,
    /// so a re-issued copy of the same CA certificate counts as the same signer).
    pub fn leaf_signed_by(&self, issuer_der: &[u8]) -> bool {
        x509::same_public_key(&self.leaf_signer_der, issuer_der)
    }
}

/// Whether a chain was issued by the CA signing today, or only verifies through a retired root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainStatus {
    /// The leaf is signed by the current signing certificate and the chain verifies.
    IssuedByCurrentCa,
    /// The chain verifies to a root in the bundle, but the leaf was not signed by the current
    /// signing certificate: it is still trusted during the overlap, and must be re-issued.
    TrustedByRetiredCa,
}

impl ChainStatus {
    /// `true` when the certificate must be re-issued by the current CA.
    pub fn needs_reissue(&self) -> bool {
        matches!(self, ChainStatus::TrustedByRetiredCa)
    }
}

/// What a certificate is checked against: the roots to trust and, when known, the certificate
/// currently signing workload certificates (the CA's own certificate).
///
/// Implemented by [`TrustBundle`] (no current signer known: every trusted chain is current) and by
/// [`crate::CertificateAuthority`].
pub trait TrustSource {
    /// The roots a chain must verify to.
    fn trust_bundle(&self) -> &TrustBundle;
    /// DER of the certificate signing workload certificates now, if known.
    fn current_issuer_der(&self) -> Option<&[u8]>;
}

impl TrustSource for TrustBundle {
    fn trust_bundle(&self) -> &TrustBundle {
        self
    }

    fn current_issuer_der(&self) -> Option<&[u8]> {
        None
    }
}

impl TrustBundle {
    /// An empty bundle.
    pub fn new() -> Self {
        TrustBundle::default()
    }

    /// Reads a PEM concatenation of roots (e.g. Istio's `root-cert.pem` or the `ca.crt` of a
    /// ConfigMap), dropping duplicates. Text without blocks gives an empty bundle.
    ///
    /// Errors: [`TrustBundleError::Pem`], [`TrustBundleError::NotACa`].
    pub fn from_pem(text: &str) -> Result<Self, TrustBundleError> {
        let mut bundle = TrustBundle::new();
        bundle.add_pem(text)?;
        Ok(bundle)
    }

    /// Adds every root in `text` that is not already present; returns how many were new.
    ///
    /// Errors: as [`TrustBundle::from_pem`]; on error nothing is added.
    pub fn add_pem(&mut self, text: &str) -> Result<usize, TrustBundleError> {
        let certs = pem::parse_certificates(text, "trust bundle")?;
        for (index, der) in certs.iter().enumerate() {
            let cert = x509::parse(der).map_err(|reason| PemError::InvalidCertificate {
                field: "trust bundle",
                index,
                reason,
            })?;
            if !cert.is_ca() {
                return Err(TrustBundleError::NotACa {
                    index,
                    subject: cert.subject().to_string(),
                });
            }
        }
        Ok(certs
            .into_iter()
            .map(|der| self.insert(der))
            .filter(|added| *added)
            .count())
    }

    /// Adds the roots of `other` not already present; returns how many were new.
    pub fn merge(&mut self, other: &TrustBundle) -> usize {
        other
            .roots
            .iter()
            .filter(|der| self.insert(der.to_vec()))
            .count()
    }

    /// Removes the root with this DER; returns whether it was present.
    pub fn remove(&mut self, der: &[u8]) -> bool {
        let before = self.roots.len();
        self.roots.retain(|root| root != der);
        self.roots.len() != before
    }

    /// Keeps only `der` (e.g. once every workload carries a certificate from the new root).
    /// Returns how many roots were removed.
    pub fn retain_only(&mut self, der: &[u8]) -> usize {
        let before = self.roots.len();
        self.roots.retain(|root| root == der);
        before - self.roots.len()
    }

    /// Whether the bundle holds the root with this DER.
    pub fn contains(&self, der: &[u8]) -> bool {
        self.roots.iter().any(|root| root == der)
    }

    /// Number of roots.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether the bundle holds no root.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The roots as DER, in insertion order.
    pub fn roots(&self) -> impl Iterator<Item = &[u8]> {
        self.roots.iter().map(Vec::as_slice)
    }

    /// The bundle as a PEM concatenation (one `CERTIFICATE` block per root, insertion order).
    pub fn to_pem(&self) -> String {
        self.roots
            .iter()
            .map(|der| pem::encode(pem::CERTIFICATE_LABEL, der))
            .collect()
    }

    /// Verifies a PEM chain (leaf first, then intermediates, optionally the root) at time `at`.
    ///
    /// Errors: see [`TrustBundle::verify_chain`], plus [`ChainError::Pem`].
    pub fn verify_chain_pem(
        &self,
        chain_pem: &str,
        at: SystemTime,
    ) -> Result<VerifiedChain, ChainError> {
        let chain = pem::parse_certificates(chain_pem, "certificate chain")?;
        self.verify_chain(&chain, at)
    }

    /// Verifies a DER chain (leaf first) at time `at`: starting from the leaf, each certificate
    /// must be signed by a bundle root (done) or by the next certificate of the chain, which must
    /// be a CA; every certificate used, and the root, must be within its validity period at `at`.
    /// Not checked here (the TLS stack, rustls-webpki, does): pathLenConstraint, name
    /// constraints, extended key usage and revocation.
    ///
    /// Errors: [`ChainError::Empty`], [`ChainError::EmptyBundle`], [`ChainError::OutsideValidity`],
    /// [`ChainError::BrokenLink`], [`ChainError::Untrusted`], [`ChainError::InvalidCertificate`].
    pub fn verify_chain(
        &self,
        chain: &[Vec<u8>],
        at: SystemTime,
    ) -> Result<VerifiedChain, ChainError> {
        if chain.is_empty() {
            return Err(ChainError::Empty);
        }
        if self.roots.is_empty() {
            return Err(ChainError::EmptyBundle);
        }
        let at = x509::unix_seconds(at);
        let roots = self
            .roots
            .iter()
            .map(|der| x509::parse(der).map(|cert| (der, cert)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| ChainError::InvalidCertificate { index: 0, reason })?;
        let parsed = chain
            .iter()
            .enumerate()
            .map(|(index, der)| {
                x509::parse(der).map_err(|reason| ChainError::InvalidCertificate { index, reason })
            })
            .collect::<Result<Vec<_>, _>>()?;

        for (index, cert) in parsed.iter().enumerate() {
            check_validity(index, cert, at)?;
            if let Some((root_der, _)) = roots.iter().find(|(_, root)| {
                x509::within_validity(root, at)
                    && cert.verify_signature(Some(root.public_key())).is_ok()
            }) {
                let leaf_signer_der = if index == 0 { root_der } else { &chain[1] };
                return Ok(VerifiedChain {
                    root_der: root_der.to_vec(),
                    certificates_used: index + 1,
                    leaf_signer_der: leaf_signer_der.to_vec(),
                });
            }
            let Some(next) = parsed.get(index + 1) else {
                return Err(ChainError::Untrusted {
                    index,
                    subject: cert.subject().to_string(),
                    issuer: cert.issuer().to_string(),
                });
            };
            let broken = |reason: String| ChainError::BrokenLink {
                index,
                subject: cert.subject().to_string(),
                reason,
            };
            if !next.is_ca() {
                return Err(broken(format!(
                    "certificate {} ({}) is not a CA",
                    index + 1,
                    next.subject()
                )));
            }
            cert.verify_signature(Some(next.public_key()))
                .map_err(|e| broken(format!("signature check failed: {e}")))?;
        }
        // The loop either returns a verified chain or an error on its last certificate.
        Err(ChainError::Empty)
    }

    /// Classifies a chain that should have been issued by the CA whose certificate is
    /// `current_issuer_der`: [`ChainStatus::IssuedByCurrentCa`] when its leaf is signed by that
    /// certificate, [`ChainStatus::TrustedByRetiredCa`] when it verifies only through another
    /// path (a retired root or a previous intermediate still in the bundle).
    ///
    /// Errors: as [`TrustBundle::verify_chain_pem`] when the chain is not trusted at all.
    pub fn chain_status(
        &self,
        chain_pem: &str,
        current_issuer_der: &[u8],
        at: SystemTime,
    ) -> Result<ChainStatus, ChainError> {
        let verified = self.verify_chain_pem(chain_pem, at)?;
        Ok(if verified.leaf_signed_by(current_issuer_der) {
            ChainStatus::IssuedByCurrentCa
        } else {
            ChainStatus::TrustedByRetiredCa
        })
    }

    fn insert(&mut self, der: Vec<u8>) -> bool {
        if self.contains(&der) {
            return false;
        }
        self.roots.push(der);
        true
    }
}

fn check_validity(index: usize, cert: &X509Certificate<'_>, at: i64) -> Result<(), ChainError> {
    if x509::within_validity(cert, at) {
        return Ok(());
    }
    Err(ChainError::OutsideValidity {
        index,
        subject: cert.subject().to_string(),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

#[cfg(test)]
mod tests;
