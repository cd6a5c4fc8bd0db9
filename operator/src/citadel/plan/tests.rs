//! Table-driven tests of the Citadel plan: one row per stored state of a workload Secret, the
//! CA choices, and the trust-bundle ConfigMap.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use weft_identity::{TestClock, TrustBundle};

use super::*;

const TD: &str = "cluster.local";
const HOUR: Duration = Duration::from_secs(3600);

/// 2027-01-15T08:00:00Z.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn clock() -> Arc<TestClock> {
    Arc::new(TestClock::new(start()))
}

fn service_account(name: &str, uid: &str) -> ServiceAccount {
    let mut sa = ServiceAccount::default();
    sa.metadata.name = Some(name.to_string());
    sa.metadata.namespace = Some("demo".to_string());
    sa.metadata.uid = Some(uid.to_string());
    sa
}

fn policy() -> RotationPolicy {
    RotationPolicy::new(24 * HOUR, 0.5)
}

fn ca(clock: &Arc<TestClock>) -> CertificateAuthority {
    CertificateAuthority::self_signed(TD, None, clock.clone()).unwrap()
}

fn data(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

fn written(plan: &SecretPlan) -> &Secret {
    match &plan.action {
        SecretAction::Create(s) | SecretAction::Replace(s) => s,
        SecretAction::Keep => panic!("expected a Secret to write, got Keep"),
    }
}

/// A Secret as the plan would create it for `sa`, issued at `start()`.
fn issued(sa: &ServiceAccount, ca: &CertificateAuthority) -> Secret {
    let plan = plan_workload_secret(sa, None, ca, &policy(), TD, start()).unwrap();
    written(&plan).clone()
}

fn set(secret: &mut Secret, key: &str, value: &[u8]) {
    secret
        .data
        .as_mut()
        .unwrap()
        .insert(key.to_string(), ByteString(value.to_vec()));
}

#[test]
fn a_missing_secret_is_created_with_the_spiffe_id_owner_and_tls_keys() {
    let clock = clock();
    let ca = ca(&clock);
    let sa = service_account("reviews", "uid-1");
    let plan = plan_workload_secret(&sa, None, &ca, &policy(), TD, start()).unwrap();
    assert!(matches!(plan.action, SecretAction::Create(_)));
    assert_eq!(plan.reason, SecretReason::Reissue(Reason::Missing));
    let secret = written(&plan);
    assert_eq!(
        secret.metadata.name.as_deref(),
        Some("weft-workload-cert-reviews")
    );
    assert_eq!(secret.metadata.namespace.as_deref(), Some("demo"));
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        secret.metadata.owner_references,
        Some(vec![owner_reference("reviews", "uid-1")])
    );
    let keys: Vec<&str> = secret
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, vec!["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(data(secret, "ca.crt"), ca.trust_bundle_pem());
    let leaf =
        &weft_identity::pem::parse_certificates(&data(secret, "tls.crt"), "tls.crt").unwrap()[0];
    assert_eq!(
        Identity::from_certificate_der(leaf).unwrap().to_string(),
        "spiffe://cluster.local/ns/demo/sa/reviews"
    );
    // Issued one minute in the past for 24 h: the rotation point is 12 h − 30 s from now.
    assert_eq!(plan.requeue_after, 12 * HOUR - Duration::from_secs(30));
}

#[test]
fn debug_output_never_contains_the_private_key() {
    let clock = clock();
    let ca = ca(&clock);
    let plan = plan_workload_secret(
        &service_account("reviews", "u"),
        None,
        &ca,
        &policy(),
        TD,
        start(),
    )
    .unwrap();
    let key = data(written(&plan), "tls.key");
    let debug = format!("{plan:?}");
    assert!(debug.contains("weft-workload-cert-reviews"), "{debug}");
    assert!(!debug.contains(key.lines().nth(1).unwrap()), "{debug}");
}

#[test]
fn stored_secrets_are_kept_or_replaced_for_the_right_reason() {
    let clock = clock();
    let ca = ca(&clock);
    let other_ca = CertificateAuthority::self_signed(TD, None, clock.clone()).unwrap();
    let sa = service_account("reviews", "uid-1");
    let good = issued(&sa, &ca);
    // Issued from one minute before `start()` for 24 h: half of 24 h + 60 s after notBefore.
    let rotation = start() + 12 * HOUR - Duration::from_secs(30);
    type Edit = Box<dyn Fn(&mut Secret)>;
    struct Row {
        name: &'static str,
        edit: Edit,
        now: SystemTime,
        reason: fn(&SecretReason) -> bool,
        keeps_certificate: bool,
    }
    let rows = vec![
        Row {
            name: "valid",
            edit: Box::new(|_| {}),
            now: start() + HOUR,
            reason: |r| *r == SecretReason::Valid,
            keeps_certificate: true,
        },
        Row {
            name: "past the rotation point",
            edit: Box::new(|_| {}),
            now: rotation,
            reason: |r| *r == SecretReason::Reissue(Reason::PastRotationPoint),
            keeps_certificate: false,
        },
        Row {
            name: "malformed tls.crt",
            edit: Box::new(|s| set(s, "tls.crt", b"not a certificate")),
            now: start(),
            reason: |r| matches!(r, SecretReason::Reissue(Reason::Malformed(_))),
            keeps_certificate: false,
        },
        Row {
            name: "tls.key not UTF-8",
            edit: Box::new(|s| set(s, "tls.key", &[0xff, 0xfe])),
            now: start(),
            reason: |r| matches!(r, SecretReason::Reissue(Reason::Malformed(_))),
            keeps_certificate: false,
        },
        Row {
            name: "tls.key removed",
            edit: Box::new(|s| {
                s.data.as_mut().unwrap().remove("tls.key");
            }),
            now: start(),
            reason: |r| *r == SecretReason::Reissue(Reason::Missing),
            keeps_certificate: false,
        },
        Row {
            name: "signed by another CA",
            edit: {
                let foreign = issued(&sa, &other_ca);
                Box::new(move |s| {
                    set(s, "tls.crt", data(&foreign, "tls.crt").as_bytes());
                    set(s, "tls.key", data(&foreign, "tls.key").as_bytes());
                })
            },
            now: start(),
            reason: |r| matches!(r, SecretReason::Reissue(Reason::SignedByOtherCa(_))),
            keeps_certificate: false,
        },
        Row {
            name: "wrong SAN",
            edit: {
                let ratings = issued(&service_account("ratings", "uid-2"), &ca);
                Box::new(move |s| {
                    set(s, "tls.crt", data(&ratings, "tls.crt").as_bytes());
                    set(s, "tls.key", data(&ratings, "tls.key").as_bytes());
                })
            },
            now: start(),
            reason: |r| matches!(r, SecretReason::Reissue(Reason::WrongIdentity { .. })),
            keeps_certificate: false,
        },
        Row {
            name: "stale ca.crt",
            edit: Box::new(|s| set(s, "ca.crt", b"old bundle")),
            now: start(),
            reason: |r| *r == SecretReason::TrustBundleChanged,
            keeps_certificate: true,
        },
        Row {
            name: "owner is an older ServiceAccount of the same name",
            edit: Box::new(|s| {
                s.metadata.owner_references = Some(vec![owner_reference("reviews", "uid-0")]);
            }),
            now: start(),
            reason: |r| *r == SecretReason::MetadataChanged,
            keeps_certificate: true,
        },
        Row {
            name: "valid, with an owner and a label added by someone else",
            edit: Box::new(|s| {
                let mut other = owner_reference("team", "uid-9");
                other.kind = "ConfigMap".to_string();
                other.controller = None;
                s.metadata.owner_references.as_mut().unwrap().push(other);
                s.metadata
                    .labels
                    .as_mut()
                    .unwrap()
                    .insert("team".to_string(), "bookinfo".to_string());
            }),
            now: start() + HOUR,
            reason: |r| *r == SecretReason::Valid,
            keeps_certificate: true,
        },
    ];
    for row in rows {
        let mut stored = good.clone();
        (row.edit)(&mut stored);
        // The CA issues at its clock's time; the plan decides at `now`: the same instant.
        clock.set(row.now);
        let plan = plan_workload_secret(&sa, Some(&stored), &ca, &policy(), TD, row.now).unwrap();
        assert!(
            (row.reason)(&plan.reason),
            "{}: reason {:?}",
            row.name,
            plan.reason
        );
        if plan.reason == SecretReason::Valid {
            assert_eq!(plan.action, SecretAction::Keep, "{}", row.name);
            assert_eq!(
                plan.requeue_after,
                rotation.duration_since(row.now).unwrap()
            );
            continue;
        }
        let secret = written(&plan);
        assert!(
            matches!(plan.action, SecretAction::Replace(_)),
            "{}",
            row.name
        );
        assert_eq!(
            data(secret, "ca.crt"),
            ca.trust_bundle_pem(),
            "{}",
            row.name
        );
        assert_eq!(
            secret.metadata.owner_references,
            Some(vec![owner_reference("reviews", "uid-1")]),
            "{}",
            row.name
        );
        let same = data(secret, "tls.crt") == data(&good, "tls.crt");
        assert_eq!(
            same, row.keeps_certificate,
            "{}: certificate kept",
            row.name
        );
        // Whatever was written is what the policy accepts now.
        let check = policy().evaluate(
            Some(&data(secret, "tls.crt")),
            Some(&data(secret, "tls.key")),
            &Identity::spiffe(TD, "demo", "reviews").unwrap(),
            &ca,
            row.now,
        );
        assert!(
            matches!(check, Decision::Valid { .. }),
            "{}: {check:?}",
            row.name
        );
    }
}

#[test]
fn refused_service_accounts_and_secrets() {
    let clock = clock();
    let ca = ca(&clock);
    let mut no_uid = service_account("reviews", "u");
    no_uid.metadata.uid = None;
    let plan = |sa: &ServiceAccount, existing: Option<&Secret>| {
        plan_workload_secret(sa, existing, &ca, &policy(), TD, start())
    };
    assert!(matches!(
        plan(&no_uid, None),
        Err(PlanError::MissingField {
            field: "metadata.uid"
        })
    ));
    assert!(matches!(
        plan(&service_account("Not_A_Name", "u"), None),
        Err(PlanError::Identity { .. })
    ));
    assert!(matches!(
        plan(
            &service_account(&vec!["a".repeat(60); 4].join("."), "u"),
            None
        ),
        Err(PlanError::SecretNameTooLong { .. })
    ));
    let mut opaque = issued(&service_account("reviews", "u"), &ca);
    opaque.type_ = Some("Opaque".to_string());
    assert!(matches!(
        plan(&service_account("reviews", "u"), Some(&opaque)),
        Err(PlanError::SecretType { found, .. }) if found == "Opaque"
    ));
}

fn configmap(bundle: &str) -> ConfigMap {
    plan_root_configmap("demo", None, bundle).unwrap()
}

#[test]
fn the_root_configmap_is_written_only_when_missing_or_stale() {
    let rows: [(&str, Option<ConfigMap>, bool); 4] = [
        ("missing", None, true),
        ("up to date", Some(configmap("BUNDLE")), false),
        ("stale", Some(configmap("OLD")), true),
        ("no data", Some(ConfigMap::default()), true),
    ];
    for (name, existing, writes) in rows {
        let planned = plan_root_configmap("demo", existing.as_ref(), "BUNDLE");
        assert_eq!(planned.is_some(), writes, "{name}");
        if let Some(cm) = planned {
            assert_eq!(
                cm.metadata.name.as_deref(),
                Some("istio-ca-root-cert"),
                "{name}"
            );
            assert_eq!(cm.metadata.namespace.as_deref(), Some("demo"), "{name}");
            assert_eq!(cm.data.unwrap()["root-cert.pem"], "BUNDLE", "{name}");
        }
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, TD);
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    params
}

fn secret_with(pairs: &[(&str, &str)]) -> Secret {
    Secret {
        data: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// Istio's `cacerts`: an intermediate signed by an offline root.
fn cacerts() -> (Secret, String, String) {
    let root_params = ca_params("root");
    let root_key = KeyPair::generate().unwrap();
    let root_pem = root_params.self_signed(&root_key).unwrap().pem();
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&root_params, &root_key);
    let cert_pem = ca_params("intermediate")
        .signed_by(&key, &issuer)
        .unwrap()
        .pem();
    let secret = secret_with(&[
        ("ca-cert.pem", &cert_pem),
        ("ca-key.pem", &key.serialize_pem()),
        ("root-cert.pem", &root_pem),
        ("cert-chain.pem", &format!("{cert_pem}{root_pem}")),
    ]);
    (secret, cert_pem, root_pem)
}

#[test]
fn a_plugin_ca_signs_as_the_intermediate_and_wins_over_the_own_secret() {
    let clock = clock();
    let mesh = MeshSpec::default();
    let (_, own) = load_or_create_ca(None, None, "istio-system", &mesh, clock.clone()).unwrap();
    let (cacerts, intermediate_pem, root_pem) = cacerts();
    let (ca, to_write) = load_or_create_ca(
        Some(&cacerts),
        own.as_ref(),
        "istio-system",
        &mesh,
        clock.clone(),
    )
    .unwrap();
    assert!(to_write.is_none(), "nothing is written when cacerts exists");
    assert_eq!(ca.ca_cert_pem(), intermediate_pem);
    assert_eq!(
        ca.trust_bundle_pem(),
        TrustBundle::from_pem(&root_pem).unwrap().to_pem()
    );
    let sa = service_account("reviews", "u");
    let secret = issued(&sa, &ca);
    let chain =
        weft_identity::pem::parse_certificates(&data(&secret, "tls.crt"), "tls.crt").unwrap();
    assert_eq!(
        chain.len(),
        3,
        "leaf, intermediate, root as in cert-chain.pem"
    );
    let root_only = TrustBundle::from_pem(&root_pem).unwrap();
    root_only.verify_chain(&chain, start()).unwrap();
}

#[test]
fn a_new_self_signed_root_is_kept_in_weft_ca_secret_and_reloaded_from_it() {
    let clock = clock();
    let mesh = MeshSpec::default();
    let (created, secret) =
        load_or_create_ca(None, None, "istio-system", &mesh, clock.clone()).unwrap();
    let secret = secret.expect("a new root is returned for storing");
    assert_eq!(secret.metadata.name.as_deref(), Some("weft-ca-secret"));
    assert_eq!(secret.metadata.namespace.as_deref(), Some("istio-system"));
    assert_eq!(secret.type_.as_deref(), Some("istio.io/ca-root"));
    let keys: Vec<&str> = secret
        .data
        .as_ref()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        vec![
            "ca-cert.pem",
            "ca-key.pem",
            "cert-chain.pem",
            "root-cert.pem"
        ]
    );
    let (reloaded, none) =
        load_or_create_ca(None, Some(&secret), "istio-system", &mesh, clock).unwrap();
    assert!(none.is_none());
    assert_eq!(reloaded.ca_cert_pem(), created.ca_cert_pem());
    assert_eq!(reloaded.trust_bundle_pem(), created.trust_bundle_pem());
}

#[test]
fn broken_ca_secrets_are_errors_never_a_silent_new_root() {
    let clock = clock();
    let mesh = MeshSpec::default();
    let (cacerts, cert, root) = cacerts();
    let no_key = secret_with(&[("ca-cert.pem", &cert), ("root-cert.pem", &root)]);
    assert!(matches!(
        load_or_create_ca(Some(&no_key), None, "ns", &mesh, clock.clone()),
        Err(PlanError::CaSecretKey {
            secret: "cacerts",
            key: "ca-key.pem"
        })
    ));
    let mut wrong_root = cacerts.clone();
    let (_, _, other_root) = self::cacerts();
    set(&mut wrong_root, "root-cert.pem", other_root.as_bytes());
    assert!(matches!(
        load_or_create_ca(Some(&wrong_root), None, "ns", &mesh, clock),
        Err(PlanError::Ca {
            source_name: "cacerts",
            ..
        })
    ));
}

#[test]
fn a_leaf_born_past_its_rotation_point_is_requeued_after_a_second_not_at_once() {
    let clock = clock();
    // The CA ends 20 s from now; leaves are valid from one minute ago and clamped to end with
    // it, so half of their 80 s life is over before they are issued.
    let ca = CertificateAuthority::self_signed(TD, Some(Duration::from_secs(20)), clock.clone())
        .unwrap();
    let plan = plan_workload_secret(
        &service_account("reviews", "u"),
        None,
        &ca,
        &policy(),
        TD,
        start(),
    )
    .unwrap();
    assert!(matches!(plan.action, SecretAction::Create(_)));
    assert_eq!(plan.requeue_after, MIN_REISSUE_INTERVAL);
}
