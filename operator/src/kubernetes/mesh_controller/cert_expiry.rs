//! `notAfter` of a certificate, for the Mesh's `nearestCertificateExpiry`.
//!
//! weft-identity parses certificates with x509-parser but does not export a validity reader,
//! and the operator crate does not depend on x509-parser itself; until one of the two exists
//! (see the report of issue 7), this reads only the few DER elements RFC 5280 §4.1 puts
//! before `validity`: `Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
//! OPTIONAL, serialNumber INTEGER, signature AlgorithmIdentifier, issuer Name, validity
//! SEQUENCE { notBefore Time, notAfter Time }, ... } ... }`. The PEM is decoded (and each
//! certificate checked to parse as X.509) by [`weft_identity::pem::parse_certificates`].

use std::time::{Duration, SystemTime};

/// DER tags used here (X.690).
const SEQUENCE: u8 = 0x30;
const CONTEXT_0: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER element: its tag, its content, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An X.509 `Time`: UTCTime `YYMMDDHHMMSSZ` (years 1950-2049, RFC 5280 §4.1.2.5.1) or
/// GeneralizedTime `YYYYMMDDHHMMSSZ`.
fn time(tag: u8, text: &[u8]) -> Option<SystemTime> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, rest) = match (tag, text.len()) {
        (UTC_TIME, 12) => {
            let yy = num(0..2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (num(0..4)?, 4),
        _ => return None,
    };
    let field = |i: usize| num(rest + 2 * i..rest + 2 * i + 2);
    let (month, day, hour, minute, second) =
        (field(0)?, field(1)?, field(2)?, field(3)?, field(4)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    let seconds = u64::try_from(seconds).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// `notAfter` of one DER certificate, `None` when the DER is not shaped as RFC 5280 says.
pub fn not_after_der(der: &[u8]) -> Option<SystemTime> {
    let (SEQUENCE, certificate, _) = element(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = element(certificate)? else {
        return None;
    };
    let mut rest = tbs;
    if rest.first() == Some(&CONTEXT_0) {
        rest = element(rest)?.2;
    }
    // serialNumber, signature, issuer
    for _ in 0..3 {
        rest = element(rest)?.2;
    }
    let (SEQUENCE, validity, _) = element(rest)? else {
        return None;
    };
    let (_, _, after_not_before) = element(validity)?;
    let (tag, not_after, _) = element(after_not_before)?;
    time(tag, not_after)
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
        assert_eq!(time(UTC_TIME, b"301399000000Z"), None, "month 13");
    }
}
