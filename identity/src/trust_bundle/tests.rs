use std::sync::Arc;

use pretty_assertions::assert_eq;
use rcgen::{CertificateParams, IsCa};

use super::*;
use crate::ca::CertificateAuthority;
use crate::clock::TestClock;
use crate::test_support::{
    DAY, HOUR, ca_params, clock, datetime, intermediate, root, signed, sleep, start,
};

fn der(pem_text: &str) -> Vec<u8> {
    pem::parse_certificates(pem_text, "test").unwrap().remove(0)
}

#[test]
fn from_pem_drops_duplicates_and_round_trips() {
    let a = root("root a");
    let b = root("root b");
    let text = format!("{}{}{}", a.cert_pem, b.cert_pem, a.cert_pem);
    let bundle = TrustBundle::from_pem(&text).unwrap();
    assert_eq!(bundle.len(), 2);
    assert_eq!(
        bundle.roots().collect::<Vec<_>>(),
        vec![&der(&a.cert_pem)[..], &der(&b.cert_pem)[..]]
    );
    assert_eq!(bundle.to_pem(), format!("{}{}", a.cert_pem, b.cert_pem));
    assert_eq!(TrustBundle::from_pem(&bundle.to_pem()).unwrap(), bundle);
}

#[test]
fn add_merge_remove_and_retain() {
    let a = root("root a");
    let b = root("root b");
    let mut bundle = TrustBundle::from_pem(&a.cert_pem).unwrap();
    assert_eq!(bundle.add_pem(&a.cert_pem).unwrap(), 0);
    assert_eq!(bundle.add_pem(&b.cert_pem).unwrap(), 1);
    let other = TrustBundle::from_pem(&format!("{}{}", b.cert_pem, a.cert_pem)).unwrap();
    assert_eq!(bundle.merge(&other), 0);
    assert!(bundle.contains(&der(&b.cert_pem)));
    assert!(bundle.remove(&der(&b.cert_pem)));
    assert!(!bundle.remove(&der(&b.cert_pem)));
    bundle.add_pem(&b.cert_pem).unwrap();
    assert_eq!(bundle.retain_only(&der(&b.cert_pem)), 1);
    assert_eq!(
        bundle.roots().collect::<Vec<_>>(),
        vec![&der(&b.cert_pem)[..]]
    );
    assert!(TrustBundle::from_pem("").unwrap().is_empty());
}

#[test]
fn roots_must_be_ca_certificates() {
    let a = root("root a");
    let mut params = ca_params("leaf", DAY);
    params.is_ca = IsCa::ExplicitNoCa;
    let leaf = signed(params, &a);
    let text = format!("{}{}", a.cert_pem, leaf.cert_pem);
    match TrustBundle::from_pem(&text) {
        Err(TrustBundleError::NotACa { index, subject }) => {
            assert_eq!(index, 1);
            assert!(subject.contains("leaf"));
        }
        other => panic!("expected NotACa, got {other:?}"),
    }
    let mut bundle = TrustBundle::from_pem(&a.cert_pem).unwrap();
    assert!(bundle.add_pem(&text).is_err());
    assert_eq!(bundle.len(), 1, "nothing added on error");
}

#[test]
fn chain_through_intermediate_verifies_and_tampering_fails() {
    let r = root("root");
    let i = intermediate("intermediate", &r);
    let mut leaf_params = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
    leaf_params.not_before = datetime(start() - HOUR);
    leaf_params.not_after = datetime(start() + HOUR);
    let leaf = signed(leaf_params, &i);
    let bundle = TrustBundle::from_pem(&r.cert_pem).unwrap();
    let chain = vec![der(&leaf.cert_pem), der(&i.cert_pem)];
    let verified = bundle.verify_chain(&chain, start()).unwrap();
    assert_eq!(verified.root_der, der(&r.cert_pem));
    assert_eq!(verified.certificates_used, 2);

    // Flip a bit in the leaf's signature (the last byte of the DER).
    let mut tampered = chain.clone();
    let last = tampered[0].len() - 1;
    tampered[0][last] ^= 0x01;
    assert!(matches!(
        bundle.verify_chain(&tampered, start()),
        Err(ChainError::BrokenLink { index: 0, .. }) | Err(ChainError::InvalidCertificate { .. })
    ));

    // Without the intermediate the leaf has no path to the root.
    assert!(matches!(
        bundle.verify_chain(&chain[..1], start()),
        Err(ChainError::Untrusted { index: 0, .. })
    ));
}

