//! Issued chains checked by rustls-webpki, the verifier behind rustls (what the proxy uses for
//! mTLS): a workload certificate must be accepted for both client and server authentication
//! against the published trust bundle, including during a root rotation.

// Test helpers outside `#[test]` functions: a failed fixture should stop the test loudly.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use weft_identity::pem::parse_certificates;
use weft_identity::{CertificateAuthority, Clock, Identity, TestClock, TrustBundle};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(TestClock::new(start()))
}

fn sleep() -> Identity {
    "spiffe://cluster.local/ns/default/sa/sleep"
        .parse()
        .unwrap()
}

/// Verifies `chain_pem` with webpki for `usage` against `bundle` at `at`.
fn webpki_verify(
    chain_pem: &str,
    bundle: &TrustBundle,
    at: SystemTime,
    usage: KeyUsage,
) -> Result<(), webpki::Error> {
    let chain: Vec<CertificateDer<'static>> = parse_certificates(chain_pem, "chain")
        .unwrap()
        .into_iter()
        .map(CertificateDer::from)
        .collect();
    let roots: Vec<CertificateDer<'static>> = bundle
        .roots()
        .map(|der| CertificateDer::from(der.to_vec()))
        .collect();
    let anchors: Vec<_> = roots
        .iter()
        .map(|root| anchor_from_trusted_cert(root).unwrap())
        .collect();
    let leaf = EndEntityCert::try_from(&chain[0]).unwrap();
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap()),
        usage,
        None,
        None,
    )
    .map(|_| ())
}

#[test]
fn webpki_accepts_workload_certificates_for_client_and_server_auth() {
    let ca = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
        webpki_verify(&issued.cert_chain_pem, ca.trust_bundle(), start(), usage).unwrap();
    }
    // After notAfter webpki rejects it too.
    assert!(
        webpki_verify(
            &issued.cert_chain_pem,
            ca.trust_bundle(),
            issued.not_after + Duration::from_secs(1),
            KeyUsage::client_auth(),
        )
        .is_err()
    );
}

#[test]
fn webpki_accepts_plugin_intermediate_chains() {
    let root = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let parts = root.to_pem_parts();
    // The root used as a plug-in CA whose cert-chain.pem repeats the root: the leaf's chain then
    // carries the root, which webpki must tolerate as an extra intermediate.
    let plugin = CertificateAuthority::from_plugin(
        &parts.ca_cert_pem,
        parts.ca_key_pem.expose_secret(),
        &parts.root_cert_pem,
        &parts.ca_cert_pem,
        clock(),
    )
    .unwrap();
    let issued = plugin.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(
        parse_certificates(&issued.cert_chain_pem, "chain")
            .unwrap()
            .len(),
        2
    );
    webpki_verify(
        &issued.cert_chain_pem,
        plugin.trust_bundle(),
        start(),
        KeyUsage::client_auth(),
    )
    .unwrap();
}

/// An offline root and an intermediate made with rcgen, in Istio's `cacerts` layout.
fn istio_plugin_material() -> (String, String, String, String) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_params = |name: &str| {
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Istio");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = time::OffsetDateTime::from(start() - DAY);
        params.not_after = time::OffsetDateTime::from(start() + 365 * DAY);
        params
    };
    let root_params = ca_params("Root CA");
    let root_key = KeyPair::generate().unwrap();
    let root_pem = root_params.self_signed(&root_key).unwrap().pem();
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca_params("Intermediate CA")
        .signed_by(&ca_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap()
        .pem();
    let cert_chain = format!("{ca_pem}{root_pem}");
    (ca_pem, ca_key.serialize_pem(), root_pem, cert_chain)
}

#[test]
fn webpki_accepts_chains_from_an_intermediate_plugin_ca() {
    let (ca_cert, ca_key, root_cert, cert_chain) = istio_plugin_material();
    let ca = CertificateAuthority::from_plugin(&ca_cert, &ca_key, &root_cert, &cert_chain, clock())
        .unwrap();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(
        parse_certificates(&issued.cert_chain_pem, "chain")
            .unwrap()
            .len(),
        3
    );
    let roots = TrustBundle::from_pem(&root_cert).unwrap();
    for usage in [KeyUsage::client_auth(), KeyUsage::server_auth()] {
        webpki_verify(&issued.cert_chain_pem, &roots, start(), usage).unwrap();
    }
}

#[test]
fn webpki_accepts_serving_certificates_for_their_dns_name() {
    let ca = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let issued = ca
        .issue_serving(&["weft-webhook.weft-system.svc"], DAY)
        .unwrap();
    webpki_verify(
        &issued.cert_chain_pem,
        ca.trust_bundle(),
        start(),
        KeyUsage::server_auth(),
    )
    .unwrap();
    let der = parse_certificates(&issued.cert_chain_pem, "chain")
        .unwrap()
        .remove(0);
    let der = CertificateDer::from(der);
    let leaf = EndEntityCert::try_from(&der).unwrap();
    let name = rustls_pki_types::ServerName::try_from("weft-webhook.weft-system.svc").unwrap();
    leaf.verify_is_valid_for_subject_name(&name).unwrap();
    let other = rustls_pki_types::ServerName::try_from("other.weft-system.svc").unwrap();
    assert!(leaf.verify_is_valid_for_subject_name(&other).is_err());
}

#[test]
fn webpki_trusts_old_and_new_leaves_during_root_rotation() {
    let old = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let old_leaf = old.issue_workload(&sleep(), DAY).unwrap();
    let mut new = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let new_leaf = new.issue_workload(&sleep(), DAY).unwrap();

    assert!(
        webpki_verify(
            &old_leaf.cert_chain_pem,
            new.trust_bundle(),
            start(),
            KeyUsage::client_auth()
        )
        .is_err(),
        "the new root alone must not trust the old leaf"
    );
    new.trust_retired_roots(old.trust_bundle());
    let published = TrustBundle::from_pem(&new.trust_bundle_pem()).unwrap();
    for leaf in [&old_leaf, &new_leaf] {
        webpki_verify(
            &leaf.cert_chain_pem,
            &published,
            start(),
            KeyUsage::client_auth(),
        )
        .unwrap();
    }
}
