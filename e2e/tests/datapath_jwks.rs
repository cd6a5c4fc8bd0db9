//! Data path: RequestAuthentication `jwksUri` fetched by the control plane (istiod's JWKS
//! resolver) and pushed inline. The issuer's key set is served over plain HTTP from the test
//! process on the lab bridge (198.18.N.254, which the operator's host reaches directly); the
//! operator fetches it and the proxies verify tokens with it: a valid token gets 200, a token
//! with the same issuer and key id but signed by another key gets 401, a request without a
//! token passes (no AuthorizationPolicy). A second rule whose `jwksUri` cannot be fetched
//! (nothing listens there) rejects tokens of its issuer with 401, as Istio does. With the
//! refresh interval shortened (`PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`), a failing refresh keeps
//! the last good key set and a rotated key set is pushed. A rule with only an `http` issuer
//! (no `jwks`, no `jwksUri`) gets its key set by OpenID discovery: the operator reads
//! `<issuer>/.well-known/openid-configuration` and fetches the `jwks_uri` it names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_e2e::{
    NS, apply_watching, count, eventually, mesh_or_skip, reviews_mesh, reviews_requests,
};
use weft_lab::jwt::{TestIssuer, now};
use weft_lab::mesh::{LocalMesh, MONITORING_PORT, MeshBinaries, PROXY_UID, http_get, wait_until};

const ISSUER: &str = "https://issuer.weft.test";
const UNFETCHED_ISSUER: &str = "https://unfetched.weft.test";
const SERVERS: [&str; 2] = ["reviews1", "reviews2"];

/// What the JWKS server answers: a status and a body, changeable while it runs.
type Answer = Arc<Mutex<(u16, String)>>;

/// Serves `answer` (as `application/json`) to every request on `ip` (an ephemeral port), from
/// a thread that lives as long as the test process; returns the address.
fn serve_jwks(ip: Ipv4Addr, answer: Answer) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let (status, body) = answer.lock().unwrap().clone();
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

fn answer(body: &str) -> Answer {
    Arc::new(Mutex::new((200, body.to_owned())))
}

fn request_authentication(jwks_uri: &str, unfetched_uri: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    jwksUri: {jwks_uri}\n    timeout: 2s\n  - issuer: {UNFETCHED_ISSUER}\n    jwksUri: {unfetched_uri}\n    timeout: 1s\n"
    )
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[test]
fn jwks_uri_is_fetched_by_the_control_plane_valid_token_200_forged_401() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let issuer = TestIssuer::new(ISSUER).unwrap();
    // The test process's own address on the lab bridge (`Lab::attach_root`).
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    let jwks = serve_jwks(root_ip, answer(issuer.jwks()));
    // A port nobody listens on: its key set is never fetched.
    let unfetched = {
        let probe = TcpListener::bind((root_ip, 0)).unwrap();
        probe.local_addr().unwrap()
    };
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(
            &format!("http://{jwks}/jwks.json"),
            &format!("http://{unfetched}/jwks.json"),
        ),
    );

    let valid = bearer(&issuer.token("alice", now() + 3600).unwrap());
    // The key set arrives in a push after the fetch, so wait for it.
    let (report, _) = eventually(
        Duration::from_secs(15),
        || reviews_requests(&mesh, vip, "/reviews/0", &[("authorization", &valid)], 4, 2),
        |report| count(report, "status", "200") == 4,
    );
    assert_eq!(
        count(&report, "status", "200"),
        4,
        "a token verified with the fetched jwks must pass: {report}\noperator:\n{}\nproxy:\n{}",
        mesh.log("operator"),
        mesh.log("reviews1-proxy")
    );
    let report = reviews_requests(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &valid)],
        10,
        2,
    );
    assert_eq!(count(&report, "status", "200"), 10, "{report}");

    // Same issuer and key id, signed by a different key: the fetched set does not verify it.
    let forger = TestIssuer::new(ISSUER).unwrap();
    let forged = bearer(&forger.token("mallory", now() + 3600).unwrap());
    let report = reviews_requests(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &forged)],
        10,
        2,
    );
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "a forged token must get 401: {report}"
    );

    // The issuer whose jwksUri was never fetched: its tokens get 401 (Istio's behaviour).
    let other = TestIssuer::new(UNFETCHED_ISSUER).unwrap();
    let token = bearer(&other.token("bob", now() + 3600).unwrap());
    let report = reviews_requests(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &token)],
        10,
        2,
    );
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "a token of an issuer whose jwksUri was never fetched must get 401: {report}"
    );

    // No token: RequestAuthentication alone lets the request through.
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[], 10, 2);
    assert_eq!(count(&report, "status", "200"), 10, "{report}");
}

/// Restarts the control plane with `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL=300ms` (the lab starts
/// it with the default 20 min); same config and state directories, so the proxies reconnect.
fn restart_operator_with_fast_refresh(mesh: &mut LocalMesh) {
    mesh.stop_operator();
    let bins = MeshBinaries::locate(None).unwrap();
    let host = mesh
        .lab()
        .hosts()
        .iter()
        .find(|h| h.name == "istiod")
        .unwrap()
        .clone();
    let args = [
        "--config-dir".to_string(),
        mesh.config_dir().display().to_string(),
        "--state-dir".to_string(),
        mesh.state_dir().display().to_string(),
        "--cert-owner".to_string(),
        format!("{PROXY_UID}:{PROXY_UID}"),
        "--poll-interval-ms".to_string(),
        "100".to_string(),
    ];
    let env = [(
        "PILOT_JWT_PUB_KEY_REFRESH_INTERVAL".to_string(),
        "300ms".to_string(),
    )];
    mesh.lab_mut()
        .spawn(
            &host,
            "operator-fast-jwks",
            &bins.operator,
            &args,
            &env,
            None,
        )
        .unwrap();
    let monitoring = SocketAddr::from((mesh.operator_ip(), MONITORING_PORT));
    assert!(
        wait_until(Duration::from_secs(20), || {
            http_get(monitoring, "/healthz").is_ok_and(|(s, _)| s == 200)
        }),
        "operator did not come back: {}",
        mesh.log("operator-fast-jwks")
    );
}

