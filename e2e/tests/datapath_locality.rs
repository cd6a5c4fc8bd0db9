//! Data path: locality load balancing (DestinationRule
//! `trafficPolicy.loadBalancer.localityLbSetting`), as Istio documents it. The client runs in
//! `r1/z1`; reviews v1 in `r1/z1` and v2 in `r1/z2` (WorkloadEntry `locality`).
//!
//! - Without outlier detection Istio applies no locality failover: traffic spreads over both.
//! - With outlier detection (the mesh default `enabled: true`), all traffic stays in the
//!   client's zone; when the local endpoint is ejected, traffic fails over to the other zone.
//! - `distribute` splits traffic by the configured locality weights (no outlier detection
//!   needed).
//! - When the local endpoint goes down (its sidecar stops, connections are refused), it is
//!   ejected and traffic fails over.
//!
//! Slow start (`loadBalancer.warmup`) lives here too, as the other per-endpoint weighting: an
//! endpoint that joins gets its minimum share of traffic at first.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use std::time::Duration;

use weft_e2e::{
    NS, apply, apply_watching, client, count, eventually, mesh_or_skip, reviews_mesh,
    reviews_requests, service, service_entry, subsets_with_policy,
};
use weft_lab::mesh::LocalMesh;

/// Rewrites `workload`'s WorkloadEntry (as the lab registered it) with `locality`
/// (`region/zone`), the way Istio reads a VM's or pod's topology.
fn place(mesh: &LocalMesh, workload: &str, locality: &str) -> (String, String) {
    let running = mesh.workload(workload).unwrap();
    let labels: String = running
        .spec
        .labels
        .iter()
        .map(|(k, v)| format!("{k}: {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let entry = format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  address: {ip}\n  serviceAccount: {sa}\n  labels: {{{labels}}}\n  locality: {locality}\n",
        name = workload,
        ip = running.host.ip,
        sa = running.spec.service_account,
    );
    (format!("workload-{workload}.yaml"), entry)
}

/// `reviews` with v1 in the client's zone and v2 in another zone of the same region.
fn zoned_mesh(mesh: &mut LocalMesh) -> Ipv4Addr {
    let vip = reviews_mesh(mesh);
    for (workload, locality) in [
        ("reviews1", "r1/z1"),
        ("reviews2", "r1/z2"),
        ("client", "r1/z1"),
    ] {
        let (file, entry) = place(mesh, workload, locality);
        apply_watching(mesh, &["client"], &file, &entry);
    }
    vip
}

fn load(mesh: &LocalMesh, vip: Ipv4Addr, headers: &[(&str, &str)], n: usize) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, n, 1)
}

#[test]
fn traffic_stays_in_the_local_zone_and_fails_over_when_the_local_endpoint_is_ejected() {
    let mut mesh = mesh_or_skip!();
    let vip = zoned_mesh(&mut mesh);

    // No outlier detection: Istio does not prioritize by locality, round robin spreads.
    apply(
        &mesh,
        "dr-reviews.yaml",
        &subsets_with_policy("reviews", "    loadBalancer: {simple: ROUND_ROBIN}\n"),
    );
    let spread = load(&mesh, vip, &[], 20);
    assert_eq!(count(&spread, "status", "200"), 20, "{spread}");
    assert!(
        count(&spread, "versions", "v1") >= 5 && count(&spread, "versions", "v2") >= 5,
        "without outlier detection both zones share the traffic: {spread}"
    );

    // With outlier detection the mesh default applies: everything stays in r1/z1 (v1).
    apply(
        &mesh,
        "dr-reviews.yaml",
        &subsets_with_policy(
            "reviews",
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n",
        ),
    );
    let local = load(&mesh, vip, &[], 30);
    assert_eq!(
        count(&local, "versions", "v1"),
        30,
        "all traffic must stay in the client's zone: {local}"
    );

    // v1 starts answering 500: after consecutive5xxErrors (2) it is ejected and traffic
    // fails over to the other zone.
    let failing = load(&mesh, vip, &[("x-weft-fail-version", "v1")], 20);
    let errors = count(&failing, "status", "500");
    assert!(
        (2..=3).contains(&errors),
        "the local endpoint must be ejected after 2 errors: {failing}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(count(&failing, "versions", "v2"), 20 - errors, "{failing}");
    let failed_over = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&failed_over, "versions", "v2"),
        20,
        "while the local endpoint is ejected, the other zone serves: {failed_over}"
    );
    assert_eq!(count(&failed_over, "status", "200"), 20, "{failed_over}");
    println!("locality failover: {errors} errors, then all traffic to r1/z2");
}

