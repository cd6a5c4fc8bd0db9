//! `config/default` renders to a complete, consistent install, checked without a cluster:
//! a small kustomize (resources, namespace) resolves every file; each object reads as its
//! Kubernetes type with no unknown field; references between objects resolve; the operator
//! Deployment keeps the contract. When `kubectl` is installed, `kubectl kustomize` must
//! render the same objects. `kubectl apply --dry-run=client` itself runs in
//! `tests/kubectl_apply.rs`, against a discovery-only fake API server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_install::bundle::{kind_of, name_of, objects};

const CLUSTER_SCOPED: [&str; 6] = [
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];
const NAMESPACED: [&str; 6] = [
    "Deployment",
    "Service",
    "ServiceAccount",
    "Role",
    "RoleBinding",
    "PodDisruptionBudget",
];

/// Renders the kustomization in `dir` as kustomize does for the fields used here
/// (`resources` — files or directories with their own kustomization — and `namespace`, which
/// sets the namespace of namespaced objects and of ServiceAccount subjects of bindings).
/// Any other field fails the test, so a later patch cannot be silently ignored here.
fn render(dir: &Path) -> Vec<Value> {
    let path = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let k: Value = serde_yaml::from_str(&text).unwrap();
    for key in k.as_object().unwrap().keys() {
        assert!(
            ["apiVersion", "kind", "resources", "namespace"].contains(&key.as_str()),
            "{}: field {key} is not understood by this test's renderer",
            path.display()
        );
    }
    assert_eq!(k["kind"], "Kustomization", "{}", path.display());
    let mut out = Vec::new();
    for resource in k["resources"].as_array().unwrap() {
        let target = dir.join(resource.as_str().unwrap());
        assert!(
            target.exists(),
            "{}: resource {resource} does not exist",
            path.display()
        );
        if target.is_dir() {
            out.extend(render(&target));
        } else {
            let text = std::fs::read_to_string(&target).unwrap();
            out.extend(objects(&target.display().to_string(), &text).unwrap());
        }
    }
    if let Some(ns) = k.get("namespace").and_then(Value::as_str) {
        for object in &mut out {
            if NAMESPACED.contains(&kind_of(object)) {
                object["metadata"]["namespace"] = Value::from(ns);
            }
            if kind_of(object).ends_with("RoleBinding") {
                for subject in object["subjects"].as_array_mut().into_iter().flatten() {
                    if subject["kind"] == "ServiceAccount" {
                        subject["namespace"] = Value::from(ns);
                    }
                }
            }
        }
    }
    out
}

fn default_install() -> Vec<Value> {
    render(&support::root().join("config/default"))
}

/// `object` read as `T`. Errors when it does not deserialize, or when the round trip through
/// `T` loses a field (a field `T` does not know: a misspelling kubectl's validation refuses).
fn try_typed<T: DeserializeOwned + Serialize>(object: &Value) -> Result<T, String> {
    let what = format!("{} {}", kind_of(object), name_of(object));
    let parsed: T = serde_json::from_value(object.clone()).map_err(|e| format!("{what}: {e}"))?;
    if serde_json::to_value(&parsed).map_err(|e| e.to_string())? != *object {
        return Err(format!(
            "{what} has fields its Kubernetes type does not know"
        ));
    }
    Ok(parsed)
}

