//! The gateway samples (`config/samples/gateways`: ingress and egress gateway Deployments with
//! their ServiceAccounts, Services and Gateways) checked for what would break them on a
//! cluster: each object reads as its Kubernetes type with no unknown field; the container runs
//! `weft-proxy gateway` with flags and environment the proxy's CLI (`proxy/src/main.rs`,
//! `CommonArgs`) knows, from the image the operator injects, with the certificate Citadel writes
//! for its ServiceAccount mounted where `--cert-dir` points; the probe and metrics ports are the
//! CLI's defaults; every Gateway's selector picks one gateway Deployment whose Service exposes
//! the Gateway's ports; the egress routing names the egress Service, Gateway and subset; the
//! mesh objects pass Weft's validation; and none of it reaches the OLM bundle's `alm-examples`.
//! `check::problems` is the checker; each rule also has a failing case below.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

#[path = "gateway_samples/check.rs"]
mod check;
use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use serde_json::Value;
use weft_install::bundle::{kind_of, name_of};
use weft_webhook::names::SIDECAR_INJECT;

use check::{SAMPLES, context, problems, samples, typed};

#[test]
fn gateway_samples_would_run_as_written() {
    let objects = samples();
    let kinds: BTreeMap<&str, usize> = objects.iter().fold(BTreeMap::new(), |mut m, o| {
        *m.entry(kind_of(o)).or_default() += 1;
        m
    });
    assert_eq!(
        kinds,
        BTreeMap::from([
            ("DestinationRule", 1),
            ("Deployment", 2),
            ("Gateway", 2),
            ("Namespace", 1),
            ("Service", 2),
            ("ServiceAccount", 2),
            ("ServiceEntry", 1),
            ("VirtualService", 2),
        ])
    );
    let problems = problems(&objects, &context());
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn ingress_is_a_load_balancer_and_egress_stays_in_the_cluster() {
    let objects = samples();
    let service = |name: &str| -> Service {
        typed(
            objects
                .iter()
                .find(|o| kind_of(o) == "Service" && name_of(o) == name)
                .unwrap(),
        )
        .unwrap()
    };
    let ports = |s: &Service| -> BTreeSet<i32> {
        s.spec
            .clone()
            .unwrap()
            .ports
            .unwrap()
            .iter()
            .map(|p| p.port)
            .collect()
    };
    let ingress = service("istio-ingressgateway");
    assert_eq!(
        ingress.spec.clone().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert!(ports(&ingress).is_superset(&BTreeSet::from([80, 443])));
    let egress = service("istio-egressgateway");
    assert_eq!(
        egress.spec.clone().unwrap().type_.as_deref(),
        Some("ClusterIP")
    );
    for (name, istio) in [
        ("istio-ingressgateway", "ingressgateway"),
        ("istio-egressgateway", "egressgateway"),
    ] {
        let d: Deployment = typed(
            objects
                .iter()
                .find(|o| kind_of(o) == "Deployment" && name_of(o) == name)
                .unwrap(),
        )
        .unwrap();
        let l = d.spec.unwrap().template.metadata.unwrap().labels.unwrap();
        assert_eq!(l["istio"], istio);
        assert_eq!(l["app"], name);
    }
}

/// Applies `edit` to the first object of `kind` named `name` and returns the problems found.
fn problems_after(kind: &str, name: &str, edit: impl FnOnce(&mut Value)) -> Vec<String> {
    let mut objects = samples();
    let object = objects
        .iter_mut()
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap();
    edit(object);
    problems(&objects, &context())
}

fn assert_found(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got {problems:#?}"
    );
}

/// A failing case: the kind and name of the object to edit, the edit, and a text the problem
/// it causes contains.
type Case = (
    &'static str,
    &'static str,
    Box<dyn FnOnce(&mut Value)>,
    &'static str,
);

const INGRESS: &str = "istio-ingressgateway";
const CONTAINER: &str = "/spec/template/spec/containers/0";

/// The JSON pointer of `suffix` under the proxy container.
fn container(suffix: &str) -> String {
    format!("{CONTAINER}{suffix}")
}

#[test]
fn each_rule_has_a_failing_case() {
    let set = |pointer: &'static str, value: Value| {
        move |o: &mut Value| *o.pointer_mut(pointer).unwrap() = value
    };
    let cases: Vec<Case> = vec![
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                o.pointer_mut(&container("/args"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .push("--no-such-flag".into());
            }),
            "has no flag --no-such-flag",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                *o.pointer_mut(&container("/args/0")).unwrap() = "run".into();
            }),
            "must start with the subcommand gateway",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                *o.pointer_mut(&container("/image")).unwrap() =
                    "docker.io/istio/proxyv2:1.24.0".into();
            }),
            "is not the proxy image",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                o.pointer_mut(&container("/env"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            }),
            "CONTROL_PLANE_NAMESPACE is None",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                *o.pointer_mut(&container("/env/0/name")).unwrap() =
                    "ISTIO_META_ROUTER_MODE".into();
            }),
            "reads no variable ISTIO_META_ROUTER_MODE",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                *o.pointer_mut(&container("/args/6")).unwrap() = "/etc/certs".into();
            }),
            "--cert-dir",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(set(
                "/spec/template/spec/volumes/2/secret/secretName",
                "istio-ingressgateway-certs".into(),
            )),
            "--cert-dir",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                *o.pointer_mut(&container("/readinessProbe/httpGet/port"))
                    .unwrap() = 15020.into();
            }),
            "is not the proxy's health port",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(set(
                "/spec/template/metadata/labels/istio",
                "ingress".into(),
            )),
            "selector {\"istio\": \"ingressgateway\"} picks 0",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                o["spec"]["template"]["metadata"]["labels"]
                    .as_object_mut()
                    .unwrap()
                    .remove(SIDECAR_INJECT);
            }),
            "needs sidecar.istio.io/inject",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(set(
                "/spec/template/spec/serviceAccountName",
                "default".into(),
            )),
            "is not in the samples",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                o.pointer_mut(&container("/ports"))
                    .unwrap()
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            }),
            "targets 80, not a container port",
        ),
        (
            "Deployment",
            INGRESS,
            Box::new(|o: &mut Value| {
                o.pointer_mut(CONTAINER).unwrap()["imagePullPolicyy"] = "Always".into();
            }),
            "fields its Kubernetes type does not know",
        ),
        (
            "Namespace",
            "istio-system",
            Box::new(|o: &mut Value| {
                o["metadata"]["labels"] = serde_json::json!({});
            }),
            "istio-injection=enabled",
        ),
        (
            "Service",
            INGRESS,
            Box::new(|o: &mut Value| {
                o["spec"]["ports"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|p| p["port"] != 80);
            }),
            "Gateway bookinfo-gateway: port 80 is not exposed",
        ),
        (
            "Service",
            "istio-egressgateway",
            Box::new(set("/spec/selector/istio", "egress".into())),
            "picks no gateway pod",
        ),
        (
            "Gateway",
            "istio-egressgateway",
            Box::new(set("/spec/selector", serde_json::json!({"app": "egress"}))),
            "picks 0 gateway Deployments",
        ),
        (
            "DestinationRule",
            "egressgateway-for-httpbin",
            Box::new(set("/spec/subsets/0/name", "other".into())),
            "no DestinationRule defines subset httpbin",
        ),
        (
            "VirtualService",
            "direct-httpbin-through-egress-gateway",
            Box::new(set("/spec/gateways/0", "egress".into())),
            "gateway egress is not in the samples",
        ),
        (
            "VirtualService",
            "direct-httpbin-through-egress-gateway",
            Box::new(set(
                "/spec/http/0/route/0/destination/port/number",
                8080.into(),
            )),
            "port 8080 of istio-egressgateway is not exposed",
        ),
        (
            "Gateway",
            "bookinfo-gateway",
            Box::new(set("/spec/servers/0/hosts", serde_json::json!([]))),
            "Gateway bookinfo-gateway:",
        ),
    ];
    for (kind, name, edit, needle) in cases {
        assert_found(&problems_after(kind, name, edit), needle);
    }
}

