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

/// A small xorshift generator, so that the meshes below are random but the same on every run
/// (pilot has no property-test crate).
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// A random mesh: services in two namespaces with one or two ports, some with a
/// DestinationRule (subsets, a load balancer), some with a weighted VirtualService, pods of
/// each service's versions, and sometimes a Sidecar limiting `ns1` to its own namespace.
fn random_mesh(random: &mut Seeded) -> String {
    let mut text = String::new();
    let services = 1 + random.below(5);
    for index in 0..services {
        let ns = format!("ns{}", random.below(2));
        let name = format!("svc{index}");
        let ports = if random.below(2) == 0 {
            "[{name: http, port: 80, targetPort: 8080}]"
        } else {
            "[{name: http, port: 80, targetPort: 8080}, {name: tcp, port: 5432}]"
        };
        writeln!(
            text,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  clusterIP: 10.96.0.{}\n  selector: {{app: {name}}}\n  ports: {ports}",
            index + 10
        )
        .unwrap();
        for version in 0..1 + random.below(2) {
            writeln!(
                text,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}-v{version}\n  \
                 namespace: {ns}\n  labels: {{app: {name}, version: v{version}}}\n  \
                 annotations: {{sidecar.istio.io/status: x}}\nstatus: {{podIP: 10.1.{index}.{}}}",
                version + 1
            )
            .unwrap();
        }
        if random.below(2) == 0 {
            let lb = ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"][random.below(3) as usize];
            writeln!(
                text,
                "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: \
                 {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}.{ns}.svc.cluster.local\n  \
                 trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n  subsets:\n  \
                 - {{name: v0, labels: {{version: v0}}}}\n  - {{name: v1, labels: {{version: v1}}}}"
            )
            .unwrap();
            if random.below(2) == 0 {
                let weight = random.below(101);
                writeln!(
                    text,
                    "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: \
                     {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}.{ns}.svc.cluster.local]\n  \
                     http:\n  - route:\n    - {{destination: {{host: {name}.{ns}.svc.cluster.local, \
                     subset: v0}}, weight: {weight}}}\n    - {{destination: {{host: \
                     {name}.{ns}.svc.cluster.local, subset: v1}}, weight: {}}}",
                    100 - weight
                )
                .unwrap();
            }
        }
    }
    if random.below(2) == 0 {
        text.push_str(
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: \
             {name: default, namespace: ns1}\nspec:\n  egress:\n  - hosts: ['./*']\n",
        );
    }
    text
}

#[test]
fn the_per_scope_version_is_the_content_hash_of_the_built_config() {
    let mut random = Seeded(0x5eed_c0de_2026_1121);
    let (mut proxies, mut with_entries) = (0, 0);
    for _ in 0..64 {
        let text = random_mesh(&mut random);
        let view = ClusterView::from_yaml(&text).unwrap();
        for target in ProxyTarget::all(&view) {
            let parts = build_proxy_parts(&view, &target);
            let config = parts.to_config();
            assert_eq!(
                parts.version(),
                config.content_hash().unwrap(),
                "{}/{} in\n{text}",
                target.namespace,
                target.instance_name
            );
            assert_eq!(config.version, parts.version());
            proxies += 1;
            with_entries += usize::from(!config.outbound.is_empty() && config.clusters.len() > 1);
        }
    }
    assert!(proxies > 100, "only {proxies} proxies built");
    assert!(
        with_entries * 2 > proxies,
        "{with_entries} of {proxies} with listeners"
    );
}
