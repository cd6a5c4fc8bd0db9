//! `notAfter` of a certificate, for the Mesh's `nearestCertificateExpiry`: the PEM is decoded
//! by [`weft_identity::pem::parse_certificates`] and the DER read with x509-parser
//! (RFC 5280 §4.1.2.5: UTCTime and GeneralizedTime both).

use std::time::{Duration, SystemTime};

use x509_parser::prelude::{FromDer, X509Certificate};

/// `notAfter` of one DER certificate, `None` when the DER is not an X.509 certificate or the
/// time is before 1970.
pub fn not_after_der(der: &[u8]) -> Option<SystemTime> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    let seconds = u64::try_from(certificate.validity().not_after.timestamp()).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// `notAfter` of the first (leaf) certificate of a PEM chain such as a `kubernetes.io/tls`
/// Secret's `tls.crt`. Returns `None` when the text holds no certificate or it does not parse.
pub fn leaf_not_after(chain_pem: &str) -> Option<SystemTime> {
    let certificates = weft_identity::pem::parse_certificates(chain_pem, "tls.crt").ok()?;
    not_after_der(certificates.first()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(not_after: (i32, u8, u8)) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    fn unix(time: SystemTime) -> u64 {
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn reads_utc_time_and_generalized_time() {
        // 2030-06-15 is a UTCTime; 2051-02-03 needs GeneralizedTime (RFC 5280 §4.1.2.5).
        let rows = [
            ((2030, 6, 15), 1_907_712_000),
            ((2051, 2, 3), 2_558_995_200),
        ];
        for (date, expected) in rows {
            let at = leaf_not_after(&certificate(date)).unwrap();
            assert_eq!(unix(at), expected, "{date:?}");
        }
    }

    #[test]
    fn the_leaf_of_a_chain_counts() {
        let chain = format!("{}{}", certificate((2031, 1, 1)), certificate((2040, 1, 1)));
        assert_eq!(unix(leaf_not_after(&chain).unwrap()), 1_924_992_000);
    }

    #[test]
    fn garbage_gives_none() {
        assert_eq!(leaf_not_after(""), None);
        assert_eq!(leaf_not_after("not a pem"), None);
        assert_eq!(not_after_der(&[0x30, 0x03, 0x02, 0x01]), None);
    }
}
