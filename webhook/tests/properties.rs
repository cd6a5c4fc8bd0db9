//! Property tests: injection is idempotent, the admission patch reproduces `inject`'s output,
//! and the user's containers survive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, Pod, PodSpec, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::admission::AdmissionReview;
use proptest::prelude::*;
use serde_json::json;
use weft_webhook::inject::DecisionReason;
use weft_webhook::{InjectionConfig, inject, should_inject};

fn probe() -> impl Strategy<Value = Option<Probe>> {
    let http = (
        prop_oneof![
            (1..65535i32).prop_map(IntOrString::Int),
            Just(IntOrString::String("http".into())),
            Just(IntOrString::String("missing".into())),
        ],
        prop_oneof![
            Just(None),
            Just(Some("HTTP".to_string())),
            Just(Some("HTTPS".to_string()))
        ],
        proptest::option::of(1..10i32),
    )
        .prop_map(|(port, scheme, timeout)| Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port,
                scheme,
                ..Default::default()
            }),
            timeout_seconds: timeout,
            ..Default::default()
        });
    prop_oneof![
        Just(None),
        http.prop_map(Some),
        Just(Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(6379),
                ..Default::default()
            }),
            ..Default::default()
        })),
        Just(Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["/bin/check".into()])
            }),
            ..Default::default()
        })),
    ]
}

fn container(index: usize) -> impl Strategy<Value = Container> {
    (any::<bool>(), probe(), probe(), probe()).prop_map(move |(ports, live, ready, start)| {
        Container {
            name: format!("app-{index}"),
            image: Some(format!("example.com/app-{index}:1")),
            ports: ports.then(|| {
                vec![ContainerPort {
                    name: Some("http".into()),
                    container_port: 8080 + index as i32,
                    ..Default::default()
                }]
            }),
            liveness_probe: live,
            readiness_probe: ready,
            startup_probe: start,
            ..Default::default()
        }
    })
}

fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    let choices: Vec<(&str, Vec<&str>)> = vec![
        (
            "sidecar.istio.io/rewriteAppHTTPProbers",
            vec!["true", "false"],
        ),
        ("sidecar.istio.io/proxyCPU", vec!["100m", "1", "0.5"]),
        ("sidecar.istio.io/proxyMemoryLimit", vec!["1Gi", "512Mi"]),
        ("sidecar.istio.io/logLevel", vec!["debug", "info"]),
        (
            "proxy.istio.io/config",
            vec![
                "concurrency: 2",
                "holdApplicationUntilProxyStarts: true",
                "",
            ],
        ),
        (
            "traffic.sidecar.istio.io/includeOutboundIPRanges",
            vec!["*", "10.0.0.0/8"],
        ),
        (
            "traffic.sidecar.istio.io/excludeInboundPorts",
            vec!["8081", "9000,9001"],
        ),
        (
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            vec!["3306"],
        ),
    ];
    let per_key: Vec<_> = choices
        .into_iter()
        .map(|(key, values)| {
            proptest::option::of(proptest::sample::select(values))
                .prop_map(move |v| v.map(|v| (key.to_string(), v.to_string())))
        })
        .collect();
    per_key.prop_map(|pairs| pairs.into_iter().flatten().collect())
}

