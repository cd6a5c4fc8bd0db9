//! When a stored workload certificate must be re-issued, and why.
//!
//! Istio's agent rotates a workload certificate once a fixed fraction of its lifetime has passed
//! (`SECRET_GRACE_PERIOD_RATIO`, default 0.5); here the fraction is clamped to `[0.1, 0.9]` so a
//! bad setting can neither rotate continuously nor leave no margin before expiry.

use std::time::{Duration, SystemTime};

use crate::ca::DEFAULT_WORKLOAD_TTL;
use crate::pem;
use crate::spiffe::Identity;
use crate::trust_bundle::TrustSource;
use crate::x509;

/// Default fraction of a certificate's lifetime after which it is re-issued (Istio: 0.5).
pub const DEFAULT_ROTATE_AT_FRACTION: f64 = 0.5;

/// Smallest accepted rotation fraction.
pub const MIN_ROTATE_AT_FRACTION: f64 = 0.1;

/// Largest accepted rotation fraction.
pub const MAX_ROTATE_AT_FRACTION: f64 = 0.9;

/// How workload certificates are renewed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RotationPolicy {
    /// Lifetime of newly issued workload certificates (Istio's `DEFAULT_WORKLOAD_CERT_TTL`, 24 h).
    pub workload_ttl: Duration,
    rotate_at_fraction: f64,
}

/// The verdict on a stored certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Keep it; check again at `next_check`, its rotation point.
    Valid {
        /// `notBefore + fraction × (notAfter − notBefore)`.
        next_check: SystemTime,
    },
    /// Issue a new certificate now.
    Reissue(Reason),
}

/// Why a certificate must be re-issued. Messages never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// The chain or the key is absent or blank.
    #[error("no certificate or key stored")]
    Missing,
    /// The chain or the key could not be read.
    #[error("stored certificate or key is malformed: {0}")]
    Malformed(String),
    /// `notAfter` has passed.
    #[error("certificate expired")]
    Expired,
    /// `notBefore` is in the future (the CA's or this node's clock is wrong).
    #[error("certificate is not valid yet")]
    NotYetValid,
    /// The rotation point (`notBefore + fraction × lifetime`) has passed.
    #[error("certificate is past its rotation point")]
    PastRotationPoint,
    /// The URI SANs are not exactly the expected SPIFFE ID.
    #[error("certificate identity {found:?} is not {expected}")]
    WrongIdentity {
        /// The URI SANs found in the leaf.
        found: Vec<String>,
        /// The identity the workload should have.
        expected: Identity,
    },
    /// The chain does not verify to any root in the trust bundle.
    #[error("certificate chain does not verify to the trust bundle: {0}")]
    SignedByOtherCa(String),
    /// The chain verifies through a retired root, but the current CA did not sign the leaf (root
    /// or intermediate rotation in progress).
    #[error("certificate was signed by a retired CA that is still trusted")]
    SignedByRetiredCa,
    /// The private key is not the key of the leaf certificate.
    #[error("private key does not match the certificate")]
    KeyMismatch,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        RotationPolicy {
            workload_ttl: DEFAULT_WORKLOAD_TTL,
            rotate_at_fraction: DEFAULT_ROTATE_AT_FRACTION,
        }
    }
}

impl RotationPolicy {
    /// A policy issuing certificates for `workload_ttl` and rotating them after
    /// `rotate_at_fraction` of their lifetime, clamped to `[0.1, 0.9]` (NaN gives the default 0.5).
    pub fn new(workload_ttl: Duration, rotate_at_fraction: f64) -> Self {
        let rotate_at_fraction = if rotate_at_fraction.is_nan() {
            DEFAULT_ROTATE_AT_FRACTION
        } else {
            rotate_at_fraction.clamp(MIN_ROTATE_AT_FRACTION, MAX_ROTATE_AT_FRACTION)
        };
        RotationPolicy {
            workload_ttl,
            rotate_at_fraction,
        }
    }

    /// The rotation fraction in effect, after clamping.
    pub fn rotate_at_fraction(&self) -> f64 {
        self.rotate_at_fraction
    }

