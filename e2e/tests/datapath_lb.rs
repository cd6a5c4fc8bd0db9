//! Data path: consistent-hash load balancing (DestinationRule
//! `trafficPolicy.loadBalancer.consistentHash`). Requests with the same key (a header, a
//! cookie, a query parameter, the source IP) stick to one endpoint; different keys spread over
//! the endpoints; requests without the key are balanced as usual.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Duration;

use weft_e2e::{
    apply, count, eventually, mesh_or_skip, reviews_mesh, reviews_requests, subsets_with_policy,
};
use weft_lab::mesh::LocalMesh;

/// The DestinationRule of `reviews` (subsets v1 and v2) with `load_balancer` (a YAML flow
/// mapping) as its traffic policy's `loadBalancer`.
fn reviews_rule(load_balancer: &str) -> String {
    subsets_with_policy("reviews", &format!("    loadBalancer: {load_balancer}\n"))
}

/// `requests` GETs of `path` from `client` to `reviews` with `headers`, one at a time.
fn load(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    path: &str,
    headers: &[(&str, &str)],
    requests: usize,
) -> serde_json::Value {
    reviews_requests(mesh, vip, path, headers, requests, 1)
}

/// The versions that answered, when all `requests` got 200.
fn versions(report: &serde_json::Value, requests: u64) -> BTreeSet<String> {
    assert_eq!(count(report, "status", "200"), requests, "{report}");
    report["versions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// Sends 8 requests for each of 16 keys (`request(key)` gives path and headers) and checks
/// that each key sticks to one version and that the keys reach both.
fn sticks_and_spreads(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    what: &str,
    request: impl Fn(&str) -> (String, Vec<(String, String)>),
) {
    let mut seen = BTreeSet::new();
    for user in 0..16 {
        let key = format!("user-{user}");
        let (path, headers) = request(&key);
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let answered = versions(&load(mesh, vip, &path, &headers, 8), 8);
        assert_eq!(
            answered.len(),
            1,
            "{what} {key}: every request must reach the same endpoint, got {answered:?}"
        );
        seen.extend(answered);
    }
    assert_eq!(
        seen.len(),
        2,
        "{what}: 16 different keys should reach both endpoints, got {seen:?}"
    );
}

#[test]
fn same_header_sticks_to_one_endpoint_and_different_headers_spread() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "{consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 1024}}}",
        ),
    );
    // Without the header, requests are balanced over both endpoints as before.
    let (unkeyed, _) = eventually(
        Duration::from_secs(10),
        || load(&mesh, vip, "/reviews/0", &[], 20),
        |r| count(r, "versions", "v1") > 0 && count(r, "versions", "v2") > 0,
    );
    assert_eq!(
        versions(&unkeyed, 20).len(),
        2,
        "requests without the key are balanced: {unkeyed}"
    );
    sticks_and_spreads(&mesh, vip, "header x-user", |key| {
        ("/reviews/0".into(), vec![("x-user".into(), key.into())])
    });
}

#[test]
fn cookie_query_parameter_and_source_ip_keys_with_maglev_and_ring() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "{consistentHash: {httpQueryParameterName: user, maglev: {tableSize: 65537}}}",
        ),
    );
    sticks_and_spreads(&mesh, vip, "query parameter user", |key| {
        (format!("/reviews/0?user={key}"), vec![])
    });

    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "{consistentHash: {httpCookie: {name: session, ttl: 60s}, maglev: {tableSize: 65537}}}",
        ),
    );
    sticks_and_spreads(&mesh, vip, "cookie session", |key| {
        (
            "/reviews/0".into(),
            vec![("cookie".into(), format!("theme=dark; session={key}"))],
        )
    });

    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("{consistentHash: {useSourceIp: true}}"),
    );
    // One client, one source address: every request reaches the same endpoint.
    let answered = versions(&load(&mesh, vip, "/reviews/0", &[], 30), 30);
    assert_eq!(
        answered.len(),
        1,
        "useSourceIp: one client must stick to one endpoint, got {answered:?}"
    );
}
