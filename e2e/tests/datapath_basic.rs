//! Data path: a client's request is captured by its sidecar, routed by the config the
//! control plane pushed, carried over mutual TLS to the server's sidecar and delivered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use weft_e2e::{NS, client, host, service, service_entry, start_mesh};

#[test]
fn request_flows_through_both_sidecars_over_mtls() {
    let mut mesh = match start_mesh() {
        Ok(mesh) => mesh,
        Err(why) => {
            println!("SKIPPED: {why}");
            return;
        }
    };
    let vip = mesh.lab().vip(2);
    mesh.write_config("svc-ratings.yaml", &service_entry("ratings", vip))
        .unwrap();
    mesh.add_workload(service("ratings", "ratings", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    let url = format!("http://{}:9080/ratings/0", host("ratings"));
    let ratings = host("ratings");
    let mut report = serde_json::Value::Null;
    for _ in 0..40 {
        report = mesh
            .load("client", &url, &[(&ratings, vip)], &[], 20, 2)
            .unwrap();
        if report["status"]["200"] == 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert_eq!(
        report["status"]["200"],
        20,
        "{report}\nclient proxy log:\n{}\nratings proxy log:\n{}",
        mesh.log("client-proxy"),
        mesh.log("ratings-proxy")
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