#[test]
fn the_bundle_keeps_gateway_samples_out_of_alm_examples() {
    let inputs = weft_install::generate::read_inputs(&support::root()).unwrap();
    let gateway_files: BTreeSet<String> = std::fs::read_dir(support::root().join(SAMPLES))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        inputs
            .samples
            .keys()
            .all(|file| !gateway_files.contains(file)),
        "a gateway sample reached the bundle inputs: {:?}",
        inputs.samples.keys().collect::<Vec<_>>()
    );
    let files = support::generated();
    let csv = support::csv(&files);
    let examples: Vec<Value> = serde_json::from_str(
        csv.pointer("/metadata/annotations/alm-examples")
            .unwrap()
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let gateway_names: BTreeSet<String> = samples().iter().map(|o| name_of(o).to_owned()).collect();
    for example in &examples {
        assert!(
            ![
                "Deployment",
                "Service",
                "ServiceAccount",
                "Namespace",
                "Gateway"
            ]
            .contains(&kind_of(example))
                && !gateway_names.contains(name_of(example)),
            "alm-examples holds a gateway sample: {} {}",
            kind_of(example),
            name_of(example)
        );
    }
    assert!(!examples.is_empty());
}

#[test]
fn kubectl_kustomize_renders_the_same_objects() {
    let output = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(support::root().join(SAMPLES))
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIPPED: kubectl kustomize {SAMPLES} ({e}); install kubectl to run it");
            return;
        }
    };
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let key = |o: &Value| {
        (
            kind_of(o).to_owned(),
            o["metadata"]["namespace"].as_str().unwrap_or("").to_owned(),
            name_of(o).to_owned(),
        )
    };
    let rendered: BTreeSet<_> = weft_install::bundle::objects(
        "kubectl kustomize",
        &String::from_utf8(output.stdout).unwrap(),
    )
    .unwrap()
    .iter()
    .map(key)
    .collect();
    let ours: BTreeSet<_> = samples().iter().map(key).collect();
    assert_eq!(rendered, ours);
}
