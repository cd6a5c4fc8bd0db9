//! The operator against a real cluster (issue 7's cluster e2e): install the CRDs and the
//! operator with `kubectl` from `config/default`, create the `Mesh` and see `Ready=True`, see a
//! Deployment's pods injected in a namespace labelled `istio-injection=enabled`, an invalid
//! VirtualService rejected with its field path and a valid one `Accepted=True` at its
//! generation, a ServiceAccount's certificate Secret carrying its SPIFFE ID and re-issued
//! before expiry under a short TTL, and deleting the Mesh removing what the operator created.
//!
//! Needs `KUBECONFIG` and `kubectl`. Without `KUBECONFIG` it prints `SKIPPED: no cluster
//! (KUBECONFIG unset)` to stderr and returns; with `WEFT_E2E_CLUSTER=1` (set by `make
//! e2e-cluster`) an unreachable cluster is a failure instead of a skip. The operator image is
//! `WEFT_OPERATOR_IMAGE` (skipped when unset: the cluster must be able to pull or already
//! hold it, e.g. `kind load docker-image`); `WEFT_PROXY_IMAGE` sets the Mesh's
//! `spec.proxy.image` and `WEFT_E2E_APP_IMAGE` the test Deployment's image (default
//! `registry.k8s.io/pause:3.10`). Pods need not start: injection is checked on the Pod
//! objects. The operator stays installed afterwards; the test namespace and the Mesh are
//! deleted.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "cluster_operator_support/certificate.rs"]
mod certificate;
#[path = "cluster_operator_support/kubectl.rs"]
mod kubectl;

use std::io::Write as _;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The operator image the install manifests name, replaced by `WEFT_OPERATOR_IMAGE`.
const MANIFEST_OPERATOR_IMAGE: &str = "ghcr.io/weft-mesh/weft-operator:latest";
/// The operator's namespace in `config/default`.
const OPERATOR_NAMESPACE: &str = "weft-system";
/// Workload certificate lifetime for the re-issue check (rotation at half: 60 s).
const SHORT_TTL: Duration = Duration::from_secs(120);
/// How long the operator may take to become available or the Mesh ready.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(300);
/// How long one reconcile result may take to appear.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

/// Prints a skip notice straight to the process's stderr (libtest captures `eprintln!` of
/// passing tests, and a skip must be seen).
fn skipped(reason: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED: {reason}");
}

/// `true` when a reachable cluster and everything the test needs are there; otherwise prints
/// why it skips (or panics when `WEFT_E2E_CLUSTER=1` and the cluster does not answer).
fn cluster_or_skip() -> bool {
    if std::env::var_os("KUBECONFIG").is_none() {
        skipped("no cluster (KUBECONFIG unset)");
        return false;
    }
    let required = std::env::var("WEFT_E2E_CLUSTER").is_ok_and(|v| v == "1");
    let answer = kubectl::run(&["version", "-o", "json"], None);
    match answer {
        Some(out) if out.ok => {}
        Some(out) if !required => {
            skipped(&format!(
                "no cluster (KUBECONFIG set but the API server did not answer: {})",
                out.stderr.trim()
            ));
            return false;
        }
        None if !required => {
            skipped("no cluster (kubectl is not installed)");
            return false;
        }
        Some(out) => panic!(
            "WEFT_E2E_CLUSTER=1 but the cluster did not answer: {}",
            out.stderr
        ),
        None => panic!("WEFT_E2E_CLUSTER=1 but kubectl is not installed"),
    }
    if std::env::var_os("WEFT_OPERATOR_IMAGE").is_none() {
        skipped(
            "WEFT_OPERATOR_IMAGE unset: set it to an operator image the cluster can pull (make images)",
        );
        return false;
    }
    true
}

/// Deletes the test namespace and the Mesh when the test ends, passed or not.
struct Cleanup {
    namespace: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = kubectl::run(
            &[
                "delete",
                "namespace",
                &self.namespace,
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        );
        let _ = kubectl::run(
            &[
                "delete",
                "mesh",
                "default",
                "--ignore-not-found",
                "--wait=false",
            ],
            None,
        );
    }
}

fn repo_path(relative: &str) -> String {
    format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"))
}

