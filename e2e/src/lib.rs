//! Shared scaffolding of the end-to-end tests: a bookinfo-like mesh on one machine.
//!
//! The data-path tests (`tests/datapath_*.rs`) need root, `ip` and `iptables`; without them they
//! print `SKIPPED: …` and return. Set `WEFT_E2E_SKIP_NETNS=1` to skip them explicitly.
#![warn(missing_docs)]
// Test scaffolding: a setup step that fails is the test failing, with its message.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::net::Ipv4Addr;

use weft_lab::mesh::{LocalMesh, MeshBinaries, WorkloadSpec};

pub mod gateway;

/// The namespace of the test workloads.
pub const NS: &str = "demo";

/// One scenario at a time: the machine has two cores, and timing assertions (delays,
/// timeouts, convergence) must not compete with another scenario's proxies.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A running scenario: the mesh, holding the lock that keeps scenarios apart.
pub struct Scenario {
    /// The mesh (dropped before the lock: teardown happens inside the critical section).
    pub mesh: LocalMesh,
    _serial: std::sync::MutexGuard<'static, ()>,
}

impl std::ops::Deref for Scenario {
    type Target = LocalMesh;
    fn deref(&self) -> &LocalMesh {
        &self.mesh
    }
}

impl std::ops::DerefMut for Scenario {
    fn deref_mut(&mut self) -> &mut LocalMesh {
        &mut self.mesh
    }
}

/// Starts a local mesh (with `files` in its config directory from the start), or returns why
/// the environment cannot run one, which the caller prints as `SKIPPED: …`.
pub fn start_mesh_with(files: &[(&str, &str)]) -> Result<Scenario, String> {
    if std::env::var_os("WEFT_E2E_SKIP_NETNS").is_some() {
        return Err("WEFT_E2E_SKIP_NETNS is set".into());
    }
    weft_lab::preflight().map_err(|e| e.to_string())?;
    let bins = MeshBinaries::locate(None).map_err(|e| e.to_string())?;
    let serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mesh =
        LocalMesh::start_with(bins, files).map_err(|e| format!("starting the mesh failed: {e}"))?;
    Ok(Scenario {
        mesh,
        _serial: serial,
    })
}

/// [`start_mesh_with`] and no files.
pub fn start_mesh() -> Result<Scenario, String> {
    start_mesh_with(&[])
}

/// Starts a mesh or returns from the calling test, printing why it is skipped.
#[macro_export]
macro_rules! mesh_or_skip {
    ($($files:expr)?) => {
        match $crate::start_mesh_with(&[$($files)?]) {
            Ok(mesh) => mesh,
            Err(why) => {
                println!("SKIPPED: {why}");
                return;
            }
        }
    };
}

/// Repeats `probe` every 200 ms until `done` accepts its result or `timeout` passes; returns
/// the last result and the time it took.
pub fn eventually<T>(
    timeout: std::time::Duration,
    mut probe: impl FnMut() -> T,
    mut done: impl FnMut(&T) -> bool,
) -> (T, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        let value = probe();
        if done(&value) || started.elapsed() > timeout {
            return (value, started.elapsed());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// A workload of app `app`, version `version`, in [`NS`], calling `calls` (`NAME=URL`) with
/// `resolve` (`HOST=IP`).
pub fn service(
    name: &str,
    app: &str,
    version: &str,
    calls: &[(&str, &str)],
    resolve: &[(&str, Ipv4Addr)],
) -> WorkloadSpec {
    let mut extra = Vec::new();
    for (n, url) in calls {
        extra.extend(["--call".to_string(), format!("{n}={url}")]);
    }
    for (host, ip) in resolve {
        extra.extend(["--resolve".to_string(), format!("{host}={ip}")]);
    }
    WorkloadSpec::app(name, NS, app, version, &extra)
}

/// A workload in [`NS`] that only sends traffic (its sidecar captures the load client's requests).
pub fn client(name: &str, service_account: &str) -> WorkloadSpec {
    WorkloadSpec::client(name, NS, service_account)
}

/// The ServiceEntry of service `name` in [`NS`] at `vip`.
pub fn service_entry(name: &str, vip: Ipv4Addr) -> String {
    weft_lab::mesh::service_entry_yaml(name, NS, vip)
}

/// The fully qualified host of service `name`.
pub fn host(name: &str) -> String {
    format!("{name}.{NS}.svc.cluster.local")
}

/// The count of `key` in a load report's map `field` (0 when absent).
pub fn count(report: &serde_json::Value, field: &str, key: &str) -> u64 {
    report[field][key].as_u64().unwrap_or(0)
}

/// The DestinationRule with subsets v1 and v2 (by the `version` label) for service `name`.
pub fn subsets(name: &str) -> String {
    subsets_with_policy(name, "")
}

/// [`subsets`] with a `trafficPolicy` whose body is `traffic_policy`: YAML mapping lines
/// indented by 4, each ending in a newline (no `trafficPolicy` when empty).
pub fn subsets_with_policy(name: &str, traffic_policy: &str) -> String {
    let policy = if traffic_policy.is_empty() {
        String::new()
    } else {
        format!("  trafficPolicy:\n{traffic_policy}")
    };
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: {name}, namespace: {NS}}}
spec:
  host: {name}.{NS}.svc.cluster.local
{policy}  subsets:
  - {{name: v1, labels: {{version: v1}}}}
  - {{name: v2, labels: {{version: v2}}}}
"#
    )
}

