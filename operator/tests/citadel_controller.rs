//! The Citadel reconcilers against an in-process fake API server (`tower_test::mock`): every
//! request the reconcile makes is checked (method, path, query, body) and answered by the test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::Client;
use kube::client::Body;
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use weft_crds::mesh::MeshSpec;
use weft_identity::{CertificateAuthority, Decision, Identity, RotationPolicy, TestClock};
use weft_operator::citadel::controller::{
    error_policy_service_account, load_ca, reconcile_namespace, reconcile_service_account,
};
use weft_operator::citadel::plan::{SecretAction, plan_workload_secret};
use weft_operator::citadel::{CitadelSettings, Context};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

const HOUR: Duration = Duration::from_secs(3600);
const SECRET_PATH: &str = "/api/v1/namespaces/demo/secrets/weft-workload-cert-reviews";
const APPLY_QUERY: &str = "&force=true&fieldManager=weft-operator";

/// 2027-01-15T08:00:00Z.
fn start() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

struct Fake {
    handle: Handle,
    clock: Arc<TestClock>,
    ctx: Arc<Context>,
}

fn fake() -> Fake {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(TestClock::new(start()));
    let ca = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let ctx = Arc::new(Context::new(
        client,
        ca,
        &MeshSpec::default(),
        clock.clone(),
    ));
    Fake { handle, clock, ctx }
}

fn service_account() -> ServiceAccount {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "reviews", "namespace": "demo", "uid": "sa-uid-1"}
    }))
    .unwrap()
}

fn namespace(labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "demo", "labels": labels}
    })
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

/// Takes the next request, checks its method and path-and-query, answers it, and returns the
/// request body as JSON (`Null` when empty).
async fn expect(handle: &mut Handle, method: Method, uri: &str, reply: (u16, Value)) -> Value {
    let (request, respond) = handle.next_request().await.expect("a request");
    assert_eq!(request.method(), method, "method of {}", request.uri());
    assert_eq!(request.uri().to_string(), uri);
    if method == Method::PATCH {
        assert_eq!(
            request.headers()["content-type"],
            "application/apply-patch+yaml",
            "every write is a server-side apply"
        );
    }
    let body = request.into_body().collect_bytes().await.unwrap();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    let (status, reply) = reply;
    respond.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&reply).unwrap()))
            .unwrap(),
    );
    body
}

/// Checks, once the reconcile has returned, that it left no request unanswered (pending: none;
/// every client dropped: `Some(None)`).
fn no_more_requests(handle: &mut Handle) {
    if let Some(Some((request, _))) = handle.next_request().now_or_never() {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

fn pem(secret: &Value, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret["data"][key].as_str().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn reviews() -> Identity {
    Identity::spiffe("cluster.local", "demo", "reviews").unwrap()
}

/// Checks a written workload Secret: type, owner, labels, keys, and that the policy accepts its
/// certificate for `spiffe://cluster.local/ns/demo/sa/reviews` at `now`; returns `tls.crt`.
fn assert_workload_secret(body: &Value, ctx: &Context, now: SystemTime) -> String {
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["kind"], "Secret");
    assert_eq!(body["type"], "kubernetes.io/tls");
    assert_eq!(body["metadata"]["name"], "weft-workload-cert-reviews");
    assert_eq!(body["metadata"]["namespace"], "demo");
    assert_eq!(
        body["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "ServiceAccount", "name": "reviews",
                "uid": "sa-uid-1", "controller": true}])
    );
    assert_eq!(
        body["metadata"]["labels"],
        json!({"app.kubernetes.io/managed-by": "weft-operator",
               "app.kubernetes.io/component": "workload-certificate"})
    );
    let keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    assert_eq!(pem(body, "ca.crt"), ctx.ca().trust_bundle_pem());
    let chain = pem(body, "tls.crt");
    let decision = ctx.policy().evaluate(
        Some(&chain),
        Some(&pem(body, "tls.key")),
        &reviews(),
        ctx.ca(),
        now,
    );
    assert!(matches!(decision, Decision::Valid { .. }), "{decision:?}");
    chain
}

/// A Secret as the operator would have stored it, issued at the clock's current time.
fn stored_secret(ctx: &Context) -> Value {
    let plan = plan_workload_secret(
        &service_account(),
        None,
        ctx.ca(),
        ctx.policy(),
        "cluster.local",
        start(),
    )
    .unwrap();
    let SecretAction::Create(secret) = plan.action else {
        panic!("expected Create")
    };
    serde_json::to_value(&secret).unwrap()
}

fn rotation_point(policy: &RotationPolicy) -> SystemTime {
    // Issued from one minute before `start()` for the policy's lifetime.
    let not_before = start() - Duration::from_secs(60);
    policy.rotation_time(not_before, start() + policy.workload_ttl)
}

