//! Data path: DestinationRule traffic policy under load, as Istio documents it. Circuit
//! breaking (`connectionPool`): with `maxConnections: 1` and `http1MaxPendingRequests: 1`,
//! concurrent requests beyond the limit get 503 with response flag `UO` at once. Outlier
//! detection (`outlierDetection`): an endpoint answering 5xx is ejected after
//! `consecutive5xxErrors`, traffic moves to the healthy one, and it returns after
//! `baseEjectionTime`; `consecutiveGatewayErrors` ejects a 502 endpoint but not a 500 one;
//! `consecutiveLocalOriginFailures` (with `splitExternalLocalOriginErrors`) ejects an endpoint
//! that refuses connections. Connection pool: `maxRequestsPerConnection` bounds the reuse of
//! upstream connections (counted where the server accepts them) and `idleTimeout` closes idle
//! ones.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{
    NS, apply, count, eventually, mesh_or_skip, reviews_mesh, reviews_requests, subsets_with_policy,
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

/// The connections `workload`'s sidecar accepted for its application so far: the packet count
/// of the capture rule that redirects new inbound connections (`ISTIO_IN_REDIRECT`; NAT rules
/// see only the first packet of a connection).
fn accepted_connections(mesh: &weft_lab::mesh::LocalMesh, workload: &str) -> u64 {
    let host = &mesh.workload(workload).unwrap().host;
    let out = mesh
        .lab()
        .exec(
            host,
            "iptables",
            &["-t", "nat", "-L", "ISTIO_IN_REDIRECT", "-v", "-x", "-n"],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| line.contains("REDIRECT"))
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Inbound connections of `workload`'s sidecar that are established now (sockets on the
/// inbound listener, 15006).
fn established_inbound(mesh: &weft_lab::mesh::LocalMesh, workload: &str) -> usize {
    let host = &mesh.workload(workload).unwrap().host;
    let out = mesh
        .lab()
        .exec(
            host,
            "ss",
            &["-Htn", "state", "established", "( sport = :15006 )"],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count()
}

fn reviews_accepted(mesh: &weft_lab::mesh::LocalMesh) -> u64 {
    accepted_connections(mesh, "reviews1") + accepted_connections(mesh, "reviews2")
}

#[test]
fn consecutive_gateway_errors_eject_a_502_endpoint_but_not_a_500_one() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutiveGatewayErrors: 2\n      consecutive5xxErrors: 0\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n",
        ),
    );
    // v1 answers 502 (a gateway error), v2 answers 500 (not one).
    let headers = [("x-weft-status", "502"), ("x-weft-fail-version", "v2")];
    let first = load(&mesh, vip, &headers, 20, 1);
    let gateway_errors = count(&first, "status", "502");
    assert!(
        (2..=3).contains(&gateway_errors),
        "v1 must be ejected after consecutiveGatewayErrors (2) 502s: {first}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(
        count(&first, "status", "500"),
        20 - gateway_errors,
        "{first}"
    );
    // v2 keeps answering 500 and is not ejected: if it were, both would be out and the
    // balancer would ignore ejections (panic), sending traffic to v1 again.
    let second = load(&mesh, vip, &headers, 20, 1);
    assert_eq!(
        count(&second, "versions", "v2"),
        20,
        "500s are not gateway errors: v2 stays, v1 stays ejected: {second}"
    );
    println!("consecutiveGatewayErrors: {gateway_errors} 502s before ejection; 500s kept v2 in");
}

#[test]
fn consecutive_local_origin_failures_eject_a_refusing_endpoint() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    // No retries, so that every refused connection reaches the client as 503.
    apply(
        &mesh,
        "vs-reviews.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{host}]\n  http:\n  - route:\n    - destination: {{host: {host}}}\n    retries: {{attempts: 0}}\n",
            host = weft_e2e::host("reviews"),
        ),
    );
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      splitExternalLocalOriginErrors: true\n      consecutiveLocalOriginFailures: 2\n      consecutive5xxErrors: 0\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n",
        ),
    );
    let healthy = load(&mesh, vip, &[], 10, 1);
    assert_eq!(count(&healthy, "status", "200"), 10, "{healthy}");
    // v2's sidecar goes away: its capture rules stay, so connections to it are refused.
    assert!(mesh.stop_proxy("reviews2"), "stopping reviews2's proxy");
    let refused = load(&mesh, vip, &[], 20, 1);
    let failures = count(&refused, "status", "503");
    assert!(
        (2..=3).contains(&failures),
        "v2 must be ejected after consecutiveLocalOriginFailures (2) refused connections: \
         {refused}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(
        count(&refused, "versions", "v1"),
        20 - failures,
        "{refused}"
    );
    let (uf, metrics) = requests_with(&mesh, "client", "503", "UF");
    assert_eq!(
        uf, failures as f64,
        "each refused connection is reported as 503 UF:\n{metrics}"
    );
    println!("consecutiveLocalOriginFailures: {failures} refused connections before ejection");
}

#[test]
fn max_requests_per_connection_and_idle_timeout_limit_upstream_connections() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("    loadBalancer: {simple: ROUND_ROBIN}\n"),
    );
    // Baseline: pooled connections are reused, one or two per endpoint for 20 requests.
    let before = reviews_accepted(&mesh);
    let baseline = load(&mesh, vip, &[], 20, 1);
    assert_eq!(count(&baseline, "status", "200"), 20, "{baseline}");
    let reused = reviews_accepted(&mesh) - before;
    assert!(
        reused <= 4,
        "without limits the client's sidecar reuses its connections, opened {reused}"
    );
    // Without an idle timeout (Istio's default is 1 h) they stay open.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        established_inbound(&mesh, "reviews1") + established_inbound(&mesh, "reviews2") > 0,
        "pooled connections should stay open while idle"
    );

    // maxRequestsPerConnection 2: 20 requests need at least 10 connections.
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    connectionPool:\n      http: {maxRequestsPerConnection: 2, idleTimeout: 1s}\n",
        ),
    );
    let before = reviews_accepted(&mesh);
    let limited = load(&mesh, vip, &[], 20, 1);
    assert_eq!(count(&limited, "status", "200"), 20, "{limited}");
    let opened = reviews_accepted(&mesh) - before;
    assert!(
        (10..=12).contains(&opened),
        "maxRequestsPerConnection 2 must give about 10 connections for 20 requests, got \
         {opened}"
    );

    // idleTimeout 1s: the idle upstream connections are closed without further traffic.
    let (open, waited) = eventually(
        Duration::from_secs(10),
        || established_inbound(&mesh, "reviews1") + established_inbound(&mesh, "reviews2"),
        |open| *open == 0,
    );
    assert_eq!(
        open, 0,
        "idle upstream connections must be closed after idleTimeout (1 s)"
    );
    println!(
        "connection pool: {reused} connections without limits, {opened} with \
         maxRequestsPerConnection 2; idle ones closed after {waited:?}"
    );
}
