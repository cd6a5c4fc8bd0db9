//! The pure reconcile, condition by condition, without any cluster.

use serde_json::json;
use weft_analyze::message::{
    NO_MATCHING_WORKLOADS_FOUND, REFERENCED_RESOURCE_NOT_FOUND, SCHEMA_WARNING,
};
use weft_analyze::{Message, ResourceRef};
use weft_crds::MeshObject;
use weft_crds::status::{AnalysisLevel, Condition, IstioStatus};
use weft_pilot::Unsupported;
use weft_webhook::Validation;

use super::*;

const NOW: &str = "2026-11-21T14:00:00Z";
const LATER: &str = "2026-11-21T15:00:00Z";

fn vs(generation: i64, spec: serde_json::Value) -> MeshObject {
    MeshObject::from_value(json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "demo", "uid": "u1",
                     "generation": generation},
        "spec": spec
    }))
    .unwrap()
}

fn valid(generation: i64) -> MeshObject {
    vs(
        generation,
        json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}),
    )
}

fn resource() -> ResourceRef {
    ResourceRef {
        kind: "VirtualService".into(),
        namespace: Some("demo".into()),
        name: "reviews".into(),
        origin: None,
    }
}

fn unsupported(path: &str) -> Unsupported {
    Unsupported::new(
        "VirtualService",
        "demo",
        "reviews",
        path,
        "not expressible; ignored",
    )
}

static NO_FINDINGS: Validation = Validation {
    errors: Vec::new(),
    warnings: Vec::new(),
};

/// [`desired_status`] with the webhook's findings for `object` (what the view's facts hold).
fn reconcile(object: &MeshObject, current: Option<&IstioStatus>, facts: &Facts<'_>) -> Desired {
    let validation = weft_webhook::validate(object);
    desired_status(
        object,
        current,
        &Facts {
            validation: &validation,
            ..*facts
        },
    )
}

/// Facts with every proxy (if any) acknowledged builder 7, the one that held the object.
fn facts<'a>(
    unsupported: &'a [Unsupported],
    analysis: &'a [Message],
    acked: &'a [Option<u64>],
) -> Facts<'a> {
    Facts {
        validation: &NO_FINDINGS,
        unsupported,
        analysis,
        rollout: Rollout {
            built_in: Some(7),
            acked,
        },
        now: NOW,
    }
}

fn condition<'a>(status: &'a IstioStatus, type_: &str) -> &'a Condition {
    status
        .condition(type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {status:?}"))
}

fn assert_generation(status: &IstioStatus, generation: i64) {
    assert_eq!(status.observed_generation, Some(generation));
    for c in &status.conditions {
        assert_eq!(c.observed_generation, Some(generation), "{}", c.type_);
    }
}

#[test]
fn a_valid_resolved_and_acknowledged_object_is_ready() {
    let desired = reconcile(&valid(3), None, &facts(&[], &[], &[Some(7), Some(9)]));
    let status = &desired.status;
    let types: Vec<_> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    assert_eq!(types, ["Accepted", "Resolved", "Reconciled", "Ready"]);
    for c in &status.conditions {
        assert_eq!(c.status, TRUE, "{c:?}");
        assert_eq!(c.last_transition_time.as_deref(), Some(NOW));
    }
    assert_eq!(
        condition(status, "Accepted").reason.as_deref(),
        Some(REASON_ACCEPTED)
    );
    assert_eq!(
        condition(status, "Reconciled").reason.as_deref(),
        Some(REASON_RECONCILED)
    );
    assert_generation(status, 3);
    assert!(status.validation_messages.is_empty());
    assert!(desired.events.is_empty(), "nothing to warn about");
}

#[test]
fn an_invalid_object_is_not_accepted_and_names_the_field() {
    let object = vs(
        2,
        json!({"hosts": ["reviews"], "http": [{"route": [
            {"destination": {"host": "reviews"}, "weight": 150}]}]}),
    );
    let desired = reconcile(&object, None, &facts(&[], &[], &[]));
    let accepted = condition(&desired.status, "Accepted");
    assert_eq!(accepted.status, FALSE);
    assert_eq!(accepted.reason.as_deref(), Some(REASON_INVALID));
    let message = accepted.message.as_deref().unwrap();
    assert!(
        message.contains("spec.http[0].route[0].weight"),
        "{message}"
    );
    let ready = condition(&desired.status, "Ready");
    assert_eq!(ready.status, FALSE);
    assert_eq!(ready.reason.as_deref(), Some(REASON_INVALID));
    assert_generation(&desired.status, 2);
    assert_eq!(desired.events.len(), 1);
    assert_eq!(desired.events[0].reason, REASON_INVALID);
    assert_eq!(desired.events[0].action, "Validate");
    assert!(
        desired.events[0]
            .note
            .contains("spec.http[0].route[0].weight")
    );
}