#[test]
fn issuer_that_is_not_a_ca_breaks_the_chain() {
    let r = root("root");
    let mut not_ca = ca_params("not a ca", DAY);
    not_ca.is_ca = IsCa::ExplicitNoCa;
    let not_ca = signed(not_ca, &r);
    let mut leaf_params = CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
    leaf_params.not_before = datetime(start() - HOUR);
    leaf_params.not_after = datetime(start() + HOUR);
    let leaf = signed(leaf_params, &not_ca);
    let bundle = TrustBundle::from_pem(&r.cert_pem).unwrap();
    match bundle.verify_chain(&[der(&leaf.cert_pem), der(&not_ca.cert_pem)], start()) {
        Err(ChainError::BrokenLink { index, reason, .. }) => {
            assert_eq!(index, 0);
            assert!(reason.contains("not a CA"), "{reason}");
        }
        other => panic!("expected BrokenLink, got {other:?}"),
    }
}

#[test]
fn certificates_outside_their_validity_fail() {
    let r = root("root");
    let i = intermediate("intermediate", &r);
    let bundle = TrustBundle::from_pem(&r.cert_pem).unwrap();
    let chain = vec![der(&i.cert_pem)];
    assert!(bundle.verify_chain(&chain, start()).is_ok());
    let later = start() + 400 * DAY;
    assert!(matches!(
        bundle.verify_chain(&chain, later),
        Err(ChainError::OutsideValidity { index: 0, .. })
    ));
    assert!(matches!(
        bundle.verify_chain(&chain, start() - 2 * HOUR),
        Err(ChainError::OutsideValidity { index: 0, .. })
    ));
}

#[test]
fn empty_chain_and_empty_bundle_fail() {
    let r = root("root");
    let bundle = TrustBundle::from_pem(&r.cert_pem).unwrap();
    assert_eq!(bundle.verify_chain(&[], start()), Err(ChainError::Empty));
    assert_eq!(
        TrustBundle::new().verify_chain(&[der(&r.cert_pem)], start()),
        Err(ChainError::EmptyBundle)
    );
}

#[test]
fn root_rotation_keeps_old_leaves_trusted_but_flags_them() {
    let clock: Arc<TestClock> = clock();
    let old_ca = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let old_leaf = old_ca.issue_workload(&sleep(), DAY).unwrap();

    // The new root alone does not trust the old leaf.
    let mut new_ca =
        CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    assert!(matches!(
        new_ca.chain_status(&old_leaf.cert_chain_pem),
        Err(ChainError::Untrusted { .. })
    ));

    // Overlap: both roots published.
    assert_eq!(new_ca.trust_retired_roots(old_ca.trust_bundle()), 1);
    assert_eq!(new_ca.trust_bundle().len(), 2);
    let both = TrustBundle::from_pem(&new_ca.trust_bundle_pem()).unwrap();
    assert!(
        both.verify_chain_pem(&old_leaf.cert_chain_pem, start())
            .is_ok()
    );
    let status = new_ca.chain_status(&old_leaf.cert_chain_pem).unwrap();
    assert_eq!(status, ChainStatus::TrustedByRetiredCa);
    assert!(status.needs_reissue());

    let new_leaf = new_ca.issue_workload(&sleep(), DAY).unwrap();
    let status = new_ca.chain_status(&new_leaf.cert_chain_pem).unwrap();
    assert_eq!(status, ChainStatus::IssuedByCurrentCa);
    assert!(!status.needs_reissue());
    assert!(
        both.verify_chain_pem(&new_leaf.cert_chain_pem, start())
            .is_ok()
    );

    // The overlap survives a round trip through the Secret layout.
    let restored =
        CertificateAuthority::from_pem_parts(&new_ca.to_pem_parts(), clock.clone()).unwrap();
    assert_eq!(restored.trust_bundle().len(), 2);

    // End of the rotation: only the new root remains.
    assert_eq!(new_ca.drop_retired_roots().unwrap(), 1);
    assert_eq!(new_ca.trust_bundle().len(), 1);
    assert!(new_ca.chain_status(&old_leaf.cert_chain_pem).is_err());
    assert!(new_ca.chain_status(&new_leaf.cert_chain_pem).is_ok());
}

#[test]
fn intermediate_rotation_under_the_same_root_flags_old_leaves() {
    let r = root("offline root");
    let first = intermediate("intermediate 1", &r);
    let second = intermediate("intermediate 2", &r);
    let load = |ca: &crate::test_support::TestCa| {
        CertificateAuthority::from_plugin(
            &ca.cert_pem,
            &ca.key_pem(),
            &r.cert_pem,
            &format!("{}{}", ca.cert_pem, r.cert_pem),
            clock(),
        )
        .unwrap()
    };
    let old_leaf = load(&first).issue_workload(&sleep(), DAY).unwrap();
    let current = load(&second);
    assert_eq!(
        current.chain_status(&old_leaf.cert_chain_pem).unwrap(),
        ChainStatus::TrustedByRetiredCa
    );
}