/// Sets up `reviews` (v1 and v2 behind one VIP, with subsets) and a sidecar client `client`;
/// returns the VIP.
pub fn reviews_mesh(mesh: &mut LocalMesh) -> Ipv4Addr {
    let vip = mesh.lab().vip(3);
    mesh.write_config("svc-reviews.yaml", &service_entry("reviews", vip))
        .expect("service entry");
    mesh.write_config("dr-reviews.yaml", &subsets("reviews"))
        .expect("destination rule");
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .expect("reviews v1");
    mesh.add_workload(service("reviews2", "reviews", "v2", &[], &[]))
        .expect("reviews v2");
    mesh.add_workload(client("client", "client"))
        .expect("client");
    vip
}

/// Sends `requests` from `client` to `reviews` (path `/reviews/0`) with `headers`, 4 at a
/// time.
pub fn reviews_load(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    headers: &[(&str, &str)],
    requests: usize,
) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, requests, 4)
}

/// Sends `requests` GETs of `path` from `client` to `reviews` at `vip` with `headers`,
/// `concurrency` at a time; returns the load client's report.
pub fn reviews_requests(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    path: &str,
    headers: &[(&str, &str)],
    requests: usize,
    concurrency: usize,
) -> serde_json::Value {
    let host = host("reviews");
    let url = format!("http://{host}:9080{path}");
    mesh.load(
        "client",
        &url,
        &[(&host, vip)],
        headers,
        requests,
        concurrency,
    )
    .expect("load")
}

/// The config version `workload`'s proxy last acknowledged, from the control plane's sync
/// status (`None` while it has acknowledged nothing).
pub fn acked_version(mesh: &LocalMesh, workload: &str) -> Option<String> {
    mesh.acked_versions().remove(&format!("{workload}.{NS}"))
}

/// Writes `yaml` as `file` into the control plane's config directory and waits until the
/// `client` workload's proxy has acknowledged a config built from it (its acknowledged version
/// changes), so that what is measured next runs on the new rules. Panics after 10 s.
pub fn apply(mesh: &LocalMesh, file: &str, yaml: &str) {
    apply_watching(mesh, &["client"], file, yaml);
}

/// As [`apply`], waiting for every workload in `watch` (those whose config the change alters,
/// e.g. the servers a policy selects).
pub fn apply_watching(mesh: &LocalMesh, watch: &[&str], file: &str, yaml: &str) {
    let before: Vec<Option<String>> = watch.iter().map(|w| acked_version(mesh, w)).collect();
    mesh.write_config(file, yaml).expect("writing config");
    let (now, _) = eventually(
        std::time::Duration::from_secs(10),
        || {
            watch
                .iter()
                .map(|w| acked_version(mesh, w))
                .collect::<Vec<_>>()
        },
        |now| now.iter().zip(&before).all(|(n, b)| n.is_some() && n != b),
    );
    assert!(
        now.iter().zip(&before).all(|(n, b)| n.is_some() && n != b),
        "{watch:?} did not all acknowledge a config built from {file} within 10 s"
    );
}

/// The ingress gateway's lab host name in the gateway scenarios.
pub const GATEWAY: &str = "gw";

/// Adds Istio's default ingress gateway (`istio: ingressgateway` in `istio-system`, see
/// [`WorkloadSpec::ingress_gateway`]) as [`GATEWAY`] and returns its address.
pub fn ingress_gateway(mesh: &mut LocalMesh) -> Ipv4Addr {
    mesh.add_gateway(WorkloadSpec::ingress_gateway(GATEWAY, &[80, 443]))
        .expect("ingress gateway")
        .host
        .ip
}

/// Runs `curl` with `args` from `host` (a plain host outside the mesh), see
/// [`weft_lab::client::curl`]; `Err` carries curl's message (refused, TLS failure).
pub fn curl(
    mesh: &LocalMesh,
    host: &weft_lab::Host,
    args: &[&str],
) -> Result<weft_lab::client::HttpReply, String> {
    weft_lab::client::curl(mesh.lab(), host, args).map_err(|e| e.to_string())
}

/// The namespace-wide Sidecar (`default`) of [`NS`] with `body` (YAML lines indented by 2 under
/// `spec`).
pub fn sidecar_yaml(body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: {NS}}}\nspec:\n{body}"
    )
}

/// A host outside the mesh (no sidecar, not registered) serving `weft-sample-app` as service
/// `name` (with `version`, when given) on 9080; returns once it answers. Panics (with the app's
/// log) when it does not within 10 s: a test helper.
pub fn outside_server(mesh: &mut LocalMesh, name: &str, version: Option<&str>) -> weft_lab::Host {
    let host = mesh.add_plain_host(name).unwrap();
    let app = MeshBinaries::locate(None).unwrap().app;
    let mut args = vec!["serve", "--service", name, "--listen", "0.0.0.0:9080"];
    if let Some(version) = version {
        args.extend(["--version", version]);
    }
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    mesh.lab_mut()
        .spawn(&host, &format!("{name}-app"), &app, &args, &[], None)
        .unwrap();
    let url = format!("http://{}:9080/", host.ip);
    assert!(
        weft_lab::mesh::wait_until(std::time::Duration::from_secs(10), || {
            mesh.lab()
                .exec(&host, "curl", &["-s", "-o", "/dev/null", &url])
                .is_ok()
        }),
        "{name} did not start: {}",
        mesh.log(&format!("{name}-app"))
    );
    host
}