#[test]
fn an_unsupported_field_is_not_accepted_and_names_the_field() {
    let warnings = [unsupported("spec.http[0].retries.retryRemoteLocalities")];
    let desired = reconcile(&valid(4), None, &facts(&warnings, &[], &[]));
    let accepted = condition(&desired.status, "Accepted");
    assert_eq!(accepted.status, FALSE);
    assert_eq!(accepted.reason.as_deref(), Some(REASON_UNSUPPORTED));
    assert_eq!(
        accepted.message.as_deref(),
        Some("spec.http[0].retries.retryRemoteLocalities: not expressible; ignored")
    );
    assert_eq!(
        condition(&desired.status, "Resolved").status,
        TRUE,
        "independent of Accepted"
    );
    assert_generation(&desired.status, 4);
    assert_eq!(desired.events[0].reason, REASON_UNSUPPORTED);
}

#[test]
fn an_unresolved_host_is_a_resolution_problem_not_an_unsupported_one() {
    let path = "spec.http[0].route[0].destination.host";
    // Pilot routes an unknown host to BlackHoleCluster and reports it; the analyzer says why.
    let warnings = [unsupported(path)];
    let analysis = [Message::new(
        REFERENCED_RESOURCE_NOT_FOUND,
        Some(&resource()),
        path,
        "Referenced host not found: \"reviewz\"",
    )];
    let desired = reconcile(&valid(5), None, &facts(&warnings, &analysis, &[]));
    assert_eq!(condition(&desired.status, "Accepted").status, TRUE);
    let resolved = condition(&desired.status, "Resolved");
    assert_eq!(resolved.status, FALSE);
    assert_eq!(
        resolved.reason.as_deref(),
        Some("ReferencedResourceNotFound")
    );
    assert_eq!(
        resolved.message.as_deref(),
        Some("spec.http[0].route[0].destination.host: Referenced host not found: \"reviewz\"")
    );
    assert_eq!(
        condition(&desired.status, "Ready").reason.as_deref(),
        Some("ReferencedResourceNotFound")
    );
    let messages = &desired.status.validation_messages;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].type_.code, "IST0101");
    assert_eq!(messages[0].type_.name, "ReferencedResourceNotFound");
    assert_eq!(messages[0].level, AnalysisLevel::Error);
    assert_eq!(
        messages[0].documentation_url.as_deref(),
        Some("https://istio.io/latest/docs/reference/config/analysis/ist0101/")
    );
    assert_generation(&desired.status, 5);
    assert_eq!(desired.events.len(), 1);
    assert_eq!(desired.events[0].action, "Resolve");
}

#[test]
fn an_unknown_subset_and_gateway_are_unresolved() {
    for (path, what) in [
        (
            "spec.http[0].route[0].destination.subset",
            "host+subset in destinationrule",
        ),
        ("spec.gateways[0]", "gateway"),
    ] {
        let analysis = [Message::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(&resource()),
            path,
            format!("Referenced {what} not found: \"x\""),
        )];
        let desired = reconcile(&valid(1), None, &facts(&[], &analysis, &[]));
        let resolved = condition(&desired.status, "Resolved");
        assert_eq!(resolved.status, FALSE, "{path}");
        assert!(resolved.message.as_deref().unwrap().starts_with(path));
    }
}

#[test]
fn a_selector_matching_nothing_is_unresolved() {
    let policy = MeshObject::from_value(json!({
        "apiVersion": "security.istio.io/v1", "kind": "AuthorizationPolicy",
        "metadata": {"name": "nobody", "namespace": "demo", "generation": 6},
        "spec": {"selector": {"matchLabels": {"app": "nothing"}}}
    }))
    .unwrap();
    let analysis = [Message::new(
        NO_MATCHING_WORKLOADS_FOUND,
        None,
        "spec.selector",
        "no workload matches app=nothing",
    )];
    let desired = reconcile(&policy, None, &facts(&[], &analysis, &[]));
    let resolved = condition(&desired.status, "Resolved");
    assert_eq!(resolved.status, FALSE);
    assert_eq!(resolved.reason.as_deref(), Some("NoMatchingWorkloadsFound"));
    assert_eq!(
        desired.status.validation_messages[0].level,
        AnalysisLevel::Warning
    );
    assert_generation(&desired.status, 6);
}

