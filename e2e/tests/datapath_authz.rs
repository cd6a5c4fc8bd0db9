//! Data path: AuthorizationPolicy fields on the wire, table-driven. A policy is applied, the
//! selected servers acknowledge it, then a list of requests (client, method, path, headers) is
//! checked against the status Istio's docs give (403 `RBAC: access denied` for a denied HTTP
//! request; a closed connection on TCP).
//!
//! `sources_*`: one server (`reviews`) and two clients, `client` (namespace `demo`, service
//! account `client`) and `visitor` (namespace `other`, service account `visitor`), to tell
//! apart principals, namespaces, IP blocks and the `when` conditions on the source; plus
//! `notRequestPrincipals` and `request.auth.principal` with a JWT, `connection.sni`, AUDIT,
//! CUSTOM, an empty spec and `rules: [{}]`.
//! `operations_*`: `reviews` (HTTP on 9080), `ratings` (HTTP on 9090) and `db` (TCP), one
//! client: hosts, ports, methods, paths, `request.headers`, `destination.port`, root-namespace
//! policies, and an ALLOW rule with HTTP-only fields on a TCP port.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use weft_e2e::{NS, apply_watching, mesh_or_skip};
use weft_lab::jwt::{TestIssuer, now};
use weft_lab::mesh::{LocalMesh, WorkloadSpec};

/// The body Istio's RBAC filter answers a denied HTTP request with.
const DENIED_BODY: &str = "RBAC: access denied";
const ISSUER: &str = "https://issuer.weft.test";
/// The namespace of the second client.
const OTHER: &str = "other";
/// Istio's default `rootNamespace`.
const ROOT: &str = "istio-system";

/// A service as clients call it: its host, port and VIP.
struct Target {
    host: String,
    port: u16,
    vip: Ipv4Addr,
}

impl Target {
    fn new(name: &str, port: u16, vip: Ipv4Addr) -> Self {
        Self {
            host: format!("{name}.{NS}.svc.cluster.local"),
            port,
            vip,
        }
    }
}

/// One request and the status it must get (0: the connection closed without an answer).
struct Case<'a> {
    from: &'a str,
    to: &'a Target,
    method: &'a str,
    path: &'a str,
    headers: Vec<(&'a str, String)>,
    want: u16,
    why: &'a str,
}

/// A GET of `/reviews/0` from `from` to `to` that must get `want`.
fn case<'a>(from: &'a str, to: &'a Target, want: u16, why: &'a str) -> Case<'a> {
    Case {
        from,
        to,
        method: "GET",
        path: "/reviews/0",
        headers: Vec::new(),
        want,
        why,
    }
}

impl<'a> Case<'a> {
    fn method(mut self, method: &'a str) -> Self {
        self.method = method;
        self
    }

    fn path(mut self, path: &'a str) -> Self {
        self.path = path;
        self
    }

