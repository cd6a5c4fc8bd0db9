//! Table-driven tests of rule matching and of the evaluation order.

use std::net::IpAddr;

use serde_json::{Value, json};
use weft_proxy_config::AuthorizationPolicy;

use super::{Decision, DecisionReason, authorize};
use crate::attributes::{RequestAttributes, TransportProtocol};
use crate::jwt::JwtIdentity;

const HEADERS: &[(&str, &str)] = &[
    ("User-Agent", "Mozilla/5.0"),
    ("x-user", "alice"),
    ("x-user", "bob"),
    ("x-empty", ""),
];

fn identity() -> JwtIdentity {
    JwtIdentity {
        issuer: "https://issuer.example.com".into(),
        subject: "alice".into(),
        audiences: vec!["svc-a".into(), "svc-b".into()],
        presenter: Some("web-app".into()),
        claims: json!({
            "iss": "https://issuer.example.com",
            "sub": "alice",
            "groups": ["admin", "dev"],
            "org": {"team": "core", "tier": 1},
            "email": "alice@example.com",
            "verified": true,
        }),
        rule: 0,
    }
}

fn ip(text: &str) -> Option<IpAddr> {
    text.parse().ok()
}

/// A mesh HTTP request from `foo/sleep` over mTLS, with a JWT.
fn http<'a>(jwt: &'a JwtIdentity) -> RequestAttributes<'a> {
    RequestAttributes {
        protocol: TransportProtocol::Http,
        source_principal: Some("cluster.local/ns/foo/sa/sleep"),
        source_ip: ip("10.0.0.5"),
        remote_ip: ip("203.0.113.7"),
        destination_ip: ip("10.0.1.1"),
        destination_port: 8080,
        sni: Some("outbound_.8000_._.httpbin.foo.svc.cluster.local"),
        host: Some("HTTPBin.foo:8000"),
        method: Some("GET"),
        path: Some("/status/200?admin=true"),
        headers: HEADERS,
        jwt: Some(jwt),
    }
}

fn policy(name: &str, action: &str, rules: Value) -> AuthorizationPolicy {
    let policy = json!({"name": name, "action": action, "rules": rules});
    serde_json::from_value(policy).unwrap()
}

/// Whether `rule` matches, observed through an ALLOW policy holding only it.
fn allow_matches(rule: &Value, request: &RequestAttributes<'_>) -> bool {
    let policies = [policy("ns/p", "ALLOW", json!([rule]))];
    authorize(&policies, request).allowed
}

/// Every field and operator of `Source`, `Operation` and `when`, on an HTTP request: the
/// cases are in `testdata/authz-rule-cases.yaml`.
#[test]
fn rule_fields_and_operators() {
    let text = include_str!("../../testdata/authz-rule-cases.yaml");
    let cases: Vec<Value> = serde_yaml::from_str(text).unwrap();
    assert!(cases.len() > 90, "the case file lost cases");
    let jwt = identity();
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let mut request = http(&jwt);
        match case.get("request").and_then(Value::as_str) {
            None => {}
            Some("plaintext") => request.source_principal = None,
            Some("anonymous") => request.jwt = None,
            Some("no_remote") => request.remote_ip = None,
            Some(other) => panic!("case {name:?}: unknown request change {other:?}"),
        }
        let want = case["matches"].as_bool().unwrap();
        assert_eq!(
            allow_matches(&case["rule"], &request),
            want,
            "case {name:?}"
        );
    }
}

/// DENY widens where ALLOW narrows: bad values are dropped (istiod's `checkError`).
#[test]
fn deny_drops_untranslatable_values() {
    let jwt = identity();
    let request = http(&jwt);
    let cases: &[(&str, Value, bool)] = &[
        (
            "bad ip dropped, good one decides",
            json!({"when": [{"key": "source.ip", "values": ["nope", "10.9.9.9"]}]}),
            false,
        ),
        (
            "only bad ip: condition vanishes",
            json!({"when": [{"key": "source.ip", "values": ["nope"]}]}),
            true,
        ),
        (
            "bad port dropped",
            json!({"when": [{"key": "destination.port", "values": ["http", "8080"]}]}),
            true,
        ),
        (
            "malformed header key: condition vanishes",
            json!({"when": [{"key": "request.headers", "values": ["x"]}]}),
            true,
        ),
        (
            "unknown key: rule skipped",
            json!({"when": [{"key": "source.user", "values": ["*"]}]}),
            false,
        ),
    ];
    for (name, rule, denied) in cases {
        let policies = [policy("ns/deny", "DENY", json!([rule]))];
        assert_eq!(
            !authorize(&policies, &request).allowed,
            *denied,
            "case {name:?}"
        );
    }
}

