//! Which DestinationRule applies to a host for this proxy (Istio's precedence).

use weft_crds::networking::DestinationRule;
use weft_crds::networking::LoadBalancerSettings;
use weft_proxy_config::{
    ConsistentHash, DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MINIMUM_RING_SIZE, HashAlgorithm, HashKey,
};

use super::Context;
use super::policy::millis;
use crate::host::specificity;
use crate::selector::selects;
use crate::unsupported::Origin;
use crate::view::{namespace_of, sort_key};

/// The DestinationRule for service host `hostname` (defined in `service_namespace`) as seen by
/// the proxy, by Istio's precedence: a rule in the proxy's namespace whose `workloadSelector`
/// selects the proxy, then one without selector in the proxy's namespace, then one in the
/// service's namespace, then one in the root namespace; rules from another namespace must be
/// exported to the proxy's (`exportTo`). Within a namespace the most specific matching `host`
/// wins (exact over wildcard), then the oldest rule.
pub(crate) fn find<'a>(
    context: &Context<'a>,
    hostname: &str,
    service_namespace: &str,
) -> Option<&'a DestinationRule> {
    let view = context.view;
    let target = context.target;
    let mesh = view.mesh();
    let proxy_namespace = target.namespace.as_str();
    let index = &view.index().destination_rules;
    let rules = &view.objects().destination_rules;
    let candidates: Vec<(&DestinationRule, (bool, usize))> = index
        .matching(hostname)
        .filter(|(_, position)| {
            index
                .export_to
                .get(*position)
                .is_some_and(|export| export.visible_to(proxy_namespace))
        })
        .filter_map(|(host, position)| Some((rules.get(position)?, specificity(host))))
        .collect();
    let best = |filter: &dyn Fn(&DestinationRule) -> bool| {
        candidates
            .iter()
            .filter(|(rule, _)| filter(rule))
            .max_by(|(a, sa), (b, sb)| {
                sa.cmp(sb)
                    .then_with(|| sort_key(&b.metadata).cmp(&sort_key(&a.metadata)))
            })
            .map(|(rule, _)| *rule)
    };
    let has_selector = |rule: &DestinationRule| {
        rule.spec
            .workload_selector
            .as_ref()
            .is_some_and(|selector| !selector.match_labels.is_empty())
    };
    let in_namespace = |rule: &DestinationRule, namespace: &str| {
        namespace_of(&rule.metadata) == namespace && !has_selector(rule)
    };
    best(&|rule| {
        namespace_of(&rule.metadata) == proxy_namespace
            && rule
                .spec
                .workload_selector
                .as_ref()
                .is_some_and(|selector| {
                    !selector.match_labels.is_empty()
                        && selects(&selector.match_labels, &target.labels)
                })
    })
    .or_else(|| best(&|rule| in_namespace(rule, proxy_namespace)))
    .or_else(|| best(&|rule| in_namespace(rule, service_namespace)))
    .or_else(|| best(&|rule| in_namespace(rule, &mesh.root_namespace)))
}

/// The model's consistent hashing for the load balancer settings `lb` found at `path` (Istio
/// `LoadBalancerSettings.consistentHash`): the hash key (`httpHeaderName`, lowercased as HTTP
/// header names compare; `httpCookie` with `path` and `ttl` in ms; `useSourceIp`;
/// `httpQueryParameterName`) and the algorithm (`maglev` with `tableSize`, default 65537,
/// else `ringHash` with `minimumRingSize`, or the deprecated top-level `minimumRingSize`,
/// default 1024). `None` when `consistentHash` is absent, or has no key (reported).
/// With an `httpCookie` `ttl` the proxy generates the cookie for a request that lacks it (as
/// Envoy); without one such requests are balanced by the simple policy. Cookie `attributes`
/// are reported as unsupported.
pub(crate) fn consistent_hash(
    context: &mut Context<'_>,
    origin: &Origin<'_>,
    lb: &LoadBalancerSettings,
    path: &str,
) -> Option<ConsistentHash> {
    let spec = lb.consistent_hash.as_ref()?;
    let path = format!("{path}.consistentHash");
    let key = if let Some(name) = &spec.http_header_name {
        HashKey::HttpHeaderName {
            name: name.to_ascii_lowercase(),
        }
    } else if let Some(cookie) = &spec.http_cookie {
        if !cookie.attributes.is_empty() {
            context.warn(origin.unsupported(
                format!("{path}.httpCookie.attributes"),
                "the model's cookie key carries no attributes: a generated cookie has only \
                 Max-Age, Path and HttpOnly",
            ));
        }
        HashKey::HttpCookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl_ms: cookie.ttl.as_ref().map(millis),
        }
    } else if spec.use_source_ip == Some(true) {
        HashKey::UseSourceIp
    } else if let Some(name) = &spec.http_query_parameter_name {
        HashKey::HttpQueryParameterName { name: name.clone() }
    } else {
        context.warn(origin.unsupported(
            path,
            "no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName) is \
             set; the simple policy applies",
        ));
        return None;
    };
    let algorithm = match &spec.maglev {
        Some(maglev) => HashAlgorithm::Maglev {
            table_size: maglev.table_size.unwrap_or(DEFAULT_MAGLEV_TABLE_SIZE),
        },
        None => HashAlgorithm::RingHash {
            minimum_ring_size: spec
                .ring_hash
                .as_ref()
                .and_then(|ring| ring.minimum_ring_size)
                .or(spec.minimum_ring_size)
                .unwrap_or(DEFAULT_MINIMUM_RING_SIZE),
        },
    };
    Some(ConsistentHash { key, algorithm })
}

