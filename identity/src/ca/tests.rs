use std::time::UNIX_EPOCH;

use pretty_assertions::assert_eq;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};

use super::*;
use crate::spiffe::Identity;
use crate::test_support::{
    DAY, HOUR, TestCa, ca_params, clock, datetime, intermediate, root, signed, sleep, start,
};
use crate::trust_bundle::ChainStatus;

fn chain_ders(chain_pem: &str) -> Vec<Vec<u8>> {
    pem::parse_certificates(chain_pem, "test").unwrap()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn self_signed_ca() -> CertificateAuthority {
    CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap()
}

/// Plug-in material in Istio's layout: root-cert.pem, ca-cert.pem, ca-key.pem and
/// cert-chain.pem = ca-cert.pem + root-cert.pem (Istio's Makefile.selfsigned.mk).
struct Plugin {
    root: TestCa,
    ca: TestCa,
}

impl Plugin {
    fn new() -> Self {
        let root = root("offline root");
        let ca = intermediate("cluster-1 intermediate", &root);
        Plugin { root, ca }
    }

    fn cert_chain(&self) -> String {
        format!("{}{}", self.ca.cert_pem, self.root.cert_pem)
    }

    fn load(&self) -> Result<CertificateAuthority, CaError> {
        CertificateAuthority::from_plugin(
            &self.ca.cert_pem,
            &self.ca.key_pem(),
            &self.root.cert_pem,
            &self.cert_chain(),
            clock(),
        )
    }
}

#[test]
fn self_signed_root_has_istio_shape() {
    let ca = self_signed_ca();
    let der = chain_ders(ca.ca_cert_pem()).remove(0);
    let cert = x509::parse(&der).unwrap();
    assert!(cert.is_ca());
    assert_eq!(cert.subject().to_string(), "O=cluster.local");
    assert_eq!(cert.issuer().to_string(), "O=cluster.local");
    let usage = cert.key_usage().unwrap().unwrap().value;
    assert!(usage.key_cert_sign() && usage.crl_sign());
    assert!(!usage.digital_signature());
    let spki = cert.public_key();
    assert_eq!(spki.algorithm.algorithm, OID_KEY_TYPE_EC_PUBLIC_KEY);
    assert_eq!(
        spki.algorithm
            .parameters
            .as_ref()
            .unwrap()
            .as_oid()
            .unwrap(),
        OID_EC_P256
    );
    let (not_before, not_after) = x509::validity(&cert);
    assert_eq!(not_before, start() - CLOCK_SKEW_ALLOWANCE);
    assert_eq!(not_after, start() + DEFAULT_ROOT_TTL);
    assert_eq!(ca.not_after(), start() + DEFAULT_ROOT_TTL);
    assert_eq!(
        ca.trust_bundle().roots().collect::<Vec<_>>(),
        vec![&der[..]]
    );
    assert!(cert.verify_signature(None).is_ok());
}

#[test]
fn self_signed_rejects_bad_trust_domain_and_zero_ttl() {
    assert!(matches!(
        CertificateAuthority::self_signed("Cluster.Local", None, clock()),
        Err(CaError::InvalidTrustDomain(
            IdentityError::InvalidTrustDomain { .. }
        ))
    ));
    assert!(matches!(
        CertificateAuthority::self_signed("cluster.local", Some(Duration::ZERO), clock()),
        Err(CaError::InvalidTtl {
            field: "root ttl",
            ..
        })
    ));
}

#[test]
fn workload_certificate_has_spiffe_san_usages_and_window() {
    let ca = self_signed_ca();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let chain = chain_ders(&issued.cert_chain_pem);
    assert_eq!(chain.len(), 1, "self-signed CA: leaf only");
    let leaf = x509::parse(&chain[0]).unwrap();

    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(
        san.critical,
        "SAN must be critical when the subject is empty (RFC 5280)"
    );
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/default/sa/sleep"
        )]
    );
    assert_eq!(
        leaf.subject().iter().count(),
        0,
        "Istio leaves the subject empty"
    );
    assert!(!leaf.is_ca());
    let usage = leaf.key_usage().unwrap().unwrap().value;
    assert!(usage.digital_signature() && usage.key_encipherment());
    assert!(!usage.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    assert!(!eku.any && !eku.code_signing);

    let (not_before, not_after) = x509::validity(&leaf);
    assert_eq!(not_before, start() - Duration::from_secs(60));
    assert_eq!(not_after, start() + DAY);
    assert_eq!(issued.not_before, not_before);
    assert_eq!(issued.not_after, not_after);
    let serial: String = leaf
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(issued.serial, serial);

    let key = KeyPair::from_pem(issued.private_key_pem.expose_secret()).unwrap();
    assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    assert!(x509::key_matches(&leaf, &key));

    let verified = ca
        .trust_bundle()
        .verify_chain_pem(&issued.cert_chain_pem, start())
        .unwrap();
    assert_eq!(verified.root_der, chain_ders(ca.ca_cert_pem())[0]);
    assert_eq!(
        ca.chain_status(&issued.cert_chain_pem).unwrap(),
        ChainStatus::IssuedByCurrentCa
    );
}

