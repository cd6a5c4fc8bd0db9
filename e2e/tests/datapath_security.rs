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

#[test]
fn authorization_policy_allows_by_principal_and_denies_by_path() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    mesh.add_workload(weft_e2e::client("intruder", "intruder"))
        .unwrap();
    let servers = ["reviews1", "reviews2"];
    let policies = format!(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews-allow-client, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - from:
    - source: {{principals: ["cluster.local/ns/{NS}/sa/client"]}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: reviews-deny-secret, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: DENY
  rules:
  - to:
    - operation: {{paths: ["/reviews/secret*"]}}
"#
    );
    weft_e2e::apply_watching(&mesh, &servers, "authz.yaml", &policies);
    let host = weft_e2e::host("reviews");
    let allowed = reviews_load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&allowed, "status", "200"),
        20,
        "the allowed principal is served: {allowed}"
    );
    let url = format!("http://{host}:9080/reviews/0");
    let intruder = mesh
        .load("intruder", &url, &[(&host, vip)], &[], 20, 2)
        .unwrap();
    assert_eq!(
        count(&intruder, "status", "403"),
        20,
        "another principal is denied: {intruder}"
    );
    let secret = format!("http://{host}:9080/reviews/secret/1");
    let denied = mesh
        .load("client", &secret, &[(&host, vip)], &[], 10, 2)
        .unwrap();
    assert_eq!(
        count(&denied, "status", "403"),
        10,
        "the DENY path wins over ALLOW: {denied}"
    );
}