#[test]
fn refreshed_key_set_is_pushed_and_a_failed_refresh_keeps_the_last_good_set() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    restart_operator_with_fast_refresh(&mut mesh);
    let old_key = TestIssuer::new(ISSUER).unwrap();
    let new_key = TestIssuer::new(ISSUER).unwrap();
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    let served = answer(old_key.jwks());
    let jwks = serve_jwks(root_ip, served.clone());
    // The second rule's URI is served too, so that only the first rule matters here.
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &request_authentication(
            &format!("http://{jwks}/jwks.json"),
            &format!("http://{jwks}/other.json"),
        ),
    );
    let old = bearer(&old_key.token("alice", now() + 3600).unwrap());
    let new = bearer(&new_key.token("alice", now() + 3600).unwrap());
    let passes = |token: &str| {
        let (report, _) = eventually(
            Duration::from_secs(15),
            || reviews_requests(&mesh, vip, "/reviews/0", &[("authorization", token)], 4, 2),
            |report| count(report, "status", "200") == 4,
        );
        count(&report, "status", "200") == 4
    };
    assert!(
        passes(&old),
        "the first key set must be fetched: {}",
        mesh.log("operator-fast-jwks")
    );

    // The server fails: several refreshes fail, the last good key set stays in force.
    *served.lock().unwrap() = (500, "down".to_string());
    std::thread::sleep(Duration::from_millis(1500));
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[("authorization", &old)], 10, 2);
    assert_eq!(
        count(&report, "status", "200"),
        10,
        "a failed refresh must keep the last good key set: {report}"
    );
    assert!(
        mesh.log("operator-fast-jwks")
            .contains("jwksUri fetch failed"),
        "the failed refresh must be logged"
    );

    // The issuer rotates its key: the refresh brings the new set and it is pushed.
    *served.lock().unwrap() = (200, new_key.jwks().to_string());
    assert!(
        passes(&new),
        "the rotated key set must be pushed: {}",
        mesh.log("operator-fast-jwks")
    );
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[("authorization", &old)], 10, 2);
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "tokens of the retired key must get 401: {report}"
    );
}

/// Answers by request path: a status and a body (404 for an unknown path), and counts the
/// requests per path.
type Routes = Arc<Mutex<std::collections::BTreeMap<String, (u16, String, u32)>>>;

/// Serves `routes` on `listener` from a thread that lives as long as the test process.
fn serve_routes(listener: TcpListener, routes: Routes) {
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&request);
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let (status, body) = match routes.lock().unwrap().get_mut(&path) {
                Some((status, body, hits)) => {
                    *hits += 1;
                    (*status, body.clone())
                }
                None => (404, String::new()),
            };
            let response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
}

#[test]
fn issuer_without_jwks_uri_is_resolved_by_openid_discovery_valid_200_forged_401() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    let listener = TcpListener::bind((root_ip, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    // An issuer with a path: the discovery document sits under it (OpenID Connect Discovery 1.0
    // section 4), the key set wherever the document says.
    let issuer_url = format!("http://{addr}/realms/weft");
    let issuer = TestIssuer::new(&issuer_url).unwrap();
    let document_path = "/realms/weft/.well-known/openid-configuration";
    let routes: Routes = Arc::new(Mutex::new(
        [
            (
                document_path.to_owned(),
                (
                    200,
                    format!(r#"{{"issuer":"{issuer_url}","jwks_uri":"http://{addr}/certs"}}"#),
                    0,
                ),
            ),
            ("/certs".to_owned(), (200, issuer.jwks().to_owned(), 0)),
        ]
        .into_iter()
        .collect(),
    ));
    serve_routes(listener, routes.clone());
    apply_watching(
        &mesh,
        &SERVERS,
        "ra.yaml",
        &format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews-jwt, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {issuer_url}\n    timeout: 2s\n"
        ),
    );

    let valid = bearer(&issuer.token("alice", now() + 3600).unwrap());
    let (report, _) = eventually(
        Duration::from_secs(15),
        || reviews_requests(&mesh, vip, "/reviews/0", &[("authorization", &valid)], 4, 2),
        |report| count(report, "status", "200") == 4,
    );
    assert_eq!(
        count(&report, "status", "200"),
        4,
        "a token verified with the key set found by discovery must pass: {report}\noperator:\n{}",
        mesh.log("operator")
    );
    {
        let routes = routes.lock().unwrap();
        assert!(
            routes[document_path].2 >= 1,
            "the discovery document was read"
        );
        assert!(routes["/certs"].2 >= 1, "the key set it names was fetched");
    }

    // Same issuer and key id, signed by another key: 401.
    let forger = TestIssuer::new(&issuer_url).unwrap();
    let forged = bearer(&forger.token("mallory", now() + 3600).unwrap());
    let report = reviews_requests(
        &mesh,
        vip,
        "/reviews/0",
        &[("authorization", &forged)],
        10,
        2,
    );
    assert_eq!(
        count(&report, "status", "401"),
        10,
        "a forged token must get 401: {report}"
    );
}
