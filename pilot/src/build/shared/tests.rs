//! The scope cache: proxies share a scope exactly when their outbound side is the same.

use std::fmt::Write;

use weft_proxy_config::{LbPolicy, RouteAction};

use crate::{ClusterView, ProxyTarget, build_proxy_config, build_proxy_parts};

/// Pods `<name>` in namespace `team` with the given labels, a `server` Service with two
/// versions, and objects whose label selectors split the clients into scopes: a
/// VirtualService routing `tier: gold` sources to v1, a DestinationRule selecting `role:
/// special` workloads, and a Sidecar selecting `app: other`.
fn mesh() -> String {
    let mut text = String::new();
    let pods = [
        ("gold-a", "{app: client, tier: gold}", "10.0.1.1"),
        ("gold-b", "{app: client, tier: gold, extra: x}", "10.0.1.2"),
        ("silver", "{app: client, tier: silver}", "10.0.1.3"),
        (
            "special",
            "{app: client, tier: silver, role: special}",
            "10.0.1.4",
        ),
        ("other", "{app: other}", "10.0.1.5"),
        ("server-0", "{app: server, version: v0}", "10.0.2.1"),
        ("server-1", "{app: server, version: v1}", "10.0.2.2"),
    ];
    for (name, labels, ip) in pods {
        writeln!(
            text,
            "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: team\n  \
             labels: {labels}\n  annotations: {{sidecar.istio.io/status: x}}\n\
             status: {{podIP: {ip}}}"
        )
        .unwrap();
    }
    text.push_str(
        r#"---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: team}
spec:
  clusterIP: 10.96.0.2
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: data}
spec:
  clusterIP: 10.96.0.3
  ports: [{name: tcp, port: 5432}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: server, namespace: team}
spec:
  hosts: [server]
  http:
  - match: [{sourceLabels: {tier: gold}}]
    route: [{destination: {host: server, subset: v1}}]
  - route: [{destination: {host: server, subset: v0}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server, namespace: team}
spec:
  host: server
  subsets:
  - {name: v0, labels: {version: v0}}
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: server-special, namespace: team}
spec:
  host: server
  workloadSelector: {matchLabels: {role: special}}
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets:
  - {name: v0, labels: {version: v0}}
  - {name: v1, labels: {version: v1}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: other, namespace: team}
spec:
  workloadSelector: {labels: {app: other}}
  egress: [{hosts: ["./*"]}]
"#,
    );
    text
}

fn target(view: &ClusterView, pod: &str) -> ProxyTarget {
    ProxyTarget::for_pod(view, "team", pod).unwrap()
}

#[test]
fn a_shared_view_builds_what_a_fresh_view_builds() {
    let shared = ClusterView::from_yaml(&mesh()).unwrap();
    let pods = ["gold-a", "gold-b", "silver", "special", "other"];
    // Twice, in both orders: whichever proxy fills a scope, the others get the same configs.
    for order in [pods, {
        let mut reversed = pods;
        reversed.reverse();
        reversed
    }] {
        for pod in order {
            let fresh = ClusterView::from_yaml(&mesh()).unwrap();
            let expected = build_proxy_config(&fresh, &target(&fresh, pod));
            let parts = build_proxy_parts(&shared, &target(&shared, pod));
            let mut json = Vec::new();
            parts.write_json(&mut json).unwrap();
            let mut pieces = Vec::new();
            let tail = parts.write_json_head(&mut pieces).unwrap();
            pieces.extend_from_slice(&tail);
            assert_eq!(pieces, json, "{pod}: head and shared tail");
            assert_eq!(
                json,
                serde_json::to_vec(&expected.config).unwrap(),
                "{pod}: JSON"
            );
            assert_eq!(parts.version(), expected.config.version, "{pod}: version");
            assert_eq!(parts.into_output(), expected, "{pod}: config and warnings");
        }
    }
}

#[test]
fn proxies_share_a_scope_only_when_the_selectors_agree() {
    let view = ClusterView::from_yaml(&mesh()).unwrap();
    let parts = |pod: &str| build_proxy_parts(&view, &target(&view, pod));
    let (gold_a, gold_b, silver) = (parts("gold-a"), parts("gold-b"), parts("silver"));
    let (special, other) = (parts("special"), parts("other"));
    assert!(
        gold_a.same_scope(&gold_b),
        "labels no selector reads differ"
    );
    assert!(!gold_a.same_scope(&silver), "VirtualService sourceLabels");
    assert!(
        !silver.same_scope(&special),
        "DestinationRule workloadSelector"
    );
    assert!(!silver.same_scope(&other), "Sidecar workloadSelector");
    assert_ne!(gold_a.version(), gold_b.version(), "the node differs");

    let first_route = |config: &weft_proxy_config::ProxyConfig| {
        let listener = config
            .outbound
            .iter()
            .find(|listener| listener.hostname == "server.team.svc.cluster.local")
            .unwrap();
        let route = &listener.http.as_ref().unwrap().virtual_hosts[0].routes[0];
        let RouteAction::Route(forward) = &route.action else {
            panic!("expected a forward action, got {route:?}");
        };
        forward.clusters[0].cluster.clone()
    };
    let silver = silver.to_config();
    assert_eq!(
        first_route(&gold_a.to_config()),
        "outbound|80|v1|server.team.svc.cluster.local"
    );
    assert_eq!(
        first_route(&silver),
        "outbound|80|v0|server.team.svc.cluster.local"
    );
    let lb = |config: &weft_proxy_config::ProxyConfig| {
        config
            .cluster("outbound|80||server.team.svc.cluster.local")
            .unwrap()
            .lb_policy
    };
    assert_eq!(lb(&special.to_config()), LbPolicy::Random);
    assert_ne!(lb(&silver), LbPolicy::Random);
    let other = other.to_config();
    assert!(
        other
            .outbound
            .iter()
            .all(|l| l.hostname.ends_with(".team.svc.cluster.local")),
        "the Sidecar limits `other` to its namespace: {:?}",
        other.outbound.iter().map(|l| &l.name).collect::<Vec<_>>()
    );
    assert!(
        silver
            .outbound
            .iter()
            .any(|l| l.hostname == "db.data.svc.cluster.local")
    );
}
