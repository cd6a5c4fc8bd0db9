//! Data path: PeerAuthentication modes on the wire. STRICT refuses a plaintext client outside
//! the mesh and serves a sidecar client over mTLS; PERMISSIVE serves both on the same port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{NS, apply, count, eventually, mesh_or_skip, reviews_load, reviews_mesh};

fn peer_authentication(mode: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: {NS}}}\nspec:\n  mtls: {{mode: {mode}}}\n"
    )
}

#[test]
fn strict_refuses_plaintext_and_permissive_accepts_both() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let outsider = mesh.add_plain_host("outside").unwrap();
    let server_ip = mesh.workload("reviews1").unwrap().host.ip;
    let direct = format!("http://{server_ip}:9080/reviews/0");

    apply(&mesh, "pa.yaml", &peer_authentication("STRICT"));
    let (refused, _) = eventually(
        Duration::from_secs(10),
        || mesh.load_from_host(&outsider, &direct, &[], 5).unwrap(),
        |r| count(r, "status", "200") == 0,
    );
    assert_eq!(
        count(&refused, "status", "200"),
        0,
        "STRICT served a plaintext client: {refused}"
    );
    let inside = reviews_load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&inside, "status", "200"),
        20,
        "STRICT must serve mTLS clients: {inside}"
    );

    apply(&mesh, "pa.yaml", &peer_authentication("PERMISSIVE"));
    let (accepted, _) = eventually(
        Duration::from_secs(10),
        || mesh.load_from_host(&outsider, &direct, &[], 5).unwrap(),
        |r| count(r, "status", "200") == 5,
    );
    assert_eq!(
        count(&accepted, "status", "200"),
        5,
        "PERMISSIVE refused plaintext: {accepted}"
    );
    let inside = reviews_load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&inside, "status", "200"),
        20,
        "PERMISSIVE must serve mTLS clients: {inside}"
    );
    let metrics = mesh.proxy_metrics("reviews1").unwrap();
    let plaintext_seen = metrics.lines().any(|l| {
        l.starts_with("istio_requests_total")
            && l.contains("reporter=\"destination\"")
            && l.contains("connection_security_policy=\"none\"")
    });
    assert!(
        plaintext_seen,
        "PERMISSIVE plaintext requests are not reported as such:\n{metrics}"
    );
}
