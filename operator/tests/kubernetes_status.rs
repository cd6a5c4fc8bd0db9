//! The status loop of the mesh config objects against an in-process fake API server (list,
//! watch, server-side apply on the status subresource, Events): a VirtualService gets
//! `Accepted=True` with its generation, `Reconciled` waits for the proxy's acknowledgement,
//! nothing is re-written while nothing changes, an unsupported field and then an invalid one
//! give `Accepted=False` naming the field path, each with a Warning Event; a failed write is
//! retried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use weft_crds::mesh::MeshSpec;
use weft_operator::kubernetes::status::controller::{
    FIELD_MANAGER, Published, StatusController, StatusFeed,
};
use weft_operator::kubernetes::status::metrics::{StatusMetrics, WriteResult};
use weft_operator::kubernetes::stores;
use weft_operator::snapshot::Snapshot;

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Where a request goes: the collection (`/apis/networking.istio.io/v1/virtualservices`,
/// namespaces left out so that cluster-wide lists see every item), the namespace, the name
/// and the subresource.
#[derive(Debug, PartialEq)]
struct Target {
    collection: String,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

fn target(path: &str) -> Target {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let prefix_len = if segments.first() == Some(&"api") {
        2
    } else {
        3
    };
    let prefix = segments[..prefix_len].join("/");
    let rest = &segments[prefix_len..];
    let (namespace, rest) = match rest {
        ["namespaces", ns, resource, tail @ ..] => (Some(ns.to_string()), {
            let mut v = vec![*resource];
            v.extend_from_slice(tail);
            v
        }),
        _ => (None, rest.to_vec()),
    };
    Target {
        collection: format!("/{prefix}/{}", rest[0]),
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    }
}

/// (collection, namespace, name).
type Key = (String, String, String);
/// (method, path, query, body).
type Logged = (Method, String, String, Value);
/// (collection, sender of watch event lines).
type WatchSender = (String, mpsc::UnboundedSender<Bytes>);

/// Objects by key, every request, and the open watches.
#[derive(Clone, Default)]
struct Fake {
    objects: Arc<Mutex<BTreeMap<Key, Value>>>,
    requests: Arc<Mutex<Vec<Logged>>>,
    watches: Arc<Mutex<Vec<WatchSender>>>,
    version: Arc<AtomicU64>,
    /// How many status writes to answer with `500` before accepting them.
    fail_status_writes: Arc<AtomicU64>,
}

fn reply(status: u16, body: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

impl Fake {
    /// Stores `object` under `path` with a new resourceVersion and tells the watches of its
    /// collection (`ADDED` or `MODIFIED`).
    fn store(&self, path: &str, mut object: Value) -> Value {
        let t = target(path);
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        let key = (
            t.collection.clone(),
            t.namespace.unwrap_or_default(),
            t.name.unwrap(),
        );
        let kind = match self.objects.lock().insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        let line = format!("{}\n", json!({"type": kind, "object": object}));
        for (collection, tx) in self.watches.lock().iter() {
            if *collection == t.collection {
                let _ = tx.send(Bytes::from(line.clone()));
            }
        }
        object
    }

    /// Creates or updates the object at `path` as the API server does for a spec write:
    /// `uid` kept, `generation` incremented, `status` kept.
    fn apply(&self, path: &str, mut object: Value) {
        let t = target(path);
        let key = (
            t.collection,
            t.namespace.unwrap_or_default(),
            t.name.unwrap(),
        );
        let old = self.objects.lock().get(&key).cloned();
        let generation = old
            .as_ref()
            .and_then(|o| o["metadata"]["generation"].as_i64())
            .unwrap_or(0)
            + 1;
        object["metadata"]["generation"] = json!(generation);
        object["metadata"]["uid"] = json!(format!("uid-{}", key.2));
        if let Some(status) = old.as_ref().map(|o| o["status"].clone()) {
            object["status"] = status;
        }
        self.store(path, object);
    }

    /// The bodies of the requests with `method` to `path`.
    fn bodies(&self, method: &Method, path: &str) -> Vec<(String, Value)> {
        self.requests
            .lock()
            .iter()
            .filter(|(m, p, _, _)| m == method && p == path)
            .map(|(_, _, query, body)| (query.clone(), body.clone()))
            .collect()
    }

    async fn handle(self, request: Request<kube::client::Body>) -> Reply {
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        self.requests
            .lock()
            .push((method.clone(), path.clone(), query.clone(), body.clone()));
        let t = target(&path);
        match (method, t.name.as_deref(), t.subresource.as_deref()) {
            (Method::GET, None, _) if query.contains("watch=true") => {
                // As the API server does, the watch starts after the version the list
                // returned: what was stored in between is sent first.
                let since: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("resourceVersion="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let (tx, rx) = mpsc::unbounded_channel();
                let mut watches = self.watches.lock();
                for ((collection, _, _), object) in self.objects.lock().iter() {
                    let version: u64 = object["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if *collection == t.collection && version > since {
                        let line = format!("{}\n", json!({"type": "MODIFIED", "object": object}));
                        let _ = tx.send(Bytes::from(line));
                    }
                }
                watches.push((t.collection, tx));
                drop(watches);
                let frames = futures::stream::unfold(rx, |mut rx| async move {
                    let line = rx.recv().await?;
                    Some((Ok::<_, Infallible>(Frame::data(line)), rx))
                });
                Response::builder()
                    .status(200)
                    .body(StreamBody::new(frames).boxed())
                    .unwrap()
            }
            (Method::GET, None, _) => {
                let version = self.version.load(Ordering::SeqCst);
                let items: Vec<Value> = self
                    .objects
                    .lock()
                    .iter()
                    .filter(|((collection, _, _), _)| *collection == t.collection)
                    .map(|(_, object)| object.clone())
                    .collect();
                reply(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": version.to_string()},
                            "items": items}),
                )
            }
            (Method::POST, None, _) if t.collection.ends_with("/events") => reply(201, &body),
            (Method::PATCH, Some(_), None) if t.collection.ends_with("/events") => {
                reply(200, &body)
            }
            (Method::PATCH, Some(name), Some("status")) => {
                assert!(query.contains("force=true"), "server-side apply: {query}");
                let failing = self
                    .fail_status_writes
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if failing {
                    return reply(
                        500,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "code": 500, "reason": "InternalError", "message": "try again"}),
                    );
                }
                let key = (
                    t.collection.clone(),
                    t.namespace.clone().unwrap_or_default(),
                    name.to_string(),
                );
                let Some(mut object) = self.objects.lock().get(&key).cloned() else {
                    return reply(404, &json!({"kind": "Status", "code": 404}));
                };
                object["status"] = body["status"].clone();
                let stored = self.store(path.trim_end_matches("/status"), object);
                reply(200, &stored)
            }
            _ => reply(
                404,
                &json!({"kind": "Status", "code": 404, "reason": "NotFound"}),
            ),
        }
    }
}

