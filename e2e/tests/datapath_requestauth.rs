//! Data path: the RequestAuthentication `jwtRules` fields that say which tokens count and what
//! the application sees. `audiences`: a token for another audience (or with none) gets 401.
//! `fromHeaders` and `fromParams`: the token is read only from the named header (after its
//! prefix) and query parameter, no longer from `Authorization: Bearer`; without them the
//! default `access_token` parameter is read. `forwardOriginalToken`: false (the default)
//! removes the token header before the application, true keeps it. `outputPayloadToHeader`:
//! the application receives the token's base64url payload in that header.
//! Then scoping: a `resolution: NONE` ServiceEntry lets traffic to its addresses pass to the
//! dialled address under `REGISTRY_ONLY`, and Sidecar `egress` hosts with `*` (`ns/*`,
//! `*/host`) limit what a proxy reaches by namespace and by host.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;
use std::time::Duration;

use base64::Engine as _;
use weft_e2e::{
    NS, apply, apply_watching, count, eventually, mesh_or_skip, outside_server, reviews_mesh,
    reviews_requests, sidecar_yaml,
};
use weft_lab::jwt::{TestIssuer, now};
use weft_lab::mesh::{LocalMesh, WorkloadSpec};

const ISSUER: &str = "https://issuer.weft.test";
const SERVERS: [&str; 2] = ["reviews1", "reviews2"];
/// Requests per case, two at a time (both reviews endpoints answer).
const REQUESTS: usize = 6;

/// The RequestAuthentication of `reviews` with one jwtRule for [`ISSUER`] whose extra fields
/// are `fields` (YAML lines indented by 4, each ending in a newline).
fn request_authentication(jwks: &str, fields: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    jwks: '{jwks}'\n{fields}"
    )
}

/// An ALLOW policy on `reviews` that needs a request principal of [`ISSUER`]: a request
/// without an accepted token gets 403, one with an invalid token 401 (authentication first).
fn require_principal() -> String {
    format!(
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: require-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  action: ALLOW\n  rules:\n  - from:\n    - source: {{requestPrincipals: [\"{ISSUER}/*\"]}}\n"
    )
}

/// Sends [`REQUESTS`] GETs of `path` to `reviews` with `headers` and asserts every one got
/// `status`; returns the report.
fn expect(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    path: &str,
    headers: &[(&str, &str)],
    status: &str,
    why: &str,
) -> serde_json::Value {
    let report = reviews_requests(mesh, vip, path, headers, REQUESTS, 2);
    assert_eq!(
        count(&report, "status", status),
        REQUESTS as u64,
        "{why}: expected {status} for {path} with {headers:?}: {report}\n{}",
        mesh.log("reviews1-proxy")
    );
    report
}

#[test]
fn audiences_from_headers_and_from_params_choose_the_accepted_tokens() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let with_audience = |audience: serde_json::Value| {
        let mut claims = serde_json::json!({"iss": ISSUER, "sub": "alice", "exp": now() + 3600});
        if !audience.is_null() {
            claims["aud"] = audience;
        }
        format!("Bearer {}", issuer.sign(&claims).unwrap())
    };

    // audiences: a JWT containing any of them is accepted; any other gets 401.
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(
            issuer.jwks(),
            "    audiences: [bookstore_web.apps.weft.test, reviews.demo.svc.cluster.local]\n",
        ),
    );
    let cases = [
        (
            serde_json::json!("bookstore_web.apps.weft.test"),
            "200",
            "aud is one of the audiences",
        ),
        (
            serde_json::json!(["ratings", "reviews.demo.svc.cluster.local"]),
            "200",
            "aud lists one of the audiences among others",
        ),
        (
            serde_json::json!("ratings"),
            "401",
            "a token for another audience",
        ),
        (
            serde_json::Value::Null,
            "401",
            "a token without aud when the rule names audiences",
        ),
    ];
    for (audience, status, why) in cases {
        let token = with_audience(audience);
        expect(
            &mesh,
            vip,
            "/reviews/0",
            &[("authorization", &token)],
            status,
            why,
        );
    }

    // fromHeaders and fromParams replace the default locations (Authorization: Bearer and
    // access_token); a policy needing a request principal tells "no token read" (403) from
    // "token rejected" (401).
    let fields = "    fromHeaders:\n    - {name: x-jwt-assertion, prefix: \"Token \"}\n    fromParams: [jwt]\n";
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &format!(
            "{}{}",
            request_authentication(issuer.jwks(), fields),
            require_principal()
        ),
    );
    let valid = issuer.token("alice", now() + 3600).unwrap();
    let expired = issuer.token("alice", now() - 3600).unwrap();
    let prefixed = |token: &str| format!("Token {token}");
    let echo = ("x-weft-echo", "x-jwt-assertion");

    let report = expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("x-jwt-assertion", &prefixed(&valid)), echo],
        "200",
        "a valid token in the fromHeaders header after its prefix",
    );
    assert_eq!(
        count(&report, "echoed", "x-jwt-assertion"),
        REQUESTS as u64,
        "forwardOriginalToken false: the token header is removed before the app: {report}"
    );
    expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("x-jwt-assertion", &prefixed(&expired))],
        "401",
        "an expired token in the fromHeaders header",
    );
    expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("x-jwt-assertion", &valid)],
        "403",
        "a header value without the prefix holds no token",
    );
    expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &format!("Bearer {valid}"))],
        "403",
        "Authorization: Bearer is not read when fromHeaders is set",
    );
    expect(
        &mesh,
        vip,
        &format!("/reviews/0?page=2&jwt={valid}"),
        &[],
        "200",
        "a valid token in the fromParams parameter",
    );
    expect(
        &mesh,
        vip,
        &format!("/reviews/0?jwt={expired}"),
        &[],
        "401",
        "an expired token in the fromParams parameter",
    );
    expect(
        &mesh,
        vip,
        &format!("/reviews/0?access_token={valid}"),
        &[],
        "403",
        "access_token is not read when fromParams is set",
    );

    // Without fromHeaders/fromParams the default parameter access_token is read.
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &format!(
            "{}{}",
            request_authentication(issuer.jwks(), ""),
            require_principal()
        ),
    );
    expect(
        &mesh,
        vip,
        &format!("/reviews/0?access_token={valid}"),
        &[],
        "200",
        "the default query parameter access_token",
    );
    expect(
        &mesh,
        vip,
        &format!("/reviews/0?access_token={expired}"),
        &[],
        "401",
        "an expired token in access_token",
    );
}

