//! Gateway servers that verify clients and pick VirtualServices by namespace: `MUTUAL` with
//! the client CA from the `<credentialName>-cacert` Secret or the credential's own `ca.crt`,
//! `ISTIO_MUTUAL` (the mesh's workload certificates, from an outside client and from a mesh
//! client's sidecar whose DestinationRule originates `ISTIO_MUTUAL`), server `hosts` with
//! `namespace/` prefixes, and a `credentialName` Secret rewritten in the config directory
//! served on the next handshake. Istio's reference: Gateway `ServerTLSSettings.TLSmode` and
//! `Server.hosts`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_e2e::gateway::{
    add_reviews_v1, config_dump, curl_until, gateway_diagnostics, gateway_vs, gateway_yaml,
};
use weft_e2e::{GATEWAY, NS, curl, eventually, ingress_gateway, mesh_or_skip};
use weft_lab::mesh::LocalMesh;
use weft_lab::pki::{Leaf, TestCa};

/// A generic Secret `istio-system/<name>` holding only `ca.crt` (Istio's `<credentialName>-cacert`).
fn ca_secret(name: &str, ca_pem: &str) -> String {
    use base64::Engine as _;
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: istio-system}}\ndata:\n  ca.crt: {}\n",
        base64::engine::general_purpose::STANDARD.encode(ca_pem)
    )
}

