use std::sync::Arc;

use pretty_assertions::assert_eq;

use super::*;
use crate::ca::{CertificateAuthority, IssuedCertificate};
use crate::clock::TestClock;
use crate::test_support::{DAY, HOUR, clock, sleep, start};
use crate::trust_bundle::TrustBundle;

const SECOND: Duration = Duration::from_secs(1);

fn ca(clock: &Arc<TestClock>) -> CertificateAuthority {
    CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap()
}

fn evaluate_at(
    policy: &RotationPolicy,
    issued: &IssuedCertificate,
    trust: &impl TrustSource,
    now: SystemTime,
) -> Decision {
    policy.evaluate(
        Some(&issued.cert_chain_pem),
        Some(issued.private_key_pem.expose_secret()),
        &sleep(),
        trust,
        now,
    )
}

#[test]
fn fraction_is_clamped() {
    assert_eq!(RotationPolicy::default().rotate_at_fraction(), 0.5);
    assert_eq!(RotationPolicy::new(DAY, 0.0).rotate_at_fraction(), 0.1);
    assert_eq!(RotationPolicy::new(DAY, -3.0).rotate_at_fraction(), 0.1);
    assert_eq!(RotationPolicy::new(DAY, 0.95).rotate_at_fraction(), 0.9);
    assert_eq!(RotationPolicy::new(DAY, 7.0).rotate_at_fraction(), 0.9);
    assert_eq!(RotationPolicy::new(DAY, f64::NAN).rotate_at_fraction(), 0.5);
    assert_eq!(RotationPolicy::new(DAY, 0.25).rotate_at_fraction(), 0.25);
}

#[test]
fn rotation_time_is_fraction_of_lifetime_after_not_before() {
    let not_before = start();
    let not_after = start() + 10 * HOUR;
    let at = |fraction| RotationPolicy::new(DAY, fraction).rotation_time(not_before, not_after);
    assert_eq!(at(0.5), start() + 5 * HOUR);
    assert_eq!(at(0.25), start() + 2 * HOUR + HOUR / 2);
    assert_eq!(at(0.01), start() + HOUR, "clamped to 0.1");
    assert_eq!(at(0.99), start() + 9 * HOUR, "clamped to 0.9");
    assert_eq!(
        RotationPolicy::default().rotation_time(not_after, not_before),
        not_after,
        "inverted window rotates at notBefore"
    );
}

#[test]
fn valid_before_the_rotation_point_reissue_at_and_after_it() {
    let clock = clock();
    let ca = ca(&clock);
    let policy = RotationPolicy::default();
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    // Lifetime is one day plus the one-minute back-dating.
    let rotate_at = issued.not_before + (DAY + Duration::from_secs(60)) / 2;
    assert_eq!(
        policy.rotation_time(issued.not_before, issued.not_after),
        rotate_at
    );

    assert_eq!(
        evaluate_at(&policy, &issued, &ca, start()),
        Decision::Valid {
            next_check: rotate_at
        }
    );
    assert_eq!(
        evaluate_at(&policy, &issued, &ca, rotate_at - SECOND),
        Decision::Valid {
            next_check: rotate_at
        }
    );
    assert_eq!(
        evaluate_at(&policy, &issued, &ca, rotate_at),
        Decision::Reissue(Reason::PastRotationPoint)
    );
    assert_eq!(
        evaluate_at(&policy, &issued, &ca, issued.not_after),
        Decision::Reissue(Reason::PastRotationPoint)
    );
    assert_eq!(
        evaluate_at(&policy, &issued, &ca, issued.not_after + SECOND),
        Decision::Reissue(Reason::Expired)
    );
}

#[test]
fn clamped_fraction_sets_the_rotation_point() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca
        .issue_workload(&sleep(), 10 * HOUR - Duration::from_secs(60))
        .unwrap();
    // Lifetime is exactly 10 h.
    let late = RotationPolicy::new(DAY, 0.99);
    assert_eq!(
        evaluate_at(&late, &issued, &ca, start()),
        Decision::Valid {
            next_check: issued.not_before + 9 * HOUR
        }
    );
    let early = RotationPolicy::new(DAY, 0.0);
    assert_eq!(
        evaluate_at(&early, &issued, &ca, issued.not_before + HOUR),
        Decision::Reissue(Reason::PastRotationPoint)
    );
    assert_eq!(
        evaluate_at(&early, &issued, &ca, issued.not_before + HOUR - SECOND),
        Decision::Valid {
            next_check: issued.not_before + HOUR
        }
    );
}

