//! PEM reading and writing (RFC 7468) for certificates and PKCS#8 keys.
//!
//! Decoding uses x509-parser's PEM reader; encoding is base64 with 64-character lines and `\n`
//! line ends, the layout `openssl` and Kubernetes Secrets use.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use x509_parser::pem::Pem;
use zeroize::Zeroizing;

/// PEM label of an X.509 certificate (RFC 7468 §5).
pub const CERTIFICATE_LABEL: &str = "CERTIFICATE";

/// PEM label of a PKCS#8 private key (RFC 7468 §10).
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";

/// Why PEM input could not be read. `field` names the input (e.g. `ca-cert.pem`). Messages never
/// contain the input text, so key material cannot leak through them.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// The text is not well-formed PEM (bad header, missing end line, bad base64).
    #[error("{field}: not valid PEM ({reason})")]
    Syntax {
        /// The input that was being read.
        field: &'static str,
        /// What the PEM reader reported.
        reason: String,
    },
    /// A block has a label other than the one expected here.
    #[error("{field}: PEM block {index} is labelled {label:?}, expected {expected:?}{hint}")]
    UnexpectedLabel {
        /// The input that was being read.
        field: &'static str,
        /// Zero-based index of the block.
        index: usize,
        /// The label found.
        label: String,
        /// The label expected.
        expected: &'static str,
        /// A hint for the operator (may be empty).
        hint: &'static str,
    },
    /// A `CERTIFICATE` block does not hold a DER X.509 certificate.
    #[error("{field}: certificate {index} is not a valid X.509 certificate ({reason})")]
    InvalidCertificate {
        /// The input that was being read.
        field: &'static str,
        /// Zero-based index of the certificate.
        index: usize,
        /// What the X.509 parser reported.
        reason: String,
    },
    /// There is no PEM block at all where one is required.
    #[error("{field}: no PEM block found")]
    Empty {
        /// The input that was being read.
        field: &'static str,
    },
}

/// Decodes every `CERTIFICATE` block of `text` into DER, checking each parses as X.509.
///
/// Text outside blocks is ignored (RFC 7468 §2). Returns an empty list for text without blocks.
/// Errors: [`PemError::Syntax`], [`PemError::UnexpectedLabel`] for any other label,
/// [`PemError::InvalidCertificate`].
pub fn parse_certificates(text: &str, field: &'static str) -> Result<Vec<Vec<u8>>, PemError> {
    let mut certs = Vec::new();
    for (index, block) in Pem::iter_from_buffer(text.as_bytes()).enumerate() {
        let block = block.map_err(|e| PemError::Syntax {
            field,
            reason: e.to_string(),
        })?;
        if block.label != CERTIFICATE_LABEL {
            return Err(PemError::UnexpectedLabel {
                field,
                index,
                label: block.label,
                expected: CERTIFICATE_LABEL,
                hint: "",
            });
        }
        x509_parser::parse_x509_certificate(&block.contents).map_err(|e| {
            PemError::InvalidCertificate {
                field,
                index,
                reason: e.to_string(),
            }
        })?;
        certs.push(block.contents);
    }
    Ok(certs)
}

/// Decodes the single PKCS#8 `PRIVATE KEY` block of `text` into DER (wiped on drop).
///
/// Errors: [`PemError::Empty`], [`PemError::Syntax`], [`PemError::UnexpectedLabel`] with a
/// conversion hint for SEC1 (`EC PRIVATE KEY`) and PKCS#1 (`RSA PRIVATE KEY`) keys, which ring
/// cannot load.
pub fn parse_private_key(text: &str, field: &'static str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let mut blocks = Pem::iter_from_buffer(text.as_bytes());
    let block = blocks
        .next()
        .ok_or(PemError::Empty { field })?
        .map_err(|e| PemError::Syntax {
            field,
            reason: e.to_string(),
        })?;
    let contents = Zeroizing::new(block.contents);
    if block.label != PRIVATE_KEY_LABEL {
        let hint = if block.label.ends_with(PRIVATE_KEY_LABEL) {
            "; convert it with `openssl pkcs8 -topk8 -nocrypt -in key.pem`"
        } else {
            ""
        };
        return Err(PemError::UnexpectedLabel {
            field,
            index: 0,
            label: block.label,
            expected: PRIVATE_KEY_LABEL,
            hint,
        });
    }
    Ok(contents)
}

/// Encodes `der` as one PEM block with `label`, 64-character base64 lines, ending in `\n`.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_wraps_at_64_and_decodes_back() {
        let der: Vec<u8> = (0..=255u8).collect();
        let text = encode("TEST", &der);
        assert!(text.starts_with("-----BEGIN TEST-----\n"));
        assert!(text.ends_with("-----END TEST-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        let decoded = Pem::iter_from_buffer(text.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(decoded.label, "TEST");
        assert_eq!(decoded.contents, der);
    }

    #[test]
    fn certificates_reject_other_labels() {
        let text = encode("PRIVATE KEY", b"abc");
        assert_eq!(
            parse_certificates(&text, "root-cert.pem"),
            Err(PemError::UnexpectedLabel {
                field: "root-cert.pem",
                index: 0,
                label: "PRIVATE KEY".into(),
                expected: CERTIFICATE_LABEL,
                hint: "",
            })
        );
    }

    #[test]
    fn certificates_reject_non_x509_der() {
        let text = encode(CERTIFICATE_LABEL, b"not der");
        assert!(matches!(
            parse_certificates(&text, "cert-chain.pem"),
            Err(PemError::InvalidCertificate {
                field: "cert-chain.pem",
                index: 0,
                ..
            })
        ));
    }

    #[test]
    fn text_without_blocks_has_no_certificates() {
        assert_eq!(parse_certificates("", "x"), Ok(vec![]));
        assert_eq!(parse_certificates("just a comment\n", "x"), Ok(vec![]));
    }

    #[test]
    fn sec1_key_gets_a_conversion_hint_without_key_bytes() {
        let text = encode("EC PRIVATE KEY", b"secret-bytes");
        let err = parse_private_key(&text, "ca-key.pem").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("openssl pkcs8 -topk8"), "{message}");
        assert!(message.contains("ca-key.pem"), "{message}");
        assert!(
            !message.contains(&STANDARD.encode(b"secret-bytes")),
            "{message}"
        );
        assert_eq!(
            parse_private_key("", "ca-key.pem").unwrap_err(),
            PemError::Empty {
                field: "ca-key.pem"
            }
        );
    }
}
