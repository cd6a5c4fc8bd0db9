//! Data path through an ingress gateway (`weft-proxy gateway`, Istio's `router`): a plain
//! client outside the mesh calls the gateway, which routes by Host to services with sidecars
//! over mutual TLS; HTTPS SIMPLE with a file-mounted certificate; httpsRedirect; TLS
//! PASSTHROUGH by SNI to a TLS backend; AUTO_PASSTHROUGH of a mesh client's mTLS to the
//! service its SNI names.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::gateway::{
    add_reviews_v1, curl_until, gateway_diagnostics, gateway_vs, gateway_yaml,
};
use weft_e2e::{
    GATEWAY, NS, curl, eventually, host, ingress_gateway, mesh_or_skip, service, service_entry,
};
use weft_lab::pki::TestCa;

#[test]
fn ingress_routes_by_host_to_two_services_over_mutual_tls() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    mesh.write_config(
        "svc-ratings.yaml",
        &service_entry("ratings", mesh.lab().vip(4)),
    )
    .unwrap();
    mesh.add_workload(service("ratings1", "ratings", "v1", &[], &[]))
        .unwrap();
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(
            "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*.example.com\"]\n",
        ),
    )
    .unwrap();
    mesh.write_config(
        "vs-reviews.yaml",
        &gateway_vs(NS, "reviews", "reviews.example.com", "reviews"),
    )
    .unwrap();
    mesh.write_config(
        "vs-ratings.yaml",
        &gateway_vs(NS, "ratings", "ratings.example.com", "ratings"),
    )
    .unwrap();

    for (public, service) in [
        ("reviews.example.com", "reviews"),
        ("ratings.example.com", "ratings"),
    ] {
        let url = format!("http://{gw}/{service}/1");
        let header = format!("Host: {public}");
        let reply = curl_until(&mesh, &client, &["-H", &header, &url], |r| r.status == 200);
        let reply = reply.unwrap_or_else(|e| {
            panic!(
                "{public} via the gateway: {e}\n{}",
                gateway_diagnostics(&mesh)
            )
        });
        assert!(
            reply.body.contains(&format!("\"service\":\"{service}\"")),
            "{public} reached the wrong service: {}",
            reply.body
        );
    }
    // A host no VirtualService binds to the gateway: 404 from the gateway.
    let unknown = curl(
        &mesh,
        &client,
        &["-H", "Host: other.example.com", &format!("http://{gw}/")],
    )
    .unwrap();
    assert_eq!(unknown.status, 404, "{unknown:?}");

    // The gateway -> sidecar hop is mutual TLS, seen by the destination sidecar, and the
    // gateway reports its requests as the source (Istio's gateways do).
    let metrics = mesh.proxy_metrics("reviews1").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains(
                "source_principal=\"spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account\""
            )),
        "the sidecar did not see the gateway's requests over mTLS:\n{metrics}"
    );
    let gateway_metrics = mesh.proxy_metrics(GATEWAY).unwrap();
    assert!(
        gateway_metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("reporter=\"source\"")
                && l.contains(&format!("destination_service=\"{}\"", host("ratings")))),
        "the gateway does not report as source:\n{gateway_metrics}"
    );
}

