//! Reading the SPIFFE ID of a workload certificate Secret's `tls.crt`: Base64 (the Secret's
//! `data`) with the base64 crate, the PEM and the X.509 subjectAltName (RFC 5280 §4.2.1.6) with
//! x509-parser.

use base64::Engine as _;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Decodes a Secret's standard Base64 value. `None` when it is not Base64.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
}

/// The DER of the first `CERTIFICATE` block of `pem`.
pub fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).ok()?;
    (block.label == "CERTIFICATE").then_some(block.contents)
}

/// The `spiffe://` URI SANs of a DER certificate (empty when it does not parse or has none).
pub fn spiffe_ids(der: &[u8]) -> Vec<String> {
    let Ok((_, certificate)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = certificate.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with("spiffe://") => Some((*uri).to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn reads_the_spiffe_id_of_a_secret_value() {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![
        rcgen::SanType::URI(
            "spiffe://cluster.local/ns/demo/sa/reviews"
                .try_into()
                .unwrap(),
        ),
        rcgen::SanType::DnsName("reviews.demo".try_into().unwrap()),
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    let secret_value = base64::engine::general_purpose::STANDARD.encode(&pem);
    let decoded = String::from_utf8(base64_decode(&secret_value).unwrap()).unwrap();
    let der = first_certificate_der(&decoded).unwrap();
    assert_eq!(
        spiffe_ids(&der),
        ["spiffe://cluster.local/ns/demo/sa/reviews"]
    );
    assert!(base64_decode("Zm9v!").is_none());
    assert!(spiffe_ids(b"not der").is_empty());
}
