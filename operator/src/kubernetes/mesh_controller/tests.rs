//! The Mesh reconciler against an in-process fake API server (`tower_test::mock`): every
//! request is recorded and answered from a table keyed by method and path, so the tests
//! assert what was read, written and deleted, in any order the reconciler chooses.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use parking_lot::Mutex;
use serde_json::{Value, json};
use weft_crds::mesh::MeshSpec;
use weft_identity::{CertificateAuthority, Identity, SystemClock};

use super::*;

const NS: &str = "weft-system";
const MESH_PATH: &str = "/apis/mesh.weft.dev/v1alpha1/meshes/default";
const CA_PATH: &str = "/api/v1/namespaces/weft-system/secrets/weft-ca-secret";
const CACERTS_PATH: &str = "/api/v1/namespaces/weft-system/secrets/cacerts";
const MUTATING_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector";
const VALIDATING_PATH: &str =
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/weft-validator";
const PODS_PATH: &str = "/api/v1/pods";
const SECRETS_PATH: &str = "/api/v1/secrets";
const CONFIGMAPS_PATH: &str = "/api/v1/configmaps";
const EVENTS_PATH: &str = "/apis/events.k8s.io/v1/namespaces/default/events";

/// One request as the fake saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    content_type: Option<String>,
    body: Value,
}

/// Canned answers: (method, path) → (HTTP status, body).
type Replies = BTreeMap<(String, String), (u16, Value)>;

/// The Mesh a PATCH of `.../meshes/<name>[/status]` returns.
fn mesh_answer(path: &str) -> Value {
    let name = path
        .trim_end_matches("/status")
        .rsplit('/')
        .next()
        .unwrap_or_default();
    json!({"apiVersion": "mesh.weft.dev/v1alpha1", "kind": "Mesh",
           "metadata": {"name": name}, "spec": {}})
}

/// The fake API server: answers from `replies` ((method, path) → (status, body)); anything
/// else is a 404 (GET, DELETE), an echo of the body (POST) or a Mesh (PATCH).
#[derive(Clone, Default)]
struct FakeApi {
    replies: Arc<Mutex<Replies>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

impl FakeApi {
    fn reply(&self, method: Method, path: &str, status: u16, body: Value) {
        self.replies
            .lock()
            .insert((method.to_string(), path.to_string()), (status, body));
    }

    fn seen(&self, method: &Method, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .cloned()
            .collect()
    }

    fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let fake = self.clone();
        tokio::spawn(async move {
            // Watches are held open without events until the test ends.
            let mut watches = Vec::new();
            while let Some((request, respond)) = handle.next_request().await {
                if request
                    .uri()
                    .query()
                    .is_some_and(|q| q.contains("watch=true"))
                {
                    watches.push(respond);
                    continue;
                }
                let method = request.method().clone();
                let path = request.uri().path().to_string();
                let query = request.uri().query().unwrap_or_default().to_string();
                let content_type = request
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = if bytes.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                let reply = fake
                    .replies
                    .lock()
                    .get(&(method.to_string(), path.clone()))
                    .cloned();
                let (status, reply) = match reply {
                    Some(reply) => reply,
                    None if method == Method::POST => (200, body.clone()),
                    // A patched Mesh: the API server answers with the object.
                    None if method == Method::PATCH => (200, mesh_answer(&path)),
                    None => not_found(),
                };
                fake.seen.lock().push(Seen {
                    method,
                    path,
                    query,
                    content_type,
                    body,
                });
                respond.send_response(
                    Response::builder()
                        .status(status)
                        .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                        .unwrap(),
                );
            }
        });
        Client::new(service, "default")
    }
}

struct FixedDiscovery(bool, usize);

impl DiscoveryProbe for FixedDiscovery {
    fn serving(&self) -> bool {
        self.0
    }
    fn connected_proxies(&self) -> usize {
        self.1
    }
}

fn context(client: Client, manage: bool) -> Arc<Context> {
    Arc::new(Context::new(
        client,
        MeshControllerSettings {
            namespace: NS.into(),
            manage_webhook_ca_bundle: manage,
            identity: "weft-operator-0".into(),
        },
        Arc::new(FixedDiscovery(true, 2)),
        Arc::new(SystemClock),
    ))
}