    fn header(mut self, name: &'a str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

impl Target {
    /// The service name (the first label of the host), which the sample app reports.
    fn service(&self) -> &str {
        self.host.split('.').next().unwrap_or_default()
    }
}

/// Sends `case`'s request with curl from its client's host (captured by the client's sidecar);
/// returns the status (0 when curl got no response) and the body or curl's error.
fn send(mesh: &LocalMesh, case: &Case) -> (u16, String) {
    let host = &mesh.workload(case.from).unwrap().host;
    let to = case.to;
    let resolve = format!("{}:{}:{}", to.host, to.port, to.vip);
    let url = format!("http://{}:{}{}", to.host, to.port, case.path);
    let headers: Vec<String> = case
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    let mut args = vec!["-X", case.method, "--resolve", &resolve, &url];
    for header in &headers {
        args.extend(["-H", header.as_str()]);
    }
    match weft_e2e::curl(mesh, host, &args) {
        Ok(reply) => (reply.status, reply.body),
        Err(error) => (0, error),
    }
}

/// Applies `yaml` as `authz.yaml` (replacing the previous policy), waits until every workload
/// in `watch` acknowledged it, then sends every case; fails listing each case whose status
/// differs, each 403 whose body is not [`DENIED_BODY`] and each 200 not answered by the
/// called service's app.
fn check(mesh: &LocalMesh, watch: &[&str], yaml: &str, cases: &[Case]) {
    apply_watching(mesh, watch, "authz.yaml", yaml);
    let mut wrong = Vec::new();
    for case in cases {
        let (status, body) = send(mesh, case);
        let answered_by = format!("\"service\":\"{}\"", case.to.service());
        if status != case.want
            || (status == 403 && body != DENIED_BODY)
            || (status == 200 && !body.contains(&answered_by))
        {
            wrong.push(format!(
                "  {} {} {}:{}{} {:?}: got {status} {body:?}, want {}: {}",
                case.from,
                case.method,
                case.to.host,
                case.to.port,
                case.path,
                case.headers,
                case.want,
                case.why
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "under the policy\n{yaml}\n{} case(s) wrong:\n{}\n{}",
        wrong.len(),
        wrong.join("\n"),
        watch
            .iter()
            .map(|w| mesh.log(&format!("{w}-proxy")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// An AuthorizationPolicy `name` in `namespace` with the spec body `spec` (YAML mapping lines
/// indented by 2, each ending in a newline).
fn policy(namespace: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: {namespace}}}\nspec:\n{spec}"
    )
}

/// A policy in [`NS`] selecting `app: reviews` with `action` and the rules `rules` (a YAML
/// flow sequence).
fn on_reviews(action: &str, rules: &str) -> String {
    policy(
        NS,
        &format!(
            "  selector: {{matchLabels: {{app: reviews}}}}\n  action: {action}\n  rules: {rules}\n"
        ),
    )
}

/// A ServiceEntry for `name` at `vip` with one port `port` of `protocol`.
fn service_entry(name: &str, vip: Ipv4Addr, port: u16, protocol: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  hosts: [{name}.{NS}.svc.cluster.local]\n  addresses: [{vip}]\n  ports: [{{number: {port}, name: p{port}, protocol: {protocol}}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: {name}}}}}\n"
    )
}

/// A server of app `app` in [`NS`] listening on `port`.
fn server(name: &str, app: &str, port: u16) -> WorkloadSpec {
    let mut spec = WorkloadSpec::app(name, NS, app, "v1", &[]);
    let listen = format!("0.0.0.0:{port}");
    for arg in spec.app_args.iter_mut().flatten() {
        if arg == "0.0.0.0:9080" {
            *arg = listen.clone();
        }
    }
    spec.port = port;
    spec
}

fn request_authentication(jwks: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    jwks: '{jwks}'\n"
    )
}

#[test]
fn sources_principals_namespaces_ip_blocks_and_source_conditions() {
    let mut mesh = mesh_or_skip!();
    let reviews = Target::new("reviews", 9080, mesh.lab().vip(3));
    mesh.write_config(
        "svc-reviews.yaml",
        &service_entry("reviews", reviews.vip, 9080, "HTTP"),
    )
    .unwrap();
    // The server's access log records AUDIT matches.
    let mut reviews1 = server("reviews1", "reviews", 9080);
    reviews1.access_log = true;
    mesh.add_workload(reviews1).unwrap();
    let client_ip = mesh
        .add_workload(weft_e2e::client("client", "client"))
        .unwrap()
        .host
        .ip;
    let visitor_ip = mesh
        .add_workload(WorkloadSpec::client("visitor", OTHER, "visitor"))
        .unwrap()
        .host
        .ip;
    let watch = ["reviews1"];
    let client_principal = format!("cluster.local/ns/{NS}/sa/client");
    let visitor_principal = format!("cluster.local/ns/{OTHER}/sa/visitor");
    let r = &reviews;

    // An empty spec selects and denies everything (an ALLOW policy without rules).
    check(
        &mesh,
        &watch,
        &policy(NS, "  selector: {matchLabels: {app: reviews}}\n"),
        &[
            case("client", r, 403, "an empty spec denies every request"),
            case("visitor", r, 403, "an empty spec denies every request"),
        ],
    );
    // `rules: [{}]` matches every request.
    check(
        &mesh,
        &watch,
        &on_reviews("ALLOW", "[{}]"),
        &[
            case("client", r, 200, "rules: [{}] allows everything"),
            case("visitor", r, 200, "rules: [{}] allows everything"),
        ],
    );
    // AUDIT only records: a matching request passes, and no ALLOW policy applies.
    check(
        &mesh,
        &watch,
        &on_reviews("AUDIT", "[{}]"),
        &[
            case("client", r, 200, "AUDIT does not deny"),
            case("visitor", r, 200, "AUDIT does not deny"),
        ],
    );
    // A matching AUDIT rule is no ALLOW: with an ALLOW policy for the visitor only, the
    // client is still denied.
    check(
        &mesh,
        &watch,
        &format!(
            "{}---\n{}",
            on_reviews("AUDIT", "[{}]").replace("name: p,", "name: audit,"),
            on_reviews(
                "ALLOW",
                &format!("[{{from: [{{source: {{principals: [\"{visitor_principal}\"]}}}}]}}]"),
            )
        ),
        &[
            case("client", r, 403, "AUDIT matched, no ALLOW rule did"),
            case("visitor", r, 200, "the ALLOW rule matched"),
        ],
    );
    // Both requests were recorded with the AUDIT policy they matched, the denied one too.
    let log = mesh.log("reviews1-proxy");
    let audited = |code: u16| {
        log.lines().any(|line| {
            line.contains(&format!("\"audit_policy\":\"{NS}/audit\""))
                && line.contains(&format!("\"response_code\":{code}"))
        })
    };
    assert!(
        audited(403) && audited(200),
        "no access-log line names the AUDIT policy:\n{log}"
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!("[{{from: [{{source: {{notPrincipals: [\"{client_principal}\"]}}}}]}}]"),
        ),
        &[
            case("client", r, 403, "the excluded principal"),
            case("visitor", r, 200, "any other principal"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!("[{{from: [{{source: {{namespaces: [{OTHER}]}}}}]}}]"),
        ),
        &[
            case(
                "client",
                r,
                403,
                "a client in demo, not in the allowed namespace",
            ),
            case("visitor", r, 200, "a client in the allowed namespace"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "DENY",
            &format!("[{{from: [{{source: {{notNamespaces: [{NS}]}}}}]}}]"),
        ),
        &[
            case("client", r, 200, "demo is excluded from the DENY"),
            case("visitor", r, 403, "other is not demo"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!("[{{from: [{{source: {{ipBlocks: [\"{client_ip}/32\"]}}}}]}}]"),
        ),
        &[
            case("client", r, 200, "the client's address is in the block"),
            case("visitor", r, 403, "the visitor's address is not"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "DENY",
            &format!("[{{from: [{{source: {{notIpBlocks: [\"{client_ip}\"]}}}}]}}]"),
        ),
        &[
            case("client", r, 200, "a single address excluded from the DENY"),
            case("visitor", r, 403, "every other address is denied"),
        ],
    );
    // `remote.ip` is the right-most X-Forwarded-For entry (numTrustedProxies 0), else the peer.
    check(
        &mesh,
        &watch,
        &on_reviews(
            "DENY",
            "[{from: [{source: {notRemoteIpBlocks: [\"203.0.113.0/24\"]}}]}]",
        ),
        &[
            case("client", r, 200, "the forwarded client is in the block")
                .header("x-forwarded-for", "203.0.113.7"),
            case(
                "client",
                r,
                403,
                "the forwarded client is outside the block",
            )
            .header("x-forwarded-for", "198.51.100.1"),
            case(
                "client",
                r,
                403,
                "without the header, the peer (a mesh address)",
            ),
        ],
    );
    // `when` on the source.
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!("[{{when: [{{key: source.ip, values: [\"{visitor_ip}\"]}}]}}]"),
        ),
        &[
            case("client", r, 403, "source.ip is not the visitor's"),
            case("visitor", r, 200, "source.ip is the visitor's"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!("[{{when: [{{key: source.namespace, values: [{OTHER}]}}]}}]"),
        ),
        &[
            case("client", r, 403, "source.namespace demo"),
            case("visitor", r, 200, "source.namespace other"),
        ],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "ALLOW",
            &format!(
                "[{{when: [{{key: source.principal, values: [\"{client_principal}\"]}}, {{key: source.principal, notValues: [\"{visitor_principal}\"]}}]}}]"
            ),
        ),
        &[
            case("client", r, 200, "source.principal is the client"),
            case("visitor", r, 403, "source.principal is the visitor"),
        ],
    );

    // Istio's "require a JWT" idiom: DENY `notRequestPrincipals: ["*"]`.
    let issuer = TestIssuer::new(ISSUER).unwrap();
    let alice = format!("Bearer {}", issuer.token("alice", now() + 3600).unwrap());
    let bob = format!("Bearer {}", issuer.token("bob", now() + 3600).unwrap());
    let with_jwt =
        |policy: String| format!("{}---\n{policy}", request_authentication(issuer.jwks()));
    check(
        &mesh,
        &watch,
        &with_jwt(on_reviews(
            "DENY",
            "[{from: [{source: {notRequestPrincipals: [\"*\"]}}]}]",
        )),
        &[
            case("client", r, 403, "no token, no request principal"),
            case("client", r, 200, "a valid token gives a request principal")
                .header("authorization", alice.clone()),
        ],
    );
    check(
        &mesh,
        &watch,
        &with_jwt(on_reviews(
            "ALLOW",
            &format!("[{{from: [{{source: {{notRequestPrincipals: [\"{ISSUER}/bob\"]}}}}]}}]"),
        )),
        &[
            case(
                "client",
                r,
                200,
                "alice is not the excluded request principal",
            )
            .header("authorization", alice.clone()),
            case("client", r, 403, "bob is excluded").header("authorization", bob.clone()),
        ],
    );
    // `when request.auth.principal`: the token's `<iss>/<sub>`.
    check(
        &mesh,
        &watch,
        &with_jwt(on_reviews(
            "ALLOW",
            &format!("[{{when: [{{key: request.auth.principal, values: [\"{ISSUER}/alice\"]}}]}}]"),
        )),
        &[
            case("client", r, 200, "alice is the listed request principal")
                .header("authorization", alice),
            case("client", r, 403, "bob is not").header("authorization", bob),
            case("client", r, 403, "no token, no request principal"),
        ],
    );
    // `when connection.sni`: the SNI of the sidecars' mTLS connection, Istio's
    // `outbound_.<port>_.<subset>_.<host>`.
    let sni = format!("outbound_.9080_._.{}", r.host);
    check(
        &mesh,
        &watch,
        &on_reviews(
            "DENY",
            &format!("[{{when: [{{key: connection.sni, values: [\"{sni}\"]}}]}}]"),
        ),
        &[case(
            "client",
            r,
            403,
            "the connection's SNI is the denied one",
        )],
    );
    check(
        &mesh,
        &watch,
        &on_reviews(
            "DENY",
            "[{when: [{key: connection.sni, values: [\"outbound_.9080_._.other.demo.svc.cluster.local\"]}]}]",
        ),
        &[case("client", r, 200, "the connection's SNI is another")],
    );
    // CUSTOM with a provider Weft cannot use: istiod (>= 1.20) turns its rules into DENY
    // rules, so what they match is denied and the rest passes.
    check(
        &mesh,
        &watch,
        &policy(
            NS,
            "  selector: {matchLabels: {app: reviews}}\n  action: CUSTOM\n  provider: {name: ext-authz}\n  rules: [{to: [{operation: {paths: [\"/admin*\"]}}]}]\n",
        ),
        &[
            case("client", r, 403, "the CUSTOM rule matches /admin").path("/admin/users"),
            case(
                "client",
                r,
                200,
                "the CUSTOM rule does not match /reviews/0",
            ),
        ],
    );
}

#[test]
fn operations_hosts_ports_methods_paths_conditions_and_root_policies() {
    let mut mesh = mesh_or_skip!();
    let reviews = Target::new("reviews", 9080, mesh.lab().vip(3));
    let ratings = Target::new("ratings", 9090, mesh.lab().vip(4));
    let db = Target::new("db", 9080, mesh.lab().vip(5));
    mesh.write_config(
        "svc-reviews.yaml",
        &service_entry("reviews", reviews.vip, 9080, "HTTP"),
    )
    .unwrap();
    mesh.write_config(
        "svc-ratings.yaml",
        &service_entry("ratings", ratings.vip, 9090, "HTTP"),
    )
    .unwrap();
    mesh.write_config("svc-db.yaml", &service_entry("db", db.vip, 9080, "TCP"))
        .unwrap();
    mesh.add_workload(server("reviews1", "reviews", 9080))
        .unwrap();
    mesh.add_workload(server("ratings1", "ratings", 9090))
        .unwrap();
    mesh.add_workload(server("db1", "db", 9080)).unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let (r, t, d) = (&reviews, &ratings, &db);
    let c = "client";

    // Istio drops HTTP-only fields from an ALLOW rule on TCP, so the rule never matches: a TCP
    // connection is closed even when the bytes it carries are a GET.
    check(
        &mesh,
        &["db1"],
        &policy(
            NS,
            "  selector: {matchLabels: {app: db}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {methods: [GET]}}]\n",
        ),
        &[
            case(c, d, 0, "an ALLOW rule of methods never matches on TCP"),
            case(c, r, 200, "reviews is not selected"),
        ],
    );
    // A rule whose fields all apply to TCP (ports) matches there; with a method added, the
    // rule loses nothing and matches nothing.
    check(
        &mesh,
        &["db1"],
        &policy(
            NS,
            "  selector: {matchLabels: {app: db}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {ports: [\"9080\"]}}]\n",
        ),
        &[case(c, d, 200, "an ALLOW rule of ports matches on TCP")],
    );
    check(
        &mesh,
        &["db1"],
        &policy(
            NS,
            "  selector: {matchLabels: {app: db}}\n  action: ALLOW\n  rules:\n  - to: [{operation: {ports: [\"9080\"], methods: [GET]}}]\n",
        ),
        &[case(c, d, 0, "ports with methods never matches on TCP")],
    );

    // The following policies have no selector: they apply to every workload in demo.
    let servers = ["reviews1", "ratings1"];
    let everywhere =
        |action: &str, rules: &str| policy(NS, &format!("  action: {action}\n  rules: {rules}\n"));
    check(
        &mesh,
        &servers,
        &everywhere(
            "ALLOW",
            "[{to: [{operation: {hosts: [\"REVIEWS.demo.svc.cluster.local:*\"]}}]}]",
        ),
        &[
            case(c, r, 200, "the Host matches without regard to case"),
            case(c, t, 403, "the ratings Host does not match"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere(
            "DENY",
            "[{to: [{operation: {notHosts: [\"ratings.demo.svc.cluster.local:9090\"]}}]}]",
        ),
        &[
            case(c, r, 403, "every Host but ratings' is denied"),
            case(c, t, 200, "the ratings Host is excluded"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("ALLOW", "[{to: [{operation: {ports: [\"9090\"]}}]}]"),
        &[
            case(c, r, 403, "the workload port 9080 is not allowed"),
            case(c, t, 200, "the workload port 9090 is allowed"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("DENY", "[{to: [{operation: {notPorts: [\"9090\"]}}]}]"),
        &[
            case(c, r, 403, "9080 is not excluded from the DENY"),
            case(c, t, 200, "9090 is excluded"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere(
            "ALLOW",
            "[{when: [{key: destination.port, values: [\"9080\"]}]}]",
        ),
        &[
            case(c, r, 200, "destination.port 9080"),
            case(c, t, 403, "destination.port 9090"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("ALLOW", "[{to: [{operation: {methods: [GET, DELETE]}}]}]"),
        &[
            case(c, r, 200, "GET is allowed"),
            case(c, r, 200, "DELETE is allowed").method("DELETE"),
            case(c, r, 403, "POST is not").method("POST"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("DENY", "[{to: [{operation: {notMethods: [GET]}}]}]"),
        &[
            case(c, r, 200, "GET is excluded from the DENY"),
            case(c, r, 403, "PUT is denied").method("PUT"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("ALLOW", "[{to: [{operation: {paths: [/reviews/0]}}]}]"),
        &[
            case(c, r, 200, "the exact path"),
            case(c, r, 200, "the query is not part of the path").path("/reviews/0?x=1"),
            case(c, r, 403, "a longer path is not the exact one").path("/reviews/01"),
            case(c, r, 403, "a sub-path is not the exact one").path("/reviews/0/x"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("ALLOW", "[{to: [{operation: {paths: [\"*/info\"]}}]}]"),
        &[
            case(c, r, 200, "the suffix /info").path("/reviews/info"),
            case(c, r, 403, "no suffix /info").path("/reviews/infox"),
            case(c, r, 403, "no suffix /info"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("ALLOW", "[{to: [{operation: {paths: [\"*\"]}}]}]"),
        &[
            case(c, r, 200, "every request has a path"),
            case(c, t, 200, "every request has a path").path("/x"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere("DENY", "[{to: [{operation: {notPaths: [\"/public/*\"]}}]}]"),
        &[
            case(c, r, 200, "a public path is excluded from the DENY").path("/public/a"),
            case(c, r, 403, "any other path is denied"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere(
            "ALLOW",
            "[{when: [{key: \"request.headers[x-team]\", values: [core, \"ops-*\"]}]}]",
        ),
        &[
            case(c, r, 200, "x-team core").header("x-team", "core"),
            case(c, r, 200, "x-team ops-* (prefix)").header("x-team", "ops-east"),
            case(c, r, 403, "x-team dev").header("x-team", "dev"),
            case(c, r, 403, "no x-team header"),
        ],
    );
    check(
        &mesh,
        &servers,
        &everywhere(
            "DENY",
            "[{when: [{key: \"request.headers[x-team]\", notValues: [core]}]}]",
        ),
        &[
            case(c, r, 200, "x-team core is excluded from the DENY").header("x-team", "core"),
            case(c, r, 403, "x-team dev is denied").header("x-team", "dev"),
        ],
    );

    // A policy in the root namespace without a selector applies to every workload of the
    // mesh (it replaces the demo policy above).
    check(
        &mesh,
        &servers,
        &policy(
            ROOT,
            "  action: DENY\n  rules:\n  - to: [{operation: {paths: [\"/admin*\"]}}]\n",
        ),
        &[
            case(c, r, 403, "the root DENY applies to reviews").path("/admin/x"),
            case(c, t, 403, "the root DENY applies to ratings").path("/admin/x"),
            case(c, r, 200, "other paths pass"),
            case(c, t, 200, "other paths pass"),
        ],
    );
}
