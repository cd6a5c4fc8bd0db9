//! Data path: which part of a DestinationRule's traffic policy applies to a request, in
//! Istio's order (`MergeTrafficPolicy`): the top-level policy, overridden by its
//! `portLevelSettings` for the request's port, then by the subset's `trafficPolicy`, then by
//! the subset's own `portLevelSettings`. Each level is observed through circuit breaking
//! (`connectionPool` with `maxConnections: 1` and `http1MaxPendingRequests: 1` answers a burst
//! with 503 `UO`; a generous pool answers it all), through load balancing (a subset's
//! `loadBalancer.simple` replaces the top-level `consistentHash`) and through `tls` (a
//! subset's `DISABLE` replaces the top-level `ISTIO_MUTUAL`, seen in the servers'
//! `connection_security_policy`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use weft_e2e::{NS, apply, client, count, host, mesh_or_skip, service};
use weft_lab::mesh::{LocalMesh, WorkloadSpec};

/// A connection pool that admits about two concurrent requests.
const TIGHT: &str = "{tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1}}";
/// A connection pool that admits a burst of 12.
const ROOMY: &str = "{tcp: {maxConnections: 100}, http: {http1MaxPendingRequests: 100}}";

/// The ServiceEntry of `reviews` at `vip` with two HTTP ports, 9080 and 9081, both reaching
/// the workloads' 9080.
fn two_port_entry(vip: Ipv4Addr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{host}]\n  addresses: [{vip}]\n  ports:\n  - {{number: 9080, name: http, protocol: HTTP}}\n  - {{number: 9081, name: http-alt, protocol: HTTP, targetPort: 9080}}\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: reviews}}}}\n",
        host = host("reviews")
    )
}

/// The VirtualService of `reviews`: requests whose `header` is `first` go to subset `first`,
/// the rest to subset `second` (on whichever port they came).
fn by_subset_header(header: &str, first: &str, second: &str) -> String {
    let reviews = host("reviews");
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{reviews}]\n  http:\n  - match: [{{headers: {{{header}: {{exact: {first}}}}}}}]\n    route:\n    - destination: {{host: {reviews}, subset: {first}}}\n  - route:\n    - destination: {{host: {reviews}, subset: {second}}}\n"
    )
}

/// 12 concurrent GETs from `client` to `reviews` on `port`, each held 500 ms by the app, with
/// `headers`; returns (200s, 503s, report).
fn burst(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    port: u16,
    headers: &[(&str, &str)],
) -> (u64, u64, serde_json::Value) {
    let reviews = host("reviews");
    let mut headers = headers.to_vec();
    headers.push(("x-weft-delay-ms", "500"));
    let report = mesh
        .load(
            "client",
            &format!("http://{reviews}:{port}/reviews/0"),
            &[(&reviews, vip)],
            &headers,
            12,
            12,
        )
        .unwrap();
    (
        count(&report, "status", "200"),
        count(&report, "status", "503"),
        report,
    )
}

#[test]
fn port_level_settings_and_subset_policies_override_in_istio_order() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(3);
    mesh.write_config("svc-reviews.yaml", &two_port_entry(vip))
        .unwrap();
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(service("reviews2", "reviews", "v2", &[], &[]))
        .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    mesh.write_config("vs-reviews.yaml", &by_subset_header("x-subset", "v1", "v2"))
        .unwrap();
    // Top level: tight, except on 9081. Subset v2: roomy, except on 9081.
    apply(
        &mesh,
        "dr-reviews.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    connectionPool: {TIGHT}\n    portLevelSettings:\n    - port: {{number: 9081}}\n      connectionPool: {ROOMY}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n    trafficPolicy:\n      connectionPool: {ROOMY}\n      portLevelSettings:\n      - port: {{number: 9081}}\n        connectionPool: {TIGHT}\n",
            host = host("reviews")
        ),
    );
    // (what, port, subset, whether the pool that applies is the tight one)
    let cases = [
        ("v1 on 9080: the top-level policy", 9080, "v1", true),
        (
            "v1 on 9081: the top-level portLevelSettings",
            9081,
            "v1",
            false,
        ),
        ("v2 on 9080: the subset's policy", 9080, "v2", false),
        (
            "v2 on 9081: the subset's portLevelSettings",
            9081,
            "v2",
            true,
        ),
    ];
    for (what, port, version, tight) in cases {
        let (ok, rejected, report) = burst(&mesh, vip, port, &[("x-subset", version)]);
        assert_eq!(
            count(&report, "versions", version),
            ok,
            "{what}: answered by the subset's endpoint: {report}"
        );
        if tight {
            assert!(
                (1..=4).contains(&ok) && rejected >= 8,
                "{what} is the tight pool: the burst must overflow with 503: {report}"
            );
        } else {
            assert_eq!(ok, 12, "{what} is the roomy pool: all pass: {report}");
        }
    }
    let metrics = mesh.proxy_metrics("client").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("response_code=\"503\"")
                && l.contains("response_flags=\"UO\"")),
        "the overflow is reported as 503 UO:\n{metrics}"
    );
}