fn mesh(name: &str, finalizers: &[&str], deleting: bool) -> Arc<Mesh> {
    let mut value = json!({
        "apiVersion": "mesh.weft.dev/v1alpha1", "kind": "Mesh",
        "metadata": {"name": name, "generation": 7, "uid": "u-1", "resourceVersion": "10"},
        "spec": {},
    });
    if !finalizers.is_empty() {
        value["metadata"]["finalizers"] = json!(finalizers);
    }
    if deleting {
        value["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    Arc::new(serde_json::from_value(value).unwrap())
}

/// A self-signed CA and the `weft-ca-secret` that stores it, as Citadel creates them.
fn ca_and_secret() -> (CertificateAuthority, Value) {
    let (ca, secret) =
        load_or_create_ca(None, None, NS, &MeshSpec::default(), Arc::new(SystemClock)).unwrap();
    (ca, serde_json::to_value(secret.unwrap()).unwrap())
}

fn webhook_configuration(kind: &str, name: &str, bundle: &[u8]) -> Value {
    use base64::Engine as _;
    let bundle = base64::engine::general_purpose::STANDARD.encode(bundle);
    json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind,
        "metadata": {"name": name},
        "webhooks": [{"name": "hook.weft.dev", "sideEffects": "None",
                      "admissionReviewVersions": ["v1"],
                      "clientConfig": {"caBundle": bundle,
                                       "service": {"name": "weft-operator", "namespace": NS}}}],
    })
}

fn workload_secret(namespace: &str, name: &str, cert_pem: &str) -> Value {
    use base64::Engine as _;
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {MANAGED_BY_LABEL: FIELD_MANAGER, COMPONENT_LABEL: WORKLOAD_CERT_COMPONENT}},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64::engine::general_purpose::STANDARD.encode(cert_pem)},
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

fn pod_metadata(name: &str, injected: bool) -> Value {
    let mut meta = json!({"name": name, "namespace": "demo",
                          "labels": {TLS_MODE_LABEL: "istio"}});
    if injected {
        meta["annotations"] = json!({SIDECAR_STATUS: "{}"});
    }
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": meta})
}

/// The fake holds a healthy cluster: `weft-ca-secret`, both webhook configurations (the
/// validator's `caBundle` as given), two tlsMode pods of which one is annotated, and one
/// workload certificate expiring in one hour.
fn cluster(validator_bundle: Option<&[u8]>) -> (FakeApi, CertificateAuthority) {
    let fake = FakeApi::default();
    let (ca, ca_secret) = ca_and_secret();
    let bundle = ca.trust_bundle_pem();
    fake.reply(Method::GET, CA_PATH, 200, ca_secret);
    fake.reply(
        Method::GET,
        MUTATING_PATH,
        200,
        webhook_configuration(
            "MutatingWebhookConfiguration",
            "weft-sidecar-injector",
            bundle.as_bytes(),
        ),
    );
    fake.reply(
        Method::GET,
        VALIDATING_PATH,
        200,
        webhook_configuration(
            "ValidatingWebhookConfiguration",
            "weft-validator",
            validator_bundle.unwrap_or(bundle.as_bytes()),
        ),
    );
    fake.reply(
        Method::GET,
        PODS_PATH,
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
               "metadata": {"resourceVersion": "1"},
               "items": [pod_metadata("a", true), pod_metadata("b", false)]}),
    );
    let identity = Identity::spiffe("cluster.local", "demo", "reviews").unwrap();
    let issued = ca
        .issue_workload(&identity, Duration::from_secs(3600))
        .unwrap();
    fake.reply(
        Method::GET,
        SECRETS_PATH,
        200,
        list(
            "SecretList",
            vec![workload_secret(
                "demo",
                "weft-workload-cert-reviews",
                &issued.cert_chain_pem,
            )],
        ),
    );
    fake.reply(
        Method::GET,
        MESH_PATH,
        200,
        serde_json::to_value(&*mesh("default", &[FINALIZER], false)).unwrap(),
    );
    (fake, ca)
}

