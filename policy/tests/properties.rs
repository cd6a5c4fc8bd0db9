//! Properties of `authorize` over generated requests and policies (Istio's evaluation order).
#![allow(clippy::unwrap_used)] // Test code: a broken fixture should fail loudly.

use proptest::prelude::*;
use serde_json::json;
use weft_policy::{RequestAttributes, TransportProtocol, authorize};
use weft_proxy_config::AuthorizationPolicy;

/// A small vocabulary so that generated rules and requests often meet.
fn word() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["foo", "bar", "*", "f*", "*o", "GET", "/a", "/a/*"])
        .prop_map(str::to_owned)
}

fn rule() -> impl Strategy<Value = serde_json::Value> {
    (
        prop::collection::vec(word(), 0..2),
        prop::collection::vec(word(), 0..2),
        prop::collection::vec(word(), 0..2),
        prop::collection::vec(word(), 0..2),
        prop::option::of(word()),
    )
        .prop_map(|(namespaces, not_principals, methods, paths, header)| {
            let when: Vec<_> = header
                .into_iter()
                .map(|value| json!({"key": "request.headers[x-user]", "values": [value]}))
                .collect();
            json!({
                "from": [{"namespaces": namespaces, "not_principals": not_principals}],
                "to": [{"methods": methods, "paths": paths}],
                "when": when,
            })
        })
}

fn policy() -> impl Strategy<Value = AuthorizationPolicy> {
    (
        prop::sample::select(vec!["ALLOW", "DENY", "AUDIT"]),
        prop::collection::vec(rule(), 0..3),
        0u32..1000,
    )
        .prop_map(|(action, rules, id)| {
            serde_json::from_value(
                json!({"name": format!("ns/p{id}"), "action": action, "rules": rules}),
            )
            .unwrap()
        })
}

fn deny_all() -> AuthorizationPolicy {
    serde_json::from_value(json!({"name": "ns/deny-all", "action": "DENY", "rules": [{}]})).unwrap()
}

proptest! {
    #[test]
    fn order_and_audit(
        policies in prop::collection::vec(policy(), 0..5),
        namespace in word(),
        method in word(),
        path in word(),
        user in word(),
        tcp in any::<bool>(),
    ) {
        let principal = format!("cluster.local/ns/{namespace}/sa/x");
        let headers = [("x-user", user.as_str())];
        let request = RequestAttributes {
            protocol: if tcp { TransportProtocol::Tcp } else { TransportProtocol::Http },
            source_principal: Some(&principal),
            method: Some(&method),
            path: Some(&path),
            headers: &headers,
            ..RequestAttributes::default()
        };
        let decision = authorize(&policies, &request);

        // AUDIT policies never change the decision.
        let without_audit: Vec<_> = policies
            .iter()
            .filter(|policy| policy.action != weft_proxy_config::AuthorizationAction::Audit)
            .cloned()
            .collect();
        prop_assert_eq!(authorize(&without_audit, &request).allowed, decision.allowed);

        // A matching DENY policy wins over anything.
        let mut with_deny = policies.clone();
        with_deny.push(deny_all());
        prop_assert!(!authorize(&with_deny, &request).allowed);

        // Without ALLOW policies, only DENY can refuse.
        let has_allow = policies
            .iter()
            .any(|policy| policy.action == weft_proxy_config::AuthorizationAction::Allow);
        if !has_allow && decision.policy.is_none() {
            prop_assert!(decision.allowed);
        }
        // An allowed request under ALLOW policies names the ALLOW policy that matched.
        if has_allow && decision.allowed {
            prop_assert!(decision.policy.is_some());
        }
    }
}