#[test]
fn forward_original_token_and_output_payload_to_header_shape_what_the_app_sees() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let token = issuer
        .sign(&serde_json::json!({
            "iss": ISSUER,
            "sub": "alice",
            "groups": ["dev"],
            "exp": now() + 3600,
        }))
        .unwrap();
    let bearer = format!("Bearer {token}");
    let payload = token.split('.').nth(1).unwrap();
    let decoded: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded["sub"], "alice", "the payload segment is base64url");
    let echo = ("x-weft-echo", "authorization,x-jwt-payload");

    // forwardOriginalToken false (the default): the token header does not reach the app;
    // outputPayloadToHeader: the app receives the payload, base64url-encoded.
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(issuer.jwks(), "    outputPayloadToHeader: x-jwt-payload\n"),
    );
    let report = expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &bearer), echo],
        "200",
        "a valid token",
    );
    assert_eq!(
        count(&report, "echoed", "authorization"),
        REQUESTS as u64,
        "forwardOriginalToken false: Authorization is removed before the app: {report}"
    );
    assert_eq!(
        count(&report, "echoed", &format!("x-jwt-payload={payload}")),
        REQUESTS as u64,
        "outputPayloadToHeader: the app receives the base64url payload: {report}"
    );
    let report = expect(
        &mesh,
        vip,
        "/reviews/0",
        &[echo],
        "200",
        "no token is allowed without an AuthorizationPolicy",
    );
    assert_eq!(
        count(&report, "echoed", "x-jwt-payload"),
        REQUESTS as u64,
        "without a token no payload header is written: {report}"
    );

    // forwardOriginalToken true: the app receives the token as sent.
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(
            issuer.jwks(),
            "    forwardOriginalToken: true\n    outputPayloadToHeader: x-jwt-payload\n",
        ),
    );
    let report = expect(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &bearer), echo],
        "200",
        "a valid token",
    );
    assert_eq!(
        count(&report, "echoed", &format!("authorization={bearer}")),
        REQUESTS as u64,
        "forwardOriginalToken true: the app receives Authorization unchanged: {report}"
    );
    assert_eq!(
        count(&report, "echoed", &format!("x-jwt-payload={payload}")),
        REQUESTS as u64,
        "the payload header is written as well: {report}"
    );
}