#[tokio::test]
async fn a_new_service_account_gets_its_secret_with_the_spiffe_id_owner_and_keys() {
    let Fake {
        mut handle, ctx, ..
    } = fake();
    let task = tokio::spawn(reconcile_service_account(
        Arc::new(service_account()),
        ctx.clone(),
    ));
    let labels = json!({"istio-injection": "enabled"});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace(labels)),
    )
    .await;
    expect(&mut handle, Method::GET, SECRET_PATH, not_found()).await;
    let uri = format!("{SECRET_PATH}?{APPLY_QUERY}");
    let body = expect(&mut handle, Method::PATCH, &uri, (200, json!({}))).await;
    assert_workload_secret(&body, &ctx, start());
    let action = task.await.unwrap().unwrap();
    // 24 h certificate from one minute ago, rotated at half its life.
    assert_eq!(action, Action::requeue(12 * HOUR - Duration::from_secs(30)));
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn a_valid_secret_is_left_alone_and_requeued_at_its_rotation_point() {
    let Fake {
        mut handle,
        clock,
        ctx,
    } = fake();
    let stored = stored_secret(&ctx);
    let now = start() + 3 * HOUR;
    clock.set(now);
    let task = tokio::spawn(reconcile_service_account(
        Arc::new(service_account()),
        ctx.clone(),
    ));
    let labels = json!({"istio-injection": "enabled"});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace(labels)),
    )
    .await;
    expect(&mut handle, Method::GET, SECRET_PATH, (200, stored.clone())).await;
    let action = task.await.unwrap().unwrap();
    let rotation = rotation_point(ctx.policy());
    assert_eq!(
        action,
        Action::requeue(rotation.duration_since(now).unwrap())
    );
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn an_expiring_secret_is_replaced() {
    let Fake {
        mut handle,
        clock,
        ctx,
    } = fake();
    let stored = stored_secret(&ctx);
    let now = rotation_point(ctx.policy()) + Duration::from_secs(1);
    clock.set(now);
    let task = tokio::spawn(reconcile_service_account(
        Arc::new(service_account()),
        ctx.clone(),
    ));
    let labels = json!({"istio-injection": "enabled"});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace(labels)),
    )
    .await;
    expect(&mut handle, Method::GET, SECRET_PATH, (200, stored.clone())).await;
    let uri = format!("{SECRET_PATH}?{APPLY_QUERY}");
    let body = expect(&mut handle, Method::PATCH, &uri, (200, stored.clone())).await;
    let chain = assert_workload_secret(&body, &ctx, now);
    assert_ne!(
        chain,
        pem(&stored, "tls.crt"),
        "a new certificate was issued"
    );
    let action = task.await.unwrap().unwrap();
    assert_eq!(action, Action::requeue(12 * HOUR - Duration::from_secs(30)));
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn a_service_account_outside_the_mesh_gets_nothing() {
    let Fake {
        mut handle, ctx, ..
    } = fake();
    let task = tokio::spawn(reconcile_service_account(Arc::new(service_account()), ctx));
    let labels = json!({"istio-injection": "disabled"});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace(labels)),
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn the_trust_bundle_configmap_is_published_then_left_alone() {
    let Fake {
        mut handle, ctx, ..
    } = fake();
    let ns: Namespace =
        serde_json::from_value(namespace(json!({"istio-injection": "enabled"}))).unwrap();
    let ns = Arc::new(ns);
    let path = "/api/v1/namespaces/demo/configmaps/istio-ca-root-cert";
    let task = tokio::spawn(reconcile_namespace(ns.clone(), ctx.clone()));
    expect(&mut handle, Method::GET, path, not_found()).await;
    let body = expect(
        &mut handle,
        Method::PATCH,
        &format!("{path}?{APPLY_QUERY}"),
        (200, json!({})),
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    assert_eq!(body["kind"], "ConfigMap");
    assert_eq!(body["metadata"]["name"], "istio-ca-root-cert");
    assert_eq!(body["metadata"]["namespace"], "demo");
    assert_eq!(
        body["data"],
        json!({"root-cert.pem": ctx.ca().trust_bundle_pem()})
    );
    no_more_requests(&mut handle);

    let published: ConfigMap = serde_json::from_value(body.clone()).unwrap();
    let task = tokio::spawn(reconcile_namespace(ns, ctx));
    expect(
        &mut handle,
        Method::GET,
        path,
        (200, serde_json::to_value(published).unwrap()),
    )
    .await;
    assert_eq!(task.await.unwrap().unwrap(), Action::await_change());
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn without_cacerts_a_self_signed_root_is_created_in_weft_ca_secret() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(TestClock::new(start()));
    let task = tokio::spawn(async move { load_ca(&client, &settings(), clock).await });
    let secrets = "/api/v1/namespaces/istio-system/secrets";
    expect(
        &mut handle,
        Method::GET,
        &format!("{secrets}/cacerts"),
        not_found(),
    )
    .await;
    expect(
        &mut handle,
        Method::GET,
        &format!("{secrets}/weft-ca-secret"),
        not_found(),
    )
    .await;
    let body = expect(
        &mut handle,
        Method::POST,
        &format!("{secrets}?&fieldManager=weft-operator"),
        (201, json!({})),
    )
    .await;
    let ca = task.await.unwrap().unwrap();
    assert_eq!(body["metadata"]["name"], "weft-ca-secret");
    assert_eq!(body["type"], "istio.io/ca-root");
    assert_eq!(pem(&body, "ca-cert.pem"), ca.ca_cert_pem());
    assert_eq!(pem(&body, "root-cert.pem"), ca.trust_bundle_pem());
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn api_failures_back_off_exponentially_and_reset_on_success() {
    let Fake {
        mut handle, ctx, ..
    } = fake();
    let sa = Arc::new(service_account());
    let server_error = (
        500,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
               "reason": "InternalError", "code": 500, "message": "etcd unavailable"}),
    );
    let mut delays = Vec::new();
    for _ in 0..3 {
        let task = tokio::spawn(reconcile_service_account(sa.clone(), ctx.clone()));
        let path = "/api/v1/namespaces/demo";
        expect(&mut handle, Method::GET, path, server_error.clone()).await;
        let error = task.await.unwrap().unwrap_err();
        assert!(error.is_transient(), "{error}");
        let action = error_policy_service_account(sa.clone(), &error, ctx.clone());
        delays.push(action);
    }
    let secs = |s| Action::requeue(Duration::from_secs(s));
    assert_eq!(delays, vec![secs(1), secs(2), secs(4)]);

    // A success resets the count: the next failure waits one second again.
    let task = tokio::spawn(reconcile_service_account(sa.clone(), ctx.clone()));
    let labels = json!({"istio-injection": "disabled"});
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        (200, namespace(labels)),
    )
    .await;
    task.await.unwrap().unwrap();
    let task = tokio::spawn(reconcile_service_account(sa.clone(), ctx.clone()));
    expect(
        &mut handle,
        Method::GET,
        "/api/v1/namespaces/demo",
        server_error,
    )
    .await;
    let error = task.await.unwrap().unwrap_err();
    assert_eq!(error_policy_service_account(sa, &error, ctx), secs(1));
}

