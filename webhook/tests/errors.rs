//! Every `InjectError` a pod can trigger, with the name of what is wrong in its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use weft_webhook::{InjectError, InjectionConfig, inject};

fn pod(annotations: &[(&str, &str)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web".into()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn invalid_annotations_are_named() {
    let cases = [
        ("sidecar.istio.io/proxyCPU", "lots"),
        ("sidecar.istio.io/proxyMemory", "-1Gi"),
        ("sidecar.istio.io/proxyCPULimit", "2 cores"),
        ("sidecar.istio.io/proxyMemoryLimit", "1GB"),
        ("sidecar.istio.io/proxyImage", " "),
        ("sidecar.istio.io/logLevel", "verbose"),
        ("sidecar.istio.io/rewriteAppHTTPProbers", "maybe"),
        ("proxy.istio.io/config", "terminationDrainDuration: -5s"),
        ("proxy.istio.io/config", "discoveryAddress: ''"),
        (
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            "10.0.0.0",
        ),
        ("traffic.sidecar.istio.io/excludeOutboundIPRanges", "*"),
        ("traffic.sidecar.istio.io/includeInboundPorts", "http"),
        ("traffic.sidecar.istio.io/excludeInboundPorts", "*"),
        ("traffic.sidecar.istio.io/includeOutboundPorts", "65536"),
        ("traffic.sidecar.istio.io/excludeOutboundPorts", "0"),
    ];
    for (annotation, value) in cases {
        let err = inject(&pod(&[(annotation, value)]), &InjectionConfig::default()).unwrap_err();
        match &err {
            InjectError::InvalidAnnotation {
                annotation: named, ..
            } => {
                assert_eq!(*named, annotation, "{err}")
            }
            other => panic!("{annotation}={value:?}: unexpected {other}"),
        }
        assert!(err.to_string().contains(annotation), "{err}");
    }
}

#[test]
fn pods_without_spec_are_refused() {
    let mut no_spec = pod(&[]);
    no_spec.spec = None;
    let err = inject(&no_spec, &InjectionConfig::default()).unwrap_err();
    assert!(matches!(err, InjectError::MissingSpec), "{err}");
}

#[test]
fn names_the_injector_adds_must_be_free() {
    let mut container = pod(&[]);
    container.spec.as_mut().unwrap().containers[0].name = "istio-proxy".into();
    let err = inject(&container, &InjectionConfig::default()).unwrap_err();
    assert!(
        matches!(&err, InjectError::NameConflict { kind: "container", name } if name == "istio-proxy"),
        "{err}"
    );

    let mut volume = pod(&[]);
    volume.spec.as_mut().unwrap().volumes = Some(vec![Volume {
        name: "workload-certs".into(),
        ..Default::default()
    }]);
    let err = inject(&volume, &InjectionConfig::default()).unwrap_err();
    assert!(
        matches!(&err, InjectError::NameConflict { kind: "volume", name } if name == "workload-certs"),
        "{err}"
    );
}

#[test]
fn service_accounts_too_long_for_a_secret_name_are_refused() {
    let mut long = pod(&[]);
    long.spec.as_mut().unwrap().service_account_name = Some("a".repeat(240));
    let err = inject(&long, &InjectionConfig::default()).unwrap_err();
    assert!(
        matches!(err, InjectError::ServiceAccountTooLong { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("spec.serviceAccountName"), "{err}");

    // The longest name that fits: 253 - len("weft-workload-cert-") = 234 characters.
    let mut fits = pod(&[]);
    fits.spec.as_mut().unwrap().service_account_name = Some("a".repeat(234));
    assert!(inject(&fits, &InjectionConfig::default()).is_ok());
}

#[test]
fn out_of_range_drain_durations_are_refused_not_a_panic() {
    // Found by fuzzing: kube's Go-duration parser panics on values that overflow a Rust
    // Duration (a huge number, or a negative second part).
    for duration in [
        "5004444444444444444444444444444444444444444444444444444444444444us",
        "18446744073709551615s1s",
        "1s-2s",
        "2562048h",
    ] {
        let config = format!("terminationDrainDuration: {duration}");
        let error = inject(
            &pod(&[("proxy.istio.io/config", config.as_str())]),
            &InjectionConfig::default(),
        )
        .unwrap_err();
        let message = error.to_string();
        assert!(message.contains("proxy.istio.io/config"), "{message}");
        assert!(message.contains("terminationDrainDuration"), "{message}");
    }
    let fine = "terminationDrainDuration: 2562047h";
    assert!(
        inject(
            &pod(&[("proxy.istio.io/config", fine)]),
            &InjectionConfig::default()
        )
        .is_ok()
    );
}