fn condition<'a>(status: &'a Value, type_: &str) -> (&'a str, &'a str, i64) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no {type_} in {status}"));
    (
        c["status"].as_str().unwrap(),
        c["reason"].as_str().unwrap(),
        c["observedGeneration"].as_i64().unwrap(),
    )
}

#[tokio::test]
async fn the_first_reconcile_adds_the_finalizer_and_nothing_else() {
    let (fake, _) = cluster(None);
    let action = reconcile(mesh("default", &[], false), context(fake.client(), true))
        .await
        .unwrap();
    assert_eq!(action, Action::await_change());
    let patches = fake.seen(&Method::PATCH, MESH_PATH);
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/json-patch+json")
    );
    assert_eq!(
        patches[0].body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    );
    assert!(
        fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"))
            .is_empty()
    );
}

#[tokio::test]
async fn a_healthy_mesh_gets_ready_true_with_counts_by_merge_patch_on_status() {
    let (fake, ca) = cluster(None);
    let action = reconcile(
        mesh("default", &[FINALIZER], false),
        context(fake.client(), true),
    )
    .await
    .unwrap();
    assert_eq!(action, Action::requeue(REFRESH_INTERVAL));
    let patches = fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"));
    assert_eq!(patches.len(), 1, "one status write");
    assert_eq!(
        patches[0].content_type.as_deref(),
        Some("application/merge-patch+json")
    );
    assert!(
        patches[0].query.contains("fieldManager=weft-operator"),
        "{}",
        patches[0].query
    );
    let status = &patches[0].body["status"];
    assert_eq!(condition(status, "Ready"), ("True", "MeshReady", 7));
    assert_eq!(
        condition(status, "CertificateAuthorityReady"),
        ("True", "SelfSignedCA", 7)
    );
    assert_eq!(
        condition(status, "WebhooksReady"),
        ("True", "CABundleCurrent", 7)
    );
    assert_eq!(condition(status, "DiscoveryReady"), ("True", "Serving", 7));
    assert_eq!(status["observedGeneration"], 7);
    assert_eq!(status["connectedProxies"], 2);
    assert_eq!(status["injectedPods"], 1, "only the annotated pod");
    let expiry = status["nearestCertificateExpiry"].as_str().unwrap();
    assert!(
        expiry < status::rfc3339(ca.not_after()).unwrap().as_str(),
        "{expiry}"
    );
    let pods = fake.seen(&Method::GET, PODS_PATH);
    assert!(
        pods[0]
            .query
            .contains("labelSelector=security.istio.io%2FtlsMode"),
        "{}",
        pods[0].query
    );
    let events = fake.seen(&Method::POST, EVENTS_PATH);
    assert_eq!(events.len(), 4, "one Event per new condition");
    assert!(events.iter().all(|e| e.body["type"] == "Normal"
        && e.body["regarding"]["kind"] == "Mesh"
        && e.body["reportingController"] == REPORTING_CONTROLLER));
    assert!(fake.seen(&Method::DELETE, CA_PATH).is_empty());
}

#[tokio::test]
async fn a_stale_webhook_bundle_makes_webhooks_and_ready_false_with_a_warning_event() {
    let (fake, _) = cluster(Some(b"-----BEGIN CERTIFICATE-----\nOLD\n"));
    reconcile(
        mesh("default", &[FINALIZER], false),
        context(fake.client(), true),
    )
    .await
    .unwrap();
    let patch = &fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"))[0];
    let status = &patch.body["status"];
    assert_eq!(
        condition(status, "WebhooksReady"),
        ("False", "CABundleStale", 7)
    );
    assert_eq!(
        condition(status, "Ready"),
        ("False", "ComponentsNotReady", 7)
    );
    let warnings: Vec<Value> = fake
        .seen(&Method::POST, EVENTS_PATH)
        .into_iter()
        .map(|e| e.body)
        .filter(|e| e["type"] == "Warning")
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().any(|e| {
        e["reason"] == "CABundleStale"
            && e["note"]
                .as_str()
                .unwrap()
                .contains("ValidatingWebhookConfiguration weft-validator")
    }));
}