/// `kubectl kustomize config/default` with the operator image replaced, applied server-side;
/// then waits for the CRDs to be Established and the operator Deployment to be available.
fn install_operator(image: &str) {
    let manifests = kubectl::ok(&["kustomize", &repo_path("config/default")], None);
    assert!(
        manifests.contains(MANIFEST_OPERATOR_IMAGE),
        "config/default no longer names {MANIFEST_OPERATOR_IMAGE}; update this test"
    );
    kubectl::apply(&manifests.replace(MANIFEST_OPERATOR_IMAGE, image));
    kubectl::ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=120s",
            "crd/meshes.mesh.weft.dev",
            "crd/virtualservices.networking.istio.io",
        ],
        None,
    );
    let timeout = format!("--timeout={}s", INSTALL_TIMEOUT.as_secs());
    kubectl::ok(
        &[
            "-n",
            OPERATOR_NAMESPACE,
            "rollout",
            "status",
            "deployment/weft-operator",
            &timeout,
        ],
        None,
    );
}

fn create_mesh() {
    let proxy = std::env::var("WEFT_PROXY_IMAGE")
        .map(|image| format!("\n  proxy:\n    image: {image}"))
        .unwrap_or_default();
    kubectl::apply(&format!(
        "apiVersion: mesh.weft.dev/v1alpha1\nkind: Mesh\nmetadata:\n  name: default\nspec:\n  certificates:\n    workloadCertTtl: {}s\n    rotateAtFraction: 0.5{proxy}\n",
        SHORT_TTL.as_secs()
    ));
    let mesh = kubectl::eventually("Mesh default Ready=True", INSTALL_TIMEOUT, || {
        let mesh = kubectl::get(&["mesh", "default"])?;
        (kubectl::condition(&mesh, "Ready")?["status"] == "True").then_some(mesh)
    });
    let generation = &mesh["metadata"]["generation"];
    for type_ in [
        "Ready",
        "CertificateAuthorityReady",
        "WebhooksReady",
        "DiscoveryReady",
    ] {
        let condition = kubectl::condition(&mesh, type_)
            .unwrap_or_else(|| panic!("Mesh condition {type_} missing: {mesh}"));
        assert_eq!(condition["status"], "True", "{type_}: {condition}");
        assert_eq!(&condition["observedGeneration"], generation, "{type_}");
        assert!(condition["reason"].is_string(), "{type_} has a reason");
    }
    let finalizers = mesh["metadata"]["finalizers"].to_string();
    assert!(finalizers.contains("mesh.weft.dev/cleanup"), "{finalizers}");
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

fn deployment_pods_are_injected(namespace: &str) {
    let image = std::env::var("WEFT_E2E_APP_IMAGE")
        .unwrap_or_else(|_| "registry.k8s.io/pause:3.10".to_string());
    kubectl::apply(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: reviews\n  namespace: {namespace}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: reviews}}\n  template:\n    metadata:\n      labels: {{app: reviews}}\n    spec:\n      serviceAccountName: reviews\n      containers:\n      - name: app\n        image: {image}\n"
    ));
    let pod = kubectl::eventually("a reviews pod", STEP_TIMEOUT, || {
        let pods = kubectl::get(&["-n", namespace, "pods", "-l", "app=reviews"])?;
        pods["items"].as_array()?.first().cloned()
    });
    let init = names(&pod["spec"]["initContainers"]);
    let containers = names(&pod["spec"]["containers"]);
    assert!(
        init.iter().any(|n| n == "istio-init"),
        "init containers {init:?}"
    );
    assert!(
        containers.iter().any(|n| n == "istio-proxy"),
        "containers {containers:?}"
    );
    let status = &pod["metadata"]["annotations"]["sidecar.istio.io/status"];
    assert!(status.is_string(), "sidecar.istio.io/status: {status}");
}

fn virtual_service(namespace: &str, name: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination:\n        host: \"{host}\"\n"
    )
}

