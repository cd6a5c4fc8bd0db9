use std::time::{Duration, SystemTime};

use kube::api::ObjectMeta;
use weft_crds::mesh::{MeshSpec, MeshStatus};

use super::*;

/// 2026-01-01T00:00:00Z.
const NOW_UNIX: u64 = 1_767_225_600;
const NOW: &str = "2026-01-01T00:00:00Z";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

fn mesh(name: &str, generation: i64, spec: MeshSpec) -> Mesh {
    Mesh {
        metadata: ObjectMeta {
            name: Some(name.into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}

fn webhooks(state: WebhookState) -> Vec<WebhookFact> {
    vec![
        WebhookFact {
            kind: "MutatingWebhookConfiguration",
            name: "weft-sidecar-injector",
            state: state.clone(),
        },
        WebhookFact {
            kind: "ValidatingWebhookConfiguration",
            name: "weft-validator",
            state,
        },
    ]
}

fn healthy() -> Facts {
    Facts {
        ca: CaFact::Loaded {
            source: CaSource::SelfSigned,
            not_after: now() + Duration::from_secs(86_400),
            trust_bundle_pem: "ROOT".into(),
        },
        manage_webhook_ca_bundle: true,
        webhooks: webhooks(WebhookState::Current),
        discovery_serving: true,
        connected_proxies: 3,
        injected_pods: 5,
        nearest_certificate_expiry: Some(now() + Duration::from_secs(3600)),
    }
}

/// (status, reason) of condition `type_`.
fn condition<'a>(status: &'a MeshStatus, type_: &str) -> (&'a str, &'a str) {
    let c = status
        .condition(type_)
        .unwrap_or_else(|| panic!("no {type_}"));
    (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
}

fn message<'a>(status: &'a MeshStatus, type_: &str) -> &'a str {
    status.condition(type_).unwrap().message.as_deref().unwrap()
}

#[test]
fn a_healthy_mesh_is_ready_with_counts_and_the_generation() {
    let (status, events) =
        desired_status(&mesh("default", 4, MeshSpec::default()), &healthy(), now());
    assert_eq!(condition(&status, "Ready"), ("True", reason::MESH_READY));
    assert_eq!(
        condition(&status, "CertificateAuthorityReady"),
        ("True", reason::SELF_SIGNED_CA)
    );
    assert_eq!(
        condition(&status, "WebhooksReady"),
        ("True", reason::CA_BUNDLE_CURRENT)
    );
    assert_eq!(
        condition(&status, "DiscoveryReady"),
        ("True", reason::SERVING)
    );
    assert_eq!(message(&status, "DiscoveryReady"), "3 proxies connected");
    assert_eq!(status.conditions.len(), 4);
    for c in &status.conditions {
        assert_eq!(c.observed_generation, Some(4), "{}", c.type_);
        assert_eq!(c.last_transition_time.as_deref(), Some(NOW), "{}", c.type_);
    }
    assert_eq!(status.observed_generation, Some(4));
    assert_eq!(status.connected_proxies, Some(3));
    assert_eq!(status.injected_pods, Some(5));
    assert_eq!(
        status.nearest_certificate_expiry.as_deref(),
        Some("2026-01-01T01:00:00Z")
    );
    assert_eq!(events.len(), 4, "first status: one Event per condition");
    assert!(events.iter().all(|e| !e.warning));
}

#[test]
fn each_component_failure_has_its_reason_and_makes_ready_false() {
    let rows: Vec<(&str, Facts, &str, &str)> = vec![
        (
            "no CA Secret",
            Facts {
                ca: CaFact::Missing,
                webhooks: webhooks(WebhookState::Unknown),
                ..healthy()
            },
            "CertificateAuthorityReady",
            reason::CA_MISSING,
        ),
        (
            "bad cacerts",
            Facts {
                ca: CaFact::Invalid {
                    secret: "cacerts",
                    message: "ca-key.pem is missing".into(),
                },
                ..healthy()
            },
            "CertificateAuthorityReady",
            reason::CA_INVALID,
        ),
        (
            "expired CA",
            Facts {
                ca: CaFact::Loaded {
                    source: CaSource::PluggedIn,
                    not_after: now(),
                    trust_bundle_pem: "ROOT".into(),
                },
                ..healthy()
            },
            "CertificateAuthorityReady",
            reason::CA_EXPIRED,
        ),
        (
            "no validator",
            Facts {
                webhooks: vec![
                    webhooks(WebhookState::Current).remove(0),
                    WebhookFact {
                        state: WebhookState::Missing,
                        ..webhooks(WebhookState::Current).remove(1)
                    },
                ],
                ..healthy()
            },
            "WebhooksReady",
            reason::WEBHOOK_CONFIGURATION_MISSING,
        ),
        (
            "stale caBundle",
            Facts {
                webhooks: webhooks(WebhookState::Stale(vec!["inject.weft.dev".into()])),
                ..healthy()
            },
            "WebhooksReady",
            reason::CA_BUNDLE_STALE,
        ),
        (
            "discovery down",
            Facts {
                discovery_serving: false,
                ..healthy()
            },
            "DiscoveryReady",
            reason::NOT_SERVING,
        ),
    ];
    for (case, facts, type_, expected_reason) in rows {
        let (status, events) =
            desired_status(&mesh("default", 1, MeshSpec::default()), &facts, now());
        assert_eq!(
            condition(&status, type_),
            ("False", expected_reason),
            "{case}"
        );
        assert_eq!(
            condition(&status, "Ready"),
            ("False", reason::COMPONENTS_NOT_READY),
            "{case}"
        );
        assert!(
            message(&status, "Ready").contains(type_),
            "{case}: {}",
            message(&status, "Ready")
        );
        assert!(
            events
                .iter()
                .any(|e| e.warning && e.reason == expected_reason),
            "{case}: a Warning Event with the reason"
        );
    }
}

#[test]
fn messages_name_the_secret_and_the_webhooks() {
    let facts = Facts {
        ca: CaFact::Invalid {
            secret: "cacerts",
            message: "ca-key.pem is missing".into(),
        },
        ..healthy()
    };
    let (status, _) = desired_status(&mesh("default", 1, MeshSpec::default()), &facts, now());
    assert_eq!(
        message(&status, "CertificateAuthorityReady"),
        "Secret cacerts: ca-key.pem is missing"
    );
    let facts = Facts {
        webhooks: webhooks(WebhookState::Stale(vec!["inject.weft.dev".into()])),
        ..healthy()
    };
    let (status, _) = desired_status(&mesh("default", 1, MeshSpec::default()), &facts, now());
    assert!(
        message(&status, "WebhooksReady")
            .contains("MutatingWebhookConfiguration weft-sidecar-injector: inject.weft.dev"),
        "{}",
        message(&status, "WebhooksReady")
    );
}

#[test]
fn under_olm_existing_webhook_configurations_are_enough() {
    let facts = Facts {
        manage_webhook_ca_bundle: false,
        ca: CaFact::Missing,
        webhooks: webhooks(WebhookState::Current),
        ..healthy()
    };
    let (status, _) = desired_status(&mesh("default", 1, MeshSpec::default()), &facts, now());
    assert_eq!(
        condition(&status, "WebhooksReady"),
        ("True", reason::MANAGED_EXTERNALLY)
    );
}

#[test]
fn an_invalid_spec_is_not_ready_and_names_the_field() {
    let spec = MeshSpec {
        trust_domain: Some("Not A Domain".into()),
        ..MeshSpec::default()
    };
    let (status, _) = desired_status(&mesh("default", 2, spec), &healthy(), now());
    assert_eq!(condition(&status, "Ready"), ("False", reason::INVALID_SPEC));
    assert!(
        message(&status, "Ready").starts_with("spec.trustDomain"),
        "{}",
        message(&status, "Ready")
    );
}

#[test]
fn another_mesh_gets_only_ready_false_and_no_counts() {
    let (status, _) = desired_status(&mesh("staging", 1, MeshSpec::default()), &healthy(), now());
    assert_eq!(status.conditions.len(), 1);
    assert_eq!(condition(&status, "Ready"), ("False", reason::NOT_THE_MESH));
    assert_eq!(
        (
            status.connected_proxies,
            status.injected_pods,
            status.nearest_certificate_expiry
        ),
        (None, None, None)
    );
}

#[test]
fn transition_times_and_events_follow_changes_only() {
    let mut m = mesh("default", 1, MeshSpec::default());
    let (first, _) = desired_status(&m, &healthy(), now());
    m.status = Some(first.clone());
    let later = now() + Duration::from_secs(60);

    let (same, events) = desired_status(&m, &healthy(), later);
    assert!(events.is_empty(), "nothing changed: {events:?}");
    assert!(!status_changed(Some(&first), &same));
    assert_eq!(same, first, "timestamps kept");

    let down = Facts {
        discovery_serving: false,
        ..healthy()
    };
    let (changed, events) = desired_status(&m, &down, later);
    assert!(status_changed(Some(&first), &changed));
    let time = |s: &MeshStatus, t: &str| s.condition(t).unwrap().last_transition_time.clone();
    assert_eq!(
        time(&changed, "DiscoveryReady").as_deref(),
        Some("2026-01-01T00:01:00Z")
    );
    assert_eq!(
        time(&changed, "Ready").as_deref(),
        Some("2026-01-01T00:01:00Z")
    );
    assert_eq!(time(&changed, "WebhooksReady").as_deref(), Some(NOW));
    let reasons: Vec<&str> = events.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(reasons, [reason::NOT_SERVING, reason::COMPONENTS_NOT_READY]);
}

#[test]
fn counts_alone_are_a_change_worth_writing() {
    let mut m = mesh("default", 1, MeshSpec::default());
    let (first, _) = desired_status(&m, &healthy(), now());
    m.status = Some(first.clone());
    let more = Facts {
        injected_pods: 6,
        ..healthy()
    };
    let (next, events) = desired_status(&m, &more, now());
    assert!(status_changed(Some(&first), &next));
    assert!(events.is_empty());
    assert!(status_changed(None, &next));
}

#[test]
fn webhook_state_lists_the_webhooks_with_another_bundle() {
    let hooks = vec![
        ("a".to_string(), Some(b"ROOT".to_vec())),
        ("b".to_string(), Some(b"OLD".to_vec())),
        ("c".to_string(), None),
    ];
    assert_eq!(
        webhook_state(&hooks, "ROOT"),
        WebhookState::Stale(vec!["b".into(), "c".into()])
    );
    assert_eq!(webhook_state(&hooks[..1], "ROOT"), WebhookState::Current);
}
