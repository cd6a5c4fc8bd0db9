//! Data path: DestinationRule traffic policy under load, as Istio documents it. Circuit
//! breaking (`connectionPool`): with `maxConnections: 1` and `http1MaxPendingRequests: 1`,
//! concurrent requests beyond the limit get 503 with response flag `UO` at once. Outlier
//! detection (`outlierDetection`): an endpoint answering 5xx is ejected after
//! `consecutive5xxErrors`, traffic moves to the healthy one, and it returns after
//! `baseEjectionTime`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{
    apply, count, eventually, mesh_or_skip, reviews_mesh, reviews_requests, subsets_with_policy,
};

/// The DestinationRule of `reviews` (subsets v1 and v2) with `traffic_policy` (YAML mapping
/// lines indented by 4).
fn reviews_rule(traffic_policy: &str) -> String {
    subsets_with_policy("reviews", traffic_policy)
}

/// Sends `requests` from `client` to `reviews` (`/reviews/0`), `concurrency` at a time.
fn load(
    mesh: &weft_lab::mesh::LocalMesh,
    vip: std::net::Ipv4Addr,
    headers: &[(&str, &str)],
    requests: usize,
    concurrency: usize,
) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, requests, concurrency)
}

/// The `istio_requests_total` lines of `workload`'s proxy with `response_code` and
/// `response_flags`, and their summed value.
fn requests_with(
    mesh: &weft_lab::mesh::LocalMesh,
    workload: &str,
    code: &str,
    flags: &str,
) -> (f64, String) {
    let metrics = mesh.proxy_metrics(workload).unwrap();
    let total = metrics
        .lines()
        .filter(|l| {
            l.starts_with("istio_requests_total")
                && l.contains(&format!("response_code=\"{code}\""))
                && l.contains(&format!("response_flags=\"{flags}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    (total, metrics)
}

#[test]
fn circuit_breaker_answers_overflow_with_503_uo() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n",
        ),
    );
    // One at a time stays within the limits.
    let sequential = load(&mesh, vip, &[], 10, 1);
    assert_eq!(
        count(&sequential, "status", "200"),
        10,
        "one request at a time must pass: {sequential}"
    );
    // Twelve at once, each held 500 ms by the app: two are admitted (one connection plus one
    // pending), the rest overflow.
    let slow = [("x-weft-delay-ms", "500")];
    let burst = load(&mesh, vip, &slow, 12, 12);
    let (ok, rejected) = (
        count(&burst, "status", "200"),
        count(&burst, "status", "503"),
    );
    assert_eq!(ok + rejected, 12, "only 200 and 503 expected: {burst}");
    assert!(
        (1..=4).contains(&ok),
        "about two requests fit in maxConnections 1 + http1MaxPendingRequests 1: {burst}"
    );
    assert!(
        rejected >= 8,
        "the overflow must be refused: {burst}\n{}",
        mesh.log("client-proxy")
    );
    // Overflow is refused at once, not after waiting for a slot.
    assert!(
        burst["p50_ms"].as_f64().unwrap() < 400.0,
        "most requests should fail fast (p50 below the app's 500 ms): {burst}"
    );
    let (uo, metrics) = requests_with(&mesh, "client", "503", "UO");
    assert_eq!(
        uo, rejected as f64,
        "every overflow must be reported as 503 UO by the client's sidecar:\n{metrics}"
    );
    // The limit frees up: after the burst, requests pass again.
    let after = load(&mesh, vip, &[], 10, 1);
    assert_eq!(count(&after, "status", "200"), 10, "{after}");
    println!("circuit breaking: {ok} admitted, {rejected} refused with 503 UO of 12 concurrent");
}

#[test]
fn outlier_detection_ejects_the_failing_endpoint_and_returns_it() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 3\n      interval: 1s\n      baseEjectionTime: 6s\n      maxEjectionPercent: 100\n",
        ),
    );
    let healthy = load(&mesh, vip, &[], 20, 1);
    assert_eq!(count(&healthy, "status", "200"), 20, "{healthy}");
    assert!(
        count(&healthy, "versions", "v1") > 0 && count(&healthy, "versions", "v2") > 0,
        "both endpoints serve before the failure: {healthy}"
    );

    // v2 now answers 500. Round robin sends it every other request until three 500s in a row
    // eject it; then everything goes to v1.
    let failing = [("x-weft-fail-version", "v2")];
    let first = load(&mesh, vip, &failing, 20, 1);
    let errors = count(&first, "status", "500");
    assert!(
        (3..=5).contains(&errors),
        "v2 must be ejected after consecutive5xxErrors (3) failures: {first}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(count(&first, "status", "200"), 20 - errors, "{first}");

    // While ejected, v2 gets no traffic, even though it would answer well again.
    let ejected = load(&mesh, vip, &[], 20, 1);
    assert_eq!(
        count(&ejected, "versions", "v1"),
        20,
        "the ejected endpoint must get no traffic during baseEjectionTime: {ejected}"
    );
    assert_eq!(count(&ejected, "status", "200"), 20, "{ejected}");

    // After baseEjectionTime (6 s) it is back in the rotation.
    let (back, waited) = eventually(
        Duration::from_secs(20),
        || load(&mesh, vip, &[], 10, 1),
        |r| count(r, "versions", "v2") > 0,
    );
    assert!(
        count(&back, "versions", "v2") > 0,
        "v2 must return after baseEjectionTime: {back}"
    );
    assert!(
        waited >= Duration::from_secs(3),
        "v2 came back after {waited:?}, well before baseEjectionTime (6 s)"
    );
    assert_eq!(count(&back, "status", "200"), 10, "{back}");
    println!("outlier detection: {errors} errors before ejection, back after {waited:?}");
}