/// Writes `text` as `dir/name` and returns the path as a string (for curl's arguments).
fn file(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// A directory under the lab's log directory for the client's files.
fn client_dir(mesh: &LocalMesh) -> PathBuf {
    let dir = mesh.lab().log_dir().join("tls-clients");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Whether the gateway reported a request with `code` and response flags `flags`.
fn gateway_reported(mesh: &LocalMesh, code: &str, flags: &str) -> bool {
    mesh.proxy_metrics(GATEWAY).unwrap().lines().any(|l| {
        l.starts_with("istio_requests_total")
            && l.contains(&format!("response_code=\"{code}\""))
            && l.contains(&format!("response_flags=\"{flags}\""))
    })
}

/// Asserts that, over TLS 1.2 (where the server verifies the client's certificate inside the
/// handshake), the server answers `accepted` (a client with a trusted certificate) with 200
/// and fails the handshake for `refused` with a TLS alert from the server (curl's exit status
/// 35, `CURLE_SSL_CONNECT_ERROR`, or 98, `CURLE_SSL_CLIENTCERT`): refused before any HTTP. `what` names the refused case. (With TLS 1.3 the
/// client finishes its side first and sees the refusal only when it reads.)
fn assert_refused_at_handshake(
    mesh: &LocalMesh,
    client: &weft_lab::Host,
    accepted: &[&str],
    refused: &[&str],
    what: &str,
) {
    let tls12 = |args: &[&str]| curl(mesh, client, &[&["--tls-max", "1.2"][..], args].concat());
    let control = tls12(accepted);
    assert!(
        control.as_ref().is_ok_and(|reply| reply.status == 200),
        "the trusted client over TLS 1.2 (control for {what}): {control:?}"
    );
    match tls12(refused) {
        Ok(reply) => panic!("{what} was served: {reply:?}"),
        Err(message) => {
            assert!(
                ["(exit status: 35)", "(exit status: 98)"]
                    .iter()
                    .any(|status| message.contains(status))
                    && message.contains("alert"),
                "{what} failed, but not at the TLS handshake: {message}"
            )
        }
    }
}

/// `openssl s_client` from `client` to `connect` (`IP:PORT`) with `extra` options, sending
/// nothing and waiting 1 s for what the server sends after the handshake; its stdout and
/// stderr.
fn handshake(mesh: &LocalMesh, client: &weft_lab::Host, connect: &str, extra: &str) -> String {
    let script = format!(
        "(sleep 1) | openssl s_client -connect {connect} -servername mesh.example.com {extra} 2>&1; true"
    );
    let out = mesh.lab().exec(client, "sh", &["-c", &script]).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn mutual_and_istio_mutual_servers_accept_only_clients_with_a_trusted_certificate() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    // A mesh workload whose certificate (service account `client`) an outside client presents.
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let gw = ingress_gateway(&mut mesh);
    let outside = mesh.add_plain_host("outside").unwrap();

    let server_ca = TestCa::new("server CA").unwrap();
    let client_ca = TestCa::new("client CA").unwrap();
    let other_ca = TestCa::new("other CA").unwrap();
    // shop: the client CA in Secret `shop-cert-cacert`; pay: in the credential's own ca.crt.
    let shop = server_ca.issue(&["shop.example.com"]).unwrap();
    let pay = server_ca.issue(&["pay.example.com"]).unwrap();
    mesh.write_config(
        "secret-shop.yaml",
        &shop.tls_secret_yaml("istio-system", "shop-cert", None),
    )
    .unwrap();
    mesh.write_config(
        "secret-shop-ca.yaml",
        &ca_secret("shop-cert-cacert", &client_ca.cert_pem),
    )
    .unwrap();
    mesh.write_config(
        "secret-pay.yaml",
        &pay.tls_secret_yaml("istio-system", "pay-cert", Some(&client_ca.cert_pem)),
    )
    .unwrap();
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(
            "  - port: {number: 443, name: https-shop, protocol: HTTPS}\n    hosts: [shop.example.com]\n    tls: {mode: MUTUAL, credentialName: shop-cert}\n  - port: {number: 9443, name: https-pay, protocol: HTTPS}\n    hosts: [pay.example.com]\n    tls: {mode: MUTUAL, credentialName: pay-cert}\n  - port: {number: 8443, name: https-mesh, protocol: HTTPS}\n    hosts: [mesh.example.com]\n    tls: {mode: ISTIO_MUTUAL}\n",
        ),
    )
    .unwrap();
    for public in ["shop.example.com", "pay.example.com", "mesh.example.com"] {
        let name = public.split('.').next().unwrap();
        mesh.write_config(
            &format!("vs-{name}.yaml"),
            &gateway_vs(NS, name, public, "reviews"),
        )
        .unwrap();
    }

    let dir = client_dir(&mesh);
    let trusted = client_ca.issue(&["user.example.com"]).unwrap();
    let untrusted = other_ca.issue(&["user.example.com"]).unwrap();
    let server_ca_file = file(&dir, "server-ca.crt", &server_ca.cert_pem);
    let (trusted_cert, trusted_key) = (
        file(&dir, "trusted.crt", &trusted.cert_pem),
        file(&dir, "trusted.key", &trusted.key_pem),
    );
    let (untrusted_cert, untrusted_key) = (
        file(&dir, "untrusted.crt", &untrusted.cert_pem),
        file(&dir, "untrusted.key", &untrusted.key_pem),
    );

    for (public, port) in [("shop.example.com", 443), ("pay.example.com", 9443)] {
        let resolve = format!("{public}:{port}:{gw}");
        let url = format!("https://{public}:{port}/reviews/1");
        let base = ["--resolve", &resolve, "--cacert", &server_ca_file, &url];
        // A client certificate signed by the configured client CA: 200 from reviews.
        let with_cert = [&base[..], &["--cert", &trusted_cert, "--key", &trusted_key]].concat();
        let reply = curl_until(&mesh, &outside, &with_cert, |r| r.status == 200)
            .unwrap_or_else(|e| panic!("MUTUAL {public}: {e}\n{}", gateway_diagnostics(&mesh)));
        assert!(
            reply.body.contains("\"service\":\"reviews\""),
            "{public}: {}",
            reply.body
        );
        // No client certificate: the handshake is refused (no HTTP response at all).
        assert_refused_at_handshake(
            &mesh,
            &outside,
            &with_cert,
            &base,
            &format!("MUTUAL {public} without a client certificate"),
        );
        // A certificate from a CA the server does not trust: refused as well.
        let other = [
            &base[..],
            &["--cert", &untrusted_cert, "--key", &untrusted_key],
        ]
        .concat();
        assert_refused_at_handshake(
            &mesh,
            &outside,
            &with_cert,
            &other,
            &format!("MUTUAL {public} with a certificate of another CA"),
        );
    }

    // ISTIO_MUTUAL: the gateway presents its own workload certificate (a SPIFFE ID only,
    // hence -k) and requires one issued by the mesh's CA.
    let certs = mesh.cert_dir(NS, "client");
    let (mesh_cert, mesh_key) = (
        certs.join("cert-chain.pem").display().to_string(),
        certs.join("key.pem").display().to_string(),
    );
    let resolve = format!("mesh.example.com:8443:{gw}");
    let url = "https://mesh.example.com:8443/reviews/1";
    let base = ["-k", "--resolve", &resolve, url];
    let with_mesh_cert = [&base[..], &["--cert", &mesh_cert, "--key", &mesh_key]].concat();
    let reply = curl_until(&mesh, &outside, &with_mesh_cert, |r| r.status == 200)
        .unwrap_or_else(|e| panic!("ISTIO_MUTUAL: {e}\n{}", gateway_diagnostics(&mesh)));
    assert!(
        reply.body.contains("\"service\":\"reviews\""),
        "{}",
        reply.body
    );
    // The mesh's TLS is 1.3 only (docs/architecture.md), where the client sees the server's
    // refusal after its own side of the handshake: `openssl s_client` (which sends nothing)
    // shows the server's alert.
    let connect = format!("{gw}:8443");
    for (extra, what) in [
        ("", "ISTIO_MUTUAL without a client certificate"),
        (
            format!("-cert {trusted_cert} -key {trusted_key}").as_str(),
            "ISTIO_MUTUAL with a certificate the mesh CA did not issue",
        ),
    ] {
        let output = handshake(&mesh, &outside, &connect, extra);
        assert!(
            output.contains("alert"),
            "{what}: the server sent no TLS alert:\n{output}"
        );
    }
    let output = handshake(
        &mesh,
        &outside,
        &connect,
        &format!("-cert {mesh_cert} -key {mesh_key}"),
    );
    assert!(
        !output.contains("alert"),
        "the mesh certificate (control) got an alert:\n{output}"
    );
}

#[test]
fn server_hosts_with_a_namespace_prefix_bind_only_that_namespaces_virtual_services() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    let gw = ingress_gateway(&mut mesh);
    let client = mesh.add_plain_host("outside").unwrap();
    // `demo/*.example.com`: VirtualServices of namespace demo only; `./admin.example.com`:
    // of the Gateway's own namespace (istio-system).
    let scoped = "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"demo/*.example.com\", \"./admin.example.com\"]\n";
    mesh.write_config("gateway.yaml", &gateway_yaml(scoped))
        .unwrap();
    mesh.write_config(
        "vs-bound.yaml",
        &gateway_vs(NS, "bound", "bound.example.com", "reviews"),
    )
    .unwrap();
    mesh.write_config(
        "vs-admin.yaml",
        &gateway_vs("istio-system", "admin", "admin.example.com", "reviews"),
    )
    .unwrap();
    mesh.write_config(
        "vs-stray.yaml",
        &gateway_vs("other", "stray", "stray.example.com", "reviews"),
    )
    .unwrap();
    let url = format!("http://{gw}/reviews/1");
    for public in ["bound.example.com", "admin.example.com"] {
        let header = format!("Host: {public}");
        let reply = curl_until(&mesh, &client, &["-H", &header, &url], |r| r.status == 200)
            .unwrap_or_else(|e| panic!("{public}: {e}\n{}", gateway_diagnostics(&mesh)));
        assert!(
            reply.body.contains("\"service\":\"reviews\""),
            "{public}: {}",
            reply.body
        );
    }
    // The VirtualService of namespace `other` names the gateway and a matching host, but the
    // server admits only demo's: no route, 404 with Envoy's `NR` flag.
    let stray = curl(&mesh, &client, &["-H", "Host: stray.example.com", &url]).unwrap();
    assert_eq!(stray.status, 404, "{stray:?}");
    let (reported, _) = eventually(
        Duration::from_secs(5),
        || gateway_reported(&mesh, "404", "NR"),
        |seen| *seen,
    );
    assert!(reported, "no 404 NR in the gateway's metrics");

    // The same VirtualService binds once the server admits any namespace (`*/`): the 404 was
    // the namespace rule's doing.
    let any =
        "  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"*/*.example.com\"]\n";
    mesh.write_config("gateway.yaml", &gateway_yaml(any))
        .unwrap();
    let reply = curl_until(
        &mesh,
        &client,
        &["-H", "Host: stray.example.com", &url],
        |r| r.status == 200,
    )
    .unwrap_or_else(|e| panic!("stray with */: {e}\n{}", gateway_diagnostics(&mesh)));
    assert!(
        reply.body.contains("\"service\":\"reviews\""),
        "{}",
        reply.body
    );
}

/// The serial number (big-endian bytes) of the first certificate in `pem`.
fn serial(pem: &str) -> Option<Vec<u8>> {
    let start = pem.find("-----BEGIN CERTIFICATE-----")?;
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem.as_bytes()[start..]).ok()?;
    let cert = block.parse_x509().ok()?;
    Some(cert.tbs_certificate.raw_serial().to_vec())
}

/// The serial of the certificate the gateway at `gw` presents for SNI `sni` on 443, as
/// `openssl s_client` sees it from `client`.
fn served_serial(
    mesh: &LocalMesh,
    client: &weft_lab::Host,
    gw: &str,
    sni: &str,
) -> Option<Vec<u8>> {
    let script =
        format!("openssl s_client -connect {gw}:443 -servername {sni} </dev/null 2>/dev/null");
    let out = mesh.lab().exec(client, "sh", &["-c", &script]).ok()?;
    serial(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn a_credential_name_secret_rewritten_in_the_config_dir_is_served_on_the_next_handshake() {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    let gw = ingress_gateway(&mut mesh).to_string();
    let client = mesh.add_plain_host("outside").unwrap();
    let ca = TestCa::new("example CA").unwrap();
    let first: Leaf = ca.issue(&["shop.example.com"]).unwrap();
    mesh.write_config(
        "secret-shop.yaml",
        &first.tls_secret_yaml("istio-system", "shop-cert", None),
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
        &gateway_vs(NS, "shop", "shop.example.com", "reviews"),
    )
    .unwrap();
    let ca_file = file(&client_dir(&mesh), "ca.crt", &ca.cert_pem);
    let resolve = format!("shop.example.com:443:{gw}");
    let args = [
        "--resolve",
        resolve.as_str(),
        "--cacert",
        &ca_file,
        "https://shop.example.com/reviews/1",
    ];
    curl_until(&mesh, &client, &args, |r| r.status == 200).unwrap_or_else(|e| {
        panic!(
            "HTTPS with credentialName: {e}\n{}",
            gateway_diagnostics(&mesh)
        )
    });
    let first_serial = serial(&first.cert_pem).unwrap();
    assert_eq!(
        served_serial(&mesh, &client, &gw, "shop.example.com"),
        Some(first_serial.clone())
    );

    // The Secret is rewritten with a new certificate (a rotation, as cert-manager does).
    let second = ca.issue(&["shop.example.com"]).unwrap();
    let second_serial = serial(&second.cert_pem).unwrap();
    assert_ne!(first_serial, second_serial);
    mesh.write_config(
        "secret-shop.yaml",
        &second.tls_secret_yaml("istio-system", "shop-cert", None),
    )
    .unwrap();
    let (served, took) = eventually(
        Duration::from_secs(15),
        || served_serial(&mesh, &client, &gw, "shop.example.com"),
        |served| served.as_ref() == Some(&second_serial),
    );
    assert_eq!(
        served,
        Some(second_serial),
        "the rotated certificate was not served after {took:?}\n{}",
        gateway_diagnostics(&mesh)
    );
    // And HTTPS still works with the new certificate.
    let reply = curl(&mesh, &client, &args).unwrap();
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// A sidecar client `client` calling `mesh.example.com:8443`, which a ServiceEntry
/// (`endpoints`: its YAML, indented by 2) places at the ingress gateway, through a Gateway
/// server `ISTIO_MUTUAL` with `server_hosts`; the DestinationRule originates `ISTIO_MUTUAL`
/// with `sni: mesh.example.com`, as Istio's egress gateway task does. Asserts that 5 requests
/// reach reviews.
fn sidecar_through_an_istio_mutual_server(server_hosts: &str, endpoints: &str) {
    let mut mesh = mesh_or_skip!();
    add_reviews_v1(&mut mesh);
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let gw = ingress_gateway(&mut mesh);
    mesh.write_config(
        "gateway.yaml",
        &gateway_yaml(&format!(
            "  - port: {{number: 8443, name: https-mesh, protocol: HTTPS}}\n    hosts: [{server_hosts}]\n    tls: {{mode: ISTIO_MUTUAL}}\n"
        )),
    )
    .unwrap();
    mesh.write_config(
        "vs-mesh.yaml",
        &gateway_vs(NS, "mesh", "mesh.example.com", "reviews"),
    )
    .unwrap();
    let vip = mesh.lab().vip(9);
    let endpoints = endpoints.replace("{gw}", &gw.to_string());
    mesh.write_config(
        "se-gateway.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: mesh-gateway, namespace: istio-system}}\nspec:\n  hosts: [mesh.example.com]\n  addresses: [{vip}]\n  ports: [{{number: 8443, name: http, protocol: HTTP}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n{endpoints}"
        ),
    )
    .unwrap();
    mesh.write_config(
        "dr-gateway.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: mesh-gateway, namespace: {NS}}}\nspec:\n  host: mesh.example.com\n  trafficPolicy: {{tls: {{mode: ISTIO_MUTUAL, sni: mesh.example.com}}}}\n"
        ),
    )
    .unwrap();
    let (report, _) = eventually(
        Duration::from_secs(15),
        || {
            mesh.load(
                "client",
                "http://mesh.example.com:8443/reviews/1",
                &[("mesh.example.com", vip)],
                &[],
                5,
                1,
            )
            .unwrap_or_default()
        },
        |report| weft_e2e::count(report, "versions", "v1") == 5,
    );
    assert_eq!(
        weft_e2e::count(&report, "versions", "v1"),
        5,
        "{report}\n{}\nclient proxy config:\n{}",
        gateway_diagnostics(&mesh),
        config_dump(&mesh, "client")
    );
}

#[test]
fn istio_mutual_server_serves_a_mesh_clients_sidecar() {
    // A server for any host: whatever SNI the sidecar sends, its workload certificate is
    // what the server checks. The ServiceEntry selects the gateway's WorkloadEntry (as a
    // Kubernetes Service selects the gateway's pods).
    sidecar_through_an_istio_mutual_server(
        "\"*\"",
        "  workloadSelector: {labels: {istio: ingressgateway}}\n",
    );
}

#[test]
fn istio_mutual_server_serves_a_mesh_clients_sidecar_by_the_destination_rules_sni() {
    // The ServiceEntry selects the gateway's WorkloadEntry (as a Kubernetes Service selects
    // the gateway's pods).
    sidecar_through_an_istio_mutual_server(
        "mesh.example.com",
        "  workloadSelector: {labels: {istio: ingressgateway}}\n",
    );
}

#[test]
fn istio_mutual_destination_rule_originates_mutual_tls_to_an_endpoint_address() {
    // The server takes any SNI, so only the DestinationRule's TLS origination is exercised.
    sidecar_through_an_istio_mutual_server("\"*\"", "  endpoints: [{address: \"{gw}\"}]\n");
}
