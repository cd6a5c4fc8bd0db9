//! Shared scaffolding of the end-to-end tests: a bookinfo-like mesh on one machine.
//!
//! The data-path tests (`tests/datapath_*.rs`) need root, `ip` and `iptables`; without them they
//! print `SKIPPED: …` and return. Set `WEFT_E2E_SKIP_NETNS=1` to skip them explicitly.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use weft_lab::mesh::{LocalMesh, MeshBinaries, WorkloadSpec};

/// The namespace of the test workloads.
pub const NS: &str = "demo";

/// Starts a local mesh, or returns why the environment cannot run one (printed by the caller as
/// `SKIPPED: …`).
pub fn start_mesh() -> Result<LocalMesh, String> {
    if std::env::var_os("WEFT_E2E_SKIP_NETNS").is_some() {
        return Err("WEFT_E2E_SKIP_NETNS is set".into());
    }
    weft_lab::preflight().map_err(|e| e.to_string())?;
    let bins = MeshBinaries::locate(None).map_err(|e| e.to_string())?;
    LocalMesh::start(bins).map_err(|e| format!("starting the mesh failed: {e}"))
}

/// A workload running `weft-sample-app serve --service <app> --version <version>`, calling
/// `calls` (`NAME=URL`) with `resolve` (`HOST=IP`).
pub fn service(
    name: &str,
    app: &str,
    version: &str,
    calls: &[(&str, &str)],
    resolve: &[(&str, Ipv4Addr)],
) -> WorkloadSpec {
    let mut args = vec![
        "serve".to_string(),
        "--service".to_string(),
        app.to_string(),
        "--version".to_string(),
        version.to_string(),
        "--listen".to_string(),
        "0.0.0.0:9080".to_string(),
    ];
    for (n, url) in calls {
        args.extend(["--call".to_string(), format!("{n}={url}")]);
    }
    for (host, ip) in resolve {
        args.extend(["--resolve".to_string(), format!("{host}={ip}")]);
    }
    WorkloadSpec {
        name: name.to_string(),
        namespace: NS.to_string(),
        service_account: app.to_string(),
        labels: BTreeMap::from([
            ("app".to_string(), app.to_string()),
            ("version".to_string(), version.to_string()),
        ]),
        port: 9080,
        app_args: Some(args),
        annotations: BTreeMap::new(),
    }
}

/// A workload that only sends traffic (its sidecar captures the load client's requests).
pub fn client(name: &str, service_account: &str) -> WorkloadSpec {
    WorkloadSpec {
        name: name.to_string(),
        namespace: NS.to_string(),
        service_account: service_account.to_string(),
        labels: BTreeMap::from([("app".to_string(), service_account.to_string())]),
        port: 9080,
        app_args: None,
        annotations: BTreeMap::new(),
    }
}

/// A ServiceEntry registering `<name>.demo.svc.cluster.local:9080` (HTTP) at `vip`, its
/// endpoints the WorkloadEntries labelled `app: <name>` — Istio's way of describing services
/// outside Kubernetes.
pub fn service_entry(name: &str, vip: Ipv4Addr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {NS}}}
spec:
  hosts: [{name}.{NS}.svc.cluster.local]
  addresses: [{vip}]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: {name}}}}}
"#
    )
}

/// The fully qualified host of service `name`.
pub fn host(name: &str) -> String {
    format!("{name}.{NS}.svc.cluster.local")
}

/// The count of `key` in a load report's map `field` (0 when absent).
pub fn count(report: &serde_json::Value, field: &str, key: &str) -> u64 {
    report[field][key].as_u64().unwrap_or(0)
}