#[test]
fn resolution_none_forwards_to_the_dialled_address_under_registry_only() {
    let mut mesh = mesh_or_skip!();
    let covered = outside_server(&mut mesh, "covered", Some("v-covered"));
    let stray = outside_server(&mut mesh, "stray", Some("v-stray"));
    // The entry names no endpoints: the proxy forwards to the address the client dialled.
    mesh.write_config(
        "se-none.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: legacy, namespace: {NS}}}\nspec:\n  hosts: [legacy.weft.test]\n  addresses: [{}/32]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: NONE\n",
            covered.ip
        ),
    )
    .unwrap();
    mesh.write_config(
        "sidecar.yaml",
        &sidecar_yaml("  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"),
    )
    .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let get = |ip: Ipv4Addr| {
        let url = format!("http://{ip}:9080/legacy/1");
        mesh.load("client", &url, &[], &[], 5, 1).unwrap()
    };
    let (through, _) = eventually(
        Duration::from_secs(10),
        || get(covered.ip),
        |r| count(r, "status", "200") == 5,
    );
    assert_eq!(
        count(&through, "status", "200"),
        5,
        "an address of a resolution NONE entry passes under REGISTRY_ONLY: {through}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(
        count(&through, "versions", "v-covered"),
        5,
        "forwarded to the dialled address: {through}"
    );
    let refused = get(stray.ip);
    assert_eq!(
        count(&refused, "status", "502"),
        5,
        "an address outside every entry stays refused (NR): {refused}"
    );
}

#[test]
fn sidecar_egress_wildcards_select_by_namespace_and_by_host() {
    const OTHER: &str = "shop";
    let mut mesh = mesh_or_skip!();
    let (reviews_vip, ratings_vip) = (mesh.lab().vip(3), mesh.lab().vip(4));
    mesh.write_config(
        "svc-reviews.yaml",
        &weft_lab::mesh::service_entry_yaml("reviews", NS, reviews_vip),
    )
    .unwrap();
    mesh.write_config(
        "svc-ratings.yaml",
        &weft_lab::mesh::service_entry_yaml("ratings", OTHER, ratings_vip),
    )
    .unwrap();
    mesh.add_workload(WorkloadSpec::app("reviews1", NS, "reviews", "v1", &[]))
        .unwrap();
    mesh.add_workload(WorkloadSpec::app("ratings1", OTHER, "ratings", "v1", &[]))
        .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let reviews = format!("reviews.{NS}.svc.cluster.local");
    let ratings = format!("ratings.{OTHER}.svc.cluster.local");
    let get = |name: &str, vip: Ipv4Addr| {
        let url = format!("http://{name}:9080/x/0");
        mesh.load("client", &url, &[(name, vip)], &[], 5, 1)
            .unwrap()
    };
    let (both, _) = eventually(
        Duration::from_secs(10),
        || (get(&reviews, reviews_vip), get(&ratings, ratings_vip)),
        |(a, b)| count(a, "status", "200") == 5 && count(b, "status", "200") == 5,
    );
    assert!(
        count(&both.0, "status", "200") == 5 && count(&both.1, "status", "200") == 5,
        "both services before any Sidecar: {both:?}"
    );

    // Consecutive cases differ in what the client may reach (so each gives a new config).
    let cases = [
        (
            format!("{OTHER}/*"),
            "502",
            "200",
            "ns/* of another namespace",
        ),
        (
            format!("{NS}/*"),
            "200",
            "502",
            "ns/* keeps the namespace's services",
        ),
        (
            format!("*/{ratings}"),
            "502",
            "200",
            "*/host keeps that host in any namespace",
        ),
    ];
    for (egress, reviews_status, ratings_status, why) in cases {
        apply(
            &mesh,
            "sidecar.yaml",
            &sidecar_yaml(&format!(
                "  egress:\n  - hosts: [\"{egress}\"]\n  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n"
            )),
        );
        let to_reviews = get(&reviews, reviews_vip);
        let to_ratings = get(&ratings, ratings_vip);
        assert_eq!(
            count(&to_reviews, "status", reviews_status),
            5,
            "egress {egress}: {why}: reviews: {to_reviews}"
        );
        assert_eq!(
            count(&to_ratings, "status", ratings_status),
            5,
            "egress {egress}: {why}: ratings: {to_ratings}"
        );
    }
}