fn pod() -> impl Strategy<Value = Pod> {
    (
        (1..4usize).prop_flat_map(|n| (0..n).map(container).collect::<Vec<_>>()),
        0..3usize,
        annotations(),
        any::<bool>(),
        proptest::option::of(proptest::sample::select(vec!["default", "reviews", "db"])),
    )
        .prop_map(
            |(containers, init, annotations, named, service_account)| Pod {
                metadata: ObjectMeta {
                    name: named.then(|| "web-0".to_string()),
                    generate_name: (!named).then(|| "web-7c9f-".to_string()),
                    labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    init_containers: (init > 0).then(|| {
                        (0..init)
                            .map(|i| Container {
                                name: format!("setup-{i}"),
                                ..Default::default()
                            })
                            .collect()
                    }),
                    containers,
                    service_account_name: service_account.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
}

fn config() -> impl Strategy<Value = InjectionConfig> {
    (any::<bool>(), any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        |(native, cni, hold, rewrite)| InjectionConfig {
            native_sidecars: native,
            cni_enabled: cni,
            hold_application_until_proxy_starts: hold,
            rewrite_app_http_probers: rewrite,
            ..Default::default()
        },
    )
}

fn enabled() -> BTreeMap<String, String> {
    BTreeMap::from([("istio-injection".to_string(), "enabled".to_string())])
}

/// A container with its probes removed, to compare what injection must not touch.
fn without_probes(c: &Container) -> Container {
    Container {
        liveness_probe: None,
        readiness_probe: None,
        startup_probe: None,
        ..c.clone()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn injection_is_idempotent_and_marks_the_pod(mut pod in pod(), config in config()) {
        pod.metadata.namespace = Some("demo".into());
        let once = inject(&pod, &config).unwrap();
        let twice = inject(&once, &config).unwrap();
        prop_assert_eq!(&twice, &once);
        let decision = should_inject(&once, &enabled(), &config);
        prop_assert!(!decision.inject);
        prop_assert_eq!(decision.reason, DecisionReason::AlreadyInjected);

        let spec = once.spec.as_ref().unwrap();
        let init = spec.init_containers.as_deref().unwrap_or_default();
        let all: Vec<&Container> = spec.containers.iter().chain(init).collect();
        prop_assert_eq!(all.iter().filter(|c| c.name == "istio-proxy").count(), 1);
        prop_assert_eq!(init.iter().any(|c| c.name == "istio-init"), !config.cni_enabled);
        if config.native_sidecars {
            let proxy = init.iter().find(|c| c.name == "istio-proxy").unwrap();
            prop_assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
        }
    }

    #[test]
    fn user_containers_survive_apart_from_rewritten_probes(pod in pod(), config in config()) {
        let injected = inject(&pod, &config).unwrap();
        let before = pod.spec.as_ref().unwrap();
        let after = injected.spec.as_ref().unwrap();
        let user: Vec<&Container> =
            after.containers.iter().filter(|c| c.name != "istio-proxy").collect();
        prop_assert_eq!(user.len(), before.containers.len());
        for (old, new) in before.containers.iter().zip(user) {
            prop_assert_eq!(without_probes(old), without_probes(new));
            // Non-HTTP probes are never touched.
            for (o, n) in [
                (&old.liveness_probe, &new.liveness_probe),
                (&old.readiness_probe, &new.readiness_probe),
                (&old.startup_probe, &new.startup_probe),
            ] {
                if o.as_ref().is_none_or(|p| p.http_get.is_none()) {
                    prop_assert_eq!(o, n);
                }
            }
        }
        let user_init: Vec<&Container> = after
            .init_containers
            .iter()
            .flatten()
            .filter(|c| c.name != "istio-proxy" && c.name != "istio-init")
            .collect();
        prop_assert_eq!(user_init, before.init_containers.iter().flatten().collect::<Vec<_>>());
    }

    #[test]
    fn admission_patch_applied_to_the_original_gives_the_injected_pod(
        pod in pod(),
        config in config(),
    ) {
        let original = serde_json::to_value(&pod).unwrap();
        let review: AdmissionReview<Pod> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "demo",
                "operation": "CREATE",
                "userInfo": {},
                "object": original,
            }
        }))
        .unwrap();
        let response = weft_webhook::admission::mutate(review, &enabled(), &config);
        prop_assert!(response.allowed, "{}", response.result.message);
        let patch: json_patch::Patch =
            serde_json::from_slice(response.patch.as_deref().unwrap()).unwrap();
        let mut patched = serde_json::to_value(&pod).unwrap();
        json_patch::patch(&mut patched, &patch).unwrap();

        let mut with_namespace = pod.clone();
        with_namespace.metadata.namespace = Some("demo".into());
        let injected = inject(&with_namespace, &config).unwrap();
        prop_assert_eq!(patched, serde_json::to_value(&injected).unwrap());
    }
}

/// A valid request body for the raw-body properties below.
fn valid_body() -> Vec<u8> {
    let yaml = include_str!("../testdata/inject/deployment-multi-container.yaml");
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::to_vec(&value).unwrap()
}

fn no_labels(_: &str) -> Option<BTreeMap<String, String>> {
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bodies_get_an_answer_not_a_panic(body in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let (status, reply) =
            weft_webhook::admission::handle_inject_body(&body, &no_labels, &InjectionConfig::default());
        prop_assert_eq!(status, http::StatusCode::BAD_REQUEST);
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        prop_assert_eq!(&reply["response"]["allowed"], &json!(false));
    }

    #[test]
    fn corrupted_reviews_get_an_answer_not_a_panic(cut in 0..4000usize, byte in any::<u8>(), at in 0..4000usize) {
        let mut body = valid_body();
        let at = at % body.len();
        body[at] = byte;
        body.truncate(cut.max(1).min(body.len()));
        let (status, reply) =
            weft_webhook::admission::handle_inject_body(&body, &no_labels, &InjectionConfig::default());
        prop_assert!(status == http::StatusCode::OK || status == http::StatusCode::BAD_REQUEST);
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&reply).is_ok());
    }
}
