//! Table tests for the injection decision and the workload name.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use weft_webhook::inject::{DecisionReason, workload_name};
use weft_webhook::{InjectionConfig, should_inject};

fn map(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn pod(namespace: &str, labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some(namespace.into()),
            labels: map(labels),
            annotations: map(annotations),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "app".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

const INJECT: &str = "sidecar.istio.io/inject";

/// (name, pod, namespace labels, expected inject, expected reason)
type Case<'a> = (&'a str, Pod, &'a [(&'a str, &'a str)], bool, DecisionReason);

#[test]
fn decision_table_follows_istio_precedence() {
    use DecisionReason::*;
    let enabled = [("istio-injection", "enabled")];
    let disabled = [("istio-injection", "disabled")];
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        ("enabled namespace", pod("demo", &[], &[]), &enabled, true, NamespaceEnabled),
        ("unlabelled namespace", pod("demo", &[], &[]), &[], false, MeshDefault),
        ("disabled namespace", pod("demo", &[], &[]), &disabled, false, NamespaceDisabled),
        ("disabled namespace beats pod label", pod("demo", &[(INJECT, "true")], &[]), &disabled, false, NamespaceDisabled),
        ("pod label opts in", pod("demo", &[(INJECT, "true")], &[]), &[], true, PodLabel("true".into())),
        ("pod label opts out", pod("demo", &[(INJECT, "false")], &[]), &enabled, false, PodLabel("false".into())),
        ("label beats annotation", pod("demo", &[(INJECT, "false")], &[(INJECT, "true")]), &enabled, false, PodLabel("false".into())),
        ("annotation opts out", pod("demo", &[], &[(INJECT, "false")]), &enabled, false, PodAnnotation("false".into())),
        ("annotation yes spelling", pod("demo", &[], &[(INJECT, "YES")]), &enabled, true, PodAnnotation("YES".into())),
        ("annotation alone cannot opt in", pod("demo", &[], &[(INJECT, "true")]), &[], false, MeshDefault),
        ("kube-system", pod("kube-system", &[(INJECT, "true")], &[]), &enabled, false, IgnoredNamespace("kube-system".into())),
        ("kube-public", pod("kube-public", &[], &[]), &enabled, false, IgnoredNamespace("kube-public".into())),
        ("operator namespace", pod("weft-system", &[], &[]), &enabled, false, IgnoredNamespace("weft-system".into())),
        ("namespace revision default", pod("demo", &[], &[]), &[("istio.io/rev", "default")], true, NamespaceRevision("default".into())),
        ("namespace revision default, annotation opts out", pod("demo", &[], &[(INJECT, "false")]), &[("istio.io/rev", "default")], false, PodAnnotation("false".into())),
        ("other revision's namespace", pod("demo", &[(INJECT, "true")], &[]), &[("istio.io/rev", "canary")], false, NamespaceRevision("canary".into())),
        ("istio-injection beats istio.io/rev", pod("demo", &[], &[]), &[("istio-injection", "enabled"), ("istio.io/rev", "canary")], true, NamespaceEnabled),
        ("pod revision default", pod("demo", &[("istio.io/rev", "default")], &[]), &[], true, PodRevision("default".into())),
        ("pod revision other", pod("demo", &[("istio.io/rev", "canary"), (INJECT, "true")], &[]), &[], false, PodRevision("canary".into())),
        ("already injected", pod("demo", &[(INJECT, "true")], &[("sidecar.istio.io/status", "{}")]), &enabled, false, AlreadyInjected),
    ];
    let config = InjectionConfig::default();
    for (name, pod, ns, inject, reason) in cases {
        let decision = should_inject(&pod, &map(ns).unwrap_or_default(), &config);
        assert_eq!(
            (decision.inject, &decision.reason),
            (inject, &reason),
            "{name}"
        );
    }
}

#[test]
fn host_network_is_never_injected() {
    let mut host = pod("demo", &[(INJECT, "true")], &[]);
    host.spec.as_mut().unwrap().host_network = Some(true);
    let decision = should_inject(
        &host,
        &map(&[("istio-injection", "enabled")]).unwrap(),
        &InjectionConfig::default(),
    );
    assert_eq!(
        (decision.inject, decision.reason),
        (false, DecisionReason::HostNetwork)
    );
}

#[test]
fn mesh_default_on_injects_unlabelled_namespaces_unless_the_pod_opts_out() {
    let config = InjectionConfig {
        enable_namespaces_by_default: true,
        ..Default::default()
    };
    let none = BTreeMap::new();
    assert!(should_inject(&pod("demo", &[], &[]), &none, &config).inject);
    assert!(!should_inject(&pod("demo", &[], &[(INJECT, "false")]), &none, &config).inject);
}

fn owned(kind: &str, name: &str, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        generate_name: Some(format!("{name}-")),
        labels: map(labels),
        owner_references: Some(vec![OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    }
}

#[test]
fn workload_name_follows_the_owner_chain() {
    let cases = [
        (
            owned(
                "ReplicaSet",
                "reviews-v1-5d8f7c9b4",
                &[("pod-template-hash", "5d8f7c9b4")],
            ),
            "reviews-v1",
        ),
        (owned("ReplicaSet", "bare-rs", &[]), "bare-rs"),
        (owned("Job", "backup-29012345", &[]), "backup"),
        (owned("Job", "migrate-db", &[]), "migrate-db"),
        (owned("StatefulSet", "orders", &[]), "orders"),
        (owned("DaemonSet", "node-agent", &[]), "node-agent"),
        (
            ObjectMeta {
                name: Some("solo".into()),
                ..Default::default()
            },
            "solo",
        ),
        (
            ObjectMeta {
                generate_name: Some("gen-".into()),
                ..Default::default()
            },
            "gen",
        ),
    ];
    for (meta, expected) in cases {
        assert_eq!(workload_name(&meta), expected, "{meta:?}");
    }
}