#[test]
fn a_warning_goes_to_validation_messages_without_failing_a_condition() {
    let analysis = [Message::new(
        SCHEMA_WARNING,
        Some(&resource()),
        "spec.http[0].timeout",
        "very long",
    )];
    let desired = reconcile(&valid(1), None, &facts(&[], &analysis, &[]));
    assert!(desired.status.conditions.iter().all(|c| c.status == TRUE));
    assert_eq!(desired.status.validation_messages[0].type_.code, "IST0133");
    assert_eq!(
        desired.status.validation_messages[0].message.as_deref(),
        Some("spec.http[0].timeout: very long")
    );
}

#[test]
fn reconciled_is_pending_until_every_proxy_acknowledged_this_generation() {
    let acked = [Some(7), Some(6), None];
    let desired = reconcile(&valid(8), None, &facts(&[], &[], &acked));
    let reconciled = condition(&desired.status, "Reconciled");
    assert_eq!(reconciled.status, FALSE);
    assert_eq!(reconciled.reason.as_deref(), Some(REASON_PENDING));
    assert_eq!(
        reconciled.message.as_deref(),
        Some("1 of 3 proxies acknowledged a config built from generation 8")
    );
    assert!(is_pending(&desired.status));
    let ready = condition(&desired.status, "Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_deref()),
        (FALSE, Some(REASON_PENDING))
    );
    assert!(
        desired.events.is_empty(),
        "pending is progress, not a failure"
    );
    assert_generation(&desired.status, 8);

    let acked = [Some(7), Some(8), Some(7)];
    let desired = reconcile(&valid(8), None, &facts(&[], &[], &acked));
    assert_eq!(condition(&desired.status, "Reconciled").status, TRUE);
    assert!(!is_pending(&desired.status));
}

#[test]
fn reconciled_is_true_without_proxies_and_unknown_before_any_build() {
    let desired = reconcile(&valid(1), None, &facts(&[], &[], &[]));
    let reconciled = condition(&desired.status, "Reconciled");
    assert_eq!(reconciled.status, TRUE);
    assert_eq!(reconciled.reason.as_deref(), Some(REASON_NO_PROXIES));
    assert!(reconciled.message.as_deref().unwrap().contains("no proxy"));

    let mut unbuilt = facts(&[], &[], &[Some(9)]);
    unbuilt.rollout.built_in = None;
    let desired = reconcile(&valid(2), None, &unbuilt);
    let reconciled = condition(&desired.status, "Reconciled");
    assert_eq!(reconciled.status, UNKNOWN);
    assert_eq!(condition(&desired.status, "Ready").status, UNKNOWN);
    assert!(is_pending(&desired.status));
    assert_generation(&desired.status, 2);
}

#[test]
fn transition_times_stay_while_a_status_holds_and_move_when_it_changes() {
    let first = reconcile(&valid(1), None, &facts(&[], &[], &[None])).status;
    assert_eq!(condition(&first, "Reconciled").status, FALSE);

    let mut later = facts(&[], &[], &[Some(7)]);
    later.now = LATER;
    let second = reconcile(&valid(1), Some(&first), &later).status;
    let time = |s: &IstioStatus, t: &str| condition(s, t).last_transition_time.clone().unwrap();
    assert_eq!(time(&second, "Accepted"), NOW, "still True: time kept");
    assert_eq!(
        time(&second, "Reconciled"),
        LATER,
        "False to True: new time"
    );
    assert_eq!(time(&second, "Ready"), LATER);

    // Recomputing from the written status with nothing new gives the same status: no patch.
    let third = reconcile(&valid(1), Some(&second), &later).status;
    assert_eq!(third, second);
}

#[test]
fn events_are_published_once_per_failure_and_again_for_a_new_generation() {
    let warnings = [unsupported("spec.http[0].mirrorPercent")];
    let first = reconcile(&valid(1), None, &facts(&warnings, &[], &[]));
    assert_eq!(first.events.len(), 1);
    let again = reconcile(&valid(1), Some(&first.status), &facts(&warnings, &[], &[]));
    assert!(again.events.is_empty(), "same failure, same generation");
    let next = reconcile(&valid(2), Some(&first.status), &facts(&warnings, &[], &[]));
    assert_eq!(next.events.len(), 1, "the new generation still fails");
}

#[test]
fn long_messages_are_cut_at_a_character_boundary() {
    let warnings: Vec<Unsupported> = (0..100)
        .map(|i| unsupported(&format!("spec.http[{i}].é")))
        .collect();
    let desired = reconcile(&valid(1), None, &facts(&warnings, &[], &[]));
    let message = condition(&desired.status, "Accepted")
        .message
        .clone()
        .unwrap();
    assert!(message.len() <= MAX_MESSAGE_BYTES);
    assert!(message.ends_with('…'));
}
