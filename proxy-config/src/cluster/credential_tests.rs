//! `TransportSocket::Mutual` with an inline `credentialName` credential.

use super::*;

fn mutual(credential: Option<ClientCredential>, files: bool) -> TransportSocket {
    let file = |path: &str| {
        if files {
            path.to_owned()
        } else {
            String::new()
        }
    };
    TransportSocket::Mutual {
        client_certificate: file("/etc/certs/client.pem"),
        private_key: file("/etc/certs/key.pem"),
        ca_certificates: None,
        sni: Some("db.example.com".to_owned()),
        subject_alt_names: Vec::new(),
        credential,
    }
}

fn credential(key: Option<&str>) -> ClientCredential {
    ClientCredential {
        credential_name: "demo/client-credential".to_owned(),
        certificate_chain: Some("CERT-PEM".to_owned()),
        private_key: key.map(PrivateKeyPem::new),
        ca_certificates: Some("CA-PEM".to_owned()),
    }
}

#[test]
fn file_mutual_serializes_as_before_the_credential_field() {
    let json = serde_json::to_value(mutual(None, true)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "mode": "MUTUAL",
            "client_certificate": "/etc/certs/client.pem",
            "private_key": "/etc/certs/key.pem",
            "ca_certificates": null,
            "sni": "db.example.com",
            "subject_alt_names": []
        })
    );
}

#[test]
fn inline_credential_round_trips_and_hides_the_key() {
    let socket = mutual(Some(credential(Some("SECRET-KEY"))), false);
    let json = serde_json::to_string(&socket).unwrap();
    assert!(!json.contains("client_certificate"), "{json}");
    let back: TransportSocket = serde_json::from_str(&json).unwrap();
    assert_eq!(back, socket);
    let debug = format!("{socket:?}");
    assert!(!debug.contains("SECRET-KEY"), "{debug}");
    assert!(debug.contains("demo/client-credential"), "{debug}");

    let mut redacted = socket.clone();
    redacted.redact_private_key();
    let json = serde_json::to_string(&redacted).unwrap();
    assert!(
        !json.contains("SECRET-KEY") && json.contains(crate::REDACTED),
        "{json}"
    );
}

#[test]
fn identity_needs_both_the_chain_and_the_key() {
    assert_eq!(
        credential(Some("KEY")).identity(),
        Some(("CERT-PEM", "KEY"))
    );
    assert_eq!(credential(None).identity(), None);
    let mut no_chain = credential(Some("KEY"));
    no_chain.certificate_chain = None;
    assert_eq!(no_chain.identity(), None);
}
