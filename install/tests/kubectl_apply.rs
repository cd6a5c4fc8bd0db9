//! `kubectl apply -k config/default --dry-run=client` succeeds.
//!
//! A client-side dry run still needs an API server: kubectl maps each kind to its resource
//! through discovery and GETs each object to choose between create and patch. This test serves
//! exactly that on 127.0.0.1 — discovery for the built-in kinds the install uses, and 404 for
//! every object (an empty cluster) — and runs the real kubectl against it. Schema validation is
//! off (`--validate=false`: it needs the server's OpenAPI document); `tests/config.rs` checks
//! every object against its Kubernetes type instead. Without kubectl the test says SKIPPED.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A resource in discovery: (plural, kind, namespaced).
type Resource = (&'static str, &'static str, bool);

/// (group, version, resources) served by the fake discovery.
const RESOURCES: &[(&str, &str, &[Resource])] = &[
    (
        "",
        "v1",
        &[
            ("namespaces", "Namespace", false),
            ("serviceaccounts", "ServiceAccount", true),
            ("services", "Service", true),
        ],
    ),
    ("apps", "v1", &[("deployments", "Deployment", true)]),
    (
        "policy",
        "v1",
        &[("poddisruptionbudgets", "PodDisruptionBudget", true)],
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        &[
            ("clusterroles", "ClusterRole", false),
            ("clusterrolebindings", "ClusterRoleBinding", false),
            ("roles", "Role", true),
            ("rolebindings", "RoleBinding", true),
        ],
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        &[(
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
        )],
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        &[
            (
                "mutatingwebhookconfigurations",
                "MutatingWebhookConfiguration",
                false,
            ),
            (
                "validatingwebhookconfigurations",
                "ValidatingWebhookConfiguration",
                false,
            ),
        ],
    ),
];

fn resource_list(group: &str, version: &str, resources: &[Resource]) -> Value {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let resources: Vec<Value> = resources
        .iter()
        .map(|(name, kind, namespaced)| {
            json!({
                "name": name,
                "singularName": kind.to_lowercase(),
                "namespaced": namespaced,
                "kind": kind,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            })
        })
        .collect();
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

/// The response to `GET path`: (status, JSON body).
fn answer(path: &str) -> (u16, Value) {
    let path = path.split('?').next().unwrap_or_default();
    if path == "/api" {
        return (
            200,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
        );
    }
    if path == "/apis" {
        let groups: Vec<Value> = RESOURCES
            .iter()
            .filter(|(g, _, _)| !g.is_empty())
            .map(|(g, v, _)| {
                let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
                json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
            })
            .collect();
        return (
            200,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
        );
    }
    for (group, version, resources) in RESOURCES {
        let base = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        if path == base {
            return (200, resource_list(group, version, resources));
        }
    }
    let status = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "reason": "NotFound", "code": 404, "message": format!("{path} not found"),
    });
    (404, status)
}

fn serve(stream: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut stream = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 && line != "\r\n" {
            line.clear();
        }
        let mut parts = request_line.split_whitespace();
        let (method, path) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        seen.lock().unwrap().push(format!("{method} {path}"));
        let (code, body) = if method == "GET" {
            answer(path)
        } else {
            (405, json!({}))
        };
        let body = body.to_string();
        let reason = if code == 200 { "OK" } else { "Not Found" };
        let response = format!(
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// Serves the fake API on 127.0.0.1 for at most `limit`; returns its port and the requests.
fn start(limit: Duration) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let log = log.clone();
                    std::thread::spawn(move || serve(stream, log));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, seen)
}

#[test]
fn kubectl_apply_dry_run_client_succeeds_on_an_empty_cluster() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: kubectl is not installed; kubectl apply --dry-run=client not run");
        return;
    }
    let (port, seen) = start(Duration::from_secs(120));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: nobody\n\
             current-context: fake\nusers:\n- name: nobody\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let output = std::process::Command::new("kubectl")
        .arg("apply")
        .arg("-k")
        .arg(support::root().join("config/default"))
        .args(["--dry-run=client", "--validate=false"])
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path()) // no discovery cache from elsewhere
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "kubectl failed:\n{stdout}\n{stderr}"
    );
    let created: BTreeSet<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_suffix(" created (dry run)"))
        .collect();
    for object in [
        "namespace/weft-system",
        "serviceaccount/weft-operator",
        "role.rbac.authorization.k8s.io/weft-operator",
        "clusterrole.rbac.authorization.k8s.io/weft-operator",
        "rolebinding.rbac.authorization.k8s.io/weft-operator",
        "clusterrolebinding.rbac.authorization.k8s.io/weft-operator",
        "service/weft-operator",
        "deployment.apps/weft-operator",
        "poddisruptionbudget.policy/weft-operator",
        "customresourcedefinition.apiextensions.k8s.io/meshes.mesh.weft.dev",
        "mutatingwebhookconfiguration.admissionregistration.k8s.io/weft-sidecar-injector",
        "validatingwebhookconfiguration.admissionregistration.k8s.io/weft-validator",
    ] {
        assert!(created.contains(object), "{object} not created:\n{stdout}");
    }
    assert_eq!(created.len(), 21, "{stdout}");
    // kubectl looked the namespaced objects up in weft-system.
    let seen = seen.lock().unwrap();
    for path in [
        "GET /apis/apps/v1/namespaces/weft-system/deployments/weft-operator",
        "GET /api/v1/namespaces/weft-system/services/weft-operator",
        "GET /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/weft-sidecar-injector",
    ] {
        assert!(
            seen.iter().any(|s| s == path),
            "{path} not requested: {seen:?}"
        );
    }
}
