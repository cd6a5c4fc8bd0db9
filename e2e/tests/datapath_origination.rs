//! Data path: TLS origination by the client's sidecar (DestinationRule `trafficPolicy.tls`).
//! The application sends plain HTTP to a MESH_EXTERNAL ServiceEntry; the sidecar originates
//! TLS to an `openssl s_server` outside the mesh whose certificate the test's own CA issued.
//! SIMPLE verifies the server against `caCertificates`, sends `sni` and checks
//! `subjectAltNames` (a wrong SAN fails the handshake: 503 with response flag `UF`, as Envoy
//! reports it); MUTUAL presents the client certificate files to a server that requires one
//! (SIMPLE to that server fails), or the certificate of the Secret `credentialName` names
//! (failing closed while it is missing, and following its rotation); DISABLE talks plaintext
//! to a plaintext server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use weft_e2e::{NS, apply, count, eventually, mesh_or_skip};
use weft_lab::Host;
use weft_lab::mesh::{LocalMesh, MeshBinaries};
use weft_lab::pki::TestCa;

const SECURE: &str = "secure.external.test";
const PLAIN: &str = "plain.external.test";

/// Writes `text` to `dir/name`, readable by the proxy (UID 1337); returns the path.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path.display().to_string()
}

/// Starts `openssl s_server -www` on `host`:8443 with `cert`/`key`; with `client_ca`, the
/// server requires a client certificate issued by it.
fn tls_server(mesh: &mut LocalMesh, host: &Host, cert: &str, key: &str, client_ca: Option<&str>) {
    let mut args: Vec<String> = ["s_server", "-quiet", "-www", "-accept", "8443"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(["-cert".into(), cert.into(), "-key".into(), key.into()]);
    if let Some(ca) = client_ca {
        args.extend(["-Verify".into(), "1".into(), "-CAfile".into(), ca.into()]);
    }
    mesh.lab_mut()
        .spawn(
            host,
            &format!("{}-tls", host.name),
            Path::new("/usr/bin/openssl"),
            &args,
            &[],
            None,
        )
        .unwrap();
}

/// A host outside the mesh serving plain HTTP (`weft-sample-app`) on 9080.
fn plain_server(mesh: &mut LocalMesh, name: &str) -> Host {
    let host = mesh.add_plain_host(name).unwrap();
    let app = MeshBinaries::locate(None).unwrap().app;
    let args: Vec<String> = ["serve", "--service", name, "--listen", "0.0.0.0:9080"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    mesh.lab_mut()
        .spawn(&host, &format!("{name}-app"), &app, &args, &[], None)
        .unwrap();
    host
}

/// A MESH_EXTERNAL ServiceEntry `host` at `vip` on HTTP port 80, forwarding to
/// `endpoint:target`.
fn entry(name: &str, host: &str, vip: Ipv4Addr, endpoint: Ipv4Addr, target: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  hosts: [{host}]\n  addresses: [{vip}]\n  ports: [{{number: 80, name: http, protocol: HTTP, targetPort: {target}}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{{address: {endpoint}}}]\n"
    )
}

/// The DestinationRule of `host` with `tls` (a flow mapping of ClientTLSSettings).
fn tls_rule(name: &str, host: &str, tls: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  host: {host}\n  trafficPolicy:\n    tls: {tls}\n"
    )
}

/// Whether `client`'s sidecar reported a request with `code` and `flags`.
fn reported(mesh: &LocalMesh, code: &str, flags: &str) -> bool {
    mesh.proxy_metrics("client").unwrap().lines().any(|l| {
        l.starts_with("istio_requests_total")
            && l.contains(&format!("response_code=\"{code}\""))
            && l.contains(&format!("response_flags=\"{flags}\""))
    })
}

#[test]
fn destination_rule_tls_simple_mutual_and_disable() {
    let mut mesh = mesh_or_skip!();
    let dir: PathBuf = mesh.lab().log_dir().join("origination-certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server_ca = TestCa::new("origination server CA").unwrap();
    let client_ca = TestCa::new("origination client CA").unwrap();
    let server_leaf = server_ca.issue(&[SECURE]).unwrap();
    let client_leaf = client_ca.issue(&["client.demo"]).unwrap();
    let ca = write(&dir, "server-ca.pem", &server_ca.cert_pem);
    let server_cert = write(&dir, "server.pem", &server_leaf.cert_pem);
    let server_key = write(&dir, "server-key.pem", &server_leaf.key_pem);
    let client_ca_file = write(&dir, "client-ca.pem", &client_ca.cert_pem);
    let client_cert = write(&dir, "client.pem", &client_leaf.cert_pem);
    let client_key = write(&dir, "client-key.pem", &client_leaf.key_pem);

    let simple_host = mesh.add_plain_host("simple").unwrap();
    tls_server(&mut mesh, &simple_host, &server_cert, &server_key, None);
    let mutual_host = mesh.add_plain_host("mutual").unwrap();
    tls_server(
        &mut mesh,
        &mutual_host,
        &server_cert,
        &server_key,
        Some(&client_ca_file),
    );
    let plain_host = plain_server(&mut mesh, "plain");
    let (secure_vip, plain_vip) = (mesh.lab().vip(6), mesh.lab().vip(7));
    mesh.write_config(
        "se-secure.yaml",
        &entry("secure", SECURE, secure_vip, simple_host.ip, 8443),
    )
    .unwrap();
    mesh.write_config(
        "se-plain.yaml",
        &entry("plain", PLAIN, plain_vip, plain_host.ip, 9080),
    )
    .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let get = |host: &str, vip: Ipv4Addr| {
        mesh.load(
            "client",
            &format!("http://{host}/"),
            &[(host, vip)],
            &[],
            4,
            1,
        )
        .unwrap()
    };

    // SIMPLE with the server's CA, SNI and SAN: the request reaches s_server.
    apply(
        &mesh,
        "dr-secure.yaml",
        &tls_rule(
            "secure",
            SECURE,
            &format!(
                "{{mode: SIMPLE, caCertificates: {ca}, sni: {SECURE}, subjectAltNames: [{SECURE}]}}"
            ),
        ),
    );
    let (simple, _) = eventually(
        Duration::from_secs(10),
        || get(SECURE, secure_vip),
        |r| count(r, "status", "200") == 4,
    );
    assert_eq!(
        count(&simple, "status", "200"),
        4,
        "SIMPLE origination to the TLS server: {simple}\n{}\n{}",
        mesh.log("client-proxy"),
        mesh.log("simple-tls")
    );

    // The server that requires a client certificate: SIMPLE fails, MUTUAL with files passes.
    mesh.write_config(
        "se-secure.yaml",
        &entry("secure", SECURE, secure_vip, mutual_host.ip, 8443),
    )
    .unwrap();
    apply(
        &mesh,
        "dr-secure.yaml",
        &tls_rule(
            "secure",
            SECURE,
            &format!("{{mode: SIMPLE, caCertificates: {ca}, sni: {SECURE}}}"),
        ),
    );
    let (without_cert, _) = eventually(
        Duration::from_secs(10),
        || get(SECURE, secure_vip),
        |r| count(r, "status", "200") == 0,
    );
    assert_eq!(
        count(&without_cert, "status", "200"),
        0,
        "the server requires a client certificate: {without_cert}"
    );
    apply(
        &mesh,
        "dr-secure.yaml",
        &tls_rule(
            "secure",
            SECURE,
            &format!(
                "{{mode: MUTUAL, clientCertificate: {client_cert}, privateKey: {client_key}, caCertificates: {ca}, sni: {SECURE}, subjectAltNames: [{SECURE}]}}"
            ),
        ),
    );
    let (mutual, _) = eventually(
        Duration::from_secs(10),
        || get(SECURE, secure_vip),
        |r| count(r, "status", "200") == 4,
    );
    assert_eq!(
        count(&mutual, "status", "200"),
        4,
        "MUTUAL presents the client certificate: {mutual}\n{}",
        mesh.log("mutual-tls")
    );

    // DISABLE: plaintext to a plaintext server (for a MESH_EXTERNAL service the same cluster
    // as without the rule, so the proxy's config does not change: no acknowledgement to wait
    // for).
    mesh.write_config(
        "dr-plain.yaml",
        &tls_rule("plain", PLAIN, "{mode: DISABLE}"),
    )
    .unwrap();
    let (plain, _) = eventually(
        Duration::from_secs(10),
        || get(PLAIN, plain_vip),
        |r| count(r, "status", "200") == 4,
    );
    assert_eq!(
        count(&plain, "status", "200"),
        4,
        "DISABLE talks plaintext: {plain}"
    );
}

/// `subjectAltNames` replace the SNI as the names the server certificate must be valid for:
/// a server whose certificate does not carry one of them is refused: 503 with `UF,URX` (the
/// handshake fails as a connection failure, and Istio's default retries on connect-failure
/// are exhausted, as Envoy reports it).
#[test]
fn simple_origination_refuses_a_server_without_the_expected_subject_alt_name() {
    let mut mesh = mesh_or_skip!();
    let dir: PathBuf = mesh.lab().log_dir().join("origination-certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server_ca = TestCa::new("origination server CA").unwrap();
    let server_leaf = server_ca.issue(&[SECURE]).unwrap();
    let ca = write(&dir, "server-ca.pem", &server_ca.cert_pem);
    let server_cert = write(&dir, "server.pem", &server_leaf.cert_pem);
    let server_key = write(&dir, "server-key.pem", &server_leaf.key_pem);
    let simple_host = mesh.add_plain_host("simple").unwrap();
    tls_server(&mut mesh, &simple_host, &server_cert, &server_key, None);
    let secure_vip = mesh.lab().vip(6);
    mesh.write_config(
        "se-secure.yaml",
        &entry("secure", SECURE, secure_vip, simple_host.ip, 8443),
    )
    .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    apply(
        &mesh,
        "dr-secure.yaml",
        &tls_rule(
            "secure",
            SECURE,
            &format!(
                "{{mode: SIMPLE, caCertificates: {ca}, sni: {SECURE}, subjectAltNames: [other.external.test]}}"
            ),
        ),
    );
    let wrong_san = mesh
        .load(
            "client",
            &format!("http://{SECURE}/"),
            &[(SECURE, secure_vip)],
            &[],
            4,
            1,
        )
        .unwrap();
    assert_eq!(
        count(&wrong_san, "status", "503"),
        4,
        "a server certificate without the expected SAN is refused: {wrong_san}"
    );
    assert!(
        reported(&mesh, "503", "UF,URX"),
        "the refusal is reported as 503 UF,URX:\n{}",
        mesh.proxy_metrics("client").unwrap()
    );
}

/// A generic (Opaque) Secret `name` in [`NS`] with Istio's keys `cert`, `key` and `cacert`.
fn credential_secret(name: &str, cert: &str, key: &str, cacert: &str) -> String {
    let block = |pem: &str| {
        pem.lines()
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {NS}}}\ntype: Opaque\nstringData:\n  cert: |\n{}  key: |\n{}  cacert: |\n{}",
        block(cert),
        block(key),
        block(cacert)
    )
}

/// The page `openssl s_server -www` returns to `client` for `http://SECURE/` through its
/// sidecar (it prints the client certificate the server saw).
fn server_page(mesh: &LocalMesh, vip: Ipv4Addr) -> String {
    let host = mesh.workload("client").unwrap().host.clone();
    let resolve = format!("{SECURE}:80:{vip}");
    let url = format!("http://{SECURE}/");
    let out = mesh
        .lab()
        .exec(
            &host,
            "/usr/bin/curl",
            &["-s", "--max-time", "5", "--resolve", &resolve, &url],
        )
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// DestinationRule `tls` `MUTUAL` with `credentialName` at a sidecar (Istio: through a rule
/// with a `workloadSelector`; the Secret in the proxy's namespace, keys `cert`/`key`/`cacert`)
/// to an `openssl s_server -Verify` that requires a client certificate: without the Secret the
/// cluster fails closed (503, flag `UF`: no plaintext, no connection without the
/// certificate); with it every request gets 200 and the server sees the Secret's certificate;
/// a rotated Secret is used by the next connection.
#[test]
fn mutual_origination_with_a_credential_name_secret() {
    let mut mesh = mesh_or_skip!();
    let dir: PathBuf = mesh.lab().log_dir().join("origination-certs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server_ca = TestCa::new("origination server CA").unwrap();
    let client_ca = TestCa::new("origination client CA").unwrap();
    let server_leaf = server_ca.issue(&[SECURE]).unwrap();
    let first = client_ca.issue(&["client-a.demo"]).unwrap();
    let rotated = client_ca.issue(&["client-b.demo"]).unwrap();
    let server_cert = write(&dir, "server.pem", &server_leaf.cert_pem);
    let server_key = write(&dir, "server-key.pem", &server_leaf.key_pem);
    let client_ca_file = write(&dir, "client-ca.pem", &client_ca.cert_pem);
    let mutual_host = mesh.add_plain_host("mutual").unwrap();
    tls_server(
        &mut mesh,
        &mutual_host,
        &server_cert,
        &server_key,
        Some(&client_ca_file),
    );
    let secure_vip = mesh.lab().vip(6);
    mesh.write_config(
        "se-secure.yaml",
        &entry("secure", SECURE, secure_vip, mutual_host.ip, 8443),
    )
    .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let get = || {
        mesh.load(
            "client",
            &format!("http://{SECURE}/"),
            &[(SECURE, secure_vip)],
            &[],
            4,
            1,
        )
        .unwrap()
    };

    // The rule selects the client (label app: client); its Secret does not exist yet.
    apply(
        &mesh,
        "dr-secure.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: secure, namespace: {NS}}}\nspec:\n  host: {SECURE}\n  workloadSelector: {{matchLabels: {{app: client}}}}\n  trafficPolicy:\n    tls: {{mode: MUTUAL, credentialName: client-credential, sni: {SECURE}, subjectAltNames: [{SECURE}]}}\n"
        ),
    );
    let missing = get();
    assert_eq!(
        count(&missing, "status", "503"),
        4,
        "a missing credential fails closed: {missing}\n{}",
        mesh.log("client-proxy")
    );
    let metrics = mesh.proxy_metrics("client").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("response_code=\"503\"")
                && l.contains("response_flags=\"UF")),
        "reported as a connection failure (UF):\n{metrics}"
    );
    let log = mesh.log("client-proxy");
    assert!(
        !log.contains("PRIVATE KEY"),
        "key material in the proxy log"
    );

    // The Secret appears: MUTUAL with its certificate; the server saw that certificate.
    apply(
        &mesh,
        "secret-client.yaml",
        &credential_secret(
            "client-credential",
            &first.cert_pem,
            &first.key_pem,
            &server_ca.cert_pem,
        ),
    );
    let (mutual, _) = eventually(Duration::from_secs(10), get, |r| {
        count(r, "status", "200") == 4
    });
    assert_eq!(
        count(&mutual, "status", "200"),
        4,
        "MUTUAL with the Secret's certificate: {mutual}\n{}",
        mesh.log("mutual-tls")
    );
    let page = server_page(&mesh, secure_vip);
    assert!(
        page.contains("client-a.demo") && !page.contains("client-b.demo"),
        "the server saw the Secret's certificate:\n{page}"
    );

    // Rotation: the next connection presents the new certificate.
    apply(
        &mesh,
        "secret-client.yaml",
        &credential_secret(
            "client-credential",
            &rotated.cert_pem,
            &rotated.key_pem,
            &server_ca.cert_pem,
        ),
    );
    let (page, _) = eventually(
        Duration::from_secs(10),
        || server_page(&mesh, secure_vip),
        |page| page.contains("client-b.demo"),
    );
    assert!(
        page.contains("client-b.demo") && !page.contains("client-a.demo"),
        "the rotated certificate is used by the next connection:\n{page}"
    );
    let rotated_load = get();
    assert_eq!(count(&rotated_load, "status", "200"), 4, "{rotated_load}");
}