#[test]
fn each_issue_has_a_fresh_key_and_serial() {
    let ca = self_signed_ca();
    let a = ca.issue_workload(&sleep(), HOUR).unwrap();
    let b = ca.issue_workload(&sleep(), HOUR).unwrap();
    assert_ne!(a.serial, b.serial);
    assert_ne!(a.private_key_pem, b.private_key_pem);
    assert_eq!(a.serial.len(), 32);
}

#[test]
fn workload_not_after_is_clamped_to_the_ca_expiry() {
    let clock = clock();
    let ca =
        CertificateAuthority::self_signed("cluster.local", Some(2 * HOUR), clock.clone()).unwrap();
    clock.advance(HOUR + HOUR / 2);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(issued.not_after, start() + 2 * HOUR);
    assert_eq!(issued.not_after, ca.not_after());
    assert_eq!(
        issued.not_before,
        start() + HOUR + HOUR / 2 - CLOCK_SKEW_ALLOWANCE
    );
}

#[test]
fn issuing_fails_once_the_ca_has_expired() {
    let clock = clock();
    let ca = CertificateAuthority::self_signed("cluster.local", Some(HOUR), clock.clone()).unwrap();
    clock.advance(HOUR);
    match ca.issue_workload(&sleep(), DAY) {
        Err(CaError::CaExpired { not_after_unix }) => {
            assert_eq!(not_after_unix, unix(start() + HOUR))
        }
        other => panic!("expected CaExpired, got {other:?}"),
    }
}

#[test]
fn issuing_rejects_zero_ttl_and_invalid_identity() {
    let ca = self_signed_ca();
    assert!(matches!(
        ca.issue_workload(&sleep(), Duration::ZERO),
        Err(CaError::InvalidTtl { field: "ttl", .. })
    ));
    let bad = Identity::Spiffe {
        trust_domain: "cluster.local".into(),
        namespace: "Bad_NS".into(),
        service_account: "sleep".into(),
    };
    assert!(matches!(
        ca.issue_workload(&bad, HOUR),
        Err(CaError::InvalidIdentity(
            IdentityError::InvalidNamespace { .. }
        ))
    ));
}

#[test]
fn serving_certificate_has_dns_sans_and_server_auth_only() {
    let ca = self_signed_ca();
    let names = [
        "weft-webhook.weft-system.svc",
        "weft-webhook.weft-system.svc.cluster.local",
    ];
    let issued = ca.issue_serving(&names, 365 * DAY).unwrap();
    let chain = chain_ders(&issued.cert_chain_pem);
    let leaf = x509::parse(&chain[0]).unwrap();
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(
        san.value.general_names,
        names
            .iter()
            .map(|n| GeneralName::DNSName(n))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        leaf.subject().to_string(),
        "CN=weft-webhook.weft-system.svc"
    );
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert_eq!(issued.not_after, start() + 365 * DAY);
    ca.trust_bundle()
        .verify_chain_pem(&issued.cert_chain_pem, start())
        .unwrap();
}

#[test]
fn serving_certificate_rejects_bad_names() {
    let ca = self_signed_ca();
    let none: [&str; 0] = [];
    assert!(matches!(
        ca.issue_serving(&none, HOUR),
        Err(CaError::NoDnsNames)
    ));
    match ca.issue_serving(&["ok.svc", "Not_Valid"], HOUR) {
        Err(CaError::InvalidDnsName { name, .. }) => assert_eq!(name, "Not_Valid"),
        other => panic!("expected InvalidDnsName, got {other:?}"),
    }
    assert!(ca.issue_serving(&["*.weft-system.svc"], HOUR).is_ok());
}

