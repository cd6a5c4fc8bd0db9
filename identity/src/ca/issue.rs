//! Certificate parameters and issuance: workload (SPIFFE) and serving (DNS) leaves.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;

use super::{CLOCK_SKEW_ALLOWANCE, CaError, CertificateAuthority, IssuedCertificate};
use crate::key::PrivateKeyPem;
use crate::spiffe::{Identity, dns_subdomain_rule};
use crate::x509;

/// Length of random serial numbers in bytes (RFC 5280 §4.1.2.2 allows up to 20; Istio uses 16).
const SERIAL_LEN: usize = 16;

impl CertificateAuthority {
    /// Issues a workload certificate for `identity`, valid for `ttl` from now (Istio's layout: see
    /// the module documentation). `notBefore` is one minute in the past; `notAfter` is
    /// `now + ttl`, clamped to the CA certificate's own `notAfter`.
    ///
    /// Returns the leaf + `cert-chain.pem` chain, a fresh ECDSA P-256 key and the validity window.
    /// Errors: [`CaError::InvalidIdentity`], [`CaError::InvalidTtl`] (zero), [`CaError::CaExpired`],
    /// [`CaError::Rcgen`].
    pub fn issue_workload(
        &self,
        identity: &Identity,
        ttl: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        identity.validate()?;
        let uri = identity
            .to_string()
            .try_into()
            .map_err(|source| CaError::Rcgen {
                step: "encoding the SPIFFE ID as a URI SAN",
                source,
            })?;
        self.issue_leaf(
            DistinguishedName::new(),
            vec![SanType::URI(uri)],
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            ttl,
        )
    }

    /// Issues a serving certificate for `dns_names` (e.g. the webhook Service's
    /// `<svc>.<ns>.svc`), valid for `ttl` from now, clamped like [`Self::issue_workload`].
    /// Subject CN is the first name; extended key usage is serverAuth.
    ///
    /// Errors: [`CaError::NoDnsNames`], [`CaError::InvalidDnsName`] (each name must be an RFC 1123
    /// subdomain, optionally with a leading `*.`), [`CaError::InvalidTtl`], [`CaError::CaExpired`],
    /// [`CaError::Rcgen`].
    pub fn issue_serving<S: AsRef<str>>(
        &self,
        dns_names: &[S],
        ttl: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        let first = dns_names.first().ok_or(CaError::NoDnsNames)?;
        let sans = dns_names
            .iter()
            .map(|name| {
                let name = name.as_ref();
                let bare = name.strip_prefix("*.").unwrap_or(name);
                dns_subdomain_rule(bare).map_err(|rule| CaError::InvalidDnsName {
                    name: name.to_owned(),
                    rule,
                })?;
                let ia5 = name.try_into().map_err(|source| CaError::Rcgen {
                    step: "encoding a DNS SAN",
                    source,
                })?;
                Ok(SanType::DnsName(ia5))
            })
            .collect::<Result<Vec<_>, CaError>>()?;
        let mut subject = DistinguishedName::new();
        subject.push(DnType::CommonName, first.as_ref());
        self.issue_leaf(
            subject,
            sans,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
            ttl,
        )
    }

    fn issue_leaf(
        &self,
        subject: DistinguishedName,
        subject_alt_names: Vec<SanType>,
        extended_key_usages: Vec<ExtendedKeyUsagePurpose>,
        ttl: Duration,
    ) -> Result<IssuedCertificate, CaError> {
        let now = self.clock.now();
        if now >= self.not_after {
            return Err(CaError::CaExpired {
                not_after_unix: x509::unix_seconds(self.not_after),
            });
        }
        let (not_before, not_after) = validity_window(now, ttl, Some(self.not_after), "ttl")?;
        let serial = random_serial();
        let mut params = CertificateParams::default();
        params.distinguished_name = subject;
        params.subject_alt_names = subject_alt_names;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = extended_key_usages;
        params.not_before = not_before;
        params.not_after = not_after;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate().map_err(|source| CaError::Rcgen {
            step: "generating the leaf key",
            source,
        })?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|source| CaError::Rcgen {
                step: "signing the leaf",
                source,
            })?;
        let mut cert_chain_pem = cert.pem();
        cert_chain_pem.push_str(&self.cert_chain_pem);
        Ok(IssuedCertificate {
            cert_chain_pem,
            private_key_pem: PrivateKeyPem::new(key.serialize_pem()),
            not_before: x509::system_time(not_before.unix_timestamp()),
            not_after: x509::system_time(not_after.unix_timestamp()),
            serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// Parameters of a self-signed root (see [`CertificateAuthority::self_signed`]).
pub(super) fn root_params(
    trust_domain: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, trust_domain);
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = not_before;
    params.not_after = not_after;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()));
    params
}

/// `[now - CLOCK_SKEW_ALLOWANCE, min(now + ttl, cap)]`, truncated to whole seconds (X.509 times
/// carry no fractions).
///
/// Errors: [`CaError::InvalidTtl`] when `ttl` is zero or the end is not representable.
pub(super) fn validity_window(
    now: SystemTime,
    ttl: Duration,
    cap: Option<SystemTime>,
    field: &'static str,
) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let invalid = |rule| CaError::InvalidTtl { field, ttl, rule };
    if ttl.is_zero() {
        return Err(invalid("must be greater than zero"));
    }
    let end = now
        .checked_add(ttl)
        .ok_or_else(|| invalid("now + ttl is not a representable time"))?;
    let end = match cap {
        Some(cap) if cap < end => cap,
        _ => end,
    };
    let start = now.checked_sub(CLOCK_SKEW_ALLOWANCE).unwrap_or(now);
    let to_datetime = |t: SystemTime| {
        OffsetDateTime::from_unix_timestamp(x509::unix_seconds(t))
            .map_err(|_| invalid("the validity period must end before year 10000"))
    };
    Ok((to_datetime(start)?, to_datetime(end)?))
}

/// A random positive serial number of [`SERIAL_LEN`] bytes (top bit clear, never all zero).
fn random_serial() -> [u8; SERIAL_LEN] {
    let mut serial: [u8; SERIAL_LEN] = rand::random();
    serial[0] &= 0x7f;
    serial[0] |= 0x01 << 6;
    serial
}