#[test]
fn distribute_splits_traffic_by_locality_weight() {
    let mut mesh = mesh_or_skip!();
    let vip = zoned_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &subsets_with_policy(
            "reviews",
            "    loadBalancer:\n      simple: ROUND_ROBIN\n      localityLbSetting:\n        distribute:\n        - from: r1/z1/*\n          to: {\"r1/z1/*\": 70, \"r1/z2/*\": 30}\n",
        ),
    );
    let requests = 400;
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[], requests, 4);
    assert_eq!(count(&report, "status", "200"), requests as u64, "{report}");
    let remote = count(&report, "versions", "v2") as f64 / requests as f64;
    // 30 % expected; the binomial standard deviation over 400 is 2.3 points, so ±8 points is
    // more than three deviations.
    assert!(
        (0.22..=0.38).contains(&remote),
        "r1/z2 should get about 30 % of the traffic, got {:.1} %: {report}",
        remote * 100.0
    );
    println!(
        "distribute 70/30: r1/z2 got {:.1} % of {requests}",
        remote * 100.0
    );
}

#[test]
fn traffic_fails_over_when_the_local_endpoint_is_down() {
    let mut mesh = mesh_or_skip!();
    let vip = zoned_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &subsets_with_policy(
            "reviews",
            "    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n",
        ),
    );
    let local = load(&mesh, vip, &[], 10);
    assert_eq!(count(&local, "versions", "v1"), 10, "{local}");
    // v1's sidecar goes away; its capture rules stay, so connections are refused. Refused
    // connections count as errors (Envoy maps them to 503) and eject it.
    assert!(mesh.stop_proxy("reviews1"), "stopping reviews1's proxy");
    let (after, waited) = eventually(
        Duration::from_secs(10),
        || load(&mesh, vip, &[], 10),
        |report| count(report, "versions", "v2") == 10,
    );
    assert_eq!(
        count(&after, "versions", "v2"),
        10,
        "traffic must fail over to r1/z2 once the local endpoint is down: {after}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(count(&after, "status", "200"), 10, "{after}");
    println!("locality failover on a down endpoint after {waited:?}");
}

#[test]
fn warmup_gives_a_new_endpoint_a_small_share_first() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(3);
    mesh.write_config("svc-reviews.yaml", &service_entry("reviews", vip))
        .unwrap();
    // A 20 s window with Istio's default minimum (10 %) and aggression (1.0), set with the
    // field issue 5 names, `warmupDurationSecs` (Pilot maps it to the same model field as its
    // successor `warmup.duration`).
    mesh.write_config(
        "dr-reviews.yaml",
        &subsets_with_policy(
            "reviews",
            "    loadBalancer:\n      simple: ROUND_ROBIN\n      warmupDurationSecs: 20s\n",
        ),
    )
    .unwrap();
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    let only = load(&mesh, vip, &[], 5);
    assert_eq!(count(&only, "versions", "v1"), 5, "{only}");
    // v1 joined the client's balancer when the client started (every endpoint of a new
    // proxy warms up together); once its window is over it has full weight.
    std::thread::sleep(Duration::from_secs(21));
    let joined = std::time::Instant::now();
    mesh.add_workload(service("reviews2", "reviews", "v2", &[], &[]))
        .unwrap();
    // v2 has weight max(10 %, age / 20 s): a few seconds after it joined, at most about
    // 25 %, so it gets at most a fifth of the picks (without warmup: half).
    let requests = 300;
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[], requests, 4);
    let age = joined.elapsed();
    assert_eq!(count(&report, "status", "200"), requests as u64, "{report}");
    let new_share = count(&report, "versions", "v2") as f64 / requests as f64;
    assert!(
        age < Duration::from_secs(8),
        "the measurement must happen early in the window (took {age:?})"
    );
    assert!(
        (0.03..=0.25).contains(&new_share),
        "a warming endpoint should get a small share (without warmup: 50 %), got {:.1} % \
         {age:?} after it joined: {report}",
        new_share * 100.0
    );
    println!(
        "warmup: the new endpoint got {:.1} % of {requests}, {age:?} after joining",
        new_share * 100.0
    );
}