#[test]
fn plugin_ca_signs_as_intermediate_and_chains_to_the_plugin_root() {
    let plugin = Plugin::new();
    let ca = plugin.load().unwrap();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let chain = chain_ders(&issued.cert_chain_pem);
    let ca_der = chain_ders(&plugin.ca.cert_pem).remove(0);
    let root_der = chain_ders(&plugin.root.cert_pem).remove(0);
    assert_eq!(chain.len(), 3, "leaf + cert-chain.pem (ca-cert + root)");
    assert_eq!(chain[1], ca_der);
    assert_eq!(chain[2], root_der);

    let leaf = x509::parse(&chain[0]).unwrap();
    let intermediate = x509::parse(&ca_der).unwrap();
    assert_eq!(leaf.issuer(), intermediate.subject());
    assert!(
        leaf.verify_signature(Some(intermediate.public_key()))
            .is_ok()
    );

    let verified = ca
        .trust_bundle()
        .verify_chain_pem(&issued.cert_chain_pem, start())
        .unwrap();
    assert_eq!(verified.root_der, root_der);
    assert_eq!(verified.certificates_used, 2);
    assert_eq!(
        ca.trust_bundle().roots().collect::<Vec<_>>(),
        vec![&root_der[..]]
    );
    assert_eq!(
        ca.chain_status(&issued.cert_chain_pem).unwrap(),
        ChainStatus::IssuedByCurrentCa
    );
}

#[test]
fn plugin_with_empty_cert_chain_sends_the_ca_cert() {
    let plugin = Plugin::new();
    let ca = CertificateAuthority::from_plugin(
        &plugin.ca.cert_pem,
        &plugin.ca.key_pem(),
        &plugin.root.cert_pem,
        "",
        clock(),
    )
    .unwrap();
    let issued = ca.issue_workload(&sleep(), HOUR).unwrap();
    let chain = chain_ders(&issued.cert_chain_pem);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], chain_ders(&plugin.ca.cert_pem)[0]);
}

#[test]
fn plugin_where_ca_cert_is_the_root_needs_no_chain() {
    let root = root("root used directly");
    let ca = CertificateAuthority::from_plugin(
        &root.cert_pem,
        &root.key_pem(),
        &root.cert_pem,
        "",
        clock(),
    )
    .unwrap();
    let issued = ca.issue_workload(&sleep(), HOUR).unwrap();
    assert_eq!(chain_ders(&issued.cert_chain_pem).len(), 1);
    ca.trust_bundle()
        .verify_chain_pem(&issued.cert_chain_pem, start())
        .unwrap();
}

