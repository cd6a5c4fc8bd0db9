//! Small helpers over x509-parser shared by the CA, the trust bundle and the rotation check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

/// Parses DER into a certificate, rejecting trailing bytes; the error is the parser's message.
pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Seconds since the Unix epoch (negative before it), saturating at the `i64` range.
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs())
            .map(|s| -s)
            .unwrap_or(i64::MIN),
    }
}

/// The [`SystemTime`] of a Unix timestamp in seconds.
pub(crate) fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Whether `at` (Unix seconds) lies within `[notBefore, notAfter]` (RFC 5280 §4.1.2.5, inclusive).
pub(crate) fn within_validity(cert: &X509Certificate<'_>, at: i64) -> bool {
    let validity = cert.validity();
    validity.not_before.timestamp() <= at && at <= validity.not_after.timestamp()
}

/// `notBefore` and `notAfter` of a certificate.
pub(crate) fn validity(cert: &X509Certificate<'_>) -> (SystemTime, SystemTime) {
    let validity = cert.validity();
    (
        system_time(validity.not_before.timestamp()),
        system_time(validity.not_after.timestamp()),
    )
}

/// Whether two certificates carry the same subject public key (both must parse).
pub(crate) fn same_public_key(a: &[u8], b: &[u8]) -> bool {
    match (parse(a), parse(b)) {
        (Ok(a), Ok(b)) => a.public_key().raw == b.public_key().raw,
        _ => false,
    }
}

/// The URI subject alternative names of a certificate (RFC 5280 §4.2.1.6), in order.
pub(crate) fn uri_sans(cert: &X509Certificate<'_>) -> Result<Vec<String>, String> {
    let san = cert.subject_alternative_name().map_err(|e| e.to_string())?;
    Ok(san
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some((*uri).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// Whether the certificate's public key equals the public half of `key`.
pub(crate) fn key_matches(cert: &X509Certificate<'_>, key: &rcgen::KeyPair) -> bool {
    use rcgen::PublicKeyData as _;
    cert.public_key().subject_public_key.data.as_ref() == key.der_bytes()
}