#[test]
fn https_simple_with_a_file_certificate_and_https_redirect() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    // The certificate mounted into the gateway (readable by its UID 1337).
    let ca = TestCa::new("example CA").unwrap();
    let leaf = ca.issue(&["secure.example.com"]).unwrap();
    let dir = mesh.lab().log_dir().join("gateway-certs");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca_file) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    for path in [&dir, &cert, &key] {
        use std::os::unix::fs::PermissionsExt;
        let mode = if path == &dir { 0o755 } else { 0o644 };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(&format!(
            "  - port: {{number: 80, name: http, protocol: HTTP}}\n    hosts: [secure.example.com]\n    tls: {{httpsRedirect: true}}\n  - port: {{number: 443, name: https, protocol: HTTPS}}\n    hosts: [secure.example.com]\n    tls: {{mode: SIMPLE, serverCertificate: {}, privateKey: {}}}\n",
            cert.display(),
            key.display()
        )),
    )
    .unwrap();
    mesh.write_config(
        "vs-secure.yaml",
        &gateway_vs(NS, "secure", "secure.example.com", "reviews"),
    )
    .unwrap();

    let resolve = format!("secure.example.com:443:{gw}");
    let url = "https://secure.example.com/reviews/1";
    let ca_path = ca_file.display().to_string();
    let reply = curl_until(
        &mesh,
        &client,
        &["--resolve", &resolve, "--cacert", &ca_path, url],
        |r| r.status == 200,
    )
    .unwrap_or_else(|e| panic!("HTTPS via the gateway: {e}\n{}", gateway_diagnostics(&mesh)));
    assert!(
        reply.body.contains("\"service\":\"reviews\""),
        "{}",
        reply.body
    );
    // The client verified the gateway's certificate against the CA: a client trusting
    // another CA fails the handshake.
    let other = TestCa::new("other CA").unwrap();
    let other_file = dir.join("other-ca.crt");
    std::fs::write(&other_file, &other.cert_pem).unwrap();
    let refused = curl(
        &mesh,
        &client,
        &[
            "--resolve",
            &resolve,
            "--cacert",
            &other_file.display().to_string(),
            url,
        ],
    );
    assert!(
        refused.is_err(),
        "a certificate from another CA was accepted: {refused:?}"
    );

    let redirect = curl(
        &mesh,
        &client,
        &[
            "--resolve",
            &format!("secure.example.com:80:{gw}"),
            "http://secure.example.com/reviews/1?x=1",
        ],
    )
    .unwrap();
    assert_eq!(redirect.status, 301, "{redirect:?}");
    assert_eq!(
        redirect.header("location"),
        Some("https://secure.example.com/reviews/1?x=1")
    );
}

#[test]
fn https_simple_with_a_credential_name_secret_and_the_key_redacted_in_config_dump() {
    let mut mesh = mesh_or_skip!();
    mesh.write_config(
        "svc-ratings.yaml",
        &service_entry("ratings", mesh.lab().vip(4)),
    )
    .unwrap();
    mesh.add_workload(service("ratings1", "ratings", "v1", &[], &[]))
        .unwrap();
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    let ca = TestCa::new("example CA").unwrap();
    let leaf = ca.issue(&["shop.example.com"]).unwrap();
    // Istio's credentialName: a kubernetes.io/tls Secret in the gateway's namespace.
    mesh.write_config(
        "secret-shop.yaml",
        &leaf.tls_secret_yaml("istio-system", "shop-cert", None),
    )
    .unwrap();
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(
            "  - port: {number: 443, name: https, protocol: HTTPS}\n    hosts: [shop.example.com]\n    tls: {mode: SIMPLE, credentialName: shop-cert}\n",
        ),
    )
    .unwrap();
    mesh.write_config(
        "vs-shop.yaml",
        &gateway_vs(NS, "shop", "shop.example.com", "ratings"),
    )
    .unwrap();
    let dir = mesh.lab().log_dir().join("client-ca");
    std::fs::create_dir_all(&dir).unwrap();
    let ca_file = dir.join("ca.crt");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    let resolve = format!("shop.example.com:443:{gw}");
    let reply = curl_until(
        &mesh,
        &client,
        &[
            "--resolve",
            &resolve,
            "--cacert",
            &ca_file.display().to_string(),
            "https://shop.example.com/ratings/1",
        ],
        |r| r.status == 200,
    )
    .unwrap_or_else(|e| {
        panic!(
            "HTTPS with credentialName: {e}\n{}",
            gateway_diagnostics(&mesh)
        )
    });
    assert!(
        reply.body.contains("\"service\":\"ratings\""),
        "{}",
        reply.body
    );
    // The gateway holds the key inline, but its /config_dump shows it redacted.
    let host = &mesh.workload(GATEWAY).unwrap().host;
    let dump = mesh
        .lab()
        .exec(host, "curl", &["-s", "http://127.0.0.1:15000/config_dump"])
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("shop-cert"), "{dump}");
    let key_line = leaf.key_pem.lines().nth(1).unwrap();
    assert!(
        !dump.contains(key_line),
        "the private key is in /config_dump"
    );
}

