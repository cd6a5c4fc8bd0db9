//! Data path: RequestAuthentication and AuthorizationPolicy on the wire. A JWT from an inline
//! JWKS: a valid token passes, an expired token or one from an unknown issuer gets 401, no
//! token passes unless an AuthorizationPolicy requires a request principal (then 403); ALLOW
//! by JWT claims and audiences. A token in a cookie (`fromCookies`) sets the request principal
//! and its claims reach the app as headers (`outputClaimToHeaders`), replacing spoofed ones.
//! `remoteIpBlocks` test the `X-Forwarded-For` client (the right-most entry, Istio's default
//! `numTrustedProxies` 0). On a TCP port a DENY policy closes the connection, and a DENY rule
//! with only HTTP fields closes every connection (Istio drops those fields on TCP).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use weft_e2e::{NS, apply_watching, count, host, mesh_or_skip, reviews_mesh, reviews_requests};
use weft_lab::jwt::{TestIssuer, now};
use weft_lab::mesh::{LocalMesh, WorkloadSpec};

const ISSUER: &str = "https://issuer.weft.test";
const SERVERS: [&str; 2] = ["reviews1", "reviews2"];

/// Sends `requests` GETs of `/reviews/0` from `client` to `reviews` with `headers`.
fn load(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    headers: &[(&str, &str)],
    requests: usize,
) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, requests, 2)
}

fn request_authentication(jwks: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    jwks: '{jwks}'\n"
    )
}

#[test]
fn jwt_valid_passes_expired_or_unknown_issuer_gets_401() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(issuer.jwks()),
    );

    let valid = format!("Bearer {}", issuer.token("alice", now() + 3600).unwrap());
    let report = load(&mesh, vip, &[("authorization", &valid)], 10);
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "a valid token must pass: {report}\n{}",
        mesh.log("reviews1-proxy")
    );

    // An hour past `exp`: well beyond the 60 s clock skew Envoy allows.
    let expired = format!("Bearer {}", issuer.token("alice", now() - 3600).unwrap());
    let report = load(&mesh, vip, &[("authorization", &expired)], 10);
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "an expired token must get 401: {report}"
    );

    // Signed with the right key, but `iss` names an issuer no jwtRule trusts.
    let stranger = issuer
        .sign(&serde_json::json!({
            "iss": "https://stranger.weft.test",
            "sub": "mallory",
            "exp": now() + 3600,
        }))
        .unwrap();
    let report = load(
        &mesh,
        vip,
        &[("authorization", &format!("Bearer {stranger}"))],
        10,
    );
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "a token from an unknown issuer must get 401: {report}"
    );

    // A token signed by another key for the trusted issuer.
    let forger = TestIssuer::new(ISSUER).unwrap();
    let forged = format!("Bearer {}", forger.token("alice", now() + 3600).unwrap());
    let report = load(&mesh, vip, &[("authorization", &forged)], 10);
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "a token whose signature does not verify must get 401: {report}"
    );

    let report = load(&mesh, vip, &[], 10);
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "no token is allowed without an AuthorizationPolicy: {report}"
    );
}

#[test]
fn request_principal_required_denies_requests_without_token() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let policies = format!(
        "{}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: require-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  action: ALLOW\n  rules:\n  - from:\n    - source: {{requestPrincipals: [\"{ISSUER}/*\"]}}\n",
        request_authentication(issuer.jwks())
    );
    apply_watching(&mesh, &SERVERS, "auth.yaml", &policies);

    let report = load(&mesh, vip, &[], 10);
    assert_eq!(
        count(&report, "status", "403"),
        10,
        "without a token the ALLOW policy on requestPrincipals must deny: {report}"
    );
    let valid = format!("Bearer {}", issuer.token("alice", now() + 3600).unwrap());
    let report = load(&mesh, vip, &[("authorization", &valid)], 10);
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "a valid token carries the required request principal: {report}"
    );
    let expired = format!("Bearer {}", issuer.token("alice", now() - 3600).unwrap());
    let report = load(&mesh, vip, &[("authorization", &expired)], 10);
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "authentication fails before authorization: {report}"
    );
}

