//! Data path: the inbound side of a Sidecar, as Istio documents it. Since Istio 1.10 (and in
//! Weft) the sidecar forwards inbound traffic to the workload's own IP, so an application bound
//! to 127.0.0.1 only is unreachable from the mesh (503) until a Sidecar `ingress` listener sends
//! its port to `defaultEndpoint: 127.0.0.1:PORT`. The listener's port is the port traffic
//! arrives at (the service's `targetPort`), so service port 80 → listener 9080 → application
//! 127.0.0.1:8080 maps ports; a listener on another port replaces the service's port, whose
//! traffic then goes to the original destination again. `inboundConnectionPool` caps what the
//! server's sidecar lets through: with `maxConnections: 1` and `http1MaxPendingRequests: 1`,
//! concurrent requests beyond the limit are answered 503 with response flag `UO` by the
//! server's sidecar, at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;
use std::time::Duration;

use weft_e2e::{NS, apply_watching, client, count, eventually, host, mesh_or_skip, service};
use weft_lab::mesh::{LocalMesh, WorkloadSpec};

/// The server workload's lab host name.
const SERVER: &str = "legacy1";

/// A ServiceEntry for `legacy` at `vip`: port `port` (HTTP) to the workload's `target_port`,
/// endpoints the WorkloadEntries labelled `app: legacy`.
fn legacy_service(vip: Ipv4Addr, port: u16, target_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: legacy, namespace: {NS}}}
spec:
  hosts: [legacy.{NS}.svc.cluster.local]
  addresses: [{vip}]
  ports: [{{number: {port}, targetPort: {target_port}, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: legacy}}}}
"#
    )
}

/// A VirtualService turning off Istio's default retries (2 on 503 and connect failures) for
/// `legacy`, so that every answer the client sees is the server sidecar's first one.
fn no_retries() -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: legacy, namespace: {NS}}}
spec:
  hosts: [legacy.{NS}.svc.cluster.local]
  http:
  - route: [{{destination: {{host: legacy.{NS}.svc.cluster.local}}}}]
    retries: {{attempts: 0}}
"#
    )
}

/// The Sidecar selecting the server (`app: legacy`) with `body` (YAML lines indented by 2
/// under `spec`).
fn sidecar(body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: legacy, namespace: {NS}}}\nspec:\n  workloadSelector: {{labels: {{app: legacy}}}}\n{body}"
    )
}

/// Starts `legacy` (service port `port` to target port 9080) served by `server` and a client;
/// returns the VIP.
fn legacy_mesh(mesh: &mut LocalMesh, port: u16, server: WorkloadSpec) -> Ipv4Addr {
    let vip = mesh.lab().vip(7);
    mesh.write_config("svc-legacy.yaml", &legacy_service(vip, port, 9080))
        .unwrap();
    mesh.write_config("vs-legacy.yaml", &no_retries()).unwrap();
    mesh.add_workload(server).expect("server");
    mesh.add_workload(client("client", "client"))
        .expect("client");
    vip
}