/// Polls `check` every 20 ms until it returns `Some`, failing after 30 s with `what`.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const VS: &str = "/apis/networking.istio.io/v1/namespaces/demo/virtualservices/reviews";
const STATUS: &str = "/apis/networking.istio.io/v1/namespaces/demo/virtualservices/reviews/status";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/demo/events";

fn condition<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .unwrap_or_else(|| panic!("no {type_} in {status}"))
}

fn virtual_service(http: Value) -> Value {
    json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
           "metadata": {"name": "reviews", "namespace": "demo"},
           "spec": {"hosts": ["reviews"], "http": [http]}})
}

/// The status loop running against a fake holding Namespace `demo` and Service `reviews`,
/// fed by a view builder, with one connected proxy whose acknowledgement the test sets.
struct Harness {
    api: Fake,
    stores: stores::Stores,
    /// The newest builder sequence number published.
    seq: Arc<AtomicU64>,
    /// What the proxy acknowledged.
    acked: Arc<Mutex<Vec<Option<u64>>>>,
    metrics: StatusMetrics,
    shutdown: CancellationToken,
    running: tokio::task::JoinHandle<()>,
}

impl Harness {
    async fn start(api: Fake) -> Self {
        api.store(
            "/api/v1/namespaces/demo",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}}),
        );
        api.store(
            "/api/v1/namespaces/demo/services/reviews",
            json!({"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "reviews", "namespace": "demo"},
                   "spec": {"ports": [{"name": "http", "port": 9080}]}}),
        );
        let fake = api.clone();
        let client = kube::Client::new(
            tower::service_fn(move |request| {
                let fake = fake.clone();
                async move { Ok::<_, Infallible>(fake.handle(request).await) }
            }),
            "default",
        );

        let shutdown = CancellationToken::new();
        let (stores, writers) = stores::stores();
        let changed = Arc::new(Notify::new());
        stores::spawn_reflectors(&client, writers, changed.clone(), &shutdown);
        tokio::time::timeout(Duration::from_secs(30), stores::wait_until_synced(&stores))
            .await
            .expect("the reflectors list")
            .unwrap();

        // The view builder's part: after every store change a new view, published with its
        // builder sequence number.
        let feed = Arc::new(StatusFeed::default());
        let seq = Arc::new(AtomicU64::new(0));
        tokio::spawn({
            let (feed, stores, seq, shutdown) =
                (feed.clone(), stores.clone(), seq.clone(), shutdown.clone());
            async move {
                loop {
                    feed.publish(Published {
                        seq: seq.fetch_add(1, Ordering::SeqCst) + 1,
                        snapshot: Arc::new(Snapshot::new(stores::view_from_stores(&stores))),
                        mesh: MeshSpec::default(),
                    });
                    tokio::select! {
                        () = changed.notified() => {}
                        () = shutdown.cancelled() => return,
                    }
                }
            }
        });
        // One connected proxy, which has acknowledged nothing yet.
        let acked = Arc::new(Mutex::new(vec![None::<u64>]));
        let metrics = StatusMetrics::new(&mut Registry::default());
        let controller = StatusController {
            client,
            stores: stores.clone(),
            feed,
            acks: {
                let acked = acked.clone();
                Arc::new(move || acked.lock().clone())
            },
            reporter: kube::runtime::events::Reporter {
                controller: "weft-operator".into(),
                instance: Some("weft-operator-0".into()),
            },
            metrics: metrics.clone(),
        };
        let running = tokio::spawn(controller.run(shutdown.clone()));
        Self {
            api,
            stores,
            seq,
            acked,
            metrics,
            shutdown,
            running,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.running)
            .await
            .expect("the loop stops when cancelled")
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditions_are_applied_to_the_status_subresource_with_events() {
    let harness = Harness::start(Fake::default()).await;
    let (api, stores, seq, acked) = (
        harness.api.clone(),
        harness.stores.clone(),
        harness.seq.clone(),
        harness.acked.clone(),
    );

    // A valid VirtualService: accepted and resolved at generation 1, waiting for the proxy.
    api.apply(
        VS,
        virtual_service(json!({"route": [{"destination": {"host": "reviews"}}]})),
    );
    let (query, first) = eventually("the first status patch", || {
        api.bodies(&Method::PATCH, STATUS).into_iter().next()
    })
    .await;
    assert!(
        query.contains(&format!("fieldManager={FIELD_MANAGER}")),
        "{query}"
    );
    assert_eq!(first["kind"], "VirtualService");
    let status = &first["status"];
    assert_eq!(status["observedGeneration"], 1);
    let accepted = condition(status, "Accepted");
    assert_eq!(accepted["status"], "True", "{status}");
    assert_eq!(accepted["observedGeneration"], 1);
    assert_eq!(condition(status, "Resolved")["status"], "True", "{status}");
    let reconciled = condition(status, "Reconciled");
    assert_eq!(reconciled["status"], "False");
    assert_eq!(reconciled["reason"], "Pending");
    assert_eq!(
        reconciled["message"],
        "0 of 1 proxies acknowledged a config built from generation 1"
    );
    assert_eq!(condition(status, "Ready")["status"], "False");

    // The proxy acknowledges the newest builder: Reconciled and Ready turn True; Accepted
    // keeps its transition time.
    *acked.lock() = vec![Some(seq.load(Ordering::SeqCst))];
    let status = eventually("Ready=True", || {
        let (_, last) = api.bodies(&Method::PATCH, STATUS).pop()?;
        (condition(&last["status"], "Ready")["status"] == "True").then(|| last["status"].clone())
    })
    .await;
    assert_eq!(condition(&status, "Reconciled")["reason"], "Reconciled");
    assert_eq!(
        condition(&status, "Accepted")["lastTransitionTime"],
        accepted["lastTransitionTime"]
    );
    assert!(
        api.bodies(&Method::POST, EVENTS).is_empty(),
        "no warning yet"
    );
    // Nothing changes: nothing is written again (the loop would re-check every 500 ms while
    // pending; now it only waits).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(api.bodies(&Method::PATCH, STATUS).len(), 2, "no churn");

    // Generation 2 uses a field the proxy model cannot express, on the route a sidecar gets.
    api.store(
        "/api/v1/namespaces/demo/pods/web-1",
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": "demo", "labels": {"app": "web"},
                            "annotations": {"sidecar.istio.io/status": "{}"}},
               "spec": {"serviceAccountName": "web",
                        "containers": [{"name": "web", "image": "web"}]},
               "status": {"podIP": "10.0.0.9"}}),
    );
    // Every view holding generation 2 holds the pod too.
    eventually("the pod in the store", || {
        (!stores.pods.state().is_empty()).then_some(())
    })
    .await;
    api.apply(
        VS,
        virtual_service(json!({"route": [{"destination": {"host": "reviews"}}],
                               "retries": {"attempts": 2, "retryRemoteLocalities": true}})),
    );
    let status = eventually("Accepted=False for generation 2", || {
        let (_, last) = api.bodies(&Method::PATCH, STATUS).pop()?;
        (last["status"]["observedGeneration"] == 2).then(|| last["status"].clone())
    })
    .await;
    let accepted = condition(&status, "Accepted");
    assert_eq!(accepted["status"], "False", "{status}");
    assert_eq!(accepted["reason"], "Unsupported");
    assert_eq!(accepted["observedGeneration"], 2);
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.http[0].retries.retryRemoteLocalities: "),
        "{accepted}"
    );
    let events = api.bodies(&Method::POST, EVENTS);
    assert_eq!(events.len(), 1, "{events:?}");
    let (_, event) = &events[0];
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "Unsupported");
    assert_eq!(event["regarding"]["kind"], "VirtualService");
    assert_eq!(event["regarding"]["name"], "reviews");
    assert_eq!(event["reportingController"], "weft-operator");
    assert!(
        event["note"]
            .as_str()
            .unwrap()
            .contains("spec.http[0].retries.retryRemoteLocalities")
    );

    // Generation 3 is invalid (the webhook would refuse it; here it got past): Invalid, with
    // the field path, and another Warning Event.
    api.apply(
        VS,
        virtual_service(json!({"route": [{"destination": {"host": "reviews"}, "weight": 150}]})),
    );
    let status = eventually("Accepted=False for generation 3", || {
        let (_, last) = api.bodies(&Method::PATCH, STATUS).pop()?;
        (last["status"]["observedGeneration"] == 3).then(|| last["status"].clone())
    })
    .await;
    let accepted = condition(&status, "Accepted");
    assert_eq!(accepted["reason"], "Invalid", "{status}");
    assert_eq!(accepted["observedGeneration"], 3);
    assert!(
        accepted["message"]
            .as_str()
            .unwrap()
            .contains("spec.http[0].route[0].weight"),
        "{accepted}"
    );
    let invalid = eventually("the Invalid event", || {
        api.bodies(&Method::POST, EVENTS)
            .into_iter()
            .find(|(_, e)| e["reason"] == "Invalid")
    })
    .await;
    assert_eq!(invalid.1["type"], "Warning");
    assert_eq!(invalid.1["action"], "Validate");

    assert_eq!(harness.metrics.writes(WriteResult::Failed), 0);
    assert_eq!(
        harness.metrics.writes(WriteResult::Applied),
        api.bodies(&Method::PATCH, STATUS).len() as u64
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_status_write_is_retried_with_back_off() {
    let api = Fake::default();
    api.fail_status_writes.store(2, Ordering::SeqCst);
    let harness = Harness::start(api.clone()).await;
    api.apply(
        VS,
        virtual_service(json!({"route": [{"destination": {"host": "reviews"}}]})),
    );
    let stored = eventually("the status stored after the failures", || {
        let objects = api.objects.lock();
        let vs = objects.values().find(|o| o["kind"] == "VirtualService")?;
        (vs["status"]["observedGeneration"] == 1).then(|| vs["status"].clone())
    })
    .await;
    assert_eq!(condition(&stored, "Accepted")["status"], "True");
    let attempts = api.bodies(&Method::PATCH, STATUS);
    assert_eq!(attempts.len(), 3, "two failures, then the write");
    assert!(
        attempts
            .iter()
            .all(|(_, body)| body["status"]["observedGeneration"] == 1)
    );
    assert_eq!(harness.metrics.writes(WriteResult::Failed), 2);
    assert_eq!(harness.metrics.writes(WriteResult::Applied), 1);
    harness.stop().await;
}

#[test]
fn request_paths_name_collection_namespace_name_and_subresource() {
    assert_eq!(
        target(STATUS),
        Target {
            collection: "/apis/networking.istio.io/v1/virtualservices".into(),
            namespace: Some("demo".into()),
            name: Some("reviews".into()),
            subresource: Some("status".into()),
        }
    );
    assert_eq!(
        target("/api/v1/namespaces/demo"),
        Target {
            collection: "/api/v1/namespaces".into(),
            namespace: None,
            name: Some("demo".into()),
            subresource: None,
        }
    );
    assert_eq!(target("/api/v1/pods").collection, "/api/v1/pods");
}