#[test]
fn tcp_deny_policy_closes_the_connection() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(5);
    mesh.write_config(
        "svc-db.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  hosts: [db.{NS}.svc.cluster.local]\n  addresses: [{vip}]\n  ports: [{{number: 9080, name: tcp, protocol: TCP}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: db}}}}\n"
        ),
    )
    .unwrap();
    mesh.add_workload(WorkloadSpec::app("db1", NS, "db", "v1", &[]))
        .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let db = host("db");
    let url = format!("http://{db}:9080/db/0");
    // The sample app speaks HTTP; both sidecars see only a TCP stream.
    let (open, _) = weft_e2e::eventually(
        std::time::Duration::from_secs(10),
        || mesh.load("client", &url, &[(&db, vip)], &[], 5, 1).unwrap(),
        |r| count(r, "status", "200") == 5,
    );
    assert_eq!(
        count(&open, "status", "200"),
        5,
        "TCP before the policy: {open}"
    );

    let deny = |rule: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: db-deny, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: db}}}}\n  action: DENY\n  rules:\n  - {rule}\n"
        )
    };
    let get = || mesh.load("client", &url, &[(&db, vip)], &[], 5, 1).unwrap();

    // A DENY rule naming another principal does not match the client.
    let other =
        format!("{{from: [{{source: {{principals: [\"cluster.local/ns/{NS}/sa/nobody\"]}}}}]}}");
    apply_watching(&mesh, &["db1"], "authz-db.yaml", &deny(&other));
    let open = get();
    assert_eq!(
        count(&open, "status", "200"),
        5,
        "DENY for another principal: {open}"
    );

    let client =
        format!("{{from: [{{source: {{principals: [\"cluster.local/ns/{NS}/sa/client\"]}}}}]}}");
    apply_watching(&mesh, &["db1"], "authz-db.yaml", &deny(&client));
    let closed = get();
    assert_eq!(
        count(&closed, "status", "0"),
        5,
        "a TCP DENY must close the connection without an answer: {closed}\n{}",
        mesh.log("db1-proxy")
    );

    // Istio drops HTTP-only fields from a DENY rule on TCP, so the rule matches more: a DENY
    // of `methods: [GET]` closes every TCP connection.
    apply_watching(
        &mesh,
        &["db1"],
        "authz-db.yaml",
        &deny("{to: [{operation: {methods: [GET]}}]}"),
    );
    let closed = get();
    assert_eq!(
        count(&closed, "status", "0"),
        5,
        "a DENY with only HTTP fields denies every TCP connection: {closed}"
    );
}

#[test]
fn authorization_by_jwt_claims_and_audiences() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let policies = format!(
        "{}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: admins-only, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  action: ALLOW\n  rules:\n  - when:\n    - {{key: \"request.auth.claims[groups]\", values: [admin]}}\n    - {{key: request.auth.audiences, values: [reviews]}}\n",
        request_authentication(issuer.jwks())
    );
    apply_watching(&mesh, &SERVERS, "auth.yaml", &policies);
    let token = |groups: &[&str], audience: &str| {
        let signed = issuer
            .sign(&serde_json::json!({
                "iss": ISSUER,
                "sub": "alice",
                "aud": audience,
                "groups": groups,
                "exp": now() + 3600,
            }))
            .unwrap();
        format!("Bearer {signed}")
    };
    let admin = token(&["dev", "admin"], "reviews");
    let report = load(&mesh, vip, &[("authorization", &admin)], 10);
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "groups contains admin and aud is reviews: {report}"
    );
    let developer = token(&["dev"], "reviews");
    let report = load(&mesh, vip, &[("authorization", &developer)], 10);
    assert_eq!(
        count(&report, "status", "403"),
        10,
        "a token without the admin group is denied: {report}"
    );
    let elsewhere = token(&["admin"], "ratings");
    let report = load(&mesh, vip, &[("authorization", &elsewhere)], 10);
    assert_eq!(
        count(&report, "status", "403"),
        10,
        "a token for another audience is denied: {report}"
    );
}

