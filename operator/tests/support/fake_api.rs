//! An in-memory fake Kubernetes API server for the Kubernetes-mode tests: list (with a
//! `metadata.name` field selector, namespaced or cluster-wide), never-ending watches fed by
//! [`FakeApi::put_and_notify`], get, create and apply, with every request logged.
//! Included by each test file with `#[path]`; not every file uses every helper.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use parking_lot::Mutex;
use serde_json::{Value, json};

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// Objects by item path (`/api/v1/namespaces/demo/serviceaccounts/reviews`) and every request
/// seen as (method, path and query, body).
#[derive(Clone, Default)]
pub struct FakeApi {
    pub objects: Arc<Mutex<BTreeMap<String, Value>>>,
    pub log: Arc<Mutex<Vec<(Method, String, Value)>>>,
    /// Open watches: (collection without namespace, name from a field selector, sender).
    pub watches: Arc<Mutex<Vec<Watch>>>,
    /// `(uri, Accept header)` of every request that sent one.
    pub accept_headers: Arc<Mutex<Vec<(String, String)>>>,
}

pub type Watch = (
    String,
    Option<String>,
    tokio::sync::mpsc::UnboundedSender<Bytes>,
);

pub fn name_selector(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("fieldSelector=metadata.name%3D"))
        .map(str::to_string)
}

/// The collection path of an item path with its `/namespaces/<ns>` segment removed, so that a
/// cluster-wide list matches namespaced items (`/api/v1/secrets`).
pub fn strip_namespace(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    match parts.iter().position(|p| *p == "namespaces") {
        Some(i) if parts.len() > i + 2 => {
            let mut rest = parts[..i].to_vec();
            rest.extend_from_slice(&parts[i + 2..]);
            rest.join("/")
        }
        _ => path.to_string(),
    }
}

fn json_reply(status: u16, value: &Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(value).unwrap())).boxed())
        .unwrap()
}

fn not_found() -> Reply {
    json_reply(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

impl FakeApi {
    pub fn put(&self, path: &str, object: Value) {
        self.objects.lock().insert(path.to_string(), object);
    }

    /// Stores `object` at `path` and sends a watch event of `kind` (`ADDED`, `MODIFIED`) to
    /// every open watch of its collection (and name, when the watch selects one).
    pub fn put_and_notify(&self, path: &str, kind: &str, mut object: Value) {
        static VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
        let version = VERSION.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        self.put(path, object.clone());
        let collection = strip_namespace(path)
            .rsplit_once('/')
            .map(|(parent, _)| parent.to_string())
            .unwrap();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
        line.push(b'\n');
        for (watched, selected, tx) in self.watches.lock().iter() {
            if *watched == collection && selected.as_ref().is_none_or(|n| *n == name) {
                let _ = tx.send(Bytes::from(line.clone()));
            }
        }
    }

    pub fn requests(&self, method: &Method, path: &str) -> Vec<Value> {
        self.log
            .lock()
            .iter()
            .filter(|(m, uri, _)| m == method && uri.split('?').next() == Some(path))
            .map(|(_, _, body)| body.clone())
            .collect()
    }

    pub async fn handle(self, request: Request<kube::client::Body>) -> Reply {
        let method = request.method().clone();
        let uri = request.uri().to_string();
        if let Some(accept) = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|value| value.to_str().ok())
        {
            self.accept_headers
                .lock()
                .push((uri.clone(), accept.to_string()));
        }
        let (path, query) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
        let (path, query) = (path.to_string(), query.to_string());
        let body = request.into_body().collect_bytes().await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.log
            .lock()
            .push((method.clone(), uri.clone(), body.clone()));
        if method == Method::GET && query.contains("watch=true") {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            self.watches
                .lock()
                .push((strip_namespace(&path), name_selector(&query), tx));
            let events = futures::stream::unfold(rx, |mut rx| async move {
                let line = rx.recv().await?;
                Some((Ok::<_, Infallible>(Frame::data(line)), rx))
            });
            return Response::builder()
                .status(200)
                .body(StreamBody::new(events).boxed())
                .unwrap();
        }
        let collection = strip_namespace(&path);
        // A list path ends with a plural; an item path with a name.
        let last = path.rsplit('/').next().unwrap_or_default();
        let is_list = method == Method::GET
            && matches!(
                last,
                "services"
                    | "endpointslices"
                    | "pods"
                    | "namespaces"
                    | "nodes"
                    | "serviceaccounts"
                    | "virtualservices"
                    | "destinationrules"
                    | "gateways"
                    | "serviceentries"
                    | "sidecars"
                    | "workloadentries"
                    | "peerauthentications"
                    | "authorizationpolicies"
                    | "requestauthentications"
                    | "meshes"
                    | "secrets"
                    | "configmaps"
                    | "mutatingwebhookconfigurations"
                    | "validatingwebhookconfigurations"
            );
        match method {
            Method::GET if is_list => {
                let name_filter = name_selector(&query);
                let items: Vec<Value> = self
                    .objects
                    .lock()
                    .iter()
                    .filter(|(k, _)| {
                        let stripped = strip_namespace(k);
                        stripped.rsplit_once('/').map(|(parent, _)| parent) == Some(&collection)
                    })
                    // A namespaced list returns that namespace's items only.
                    .filter(|(k, _)| {
                        !path.contains("/namespaces/") || k.starts_with(&format!("{path}/"))
                    })
                    .filter(|(_, v)| {
                        name_filter
                            .as_deref()
                            .is_none_or(|n| v["metadata"]["name"] == n)
                    })
                    .map(|(_, v)| v.clone())
                    .collect();
                json_reply(
                    200,
                    &json!({"apiVersion": "v1", "kind": "List",
                            "metadata": {"resourceVersion": "1"}, "items": items}),
                )
            }
            Method::GET => match self.objects.lock().get(&path) {
                Some(object) => json_reply(200, object),
                None => not_found(),
            },
            Method::POST => {
                let name = body["metadata"]["name"].as_str().unwrap().to_string();
                let item = format!("{path}/{name}");
                if self.objects.lock().contains_key(&item) {
                    return json_reply(
                        409,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                "reason": "AlreadyExists", "code": 409, "message": "exists"}),
                    );
                }
                self.put(&item, body.clone());
                json_reply(201, &body)
            }
            Method::PATCH if query.contains("force=true") => {
                // Server-side apply: the applied object becomes the stored one.
                self.put(&path, body.clone());
                json_reply(200, &body)
            }
            Method::PATCH => match self.objects.lock().get(&path) {
                Some(object) => json_reply(200, object),
                None => not_found(),
            },
            _ => not_found(),
        }
    }
}

pub fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Polls `check` every 20 ms until it returns `Some`, failing after 30 s with `what`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