fn typed<T: DeserializeOwned + Serialize>(object: &Value) -> T {
    try_typed(object).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn the_type_check_catches_a_misspelt_field() {
    let objects = default_install();
    let mut deployment = objects
        .iter()
        .find(|o| kind_of(o) == "Deployment")
        .unwrap()
        .clone();
    assert!(try_typed::<Deployment>(&deployment).is_ok());
    deployment["spec"]["replica"] = Value::from(2);
    let error = try_typed::<Deployment>(&deployment).unwrap_err();
    assert!(error.contains("does not know"), "{error}");
    deployment["spec"]["replicas"] = Value::from("two");
    assert!(try_typed::<Deployment>(&deployment).is_err());
}

fn find<T: DeserializeOwned + Serialize>(objects: &[Value], kind: &str, name: &str) -> T {
    let object = objects
        .iter()
        .find(|o| kind_of(o) == kind && name_of(o) == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    typed(object)
}

#[test]
fn every_object_is_a_known_kubernetes_type_in_the_right_namespace() {
    let objects = default_install();
    let mut seen = BTreeSet::new();
    for object in &objects {
        let kind = kind_of(object);
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        assert!(
            seen.insert((
                kind.to_string(),
                namespace.map(str::to_string),
                name_of(object).to_string()
            )),
            "duplicate {kind} {}",
            name_of(object)
        );
        if CLUSTER_SCOPED.contains(&kind) {
            assert_eq!(
                namespace,
                None,
                "{kind} {} is cluster-scoped",
                name_of(object)
            );
        } else {
            assert!(NAMESPACED.contains(&kind), "unexpected kind {kind}");
            assert_eq!(namespace, Some("weft-system"), "{kind} {}", name_of(object));
        }
        match kind {
            "Namespace" => drop(typed::<Namespace>(object)),
            "ClusterRole" => drop(typed::<ClusterRole>(object)),
            "ClusterRoleBinding" => drop(typed::<ClusterRoleBinding>(object)),
            "Role" => drop(typed::<Role>(object)),
            "RoleBinding" => drop(typed::<RoleBinding>(object)),
            "CustomResourceDefinition" => drop(typed::<CustomResourceDefinition>(object)),
            "MutatingWebhookConfiguration" => drop(typed::<MutatingWebhookConfiguration>(object)),
            "ValidatingWebhookConfiguration" => {
                drop(typed::<ValidatingWebhookConfiguration>(object))
            }
            "Deployment" => drop(typed::<Deployment>(object)),
            "Service" => drop(typed::<Service>(object)),
            "ServiceAccount" => drop(typed::<ServiceAccount>(object)),
            "PodDisruptionBudget" => drop(typed::<PodDisruptionBudget>(object)),
            other => panic!("unexpected kind {other}"),
        }
    }
    let kinds: BTreeSet<&str> = objects.iter().map(kind_of).collect();
    let all: BTreeSet<&str> = CLUSTER_SCOPED.into_iter().chain(NAMESPACED).collect();
    assert_eq!(kinds, all, "config/default installs every part");
    let crds = objects
        .iter()
        .filter(|o| kind_of(o) == "CustomResourceDefinition")
        .count();
    assert_eq!(crds, weft_crds::crd::all().unwrap().len());
}

fn port_numbers(deployment: &Deployment) -> BTreeMap<String, i32> {
    let containers = &deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers;
    containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| (p.name.clone().unwrap_or_default(), p.container_port))
        .collect()
}

#[test]
fn references_between_objects_resolve() {
    let objects = default_install();
    let deployment: Deployment = find(&objects, "Deployment", "weft-operator");
    let template = &deployment.spec.as_ref().unwrap().template;
    let pod_labels = template.metadata.as_ref().unwrap().labels.clone().unwrap();
    let pod = template.spec.as_ref().unwrap();
    let sa = pod.service_account_name.clone().unwrap();
    let _: ServiceAccount = find(&objects, "ServiceAccount", &sa);

    let ports = port_numbers(&deployment);
    let service: Service = find(&objects, "Service", "weft-operator");
    let spec = service.spec.unwrap();
    for (k, v) in spec.selector.unwrap() {
        assert_eq!(pod_labels.get(&k), Some(&v), "Service selector {k}={v}");
    }
    let mut service_ports = BTreeMap::new();
    for p in spec.ports.unwrap() {
        let target = match p.target_port.unwrap() {
            IntOrString::Int(n) => n,
            IntOrString::String(name) => ports[&name],
        };
        assert!(
            ports.values().any(|n| *n == target),
            "Service port {} targets {target}",
            p.port
        );
        service_ports.insert(p.port, target);
    }
    assert_eq!(
        service_ports,
        BTreeMap::from([(443, 9443), (15012, 15012), (15014, 15014)])
    );

    let pdb: PodDisruptionBudget = find(&objects, "PodDisruptionBudget", "weft-operator");
    let selector = pdb.spec.unwrap().selector.unwrap().match_labels.unwrap();
    assert!(selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));

    let binding: ClusterRoleBinding = find(&objects, "ClusterRoleBinding", "weft-operator");
    let _: ClusterRole = find(&objects, "ClusterRole", &binding.role_ref.name);
    let binding_ns: RoleBinding = find(&objects, "RoleBinding", "weft-operator");
    let _: Role = find(&objects, "Role", &binding_ns.role_ref.name);
    for subjects in [binding.subjects.unwrap(), binding_ns.subjects.unwrap()] {
        assert!(subjects.iter().all(|s| s.kind == "ServiceAccount"
            && s.name == sa
            && s.namespace.as_deref() == Some("weft-system")));
    }

    let injector: MutatingWebhookConfiguration = find(
        &objects,
        "MutatingWebhookConfiguration",
        "weft-sidecar-injector",
    );
    let validator: ValidatingWebhookConfiguration =
        find(&objects, "ValidatingWebhookConfiguration", "weft-validator");
    let configs = injector
        .webhooks
        .unwrap()
        .into_iter()
        .map(|w| (w.name, w.client_config))
        .chain(
            validator
                .webhooks
                .unwrap()
                .into_iter()
                .map(|w| (w.name, w.client_config)),
        );
    for (name, client) in configs {
        let svc = client
            .service
            .unwrap_or_else(|| panic!("{name}: no service"));
        assert_eq!(
            (svc.name.as_str(), svc.namespace.as_str()),
            ("weft-operator", "weft-system"),
            "{name}"
        );
        assert_eq!(service_ports.get(&svc.port.unwrap()), Some(&9443), "{name}");
        assert!(
            client.ca_bundle.is_none(),
            "{name}: the operator patches caBundle"
        );
    }
}