#[test]
fn jwt_from_cookie_sets_the_principal_and_claims_reach_the_app_as_headers() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let jwks = issuer.jwks();
    // Only alice may read reviews; `/public/` is open to anyone (to see what reaches the app
    // without a token).
    let policies = format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: reviews-jwt, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  jwtRules:
  - issuer: {ISSUER}
    jwks: '{jwks}'
    fromCookies: [session]
    outputClaimToHeaders:
    - {{header: x-jwt-sub, claim: sub}}
    - {{header: x-jwt-team, claim: org.team}}
    - {{header: x-jwt-level, claim: level}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: alice-only, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: ALLOW
  rules:
  - from:
    - source: {{requestPrincipals: ["{ISSUER}/alice"]}}
  - to:
    - operation: {{paths: ["/public/*"]}}
"#
    );
    apply_watching(&mesh, &SERVERS, "auth.yaml", &policies);
    let token = |subject: &str, expires_at: u64| {
        issuer
            .sign(&serde_json::json!({
                "iss": ISSUER,
                "sub": subject,
                "org": {"team": "core"},
                "level": 3,
                "exp": expires_at,
            }))
            .unwrap()
    };
    let echo = ("x-weft-echo", "x-jwt-sub,x-jwt-team,x-jwt-level");

    let alice = format!("theme=dark; session={}", token("alice", now() + 3600));
    let report = load(
        &mesh,
        vip,
        &[("cookie", &alice), ("x-jwt-sub", "mallory"), echo],
        10,
    );
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "a valid token in the session cookie carries the principal alice: {report}\n{}",
        mesh.log("reviews1-proxy")
    );
    for header in ["x-jwt-sub=alice", "x-jwt-team=core", "x-jwt-level=3"] {
        assert_eq!(
            count(&report, "echoed", header),
            10,
            "the app must receive {header} (a spoofed x-jwt-sub is replaced): {report}"
        );
    }

    let bob = format!("session={}", token("bob", now() + 3600));
    let report = load(&mesh, vip, &[("cookie", &bob)], 10);
    assert_eq!(
        count(&report, "status", "403"),
        10,
        "bob's valid token gives the principal bob, which the policy does not allow: {report}"
    );

    let expired = format!("session={}", token("alice", now() - 3600));
    let report = load(&mesh, vip, &[("cookie", &expired)], 10);
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "an expired token in the cookie must get 401: {report}"
    );

    // The rule reads only the cookie: alice's token in `Authorization` is no token.
    let bearer = format!("Bearer {}", token("alice", now() + 3600));
    let report = load(&mesh, vip, &[("authorization", &bearer)], 10);
    assert_eq!(
        count(&report, "status", "403"),
        10,
        "a bearer token is not read by a rule with only fromCookies: {report}"
    );

    // Without a token, a client-supplied claim header never reaches the app.
    let report = reviews_requests(
        &mesh,
        vip,
        "/public/reviews",
        &[("x-jwt-sub", "alice"), ("x-jwt-team", "core"), echo],
        10,
        2,
    );
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "the public path is open: {report}"
    );
    for header in ["x-jwt-sub", "x-jwt-team"] {
        assert_eq!(
            count(&report, "echoed", header),
            10,
            "a spoofed {header} must be removed: {report}"
        );
    }
}

#[test]
fn remote_ip_blocks_match_the_forwarded_for_client() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let policy = format!(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-documentation-net, namespace: {NS}}}
spec:
  selector: {{matchLabels: {{app: reviews}}}}
  action: DENY
  rules:
  - from:
    - source: {{remoteIpBlocks: ["203.0.113.0/24"]}}
"#
    );
    apply_watching(&mesh, &SERVERS, "authz.yaml", &policy);
    let cases = [
        (
            Some("203.0.113.7"),
            "403",
            "the client 203.0.113.7 is in the denied block",
        ),
        (
            Some("203.0.113.7, 198.51.100.1"),
            "200",
            "with numTrustedProxies 0 the right-most entry is the client",
        ),
        (
            Some("198.51.100.1"),
            "200",
            "a client outside the block passes",
        ),
        (
            None,
            "200",
            "without the header the client is the peer, a mesh address",
        ),
    ];
    for (forwarded_for, status, why) in cases {
        let headers: Vec<(&str, &str)> = forwarded_for
            .map(|value| ("x-forwarded-for", value))
            .into_iter()
            .collect();
        let report = load(&mesh, vip, &headers, 6);
        assert_eq!(
            count(&report, "status", status),
            6,
            "X-Forwarded-For {forwarded_for:?}: {why}: {report}"
        );
    }
}