fn virtual_services_are_validated(namespace: &str) {
    let invalid = virtual_service(namespace, "invalid", "*");
    let out = kubectl::run(&["apply", "-f", "-"], Some(&invalid)).expect("kubectl runs");
    assert!(!out.ok, "the wildcard destination host was admitted");
    assert!(
        out.stderr
            .contains("spec.http[0].route[0].destination.host"),
        "the rejection names the field path: {}",
        out.stderr
    );

    kubectl::apply(&virtual_service(namespace, "reviews", "reviews"));
    let accepted_at = |expected: i64| {
        kubectl::eventually(
            &format!("VirtualService reviews Accepted=True at generation {expected}"),
            STEP_TIMEOUT,
            || {
                let vs = kubectl::get(&["-n", namespace, "virtualservice", "reviews"])?;
                let accepted = kubectl::condition(&vs, "Accepted")?;
                (accepted["status"] == "True"
                    && accepted["observedGeneration"].as_i64() == Some(expected)
                    && vs["metadata"]["generation"].as_i64() == Some(expected))
                .then_some(())
            },
        )
    };
    accepted_at(1);
    let changed = virtual_service(namespace, "reviews", "reviews")
        .replace("host: \"reviews\"", "host: \"reviews\"\n      weight: 100");
    kubectl::apply(&changed);
    accepted_at(2);
}

/// The SPIFFE IDs of the leaf in Secret `name`'s `tls.crt`, with the certificate's Base64.
fn secret_identity(namespace: &str, name: &str) -> Option<(Vec<String>, String)> {
    let secret = kubectl::get(&["-n", namespace, "secret", name])?;
    let encoded = secret["data"]["tls.crt"].as_str()?.to_string();
    let pem = String::from_utf8(certificate::base64_decode(&encoded)?).ok()?;
    let der = certificate::first_certificate_der(&pem)?;
    Some((certificate::spiffe_ids(&der), encoded))
}

/// Returns when the ServiceAccount was created (the earliest its certificate can have been
/// issued).
fn service_account_certificate(namespace: &str) -> (Instant, String) {
    let created = Instant::now();
    kubectl::apply(&format!(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: reviews\n  namespace: {namespace}\n"
    ));
    let (ids, encoded) =
        kubectl::eventually("Secret weft-workload-cert-reviews", STEP_TIMEOUT, || {
            secret_identity(namespace, "weft-workload-cert-reviews")
        });
    assert_eq!(
        ids,
        [format!("spiffe://cluster.local/ns/{namespace}/sa/reviews")]
    );
    (created, encoded)
}

/// The certificate must change while the first one is still valid: it was issued after
/// `created`, so it expires no earlier than `created + SHORT_TTL`.
fn certificate_is_reissued_before_expiry(namespace: &str, created: Instant, first: &str) {
    let expiry_bound = created + SHORT_TTL;
    kubectl::eventually("a re-issued workload certificate", SHORT_TTL, || {
        let (ids, encoded) = secret_identity(namespace, "weft-workload-cert-reviews")?;
        (encoded != first).then_some(ids)
    });
    assert!(
        Instant::now() < expiry_bound,
        "the certificate was re-issued only after the first one expired"
    );
}

fn deleting_the_mesh_cleans_up(namespace: &str) {
    kubectl::ok(&["delete", "mesh", "default", "--timeout=120s"], None);
    kubectl::eventually("the operator's objects to be deleted", STEP_TIMEOUT, || {
        let gone = |args: &[&str]| kubectl::get(args).is_none();
        (gone(&["-n", OPERATOR_NAMESPACE, "secret", "weft-ca-secret"])
            && gone(&["-n", namespace, "secret", "weft-workload-cert-reviews"])
            && gone(&["-n", namespace, "configmap", "istio-ca-root-cert"]))
        .then_some(())
    });
}

#[test]
fn the_operator_brings_up_the_mesh_and_cleans_up_after_it() {
    if !cluster_or_skip() {
        return;
    }
    let image = std::env::var("WEFT_OPERATOR_IMAGE").unwrap();
    install_operator(&image);
    let namespace = format!("weft-e2e-operator-{}", std::process::id());
    let _cleanup = Cleanup {
        namespace: namespace.clone(),
    };
    create_mesh();
    kubectl::apply(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels:\n    istio-injection: enabled\n"
    ));
    let (created, first) = service_account_certificate(&namespace);
    deployment_pods_are_injected(&namespace);
    virtual_services_are_validated(&namespace);
    certificate_is_reissued_before_expiry(&namespace, created, &first);
    deleting_the_mesh_cleans_up(&namespace);
}