#[test]
fn plugin_rejects_a_key_that_does_not_match() {
    let plugin = Plugin::new();
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let err = CertificateAuthority::from_plugin(
        &plugin.ca.cert_pem,
        &other_key,
        &plugin.root.cert_pem,
        &plugin.cert_chain(),
        clock(),
    )
    .unwrap_err();
    assert!(matches!(err, CaError::KeyMismatch { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ca-key.pem does not match"), "{message}");
    assert!(message.contains("cluster-1 intermediate"), "{message}");
    let key_body = other_key.lines().nth(1).unwrap();
    assert!(!message.contains(key_body) && !format!("{err:?}").contains(key_body));
}

#[test]
fn plugin_rejects_a_certificate_that_is_not_a_ca() {
    let root = root("offline root");
    let mut params = ca_params("not a ca", DAY);
    params.is_ca = IsCa::ExplicitNoCa;
    let leaf = signed(params, &root);
    let err = CertificateAuthority::from_plugin(
        &leaf.cert_pem,
        &leaf.key_pem(),
        &root.cert_pem,
        "",
        clock(),
    )
    .unwrap_err();
    match err {
        CaError::NotACa { subject, rule } => {
            assert!(subject.contains("not a ca"));
            assert!(rule.contains("CA:TRUE"));
        }
        other => panic!("expected NotACa, got {other:?}"),
    }
}

#[test]
fn plugin_rejects_a_ca_without_key_cert_sign() {
    let root = root("offline root");
    let mut params = ca_params("no certsign", DAY);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let ca = signed(params, &root);
    let err =
        CertificateAuthority::from_plugin(&ca.cert_pem, &ca.key_pem(), &root.cert_pem, "", clock())
            .unwrap_err();
    assert!(
        matches!(err, CaError::NotACa { rule, .. } if rule.contains("keyCertSign")),
        "{err:?}"
    );
}

#[test]
fn plugin_rejects_a_chain_that_does_not_reach_root_cert_pem() {
    let plugin = Plugin::new();
    let stranger = root("some other root");
    let err = CertificateAuthority::from_plugin(
        &plugin.ca.cert_pem,
        &plugin.ca.key_pem(),
        &stranger.cert_pem,
        &plugin.cert_chain(),
        clock(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            CaError::ChainDoesNotVerify(ChainError::Untrusted { .. })
        ),
        "{err:?}"
    );
}

#[test]
fn plugin_rejects_a_cert_chain_not_starting_with_ca_cert() {
    let plugin = Plugin::new();
    let err = CertificateAuthority::from_plugin(
        &plugin.ca.cert_pem,
        &plugin.ca.key_pem(),
        &plugin.root.cert_pem,
        &plugin.root.cert_pem,
        clock(),
    )
    .unwrap_err();
    match err {
        CaError::ChainDoesNotStartWithCaCert { first } => assert!(first.contains("offline root")),
        other => panic!("expected ChainDoesNotStartWithCaCert, got {other:?}"),
    }
}

#[test]
fn plugin_rejects_wrong_certificate_counts_and_key_formats() {
    let plugin = Plugin::new();
    let load = |ca_cert: &str, ca_key: &str| {
        CertificateAuthority::from_plugin(ca_cert, ca_key, &plugin.root.cert_pem, "", clock())
    };
    assert!(matches!(
        load("", &plugin.ca.key_pem()),
        Err(CaError::CaCertCount { found: 0 })
    ));
    assert!(matches!(
        load(&plugin.cert_chain(), &plugin.ca.key_pem()),
        Err(CaError::CaCertCount { found: 2 })
    ));
    let sec1 = plugin
        .ca
        .key_pem()
        .replace("BEGIN PRIVATE KEY", "BEGIN EC PRIVATE KEY")
        .replace("END PRIVATE KEY", "END EC PRIVATE KEY");
    let err = load(&plugin.ca.cert_pem, &sec1).unwrap_err();
    assert!(
        matches!(
            &err,
            CaError::Pem(PemError::UnexpectedLabel {
                field: "ca-key.pem",
                ..
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("openssl pkcs8"), "{err}");
    assert!(matches!(
        load(
            &plugin.ca.cert_pem,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
        ),
        Err(CaError::UnsupportedKey { .. })
    ));
}

#[test]
fn plugin_rejects_an_expired_ca_certificate() {
    let root = root("offline root");
    let mut params = ca_params("expired intermediate", DAY);
    params.not_before = datetime(start() - 10 * DAY);
    params.not_after = datetime(start() - DAY);
    let ca = signed(params, &root);
    let err =
        CertificateAuthority::from_plugin(&ca.cert_pem, &ca.key_pem(), &root.cert_pem, "", clock())
            .unwrap_err();
    assert!(
        matches!(err, CaError::CaExpired { not_after_unix } if not_after_unix == unix(start() - DAY)),
        "{err:?}"
    );
}

#[test]
fn plugin_workload_never_outlives_the_intermediate() {
    let root = root("offline root");
    let ca = signed(ca_params("short intermediate", 2 * HOUR), &root);
    let ca =
        CertificateAuthority::from_plugin(&ca.cert_pem, &ca.key_pem(), &root.cert_pem, "", clock())
            .unwrap();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(issued.not_after, start() + 2 * HOUR);
}

#[test]
fn pem_parts_round_trip_for_self_signed_and_plugin() {
    for ca in [self_signed_ca(), Plugin::new().load().unwrap()] {
        let parts = ca.to_pem_parts();
        let restored = CertificateAuthority::from_pem_parts(&parts, clock()).unwrap();
        assert_eq!(restored.to_pem_parts(), parts);
        assert_eq!(restored.trust_bundle(), ca.trust_bundle());
        let issued = restored.issue_workload(&sleep(), HOUR).unwrap();
        assert_eq!(
            ca.chain_status(&issued.cert_chain_pem).unwrap(),
            ChainStatus::IssuedByCurrentCa,
            "a certificate from the restored CA is one from the original"
        );
    }
}

#[test]
fn self_signed_parts_follow_istio_layout() {
    let ca = self_signed_ca();
    let parts = ca.to_pem_parts();
    assert_eq!(parts.ca_cert_pem, parts.root_cert_pem);
    assert_eq!(parts.cert_chain_pem, "");
    assert!(
        parts
            .ca_key_pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
}

#[test]
fn debug_output_never_contains_private_keys() {
    let ca = self_signed_ca();
    let parts = ca.to_pem_parts();
    let issued = ca.issue_workload(&sleep(), HOUR).unwrap();
    let ca_key_line = parts
        .ca_key_pem
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let leaf_key_line = issued
        .private_key_pem
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    let printed = format!("{ca:?} {ca:#?} {parts:?} {parts:#?} {issued:?} {issued:#?}");
    assert!(!printed.contains(&ca_key_line));
    assert!(!printed.contains(&leaf_key_line));
    assert!(!printed.contains("BEGIN PRIVATE KEY"));
    assert!(printed.contains("[redacted]"));
}

#[test]
fn forged_issuer_name_without_the_root_signature_is_untrusted() {
    // A leaf with the right issuer name, signed by a different key, must not verify: the chain
    // check looks at signatures, not names.
    let ca = self_signed_ca();
    let mut forged_root = CertificateParams::default();
    forged_root.distinguished_name = cluster_local_name();
    forged_root.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let forged_key = KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&forged_root, &forged_key);
    let mut leaf = CertificateParams::default();
    leaf.distinguished_name = rcgen::DistinguishedName::new();
    leaf.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/ns/default/sa/sleep"
            .try_into()
            .unwrap(),
    )];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    leaf.not_before = datetime(start() - HOUR);
    leaf.not_after = datetime(start() + HOUR);
    let leaf_key = KeyPair::generate().unwrap();
    let forged = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let parsed = x509::parse(forged.der()).unwrap();
    assert_eq!(parsed.issuer().to_string(), "O=cluster.local");
    assert!(matches!(
        ca.trust_bundle().verify_chain_pem(&forged.pem(), start()),
        Err(ChainError::Untrusted { .. })
    ));
}

fn cluster_local_name() -> rcgen::DistinguishedName {
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "cluster.local");
    dn
}

#[test]
fn identity_reads_back_from_issued_certificates() {
    let ca = self_signed_ca();
    let issued = ca.issue_workload(&sleep(), HOUR).unwrap();
    let leaf = chain_ders(&issued.cert_chain_pem).remove(0);
    assert_eq!(Identity::from_certificate_der(&leaf).unwrap(), sleep());

    let serving = ca.issue_serving(&["a.svc"], HOUR).unwrap();
    let leaf = chain_ders(&serving.cert_chain_pem).remove(0);
    assert_eq!(
        Identity::from_certificate_der(&leaf),
        Err(crate::spiffe::SvidError::NoUriSan)
    );
    assert!(matches!(
        Identity::from_certificate_der(b"not der"),
        Err(crate::spiffe::SvidError::InvalidCertificate(_))
    ));
}

#[test]
fn identity_from_certificate_rejects_several_or_invalid_uris() {
    let root = root("root");
    let mut params = ca_params("svid", DAY);
    params.is_ca = IsCa::ExplicitNoCa;
    params.subject_alt_names = vec![
        rcgen::SanType::URI("spiffe://cluster.local/ns/a/sa/b".try_into().unwrap()),
        rcgen::SanType::URI("spiffe://cluster.local/ns/c/sa/d".try_into().unwrap()),
    ];
    let two = signed(params.clone(), &root);
    assert!(matches!(
        Identity::from_certificate_der(&chain_ders(&two.cert_pem)[0]),
        Err(crate::spiffe::SvidError::SeveralUriSans(uris)) if uris.len() == 2
    ));
    params.subject_alt_names = vec![rcgen::SanType::URI(
        "spiffe://cluster.local/other/path".try_into().unwrap(),
    )];
    let bad = signed(params, &root);
    assert!(matches!(
        Identity::from_certificate_der(&chain_ders(&bad.cert_pem)[0]),
        Err(crate::spiffe::SvidError::Invalid(
            IdentityError::InvalidPath { .. }
        ))
    ));
}