#[test]
fn missing_chain_or_key() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let policy = RotationPolicy::default();
    let key = issued.private_key_pem.expose_secret();
    for (chain, key) in [
        (None, Some(key)),
        (Some(issued.cert_chain_pem.as_str()), None),
        (Some(" \n"), Some(key)),
        (Some(issued.cert_chain_pem.as_str()), Some("")),
    ] {
        assert_eq!(
            policy.evaluate(chain, key, &sleep(), &ca, start()),
            Decision::Reissue(Reason::Missing)
        );
    }
}

#[test]
fn malformed_chain_or_key() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let policy = RotationPolicy::default();
    let key = issued.private_key_pem.expose_secret();
    let garbage_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    let garbage_key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    let cases = [
        (garbage_cert, key),
        ("no pem here", key),
        (issued.cert_chain_pem.as_str(), garbage_key),
        (
            issued.cert_chain_pem.as_str(),
            issued.cert_chain_pem.as_str(),
        ),
    ];
    for (chain, key) in cases {
        match policy.evaluate(Some(chain), Some(key), &sleep(), &ca, start()) {
            Decision::Reissue(Reason::Malformed(detail)) => {
                assert!(!detail.contains("AAAA"), "{detail}");
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }
}

#[test]
fn key_of_another_certificate_is_a_mismatch() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let other = ca.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(
        RotationPolicy::default().evaluate(
            Some(&issued.cert_chain_pem),
            Some(other.private_key_pem.expose_secret()),
            &sleep(),
            &ca,
            start(),
        ),
        Decision::Reissue(Reason::KeyMismatch)
    );
}

#[test]
fn certificate_for_another_identity_is_wrong() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let expected = Identity::spiffe("cluster.local", "default", "httpbin").unwrap();
    assert_eq!(
        RotationPolicy::default().evaluate(
            Some(&issued.cert_chain_pem),
            Some(issued.private_key_pem.expose_secret()),
            &expected,
            &ca,
            start(),
        ),
        Decision::Reissue(Reason::WrongIdentity {
            found: vec!["spiffe://cluster.local/ns/default/sa/sleep".to_owned()],
            expected,
        })
    );
}

#[test]
fn serving_certificate_without_uri_san_is_wrong_identity() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_serving(&["a.svc"], DAY).unwrap();
    assert_eq!(
        evaluate_at(&RotationPolicy::default(), &issued, &ca, start()),
        Decision::Reissue(Reason::WrongIdentity {
            found: vec![],
            expected: sleep(),
        })
    );
}

#[test]
fn not_yet_valid_certificate() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    assert_eq!(
        evaluate_at(
            &RotationPolicy::default(),
            &issued,
            &ca,
            issued.not_before - SECOND
        ),
        Decision::Reissue(Reason::NotYetValid)
    );
}

#[test]
fn certificate_from_another_ca_is_rejected() {
    let clock = clock();
    let ours = ca(&clock);
    let theirs = ca(&clock);
    let issued = theirs.issue_workload(&sleep(), DAY).unwrap();
    for decision in [
        evaluate_at(&RotationPolicy::default(), &issued, &ours, start()),
        evaluate_at(
            &RotationPolicy::default(),
            &issued,
            ours.trust_bundle(),
            start(),
        ),
    ] {
        assert!(
            matches!(decision, Decision::Reissue(Reason::SignedByOtherCa(_))),
            "{decision:?}"
        );
    }
}

#[test]
fn certificate_from_retired_root_is_reissued_by_the_ca_but_valid_for_workloads() {
    let clock = clock();
    let old = ca(&clock);
    let issued = old.issue_workload(&sleep(), DAY).unwrap();
    let mut new = ca(&clock);
    new.trust_retired_roots(old.trust_bundle());
    assert_eq!(
        evaluate_at(&RotationPolicy::default(), &issued, &new, start()),
        Decision::Reissue(Reason::SignedByRetiredCa)
    );
    // A workload holding only the published bundle keeps trusting it during the overlap.
    let published = TrustBundle::from_pem(&new.trust_bundle_pem()).unwrap();
    assert!(matches!(
        evaluate_at(&RotationPolicy::default(), &issued, &published, start()),
        Decision::Valid { .. }
    ));
}

#[test]
fn reasons_never_print_key_material() {
    let clock = clock();
    let ca = ca(&clock);
    let issued = ca.issue_workload(&sleep(), DAY).unwrap();
    let key_line = issued
        .private_key_pem
        .expose_secret()
        .lines()
        .nth(1)
        .unwrap()
        .to_owned();
    // Feed the key where the chain belongs and the chain where the key belongs.
    let decision = RotationPolicy::default().evaluate(
        Some(issued.private_key_pem.expose_secret()),
        Some(&issued.cert_chain_pem),
        &sleep(),
        &ca,
        start(),
    );
    let printed = format!("{decision:?}");
    assert!(
        matches!(decision, Decision::Reissue(Reason::Malformed(_))),
        "{printed}"
    );
    assert!(!printed.contains(&key_line), "{printed}");
}