fn settings() -> CitadelSettings {
    CitadelSettings {
        namespace: "istio-system".to_string(),
        mesh: MeshSpec::default(),
    }
}

/// A CA Secret in the plug-in layout holding `ca`'s material, as the API server returns it.
fn ca_secret(name: &str, ca: &CertificateAuthority) -> Value {
    use base64::Engine as _;
    let parts = ca.to_pem_parts();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "istio-system"},
        "data": {
            "ca-cert.pem": b64(&parts.ca_cert_pem),
            "ca-key.pem": b64(parts.ca_key_pem.expose_secret()),
            "root-cert.pem": b64(&parts.root_cert_pem),
            "cert-chain.pem": b64(&parts.cert_chain_pem),
        }
    })
}

#[tokio::test]
async fn cacerts_is_used_as_it_is_and_nothing_is_written() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(TestClock::new(start()));
    let plugged = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let task = tokio::spawn(async move { load_ca(&client, &settings(), clock).await });
    let path = "/api/v1/namespaces/istio-system/secrets/cacerts";
    expect(
        &mut handle,
        Method::GET,
        path,
        (200, ca_secret("cacerts", &plugged)),
    )
    .await;
    let ca = task.await.unwrap().unwrap();
    assert_eq!(ca.ca_cert_pem(), plugged.ca_cert_pem());
    no_more_requests(&mut handle);
}

#[tokio::test]
async fn a_root_created_first_by_another_replica_is_adopted() {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(service, "default");
    let clock = Arc::new(TestClock::new(start()));
    let theirs = CertificateAuthority::self_signed("cluster.local", None, clock.clone()).unwrap();
    let task = tokio::spawn(async move { load_ca(&client, &settings(), clock).await });
    let secrets = "/api/v1/namespaces/istio-system/secrets";
    let own = format!("{secrets}/weft-ca-secret");
    expect(
        &mut handle,
        Method::GET,
        &format!("{secrets}/cacerts"),
        not_found(),
    )
    .await;
    expect(&mut handle, Method::GET, &own, not_found()).await;
    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                          "reason": "AlreadyExists", "code": 409, "message": "exists"});
    let create = format!("{secrets}?&fieldManager=weft-operator");
    expect(&mut handle, Method::POST, &create, (409, conflict)).await;
    let stored = ca_secret("weft-ca-secret", &theirs);
    expect(&mut handle, Method::GET, &own, (200, stored)).await;
    let ca = task.await.unwrap().unwrap();
    assert_eq!(
        ca.ca_cert_pem(),
        theirs.ca_cert_pem(),
        "the other replica's root"
    );
    no_more_requests(&mut handle);
}