#[tokio::test]
async fn an_unchanged_status_is_not_written_again() {
    let (fake, _) = cluster(None);
    let ctx = context(fake.client(), true);
    reconcile(mesh("default", &[FINALIZER], false), ctx.clone())
        .await
        .unwrap();
    let written =
        fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"))[0].body["status"].clone();
    let mut again = (*mesh("default", &[FINALIZER], false)).clone();
    again.status = Some(serde_json::from_value(written).unwrap());
    reconcile(Arc::new(again), ctx).await.unwrap();
    assert_eq!(
        fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"))
            .len(),
        1
    );
    assert_eq!(
        fake.seen(&Method::POST, EVENTS_PATH).len(),
        4,
        "no new Events"
    );
}

#[tokio::test]
async fn deleting_the_mesh_deletes_what_the_operator_created_then_the_finalizer() {
    let (fake, _) = cluster(None);
    fake.reply(
        Method::GET,
        CONFIGMAPS_PATH,
        200,
        list(
            "ConfigMapList",
            vec![
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": ROOT_CERT_CONFIGMAP, "namespace": "demo",
                                    "labels": {MANAGED_BY_LABEL: FIELD_MANAGER}}}),
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": ROOT_CERT_CONFIGMAP, "namespace": "istio-app"}}),
            ],
        ),
    );
    let deletes = [
        "/api/v1/namespaces/demo/secrets/weft-workload-cert-reviews",
        "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert",
        CA_PATH,
    ];
    for path in deletes {
        fake.reply(
            Method::DELETE,
            path,
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        );
    }
    let action = reconcile(
        mesh("default", &["other.example/keep", FINALIZER], true),
        context(fake.client(), true),
    )
    .await
    .unwrap();
    assert_eq!(action, Action::await_change());
    let deleted: Vec<String> = fake
        .seen
        .lock()
        .iter()
        .filter(|s| s.method == Method::DELETE)
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        deleted, deletes,
        "in plan order; never cacerts, never the unlabelled ConfigMap"
    );
    let configmaps = fake.seen(&Method::GET, CONFIGMAPS_PATH);
    assert!(
        configmaps[0]
            .query
            .contains("fieldSelector=metadata.name%3Distio-ca-root-cert")
    );
    let patches = fake.seen(&Method::PATCH, MESH_PATH);
    assert_eq!(patches.len(), 1);
    assert_eq!(
        patches[0].body,
        json!([{"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
               {"op": "remove", "path": "/metadata/finalizers/1"}]),
        "only our finalizer is removed"
    );
    assert!(
        fake.seen(&Method::POST, EVENTS_PATH)
            .iter()
            .any(|e| e.body["reason"] == "CleanedUp")
    );
}

#[tokio::test]
async fn a_failed_delete_keeps_the_finalizer_and_retries_with_back_off() {
    let (fake, _) = cluster(None);
    fake.reply(
        Method::GET,
        CONFIGMAPS_PATH,
        200,
        list("ConfigMapList", vec![]),
    );
    fake.reply(
        Method::DELETE,
        CA_PATH,
        500,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500, "message": "etcd"}),
    );
    let ctx = context(fake.client(), true);
    let deleting = mesh("default", &[FINALIZER], true);
    let error = reconcile(deleting.clone(), ctx.clone()).await.unwrap_err();
    assert!(error.is_transient(), "{error}");
    assert!(
        error.to_string().contains("weft-system/weft-ca-secret"),
        "{error}"
    );
    assert!(
        fake.seen(&Method::PATCH, MESH_PATH).is_empty(),
        "the finalizer stays"
    );
    let first = error_policy(deleting.clone(), &error, ctx.clone());
    let second = error_policy(deleting, &error, ctx);
    assert_eq!(first, Action::requeue(Duration::from_secs(1)));
    assert_eq!(second, Action::requeue(Duration::from_secs(2)));
}

