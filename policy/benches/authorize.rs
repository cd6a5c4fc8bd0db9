//! `authorize` on a realistic HTTP request against 50 rules in five policies (1 AUDIT, 2 DENY,
//! 2 ALLOW), arranged so that nothing short-circuits early: no DENY rule matches and only the
//! last ALLOW rule does. Target (the policy-engine issue): under 5 µs per request.
//!
//! Run: `cargo bench -p weft-policy --bench authorize`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use weft_policy::{JwtIdentity, RequestAttributes, TransportProtocol, authorize};
use weft_proxy_config::AuthorizationPolicy;

fn policy(name: &str, action: &str, rules: Vec<Value>) -> AuthorizationPolicy {
    serde_json::from_value(json!({"name": name, "action": action, "rules": rules}))
        .unwrap_or_default()
}

/// A rule that tests several fields and fails on the last one it checks.
fn near_miss(index: usize) -> Value {
    json!({
        "from": [
            {"principals": [format!("cluster.local/ns/team-{index}/sa/*")]},
            {"namespaces": ["frontend", "checkout"], "ip_blocks": ["10.0.0.0/16"]},
        ],
        "to": [{
            "hosts": ["*.shop.example.com", "shop.example.com"],
            "methods": ["GET", "POST"],
            "paths": [format!("/api/v{index}/*"), "/internal/*"],
        }],
        "when": [
            {"key": "request.headers[x-tenant]", "values": ["acme", "globex*"]},
            {"key": "request.auth.claims[groups]", "values": [format!("group-{index}")]},
        ],
    })
}

fn policies() -> Vec<AuthorizationPolicy> {
    let audit = (0..5).map(near_miss).collect();
    let deny_a = (5..15)
        .map(|index| {
            json!({
                "from": [{"not_namespaces": ["shop", "frontend", format!("ns-{index}")]}],
                "to": [{"paths": [format!("/admin/{index}/*")]}],
            })
        })
        .collect();
    let deny_b = (15..25)
        .map(|index| {
            json!({
                "when": [
                    {"key": "remote.ip", "values": [format!("192.0.2.{index}/32")]},
                    {"key": "request.headers[user-agent]", "values": ["*bot*"]},
                ],
            })
        })
        .collect();
    let allow_a = (25..37).map(near_miss).collect();
    let mut allow_b: Vec<Value> = (37..49).map(near_miss).collect();
    allow_b.push(json!({
        "from": [{"request_principals": ["https://issuer.example.com/*"], "namespaces": ["frontend"]}],
        "to": [{"methods": ["GET"], "paths": ["/api/v2/products/*"], "ports": [8080]}],
        "when": [{"key": "request.auth.claims[groups]", "values": ["customers"]}],
    }));
    vec![
        policy("shop/audit-writes", "AUDIT", audit),
        policy("shop/deny-admin", "DENY", deny_a),
        policy("shop/deny-bots", "DENY", deny_b),
        policy("shop/allow-teams", "ALLOW", allow_a),
        policy("shop/allow-customers", "ALLOW", allow_b),
    ]
}

const HEADERS: &[(&str, &str)] = &[
    (":authority", "shop.example.com"),
    ("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
    ("accept", "application/json"),
    ("x-request-id", "5f0c6f3e-8d7f-4c2c-9a51-1d2f0c1e7b44"),
    ("x-tenant", "initech"),
    ("x-forwarded-for", "203.0.113.7"),
    ("authorization", "Bearer eyJhbGciOi..."),
];

fn bench_authorize(c: &mut Criterion) {
    let policies = policies();
    let rules: usize = policies.iter().map(|policy| policy.rules.len()).sum();
    assert_eq!(rules, 50);
    let jwt = JwtIdentity {
        issuer: "https://issuer.example.com".into(),
        subject: "user-42".into(),
        audiences: vec!["shop".into()],
        presenter: None,
        claims: json!({"iss": "https://issuer.example.com", "sub": "user-42", "groups": ["customers"]}),
        rule: 0,
    };
    let ip = |text: &str| text.parse::<IpAddr>().ok();
    let request = RequestAttributes {
        protocol: TransportProtocol::Http,
        source_principal: Some("cluster.local/ns/frontend/sa/web"),
        source_ip: ip("10.0.3.14"),
        remote_ip: ip("203.0.113.7"),
        destination_ip: ip("10.0.9.2"),
        destination_port: 8080,
        sni: None,
        host: Some("shop.example.com"),
        method: Some("GET"),
        path: Some("/api/v2/products/1234?currency=EUR"),
        headers: HEADERS,
        jwt: Some(&jwt),
    };
    let decision = authorize(&policies, &request);
    assert!(decision.allowed);
    assert_eq!(decision.policy, Some("shop/allow-customers"));
    c.bench_function("authorize_50_rules_http", |b| {
        b.iter(|| authorize(black_box(&policies), black_box(&request)))
    });
    // The same policies for a plain TCP connection: DENY rules lose their HTTP-only fields
    // (none matches this peer anyway) and every ALLOW rule uses HTTP-only fields, so none is
    // usable and the connection is denied; nothing short-circuits.
    let connection = RequestAttributes {
        protocol: TransportProtocol::Tcp,
        host: None,
        method: None,
        path: None,
        headers: &[],
        jwt: None,
        ..request
    };
    let decision = authorize(&policies, &connection);
    assert!(!decision.allowed);
    assert_eq!(decision.policy, None);
    c.bench_function("authorize_50_rules_tcp", |b| {
        b.iter(|| authorize(black_box(&policies), black_box(&connection)))
    });
}

criterion_group!(benches, bench_authorize);
criterion_main!(benches);