    /// The rotation point of a certificate valid from `not_before` to `not_after`:
    /// `not_before + fraction × (not_after − not_before)`, truncated to whole milliseconds.
    /// A certificate whose `not_after` is not after `not_before` rotates at `not_before`.
    pub fn rotation_time(&self, not_before: SystemTime, not_after: SystemTime) -> SystemTime {
        let lifetime = not_after.duration_since(not_before).unwrap_or_default();
        // Millisecond precision keeps the product exact for every realistic lifetime.
        let millis = (lifetime.as_millis() as f64 * self.rotate_at_fraction).floor();
        not_before + Duration::from_millis(millis as u64)
    }

    /// Decides whether the stored `cert_chain_pem` (leaf first) and `key_pem` (PKCS#8) for
    /// `expected` can be kept at time `now`, checked against `trust` (a [`crate::TrustBundle`] on
    /// a workload, the [`crate::CertificateAuthority`] in the CA, which also flags chains from
    /// retired CAs).
    ///
    /// Checks, first failure wins: [`Reason::Missing`], [`Reason::Malformed`],
    /// [`Reason::KeyMismatch`], [`Reason::WrongIdentity`], [`Reason::NotYetValid`],
    /// [`Reason::Expired`], [`Reason::SignedByOtherCa`] (every signature of the chain is checked),
    /// [`Reason::SignedByRetiredCa`], [`Reason::PastRotationPoint`]; otherwise
    /// [`Decision::Valid`] with the rotation point as `next_check`.
    pub fn evaluate(
        &self,
        cert_chain_pem: Option<&str>,
        key_pem: Option<&str>,
        expected: &Identity,
        trust: &impl TrustSource,
        now: SystemTime,
    ) -> Decision {
        match self.check(cert_chain_pem, key_pem, expected, trust, now) {
            Ok(next_check) => Decision::Valid { next_check },
            Err(reason) => Decision::Reissue(reason),
        }
    }

    fn check(
        &self,
        cert_chain_pem: Option<&str>,
        key_pem: Option<&str>,
        expected: &Identity,
        trust: &impl TrustSource,
        now: SystemTime,
    ) -> Result<SystemTime, Reason> {
        let (Some(chain_pem), Some(key_pem)) = (present(cert_chain_pem), present(key_pem)) else {
            return Err(Reason::Missing);
        };
        let malformed = |e: &dyn std::fmt::Display| Reason::Malformed(e.to_string());
        let chain =
            pem::parse_certificates(chain_pem, "certificate chain").map_err(|e| malformed(&e))?;
        let leaf_der = chain
            .first()
            .ok_or_else(|| Reason::Malformed("certificate chain: no certificate".into()))?;
        let leaf = x509::parse(leaf_der).map_err(|e| malformed(&e))?;
        let key_der = pem::parse_private_key(key_pem, "private key").map_err(|e| malformed(&e))?;
        let key = rcgen::KeyPair::try_from(key_der.as_slice())
            .map_err(|e| Reason::Malformed(format!("private key: {e}")))?;

        if !x509::key_matches(&leaf, &key) {
            return Err(Reason::KeyMismatch);
        }
        let found = x509::uri_sans(&leaf).map_err(|e| malformed(&e))?;
        if found.len() != 1 || found[0] != expected.to_string() {
            return Err(Reason::WrongIdentity {
                found,
                expected: expected.clone(),
            });
        }
        let (not_before, not_after) = x509::validity(&leaf);
        if now < not_before {
            return Err(Reason::NotYetValid);
        }
        if now > not_after {
            return Err(Reason::Expired);
        }
        let verified = trust
            .trust_bundle()
            .verify_chain(&chain, now)
            .map_err(|e| Reason::SignedByOtherCa(e.to_string()))?;
        if let Some(current) = trust.current_issuer_der()
            && !verified.leaf_signed_by(current)
        {
            return Err(Reason::SignedByRetiredCa);
        }
        let rotate_at = self.rotation_time(not_before, not_after);
        if now >= rotate_at {
            return Err(Reason::PastRotationPoint);
        }
        Ok(rotate_at)
    }
}

/// `text` unless it is absent or only whitespace.
fn present(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.trim().is_empty())
}

#[cfg(test)]
mod tests;
