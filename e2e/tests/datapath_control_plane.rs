//! Data path and control plane: config changes reach the proxies (measured), a bad config file
//! is rejected with the last good config kept, traffic keeps flowing while the control plane is
//! down and after it comes back, and certificates rotate under steady traffic with no failed
//! request.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{NS, apply, count, eventually, mesh_or_skip, reviews_load, reviews_mesh};

const HOST: &str = "reviews.demo.svc.cluster.local";

fn all_to(subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{HOST}]\n  http:\n  - route:\n    - destination: {{host: {HOST}, subset: {subset}}}\n"
    )
}

#[test]
fn config_change_reaches_proxies_and_a_bad_file_keeps_the_last_good_config() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(&mesh, "vs-reviews.yaml", &all_to("v1"));
    let (v1, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 20),
        |r| count(r, "versions", "v1") == 20,
    );
    assert_eq!(count(&v1, "versions", "v1"), 20, "{v1}");

    // A bad edit: weight is not a number. The operator rejects the file; v1 stays in force.
    let bad = all_to("v2").replace("subset: v2}", "subset: v2}\n      weight: lots");
    mesh.write_config("vs-reviews.yaml", &bad).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let still = reviews_load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&still, "versions", "v1"),
        20,
        "a rejected file must not change routing: {still}"
    );
    let log = mesh.log("operator");
    assert!(
        log.contains("vs-reviews.yaml") && log.contains("spec.http[0].route[0].weight"),
        "the rejection names the file and the field:\n{log}"
    );

    // A good edit reaches the proxies; measure how long it takes to be in force.
    apply(&mesh, "vs-reviews.yaml", &all_to("v2"));
    let (v2, took) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 4),
        |r| count(r, "versions", "v2") == 4,
    );
    assert_eq!(count(&v2, "versions", "v2"), 4, "{v2}");
    println!("config change in force after {took:?} (polling every 200 ms)");
    let status = mesh.sync_status().unwrap();
    let rows = status.as_array().unwrap();
    assert!(rows.len() >= 3, "{status}");
    let (synced, _) = eventually(
        Duration::from_secs(5),
        || mesh.sync_status().unwrap(),
        |s| s.as_array().unwrap().iter().all(|r| r["state"] == "SYNCED"),
    );
    assert!(
        synced
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["state"] == "SYNCED"),
        "every proxy ACKed the new config: {synced}"
    );
}

#[test]
fn traffic_flows_while_the_control_plane_is_down_and_after_it_returns() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(&mesh, "vs-reviews.yaml", &all_to("v1"));
    let (ready, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 10),
        |r| count(r, "versions", "v1") == 10,
    );
    assert_eq!(count(&ready, "versions", "v1"), 10, "{ready}");

    mesh.stop_operator();
    let during = reviews_load(&mesh, vip, &[], 100);
    assert_eq!(
        count(&during, "status", "200"),
        100,
        "proxies keep their last config: {during}"
    );

    // A change made while it is down is picked up when it returns.
    mesh.write_config("vs-reviews.yaml", &all_to("v2")).unwrap();
    mesh.start_operator().unwrap();
    let (after, took) = eventually(
        Duration::from_secs(20),
        || reviews_load(&mesh, vip, &[], 10),
        |r| count(r, "versions", "v2") == 10,
    );
    assert_eq!(count(&after, "versions", "v2"), 10, "{after}");
    assert_eq!(count(&after, "status", "200"), 10, "{after}");
    println!("proxies reconnected and applied the new config {took:?} after restart");
}

const SHORT_LIVED: &str = r#"apiVersion: mesh.weft.dev/v1alpha1
kind: Mesh
metadata: {name: default}
spec:
  certificates:
    # Certificates are backdated one minute for clock skew: an 80 s TTL rotated at half its
    # life is renewed 10 s after issue.
    workloadCertTtl: 80s
    rotateAtFraction: 0.5
"#;

#[test]
fn certificates_rotate_under_steady_traffic_with_no_failed_request() {
    let mut mesh = mesh_or_skip!(("mesh.yaml", SHORT_LIVED));
    let vip = reviews_mesh(&mut mesh);
    apply(&mesh, "vs-reviews.yaml", &all_to("v1"));
    let (ready, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 10),
        |r| count(r, "status", "200") == 10,
    );
    assert_eq!(count(&ready, "status", "200"), 10, "{ready}");
    let chain = mesh.cert_dir(NS, "reviews").join("cert-chain.pem");
    let before = std::fs::read_to_string(&chain).unwrap();
    let started = std::time::Instant::now();
    let mut total = 0u64;
    let mut rotations = 0;
    let mut last = before.clone();
    while started.elapsed() < Duration::from_secs(24) {
        let report = reviews_load(&mesh, vip, &[], 200);
        assert_eq!(
            count(&report, "status", "200"),
            200,
            "a request failed during rotation: {report}"
        );
        total += 200;
        let now = std::fs::read_to_string(&chain).unwrap();
        if now != last {
            rotations += 1;
            last = now;
        }
    }
    assert!(
        rotations >= 1,
        "the server certificate was never rotated in 24 s"
    );
    println!("{total} requests, {rotations} server certificate rotations, 0 failures");
}