/// `requests` GETs from `client` to `legacy` at `vip:port` with `headers`, `concurrency` at a
/// time; the load client's report.
fn load(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    port: u16,
    headers: &[(&str, &str)],
    requests: usize,
    concurrency: usize,
) -> serde_json::Value {
    let host = host("legacy");
    let url = format!("http://{host}:{port}/");
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

/// The summed `istio_requests_total` of `workload`'s proxy with `reporter`, `code` and `flags`.
fn requests_with(
    mesh: &LocalMesh,
    workload: &str,
    reporter: &str,
    code: &str,
    flags: &str,
) -> (f64, String) {
    let metrics = mesh.proxy_metrics(workload).unwrap();
    let total = metrics
        .lines()
        .filter(|l| {
            l.starts_with("istio_requests_total")
                && l.contains(&format!("reporter=\"{reporter}\""))
                && l.contains(&format!("response_code=\"{code}\""))
                && l.contains(&format!("response_flags=\"{flags}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (total, metrics)
}

#[test]
fn loopback_app_is_reached_only_through_an_ingress_default_endpoint() {
    let mut mesh = mesh_or_skip!();
    // The application listens on 127.0.0.1:8080 only; the service's port 80 targets 9080.
    let mut server = service(SERVER, "legacy", "v1", &[], &[]);
    if let Some(args) = server.app_args.as_mut() {
        let listen = args.iter().position(|arg| arg == "--listen").unwrap();
        args[listen + 1] = "127.0.0.1:8080".to_string();
    }
    let vip = legacy_mesh(&mut mesh, 80, server);

    // No Sidecar: the server's sidecar forwards to the pod IP on 9080, where nothing listens.
    let before = load(&mesh, vip, 80, &[], 5, 1);
    assert_eq!(
        count(&before, "status", "503"),
        5,
        "without an ingress listener a loopback-only app is unreachable: {before}"
    );
    let (refused, metrics) = requests_with(&mesh, SERVER, "destination", "503", "UF");
    assert_eq!(
        refused, 5.0,
        "the server's sidecar reports the refused connection (UF):\n{metrics}"
    );

    // An ingress listener on the target port sends it to 127.0.0.1:8080: 80 → 9080 → 8080.
    apply_watching(
        &mesh,
        &[SERVER],
        "sidecar-legacy.yaml",
        &sidecar(
            "  ingress:\n  - port: {number: 9080, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:8080\n",
        ),
    );
    let (through, _) = eventually(
        Duration::from_secs(5),
        || load(&mesh, vip, 80, &[], 5, 1),
        |report| count(report, "status", "200") == 5,
    );
    assert_eq!(
        count(&through, "status", "200"),
        5,
        "the listener's defaultEndpoint reaches the loopback app: {through}\n{}",
        mesh.log(&format!("{SERVER}-proxy"))
    );
    assert_eq!(
        count(&through, "versions", "v1"),
        5,
        "answered by legacy v1: {through}"
    );

    // A listener on another port replaces the service's ports: 9080 is no longer an ingress
    // port, so its traffic goes to the original destination (the pod IP) again.
    apply_watching(
        &mesh,
        &[SERVER],
        "sidecar-legacy.yaml",
        &sidecar(
            "  ingress:\n  - port: {number: 9999, protocol: HTTP, name: http}\n    defaultEndpoint: 127.0.0.1:8080\n",
        ),
    );
    let replaced = load(&mesh, vip, 80, &[], 5, 1);
    assert_eq!(
        count(&replaced, "status", "503"),
        5,
        "only the listeners' ports are mapped: {replaced}"
    );
    println!("loopback app: 503 without Sidecar, 200 through ingress 9080 -> 127.0.0.1:8080");
}

#[test]
fn inbound_connection_pool_answers_overflow_with_503_uo_at_the_server() {
    let mut mesh = mesh_or_skip!();
    // An ordinary app on 0.0.0.0:9080: the pool applies to the ports derived from services.
    let vip = legacy_mesh(&mut mesh, 9080, service(SERVER, "legacy", "v1", &[], &[]));
    apply_watching(
        &mesh,
        &[SERVER],
        "sidecar-legacy.yaml",
        &sidecar(
            "  inboundConnectionPool:\n    tcp: {maxConnections: 1}\n    http: {http1MaxPendingRequests: 1}\n",
        ),
    );
    let sequential = load(&mesh, vip, 9080, &[], 10, 1);
    assert_eq!(
        count(&sequential, "status", "200"),
        10,
        "one request at a time stays within the pool: {sequential}"
    );
    // Twelve at once, each held 500 ms by the app: about two fit (one connection plus one
    // pending request), the server's sidecar refuses the rest.
    let slow = [("x-weft-delay-ms", "500")];
    let burst = load(&mesh, vip, 9080, &slow, 12, 12);
    let (ok, rejected) = (
        count(&burst, "status", "200"),
        count(&burst, "status", "503"),
    );
    assert_eq!(ok + rejected, 12, "only 200 and 503 expected: {burst}");
    assert!(
        (1..=4).contains(&ok),
        "about two requests fit in maxConnections 1 + http1MaxPendingRequests 1: {burst}"
    );
    assert!(rejected >= 8, "the overflow must be refused: {burst}");
    assert!(
        burst["p50_ms"].as_f64().unwrap() < 400.0,
        "overflow is refused at once (p50 below the app's 500 ms): {burst}"
    );
    let (uo, metrics) = requests_with(&mesh, SERVER, "destination", "503", "UO");
    assert_eq!(
        uo, rejected as f64,
        "every refusal is the server sidecar's 503 UO:\n{metrics}"
    );
    let (client_uo, _) = requests_with(&mesh, "client", "source", "503", "UO");
    assert_eq!(client_uo, 0.0, "the client's own sidecar has no limit");
    let after = load(&mesh, vip, 9080, &[], 10, 1);
    assert_eq!(
        count(&after, "status", "200"),
        10,
        "the pool frees up: {after}"
    );
    println!("inbound pool: {ok} admitted, {rejected} refused with 503 UO at the server");
}