fn tcp<'a>() -> RequestAttributes<'a> {
    RequestAttributes {
        protocol: TransportProtocol::Tcp,
        source_principal: Some("cluster.local/ns/foo/sa/sleep"),
        source_ip: ip("10.0.0.5"),
        destination_ip: ip("10.0.1.1"),
        destination_port: 9000,
        ..RequestAttributes::default()
    }
}

/// HTTP-only fields on TCP: an ALLOW rule that has one matches nothing; a DENY rule loses
/// them and matches more (Istio "TCP traffic" task and istiod's RBAC generation).
#[test]
fn tcp_http_only_fields() {
    let http_only: &[(&str, Value)] = &[
        ("methods", json!({"to": [{"methods": ["GET"]}]})),
        ("not methods", json!({"to": [{"not_methods": ["GET"]}]})),
        ("paths", json!({"to": [{"paths": ["/*"]}]})),
        ("hosts", json!({"to": [{"hosts": ["*"]}]})),
        (
            "request principals",
            json!({"from": [{"request_principals": ["*"]}]}),
        ),
        (
            "header condition",
            json!({"when": [{"key": "request.headers[x]", "values": ["*"]}]}),
        ),
        (
            "claims condition",
            json!({"when": [{"key": "request.auth.claims[groups]", "values": ["a"]}]}),
        ),
        (
            "audiences condition",
            json!({"when": [{"key": "request.auth.audiences", "values": ["a"]}]}),
        ),
        (
            "presenter condition",
            json!({"when": [{"key": "request.auth.presenter", "values": ["a"]}]}),
        ),
        (
            "request principal condition",
            json!({"when": [{"key": "request.auth.principal", "values": ["*"]}]}),
        ),
        (
            "mixed with a matching port",
            json!({"to": [{"ports": [9000], "methods": ["GET"]}]}),
        ),
    ];
    let request = tcp();
    for (name, rule) in http_only {
        let allow = [policy("ns/allow", "ALLOW", json!([rule]))];
        let decision = authorize(&allow, &request);
        assert!(!decision.allowed, "ALLOW with {name} must not match TCP");
        assert_eq!(
            decision.reason,
            DecisionReason::NoAllowPolicyMatched,
            "{name}"
        );

        let deny = [policy("ns/deny", "DENY", json!([rule]))];
        let decision = authorize(&deny, &request);
        assert!(!decision.allowed, "DENY with {name} must deny all TCP");
        assert_eq!(decision.policy, Some("ns/deny"), "{name}");
    }
    // The TCP-capable fields still decide after HTTP-only ones are dropped from a DENY rule.
    let deny = [policy(
        "ns/deny",
        "DENY",
        json!([{"to": [{"ports": [9001], "methods": ["GET"]}]}]),
    )];
    assert!(
        authorize(&deny, &request).allowed,
        "port 9001 rule must not deny port 9000"
    );
    // A rule with only TCP fields works on TCP.
    let allow = [policy(
        "ns/allow",
        "ALLOW",
        json!([{"from": [{"namespaces": ["foo"]}], "to": [{"ports": [9000]}],
                "when": [{"key": "connection.sni", "not_values": ["*"]}]}]),
    )];
    assert!(authorize(&allow, &request).allowed);
    // One HTTP-only source spoils the whole ALLOW rule, even if another source matches.
    let allow = [policy(
        "ns/allow",
        "ALLOW",
        json!([{"from": [{"namespaces": ["foo"]}, {"request_principals": ["*"]}]}]),
    )];
    assert!(!authorize(&allow, &request).allowed);
    // The same rule works on HTTP.
    let jwt = identity();
    assert!(authorize(&allow, &http(&jwt)).allowed);
}