#[test]
fn tls_passthrough_routes_by_sni_to_the_backend_unterminated() {
    let mut mesh = mesh_or_skip!();
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    let backend = mesh.add_plain_host("backend").unwrap();
    let ca = TestCa::new("backend CA").unwrap();
    let leaf = ca.issue(&["db.example.com"]).unwrap();
    let dir = mesh.lab().log_dir().join("backend-certs");
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca_file) = (dir.join("tls.crt"), dir.join("tls.key"), dir.join("ca.crt"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    std::fs::write(&key, &leaf.key_pem).unwrap();
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();
    // A TLS server holding the only certificate for db.example.com: `openssl s_server -www`
    // answers GET with a status page.
    let openssl = std::path::Path::new("/usr/bin/openssl");
    let args: Vec<String> = ["s_server", "-quiet", "-www", "-accept", "8443", "-cert"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            cert.display().to_string(),
            "-key".into(),
            key.display().to_string(),
        ])
        .collect();
    mesh.lab_mut()
        .spawn(&backend, "backend-tls", openssl, &args, &[], None)
        .unwrap();
    mesh.write_config(
        "se-db.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  hosts: [db.example.com]\n  ports: [{{number: 8443, name: tls, protocol: TLS}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{{address: {}}}]\n",
            backend.ip
        ),
    )
    .unwrap();
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml("  - port: {number: 443, name: tls, protocol: TLS}\n    hosts: [db.example.com]\n    tls: {mode: PASSTHROUGH}\n"),
    )
    .unwrap();
    mesh.write_config(
        "vs-db.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  hosts: [db.example.com]\n  gateways: [istio-system/ingress]\n  tls:\n  - match: [{{port: 443, sniHosts: [db.example.com]}}]\n    route:\n    - destination: {{host: db.example.com, port: {{number: 8443}}}}\n"
        ),
    )
    .unwrap();
    let resolve = format!("db.example.com:443:{gw}");
    let ca_path = ca_file.display().to_string();
    // The client verifies db.example.com's certificate, which only the backend holds: the
    // gateway forwarded the TLS bytes without terminating them.
    let reply = curl_until(
        &mesh,
        &client,
        &[
            "--resolve",
            &resolve,
            "--cacert",
            &ca_path,
            "https://db.example.com/",
        ],
        |r| r.status == 200,
    )
    .unwrap_or_else(|e| {
        panic!(
            "passthrough via the gateway: {e}\n{}\nbackend log:\n{}",
            gateway_diagnostics(&mesh),
            mesh.log("backend-tls")
        )
    });
    assert!(reply.body.contains("s_server"), "{}", reply.body);
    // Another SNI has no server on the port: the gateway closes the connection.
    let other = curl(
        &mesh,
        &client,
        &[
            "--resolve",
            &format!("web.example.com:443:{gw}"),
            "-k",
            "https://web.example.com/",
        ],
    );
    assert!(other.is_err(), "an unknown SNI was served: {other:?}");
}

