//! SPIFFE workload identities and the mesh certificate authority (Citadel's signing logic).
//!
//! Pure code: no Kubernetes client and no sockets. The operator's Citadel reconcile loop, the
//! standalone mode (certificates written to files), the proxy (verifying peers) and the e2e tests
//! all build on it.
//!
//! - [`Identity`]: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
//! - [`CertificateAuthority`]: a self-signed root or Istio's plug-in CA (`cacerts`), issuing
//!   workload and serving certificates with rcgen (ECDSA P-256).
//! - [`TrustBundle`]: the roots to trust, several during a root rotation, and chain verification.
//! - [`RotationPolicy`]: when a stored certificate must be re-issued, and why.
//! - [`Clock`]: the time source, settable in tests.
#![warn(missing_docs)]

pub mod ca;
pub mod clock;
pub mod key;
pub mod pem;
pub mod rotation;
pub mod spiffe;
pub mod trust_bundle;
mod x509;

#[cfg(test)]
mod test_support;

pub use ca::{
    CaError, CaPemParts, CertificateAuthority, DEFAULT_ROOT_TTL, DEFAULT_WORKLOAD_TTL,
    IssuedCertificate,
};
pub use clock::{Clock, SystemClock, TestClock};
pub use key::PrivateKeyPem;
pub use rotation::{Decision, Reason, RotationPolicy};
pub use spiffe::{Identity, IdentityError, SvidError};
pub use trust_bundle::{ChainError, ChainStatus, TrustBundle, TrustBundleError, TrustSource};