#[cfg(test)]
mod tests {
    use weft_proxy_config::{ConsistentHash, HashAlgorithm, HashKey};

    use crate::{ClusterView, ProxyTarget, build_proxy_config};

    const BASE: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: team
  labels: {app: client}
  annotations: {sidecar.istio.io/status: x}
status: {podIP: 10.0.1.1}
---
apiVersion: v1
kind: Service
metadata: {name: server, namespace: team}
spec:
  clusterIP: 10.96.0.2
  selector: {app: server}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#;

    /// The default cluster of `server` and the warnings, with `load_balancer` as the rule's.
    fn build(load_balancer: &str) -> (Option<ConsistentHash>, Vec<String>) {
        let rule = format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: server, namespace: team}}\nspec:\n  host: server.team.svc.cluster.local\n  trafficPolicy:\n    loadBalancer: {load_balancer}\n"
        );
        let view = ClusterView::from_yaml(&format!("{BASE}\n---\n{rule}")).unwrap();
        let target = ProxyTarget::for_pod(&view, "team", "client").unwrap();
        let output = build_proxy_config(&view, &target);
        let cluster = output
            .config
            .cluster("outbound|80||server.team.svc.cluster.local")
            .unwrap()
            .clone();
        let warnings = output
            .warnings
            .iter()
            .map(|w| w.field_path.clone())
            .collect();
        (cluster.consistent_hash, warnings)
    }

    #[test]
    fn every_hash_key_and_algorithm_is_translated_without_warnings() {
        let cases = [
            (
                "{consistentHash: {httpHeaderName: X-User}}",
                HashKey::HttpHeaderName {
                    name: "x-user".into(),
                },
                HashAlgorithm::RingHash {
                    minimum_ring_size: 1024,
                },
            ),
            (
                "{consistentHash: {useSourceIp: true, ringHash: {minimumRingSize: 4096}}}",
                HashKey::UseSourceIp,
                HashAlgorithm::RingHash {
                    minimum_ring_size: 4096,
                },
            ),
            (
                "{consistentHash: {httpQueryParameterName: user, maglev: {}}}",
                HashKey::HttpQueryParameterName {
                    name: "user".into(),
                },
                HashAlgorithm::Maglev { table_size: 65_537 },
            ),
            (
                "{consistentHash: {httpHeaderName: x, minimumRingSize: 2048}}",
                HashKey::HttpHeaderName { name: "x".into() },
                HashAlgorithm::RingHash {
                    minimum_ring_size: 2048,
                },
            ),
        ];
        for (lb, key, algorithm) in cases {
            let (hash, warnings) = build(lb);
            assert_eq!(hash, Some(ConsistentHash { key, algorithm }), "{lb}");
            assert!(warnings.is_empty(), "{lb}: {warnings:?}");
        }
    }

    #[test]
    fn cookie_keys_carry_path_and_ttl_and_only_attributes_are_reported() {
        let (hash, warnings) =
            build("{consistentHash: {httpCookie: {name: session, path: /, ttl: 30s}}}");
        assert_eq!(
            hash.map(|h| h.key),
            Some(HashKey::HttpCookie {
                name: "session".into(),
                path: Some("/".into()),
                ttl_ms: Some(30_000),
            })
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let (hash, warnings) = build("{consistentHash: {httpCookie: {name: session}}}");
        assert_eq!(
            hash.map(|h| h.key),
            Some(HashKey::HttpCookie {
                name: "session".into(),
                path: None,
                ttl_ms: None,
            }),
            "without ttl no cookie is generated: nothing to report"
        );
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_, warnings) = build(
            "{consistentHash: {httpCookie: {name: session, ttl: 0s, attributes: [{name: SameSite, value: Strict}]}}}",
        );
        assert_eq!(
            warnings,
            ["spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes"]
        );
    }

    #[test]
    fn without_consistent_hash_the_cluster_has_none() {
        let (hash, warnings) = build("{simple: ROUND_ROBIN}");
        assert_eq!(hash, None);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
