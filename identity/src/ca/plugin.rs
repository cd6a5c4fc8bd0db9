//! Loading Istio's plug-in CA material (Secret `cacerts`) and checking it before signing with it.

use std::sync::Arc;

use x509_parser::certificate::X509Certificate;

use super::{CaError, CertificateAuthority, secret_keys};
use crate::clock::Clock;
use crate::pem;
use crate::trust_bundle::TrustBundle;
use crate::x509;

/// See [`CertificateAuthority::from_plugin`] for the checks and their order.
pub(super) fn load(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    root_cert_pem: &str,
    cert_chain_pem: &str,
    clock: Arc<dyn Clock>,
) -> Result<CertificateAuthority, CaError> {
    let mut ca_certs = pem::parse_certificates(ca_cert_pem, secret_keys::CA_CERT)?;
    if ca_certs.len() != 1 {
        return Err(CaError::CaCertCount {
            found: ca_certs.len(),
        });
    }
    let ca_cert_der = ca_certs.remove(0);
    let ca_cert =
        x509::parse(&ca_cert_der).map_err(|reason| pem::PemError::InvalidCertificate {
            field: secret_keys::CA_CERT,
            index: 0,
            reason,
        })?;
    let subject = ca_cert.subject().to_string();
    check_can_sign(&ca_cert, &subject)?;
    let now = clock.now();
    if !x509::within_validity(&ca_cert, x509::unix_seconds(now)) {
        return Err(CaError::CaExpired {
            not_after_unix: ca_cert.validity().not_after.timestamp(),
        });
    }

    let key_der = pem::parse_private_key(ca_key_pem, secret_keys::CA_KEY)?;
    let key =
        rcgen::KeyPair::try_from(key_der.as_slice()).map_err(|e| CaError::UnsupportedKey {
            reason: e.to_string(),
        })?;
    if !x509::key_matches(&ca_cert, &key) {
        return Err(CaError::KeyMismatch { subject });
    }

    let trust_bundle = TrustBundle::from_pem(root_cert_pem).map_err(CaError::TrustBundle)?;
    let chain_certs = pem::parse_certificates(cert_chain_pem, secret_keys::CERT_CHAIN)?;
    let mut signing_chain = vec![ca_cert_der.clone()];
    if let Some(first) = chain_certs.first() {
        if *first != ca_cert_der {
            let first = x509::parse(first)
                .map(|cert| cert.subject().to_string())
                .unwrap_or_default();
            return Err(CaError::ChainDoesNotStartWithCaCert { first });
        }
        signing_chain.extend(chain_certs.iter().skip(1).cloned());
    }
    trust_bundle
        .verify_chain(&signing_chain, now)
        .map_err(CaError::ChainDoesNotVerify)?;

    // Istio documents an empty cert-chain.pem only for ca-cert.pem equal to root-cert.pem; for an
    // intermediate without one, workloads still need it to build a path, so send ca-cert.pem.
    // The chain is re-encoded from DER so text around the blocks is not sent to workloads.
    let cert_chain_pem: String = if chain_certs.is_empty() && !trust_bundle.contains(&ca_cert_der) {
        pem::encode(pem::CERTIFICATE_LABEL, &ca_cert_der)
    } else {
        chain_certs
            .iter()
            .map(|der| pem::encode(pem::CERTIFICATE_LABEL, der))
            .collect()
    };
    let (_, not_after) = x509::validity(&ca_cert);
    let issuer =
        rcgen::Issuer::from_ca_cert_der(&ca_cert_der.as_slice().into(), key).map_err(|source| {
            CaError::Rcgen {
                step: "reading ca-cert.pem as an issuer",
                source,
            }
        })?;
    Ok(CertificateAuthority {
        issuer,
        ca_cert_pem: pem::encode(pem::CERTIFICATE_LABEL, &ca_cert_der),
        ca_cert_der,
        cert_chain_pem,
        trust_bundle,
        not_after,
        clock,
    })
}

/// basicConstraints `CA:TRUE` (RFC 5280 §4.2.1.9) and, when key usage is present, keyCertSign
/// (§4.2.1.3).
fn check_can_sign(cert: &X509Certificate<'_>, subject: &str) -> Result<(), CaError> {
    let not_a_ca = |rule| CaError::NotACa {
        subject: subject.to_owned(),
        rule,
    };
    if !cert.is_ca() {
        return Err(not_a_ca(
            "basicConstraints CA:TRUE is missing (RFC 5280 §4.2.1.9)",
        ));
    }
    match cert.key_usage() {
        Ok(Some(usage)) if !usage.value.key_cert_sign() => Err(not_a_ca(
            "key usage does not include keyCertSign (RFC 5280 §4.2.1.3)",
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(not_a_ca("the key usage extension is malformed")),
    }
}