#[test]
fn the_operator_deployment_keeps_the_contract() {
    let objects = default_install();
    let deployment: Deployment = find(&objects, "Deployment", "weft-operator");
    let spec = deployment.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(2));
    let pod = spec.template.spec.as_ref().unwrap();
    let pod_security = pod.security_context.as_ref().unwrap();
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    assert_eq!(
        pod_security.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    let [container] = pod.containers.as_slice() else {
        panic!("one container")
    };
    assert_eq!(
        container.args.as_deref().unwrap(),
        [
            "--namespace=$(POD_NAMESPACE)",
            "--leader-elect",
            "--log-format=json",
            "--proxy-image=ghcr.io/weft-mesh/weft-proxy:latest"
        ]
    );
    let env = container.env.as_deref().unwrap();
    let pod_namespace = env.iter().find(|e| e.name == "POD_NAMESPACE").unwrap();
    let field = pod_namespace
        .value_from
        .as_ref()
        .unwrap()
        .field_ref
        .as_ref()
        .unwrap();
    assert_eq!(field.field_path, "metadata.namespace");
    assert_eq!(
        port_numbers(&deployment),
        BTreeMap::from([
            ("grpc-discovery".to_string(), 15012),
            ("http-monitoring".to_string(), 15014),
            ("https-webhook".to_string(), 9443),
        ])
    );
    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (get.path.clone().unwrap(), get.port.clone())
    };
    assert_eq!(
        probe(&container.readiness_probe),
        ("/readyz".into(), IntOrString::Int(15014))
    );
    assert_eq!(
        probe(&container.liveness_probe),
        ("/healthz".into(), IntOrString::Int(15014))
    );
    let requests = container
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap();
    assert!(requests.contains_key("cpu") && requests.contains_key("memory"));
    let security = container.security_context.as_ref().unwrap();
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert_eq!(
        security.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    let pdb: PodDisruptionBudget = find(&objects, "PodDisruptionBudget", "weft-operator");
    assert_eq!(pdb.spec.unwrap().min_available, Some(IntOrString::Int(1)));
}

#[test]
fn samples_are_valid_mesh_objects() {
    let samples = render(&support::root().join("config/samples"));
    let kinds: BTreeSet<&str> = samples.iter().map(kind_of).collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "Mesh",
            "VirtualService",
            "DestinationRule",
            "PeerAuthentication",
            "AuthorizationPolicy"
        ])
    );
    for sample in &samples {
        let validation = weft_webhook::validate_value(sample.clone());
        assert!(
            validation.errors.is_empty(),
            "{} {}: {:?}",
            kind_of(sample),
            name_of(sample),
            validation
                .errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        );
    }
    let mesh = samples.iter().find(|s| kind_of(s) == "Mesh").unwrap();
    assert_eq!(name_of(mesh), weft_crds::mesh::DEFAULT_NAME);
    assert_eq!(
        mesh["spec"]["discoveryAddress"],
        "weft-operator.weft-system.svc:15012"
    );
}

/// `kubectl kustomize DIR` as (kind, namespace, name), or `None` without kubectl.
fn kubectl_kustomize(dir: &Path) -> Option<BTreeSet<(String, String, String)>> {
    let output = match std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            eprintln!("SKIPPED: kubectl kustomize comparison ({e}); install kubectl to run it");
            return None;
        }
    };
    assert!(
        output.status.success(),
        "kubectl kustomize: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    Some(key_set(&objects("kubectl kustomize", &text).unwrap()))
}

fn key_set(objects: &[Value]) -> BTreeSet<(String, String, String)> {
    objects
        .iter()
        .map(|o| {
            let ns = o
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            (
                kind_of(o).to_string(),
                ns.to_string(),
                name_of(o).to_string(),
            )
        })
        .collect()
}

#[test]
fn kubectl_kustomize_renders_the_same_objects() {
    for dir in ["config/default", "config/samples"] {
        let path = support::root().join(dir);
        if let Some(theirs) = kubectl_kustomize(&path) {
            assert_eq!(theirs, key_set(&render(&path)), "{dir}");
        }
    }
}