#[test]
fn auto_passthrough_forwards_the_clients_mutual_tls_to_the_sni_named_service() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    // The client's mesh identity (certificate issued to service account `client`).
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let gw = mesh
        .add_gateway(weft_lab::mesh::WorkloadSpec::ingress_gateway(
            GATEWAY,
            &[15443],
        ))
        .unwrap()
        .host
        .ip;
    let outside = mesh.add_plain_host("outside").unwrap();
    // Istio's cross-network gateway: AUTO_PASSTHROUGH on 15443 for the mesh's hosts.
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml("  - port: {number: 15443, name: tls, protocol: TLS}\n    hosts: [\"*.local\"]\n    tls: {mode: AUTO_PASSTHROUGH}\n"),
    )
    .unwrap();
    let certs = mesh.cert_dir(NS, "client");
    let (cert, key) = (
        certs.join("cert-chain.pem").display().to_string(),
        certs.join("key.pem").display().to_string(),
    );
    let sni = format!("outbound_.9080_._.{}", host("reviews"));
    let resolve = format!("{sni}:15443:{gw}");
    let url = format!("https://{sni}:15443/reviews/1");
    // The client speaks mesh mTLS itself; the destination sidecar's certificate carries only
    // its SPIFFE ID, so curl skips host name verification (-k) but presents its certificate.
    let args = [
        "--http1.1",
        "-k",
        "--cert",
        &cert,
        "--key",
        &key,
        "--resolve",
        &resolve,
        &url,
    ];
    let reply = curl_until(&mesh, &outside, &args, |r| r.status == 200).unwrap_or_else(|e| {
        let verbose = mesh
            .lab()
            .exec(&outside, "sh", &["-c", &format!("curl -v --http1.1 -k --cert {cert} --key {key} --resolve {resolve} {url} 2>&1; true")])
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "AUTO_PASSTHROUGH via the gateway: {e}\n{verbose}\nreviews1 metrics:\n{}",
            mesh.proxy_metrics("reviews1").unwrap_or_default()
        )
    });
    assert!(
        reply.body.contains("\"service\":\"reviews\""),
        "the SNI named reviews: {}",
        reply.body
    );
    // The destination sidecar terminated the client's own mTLS: it saw the client's
    // identity, not the gateway's.
    let metrics = mesh.proxy_metrics("reviews1").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("reporter=\"destination\"")
                && l.contains("connection_security_policy=\"mutual_tls\"")
                && l.contains(&format!(
                    "source_principal=\"spiffe://cluster.local/ns/{NS}/sa/client\""
                ))),
        "the sidecar did not see the client's identity:\n{metrics}"
    );
    // An SNI that names no cluster: the gateway closes the connection.
    let unknown_sni = format!("outbound_.9080_._.{}", host("nothing"));
    let unknown = curl(
        &mesh,
        &outside,
        &[
            "-k",
            "--cert",
            &cert,
            "--key",
            &key,
            "--resolve",
            &format!("{unknown_sni}:15443:{gw}"),
            &format!("https://{unknown_sni}:15443/"),
        ],
    );
    assert!(
        unknown.is_err(),
        "an SNI naming no cluster was served: {unknown:?}"
    );
}

#[test]
fn a_port_the_gateway_cannot_bind_is_nacked_and_the_last_good_listeners_stay() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    let http = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*\"]\n";
    mesh.write_config("gateway.yaml", &gateway_yaml(http))
        .unwrap();
    mesh.write_config(
        "vs-reviews.yaml",
        &gateway_vs(NS, "reviews", "reviews.example.com", "reviews"),
    )
    .unwrap();
    let url = format!("http://{gw}/reviews/1");
    curl_until(
        &mesh,
        &client,
        &["-H", "Host: reviews.example.com", &url],
        |r| r.status == 200,
    )
    .unwrap_or_else(|e| panic!("HTTP via the gateway: {e}\n{}", gateway_diagnostics(&mesh)));

    // 15021 is the gateway's own health port: binding it again fails.
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(&format!(
            "{http}  - port: {{number: 15021, name: http-taken, protocol: HTTP}}\n    hosts: [\"*\"]\n"
        )),
    )
    .unwrap();
    let proxy = format!("{GATEWAY}.istio-system");
    let (row, _) = eventually(
        Duration::from_secs(15),
        || {
            mesh.sync_status()
                .ok()
                .and_then(|rows| {
                    rows.as_array()?
                        .iter()
                        .find(|row| row["proxy"] == proxy.as_str())
                        .cloned()
                })
                .unwrap_or_default()
        },
        |row| row["state"] == "NACKED",
    );
    assert_eq!(
        row["state"],
        "NACKED",
        "{row}\n{}",
        gateway_diagnostics(&mesh)
    );
    let reason = row["nack_reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(":15021"),
        "the NACK does not name the port: {reason}"
    );
    // The last good config keeps serving port 80.
    let reply = curl(&mesh, &client, &["-H", "Host: reviews.example.com", &url]).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
}
