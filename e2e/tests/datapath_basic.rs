//! Data path: a client's request is captured by its sidecar, routed by the config the
//! control plane pushed, carried over mutual TLS to the server's sidecar and delivered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{NS, client, eventually, host, mesh_or_skip, service, service_entry};

#[test]
fn request_flows_through_both_sidecars_over_mtls() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(2);
    mesh.write_config("svc-ratings.yaml", &service_entry("ratings", vip))
        .unwrap();
    mesh.add_workload(service("ratings", "ratings", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    let url = format!("http://{}:9080/ratings/0", host("ratings"));
    let ratings = host("ratings");
    let (report, _) = eventually(
        Duration::from_secs(10),
        || {
            mesh.load("client", &url, &[(&ratings, vip)], &[], 20, 2)
                .unwrap()
        },
        |r| r["status"]["200"] == 20,
    );
    assert_eq!(
        report["status"]["200"],
        20,
        "{report}\n{}",
        mesh.log("client-proxy")
    );
    let server_metrics = mesh.proxy_metrics("ratings").unwrap();
    let mtls = server_metrics.lines().any(|l| {
        l.starts_with("istio_requests_total")
            && l.contains("reporter=\"destination\"")
            && l.contains("connection_security_policy=\"mutual_tls\"")
            && l.contains(&format!(
                "source_principal=\"spiffe://cluster.local/ns/{NS}/sa/client\""
            ))
    });
    assert!(
        mtls,
        "the server sidecar saw no mTLS requests from the client's identity:\n{server_metrics}"
    );
}