/// A `reviews` workload of `version` whose `track` label is `track`.
fn tracked(name: &str, version: &str, track: &str) -> WorkloadSpec {
    let mut spec = service(name, "reviews", version, &[], &[]);
    spec.labels.insert("track".into(), track.into());
    spec
}

#[test]
fn subset_load_balancer_replaces_the_top_level_one() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(3);
    mesh.write_config("svc-reviews.yaml", &weft_e2e::service_entry("reviews", vip))
        .unwrap();
    for (name, version, track) in [
        ("ra1", "a1", "a"),
        ("ra2", "a2", "a"),
        ("rb1", "b1", "b"),
        ("rb2", "b2", "b"),
    ] {
        mesh.add_workload(tracked(name, version, track)).unwrap();
    }
    mesh.add_workload(client("client", "client")).unwrap();
    mesh.write_config("vs-reviews.yaml", &by_subset_header("x-track", "a", "b"))
        .unwrap();
    // Top level: consistent hashing on x-user. Subset b: round robin.
    apply(
        &mesh,
        "dr-reviews.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    loadBalancer: {{consistentHash: {{httpHeaderName: x-user}}}}\n  subsets:\n  - name: a\n    labels: {{track: a}}\n  - name: b\n    labels: {{track: b}}\n    trafficPolicy:\n      loadBalancer: {{simple: ROUND_ROBIN}}\n",
            host = host("reviews")
        ),
    );
    let reviews = host("reviews");
    let url = format!("http://{reviews}:9080/reviews/0");
    let load = |headers: &[(&str, &str)]| {
        mesh.load("client", &url, &[(&reviews, vip)], headers, 20, 1)
            .unwrap()
    };
    // Subset a inherits the hash: one user sticks to one endpoint.
    for user in ["alice", "bob", "carol"] {
        let sticky = load(&[("x-track", "a"), ("x-user", user)]);
        assert_eq!(count(&sticky, "status", "200"), 20, "{sticky}");
        let (a1, a2) = (
            count(&sticky, "versions", "a1"),
            count(&sticky, "versions", "a2"),
        );
        assert!(
            a1 == 20 || a2 == 20,
            "subset a inherits consistentHash: {user} must stick to one endpoint: {sticky}"
        );
    }
    // Subset b replaces it with round robin: one user alternates between both endpoints.
    let spread = load(&[("x-user", "alice")]);
    assert_eq!(count(&spread, "status", "200"), 20, "{spread}");
    assert_eq!(
        (
            count(&spread, "versions", "b1"),
            count(&spread, "versions", "b2")
        ),
        (10, 10),
        "subset b's ROUND_ROBIN alternates one user's requests over both endpoints: {spread}"
    );
}

/// The requests `workload`'s sidecar received with `connection_security_policy` `policy`
/// (`mutual_tls` or `none`), from its inbound metrics.
fn received_with_security(mesh: &LocalMesh, workload: &str, policy: &str) -> f64 {
    mesh.proxy_metrics(workload)
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains(&format!("connection_security_policy=\"{policy}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn subset_tls_replaces_the_top_level_istio_mutual() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(3);
    mesh.write_config("svc-reviews.yaml", &weft_e2e::service_entry("reviews", vip))
        .unwrap();
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(service("reviews2", "reviews", "v2", &[], &[]))
        .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    mesh.write_config("vs-reviews.yaml", &by_subset_header("x-subset", "v1", "v2"))
        .unwrap();
    // Top level: ISTIO_MUTUAL. Subset v2: DISABLE (its servers accept plaintext under the
    // default PERMISSIVE mode).
    apply(
        &mesh,
        "dr-reviews.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    tls: {{mode: ISTIO_MUTUAL}}\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v2\n    labels: {{version: v2}}\n    trafficPolicy:\n      tls: {{mode: DISABLE}}\n",
            host = host("reviews")
        ),
    );
    let reviews = host("reviews");
    let url = format!("http://{reviews}:9080/reviews/0");
    for version in ["v1", "v2"] {
        let report = mesh
            .load(
                "client",
                &url,
                &[(&reviews, vip)],
                &[("x-subset", version)],
                5,
                1,
            )
            .unwrap();
        assert_eq!(count(&report, "versions", version), 5, "{report}");
    }
    let v1 = (
        received_with_security(&mesh, "reviews1", "mutual_tls"),
        received_with_security(&mesh, "reviews1", "none"),
    );
    let v2 = (
        received_with_security(&mesh, "reviews2", "mutual_tls"),
        received_with_security(&mesh, "reviews2", "none"),
    );
    assert_eq!(
        v1,
        (5.0, 0.0),
        "subset v1 inherits tls ISTIO_MUTUAL: (mutual_tls, none) requests at reviews1"
    );
    assert_eq!(
        v2,
        (0.0, 5.0),
        "subset v2's tls DISABLE replaces it: (mutual_tls, none) requests at reviews2"
    );
}
