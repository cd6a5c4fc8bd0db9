//! Reading the SPIFFE ID of a workload certificate Secret's `tls.crt`.
//!
//! weft-e2e depends only on weft-lab and serde_json; until it may depend on `base64` and
//! `x509-parser` (the report of issue 7 asks for them), this decodes Base64 (RFC 4648 §4) and
//! finds the URI SANs by their DER encoding: a `uniformResourceIdentifier` GeneralName is the
//! context tag `[6]` (0x86) followed by its length and the IA5String bytes (RFC 5280
//! §4.2.1.6). Only URIs starting `spiffe://` are returned, so stray bytes cannot match.

/// Decodes standard Base64, ignoring whitespace (PEM bodies wrap at 64 columns). `None` on a
/// character outside the alphabet.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let symbols: Vec<u8> = text
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(symbols.len() * 3 / 4);
    for chunk in symbols.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// The DER of the first `CERTIFICATE` block of `pem`.
pub fn first_certificate_der(pem: &str) -> Option<Vec<u8>> {
    let begin = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(begin)? + begin.len();
    let end = start + pem[start..].find("-----END CERTIFICATE-----")?;
    base64_decode(&pem[start..end])
}

/// The `spiffe://` URI SANs found in a DER certificate.
pub fn spiffe_ids(der: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..der.len().saturating_sub(2) {
        if der[i] != 0x86 {
            continue;
        }
        let len = usize::from(der[i + 1]);
        let Some(bytes) = der.get(i + 2..i + 2 + len) else {
            continue;
        };
        if let Ok(uri) = std::str::from_utf8(bytes)
            && uri.starts_with("spiffe://")
        {
            ids.push(uri.to_string());
        }
    }
    ids
}

#[test]
fn base64_round_trips_known_vectors() {
    // RFC 4648 §10 test vectors.
    let rows = [
        ("", ""),
        ("Zg==", "f"),
        ("Zm8=", "fo"),
        ("Zm9v", "foo"),
        ("Zm9vYg==", "foob"),
        ("Zm9vYmE=", "fooba"),
        ("Zm9v\nYmFy", "foobar"),
    ];
    for (encoded, decoded) in rows {
        assert_eq!(
            base64_decode(encoded).unwrap(),
            decoded.as_bytes(),
            "{encoded}"
        );
    }
    assert_eq!(base64_decode("Zm9v!"), None);
}

#[test]
fn finds_a_uri_san_by_its_der_tag() {
    let uri = b"spiffe://cluster.local/ns/demo/sa/reviews";
    let mut der = vec![0x30, 0x10, 0x86, uri.len() as u8];
    der.extend_from_slice(uri);
    der.extend_from_slice(&[0x86, 0x03, b'a', b':', b'b']);
    assert_eq!(
        spiffe_ids(&der),
        ["spiffe://cluster.local/ns/demo/sa/reviews"]
    );
    assert!(
        spiffe_ids(&[0x86, 0x40, b's']).is_empty(),
        "a length past the end"
    );
}