/// `(allowed, deciding policy, reason)`.
type Expected = (bool, Option<&'static str>, DecisionReason);

#[test]
fn evaluation_order() {
    let jwt = identity();
    let request = http(&jwt);
    let everything = json!([{}]);
    let nothing = json!([{"to": [{"paths": ["/never"]}]}]);
    let decision = |policies: &[AuthorizationPolicy]| {
        let decision = authorize(policies, &request);
        (
            decision.allowed,
            decision.policy.map(str::to_owned),
            decision.reason,
        )
    };
    let cases: &[(&str, Vec<AuthorizationPolicy>, Expected)] = &[
        (
            "no policies",
            vec![],
            (true, None, DecisionReason::NoAllowPolicies),
        ),
        (
            "custom before deny and allow",
            vec![
                policy("a/allow", "ALLOW", everything.clone()),
                policy("b/deny", "DENY", everything.clone()),
                policy("c/custom", "CUSTOM", everything.clone()),
            ],
            (false, Some("c/custom"), DecisionReason::CustomUnsupported),
        ),
        (
            "custom without a provider denies only what its rules match (istiod >= 1.20)",
            vec![
                policy("a/allow", "ALLOW", everything.clone()),
                policy("c/custom", "CUSTOM", nothing.clone()),
            ],
            (true, Some("a/allow"), DecisionReason::AllowedByPolicy),
        ),
        (
            "deny before allow",
            vec![
                policy("a/allow", "ALLOW", everything.clone()),
                policy("b/deny", "DENY", everything.clone()),
            ],
            (false, Some("b/deny"), DecisionReason::DeniedByPolicy),
        ),
        (
            "non-matching deny, no allow",
            vec![policy("b/deny", "DENY", nothing.clone())],
            (true, None, DecisionReason::NoAllowPolicies),
        ),
        (
            "empty deny matches nothing",
            vec![policy("b/deny", "DENY", json!([]))],
            (true, None, DecisionReason::NoAllowPolicies),
        ),
        (
            "empty allow denies everything",
            vec![policy("a/allow-nothing", "ALLOW", json!([]))],
            (false, None, DecisionReason::NoAllowPolicyMatched),
        ),
        (
            "rules [{}] allows everything",
            vec![policy("a/allow-all", "ALLOW", everything.clone())],
            (true, Some("a/allow-all"), DecisionReason::AllowedByPolicy),
        ),
        (
            "any allow policy may match",
            vec![
                policy("a/allow-nothing", "ALLOW", json!([])),
                policy("b/allow-paths", "ALLOW", nothing.clone()),
                policy(
                    "c/allow-get",
                    "ALLOW",
                    json!([{"to": [{"methods": ["GET"]}]}]),
                ),
            ],
            (true, Some("c/allow-get"), DecisionReason::AllowedByPolicy),
        ),
        (
            "audit alone never denies",
            vec![policy("a/audit", "AUDIT", everything.clone())],
            (true, None, DecisionReason::NoAllowPolicies),
        ),
        (
            "audit does not count as allow",
            vec![
                policy("a/audit", "AUDIT", everything.clone()),
                policy("b/allow", "ALLOW", nothing.clone()),
            ],
            (false, None, DecisionReason::NoAllowPolicyMatched),
        ),
    ];
    for (name, policies, want) in cases {
        let (allowed, policy, reason) = decision(policies);
        assert_eq!(
            (allowed, policy.as_deref(), reason),
            (want.0, want.1, want.2),
            "case {name:?}"
        );
    }
}

#[test]
fn audit_is_recorded_beside_the_decision() {
    let jwt = identity();
    let request = http(&jwt);
    let policies = [
        policy(
            "a/audit-post",
            "AUDIT",
            json!([{"to": [{"methods": ["POST"]}]}]),
        ),
        policy(
            "b/audit-get",
            "AUDIT",
            json!([{"to": [{"methods": ["GET"]}]}]),
        ),
        policy("c/deny", "DENY", json!([{}])),
    ];
    let decision = authorize(&policies, &request);
    assert_eq!(
        decision,
        Decision {
            allowed: false,
            policy: Some("c/deny"),
            reason: DecisionReason::DeniedByPolicy,
            audit: Some("b/audit-get"),
        }
    );
    let decision = authorize(&policies[..1], &request);
    assert_eq!(decision.audit, None);
    assert!(decision.allowed);
}
