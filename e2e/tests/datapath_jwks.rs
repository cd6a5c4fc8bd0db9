//! Data path: RequestAuthentication `jwksUri` fetched by the control plane (istiod's JWKS
//! resolver) and pushed inline. The issuer's key set is served over plain HTTP from the test
//! process on the lab bridge (198.18.N.254, which the operator's host reaches directly); the
//! operator fetches it and the proxies verify tokens with it: a valid token gets 200, a token
//! with the same issuer and key id but signed by another key gets 401, a request without a
//! token passes (no AuthorizationPolicy). A second rule whose `jwksUri` cannot be fetched
//! (nothing listens there) rejects tokens of its issuer with 401, as Istio does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::time::Duration;

use weft_e2e::{
    NS, apply_watching, count, eventually, mesh_or_skip, reviews_mesh, reviews_requests,
};
use weft_lab::jwt::{TestIssuer, now};

const ISSUER: &str = "https://issuer.weft.test";
const UNFETCHED_ISSUER: &str = "https://unfetched.weft.test";
const SERVERS: [&str; 2] = ["reviews1", "reviews2"];

/// Serves `body` as `application/json` to every request on `ip` (an ephemeral port), from a
/// thread that lives as long as the test process; returns the address.
fn serve_jwks(ip: Ipv4Addr, body: String) -> SocketAddr {
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
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
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
    let jwks = serve_jwks(root_ip, issuer.jwks().to_owned());
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
