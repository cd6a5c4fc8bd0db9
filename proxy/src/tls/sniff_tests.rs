use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::*;

/// A ClientHello as rustls itself writes it for `server_name`.
fn rustls_client_hello(server_name: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A minimal ClientHello built field by field, with the given SNI and filler extensions.
fn hand_built_hello(sni: Option<&[u8]>, filler: &[(u16, Vec<u8>)], session_id: &[u8]) -> Vec<u8> {
    fn vec16(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }
    let mut extensions = Vec::new();
    for (kind, data) in filler {
        extensions.extend(kind.to_be_bytes());
        extensions.extend(vec16(data));
    }
    if let Some(name) = sni {
        let mut entry = vec![0u8];
        entry.extend(vec16(name));
        extensions.extend(0u16.to_be_bytes());
        extensions.extend(vec16(&vec16(&entry)));
    }
    let mut hello = vec![3, 3];
    hello.extend([7u8; 32]);
    hello.push(session_id.len() as u8);
    hello.extend_from_slice(session_id);
    hello.extend(vec16(&[0x13, 0x01]));
    hello.extend([1, 0]);
    hello.extend(vec16(&extensions));
    let mut handshake = vec![1];
    handshake.extend(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend(hello);
    let mut record = vec![0x16, 3, 1];
    record.extend(vec16(&handshake));
    record
}

#[test]
fn classifies_known_prefixes() {
    let cases: [(&[u8], Detected); 12] = [
        (b"", Detected::Incomplete),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Detected::Http1),
        (b"POST /x HTTP/1.0\r\n", Detected::Http1),
        (b"OPTIONS * HTTP/1.1\r\n", Detected::Http1),
        (b"GE", Detected::Incomplete),
        (b"P", Detected::Incomplete),
        (
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04",
            Detected::Http2Preface,
        ),
        (b"PRI * HTTP/2", Detected::Incomplete),
        (b"SSH-2.0-OpenSSH_9.6\r\n", Detected::Unknown),
        (b"get / HTTP/1.1\r\n", Detected::Unknown),
        (b"\x16\x03", Detected::Incomplete),
        (b"\x16\x02\x00\x00\x10", Detected::Unknown),
    ];
    for (input, want) in cases {
        assert_eq!(
            detect(input),
            want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn reads_the_sni_of_a_real_rustls_client_hello() {
    let hello = rustls_client_hello("outbound_.8080_._.reviews.default.svc.cluster.local");
    assert_eq!(
        detect(&hello),
        Detected::Tls {
            sni: Some("outbound_.8080_._.reviews.default.svc.cluster.local".into())
        }
    );
}

#[test]
fn every_strict_prefix_of_a_client_hello_is_incomplete() {
    let hello = rustls_client_hello("reviews.default.svc.cluster.local");
    for len in 1..hello.len() {
        assert_eq!(
            detect(&hello[..len]),
            Detected::Incomplete,
            "prefix of {len} bytes"
        );
    }
}

#[test]
fn client_hello_without_sni_or_with_invalid_sni() {
    assert_eq!(
        detect(&hand_built_hello(None, &[(10, vec![0, 2, 0, 29])], &[])),
        Detected::Tls { sni: None }
    );
    assert_eq!(
        detect(&hand_built_hello(Some(b"bad name\0"), &[], &[])),
        Detected::Tls { sni: None }
    );
    assert_eq!(
        detect(&hand_built_hello(Some(b""), &[], &[])),
        Detected::Tls { sni: None }
    );
}

#[test]
fn non_client_hello_handshake_is_not_tls_for_us() {
    let mut hello = hand_built_hello(Some(b"a.b"), &[], &[]);
    hello[5] = 2; // ServerHello
    assert_eq!(detect(&hello), Detected::Unknown);
}

/// Property: for random host names, extensions before the SNI and session ids, the parser
/// returns exactly the SNI that was encoded (a hand-rolled proptest: proptest is not a
/// dependency of this crate).
#[test]
fn property_sni_round_trips() {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._";
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    for _ in 0..2000 {
        let len = rng.random_range(1..=200);
        let name: Vec<u8> = (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect();
        let filler: Vec<(u16, Vec<u8>)> = (0..rng.random_range(0..4))
            .map(|_| {
                let data_len = rng.random_range(0..64);
                (
                    rng.random_range(1..=u16::MAX),
                    (0..data_len).map(|_| rng.random()).collect(),
                )
            })
            .collect();
        let session: Vec<u8> = (0..rng.random_range(0..=32))
            .map(|_| rng.random())
            .collect();
        let hello = hand_built_hello(Some(&name), &filler, &session);
        let want = String::from_utf8(name).unwrap();
        assert_eq!(detect(&hello), Detected::Tls { sni: Some(want) });
    }
}

/// Property: arbitrary bytes, and arbitrary corruptions of valid ClientHellos, never panic,
/// and a corrupted hello is never reported with an SNI that is not a valid host name.
#[test]
fn property_total_on_arbitrary_and_corrupted_input() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for _ in 0..5000 {
        let len = rng.random_range(0..600);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if rng.random_bool(0.5) && !bytes.is_empty() {
            bytes[0] = 0x16;
        }
        let _ = detect(&bytes);
    }
    let base = rustls_client_hello("details.default.svc.cluster.local");
    for _ in 0..5000 {
        let mut hello = base.clone();
        for _ in 0..rng.random_range(1..8) {
            let i = rng.random_range(0..hello.len());
            hello[i] = rng.random();
        }
        let cut = rng.random_range(0..=hello.len());
        if let Detected::Tls { sni: Some(sni) } = detect(&hello[..cut]) {
            assert!(valid_host_name(sni.as_bytes()).is_some(), "{sni:?}");
        }
    }
}