#[tokio::test]
async fn another_mesh_gets_no_finalizer_and_only_ready_false() {
    let (fake, _) = cluster(None);
    reconcile(mesh("staging", &[], false), context(fake.client(), true))
        .await
        .unwrap();
    assert!(
        fake.seen(
            &Method::PATCH,
            "/apis/mesh.weft.dev/v1alpha1/meshes/staging"
        )
        .is_empty()
    );
    let patch = &fake.seen(
        &Method::PATCH,
        "/apis/mesh.weft.dev/v1alpha1/meshes/staging/status",
    )[0];
    let status = &patch.body["status"];
    assert_eq!(
        condition(status, "Ready"),
        ("False", "NotTheDefaultMesh", 7)
    );
    assert_eq!(status["conditions"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn without_a_ca_secret_the_mesh_waits_for_citadel() {
    let (fake, _) = cluster(None);
    fake.reply(Method::GET, CA_PATH, 404, not_found().1);
    reconcile(
        mesh("default", &[FINALIZER], false),
        context(fake.client(), true),
    )
    .await
    .unwrap();
    assert_eq!(
        fake.seen(&Method::GET, CACERTS_PATH).len(),
        1,
        "cacerts is read first"
    );
    let status = &fake.seen(&Method::PATCH, &format!("{MESH_PATH}/status"))[0].body["status"];
    assert_eq!(
        condition(status, "CertificateAuthorityReady"),
        ("False", "CertificateAuthorityMissing", 7)
    );
    assert_eq!(
        condition(status, "WebhooksReady"),
        ("False", "CertificateAuthorityNotReady", 7)
    );
    assert!(
        fake.seen(&Method::POST, "/api/v1/namespaces/weft-system/secrets")
            .is_empty(),
        "never creates the CA"
    );
}

#[tokio::test]
async fn run_reconciles_the_listed_mesh_and_stops_on_shutdown() {
    let (fake, _) = cluster(None);
    fake.reply(
        Method::GET,
        "/apis/mesh.weft.dev/v1alpha1/meshes",
        200,
        json!({"apiVersion": "mesh.weft.dev/v1alpha1", "kind": "MeshList",
               "metadata": {"resourceVersion": "10"},
               "items": [serde_json::to_value(&*mesh("default", &[], false)).unwrap()]}),
    );
    let empty = |kind: &str| json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": []});
    let admission = "/apis/admissionregistration.k8s.io/v1";
    fake.reply(
        Method::GET,
        &format!("{admission}/mutatingwebhookconfigurations"),
        200,
        empty("MutatingWebhookConfigurationList"),
    );
    fake.reply(
        Method::GET,
        &format!("{admission}/validatingwebhookconfigurations"),
        200,
        empty("ValidatingWebhookConfigurationList"),
    );
    fake.reply(
        Method::GET,
        "/api/v1/namespaces/weft-system/secrets",
        200,
        empty("SecretList"),
    );
    let shutdown = CancellationToken::new();
    let settings = MeshControllerSettings {
        namespace: NS.into(),
        manage_webhook_ca_bundle: true,
        identity: "weft-operator-0".into(),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    let metrics = ControllerMetrics::new(&mut registry);
    let running = tokio::spawn(run(
        fake.client(),
        settings,
        Arc::new(FixedDiscovery(true, 0)),
        metrics,
        shutdown.clone(),
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while fake.seen(&Method::PATCH, MESH_PATH).is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no finalizer patch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("run returns after shutdown")
        .unwrap();
    // The reconcile that added the finalizer counted under controller-runtime's names.
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(r#"controller_runtime_reconcile_time_seconds_count{controller="mesh"}"#),
        "{text}"
    );
    assert!(
        text.contains(r#"controller_runtime_reconcile_total{controller="mesh",result="#),
        "{text}"
    );
}

/// The runtime hands its discovery server to [`run`] as the probe.
#[test]
fn the_discovery_server_is_a_probe() {
    fn probe(server: Arc<DiscoveryServer>) -> Arc<dyn DiscoveryProbe> {
        server
    }
    let _ = probe;
}

#[test]
fn the_mesh_is_in_force_while_default_exists_and_is_not_being_deleted() {
    assert!(mesh_in_force(&[
        mesh("staging", &[], false),
        mesh("default", &[], false)
    ]));
    assert!(!mesh_in_force(&[mesh("default", &[FINALIZER], true)]));
    assert!(!mesh_in_force(&[mesh("staging", &[], false)]));
    assert!(!mesh_in_force(&[]));
}
