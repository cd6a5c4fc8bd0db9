//! Data path: consistent-hash load balancing (DestinationRule
//! `trafficPolicy.loadBalancer.consistentHash`). Requests with the same key (a header, a
//! cookie, a query parameter, the source IP) stick to one endpoint; different keys spread over
//! the endpoints; requests without the key are balanced as usual. With an `httpCookie` `ttl`
//! the proxy generates the cookie for a request that lacks it (Envoy's `Set-Cookie` with
//! `Max-Age`, `Path` and `HttpOnly`), and replaying it sticks to the endpoint that answered.

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

/// The `Set-Cookie` values of a load report.
fn set_cookies(report: &serde_json::Value) -> Vec<String> {
    report["set_cookies"]
        .as_object()
        .map(|cookies| {
            cookies
                .iter()
                .flat_map(|(cookie, n)| {
                    std::iter::repeat_n(cookie.clone(), n.as_u64().unwrap_or(0) as usize)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn http_cookie_with_ttl_is_generated_and_replaying_it_sticks() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("{consistentHash: {httpCookie: {name: session, path: /, ttl: 60s}}}"),
    );
    let mut values = BTreeSet::new();
    let mut seen = BTreeSet::new();
    for round in 0..12 {
        // A fresh connection without the cookie: the proxy makes one.
        let first = load(&mesh, vip, "/reviews/0", &[], 1);
        let first_version = versions(&first, 1).into_iter().next().unwrap();
        let cookies = set_cookies(&first);
        assert_eq!(cookies.len(), 1, "round {round}: one Set-Cookie: {first}");
        let value = cookies[0]
            .strip_prefix("session=\"")
            .and_then(|rest| rest.strip_suffix("\"; Max-Age=60; Path=/; HttpOnly"))
            .unwrap_or_else(|| panic!("Envoy's cookie format expected, got {:?}", cookies[0]))
            .to_string();
        assert!(
            value.len() == 16 && value.bytes().all(|b| b.is_ascii_hexdigit()),
            "{value:?}"
        );
        // Replayed as the client got it: the same endpoint every time, no new cookie.
        let cookie = format!("session=\"{value}\"");
        let replay = load(&mesh, vip, "/reviews/0", &[("cookie", &cookie)], 6);
        assert_eq!(
            versions(&replay, 6),
            BTreeSet::from([first_version.clone()]),
            "round {round}: the cookie must stick to the endpoint that answered first: {replay}"
        );
        assert!(
            set_cookies(&replay).is_empty(),
            "a request with the cookie gets none: {replay}"
        );
        values.insert(value);
        seen.insert(first_version);
    }
    assert!(
        values.len() > 1,
        "each connection gets its own cookie: {values:?}"
    );
    assert_eq!(
        seen.len(),
        2,
        "12 generated cookies should reach both endpoints, got {seen:?}"
    );

    // ttl 0: a session cookie (no Max-Age); no ttl: no cookie, the simple policy balances.
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("{consistentHash: {httpCookie: {name: session, ttl: 0s}}}"),
    );
    let report = load(&mesh, vip, "/reviews/0", &[], 3);
    let cookies = set_cookies(&report);
    assert_eq!(cookies.len(), 3, "{report}");
    assert!(
        cookies
            .iter()
            .all(|c| c.starts_with("session=\"") && c.ends_with("\"; HttpOnly")),
        "session cookies: {cookies:?}"
    );
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("{consistentHash: {httpCookie: {name: session}}}"),
    );
    let (report, _) = eventually(
        Duration::from_secs(10),
        || load(&mesh, vip, "/reviews/0", &[], 20),
        |r| count(r, "versions", "v1") > 0 && count(r, "versions", "v2") > 0,
    );
    assert!(
        set_cookies(&report).is_empty(),
        "no ttl, no cookie: {report}"
    );
    assert_eq!(
        versions(&report, 20).len(),
        2,
        "without ttl, requests without the cookie are balanced: {report}"
    );
}
