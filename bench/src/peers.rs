//! The peer proxies of the comparison, HAProxy and nginx: their certificates (issued by a test
//! CA with `weft-identity`, as the mesh's own) and their configuration files.
//!
//! Each pair does the hop the Weft pair does: the client-side proxy takes plain HTTP/1.1 on a
//! local port and opens TLS 1.3 to the server-side proxy with a client certificate, verifying
//! the server's certificate against the test root and its name; the server-side proxy requires
//! and verifies the client certificate and forwards plain HTTP/1.1 to the application. Both keep
//! upstream connections alive and reuse them (HAProxy `http-reuse always`; nginx `keepalive`
//! with `proxy_http_version 1.1`), as a sidecar's connection pool does, and neither logs
//! requests (the sidecars run with `--access-log off`). The one-hop throughput configurations
//! are the same without TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use weft_identity::{CaError, CertificateAuthority, Identity, SystemClock};

/// Why the peers' certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The test CA failed to create or issue.
    #[error("test CA: {0}")]
    Ca(#[from] CaError),
    /// The identity of the client-side proxy is invalid.
    #[error("client identity: {0}")]
    Identity(#[from] weft_identity::IdentityError),
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// The certificate files of a peer pair, all PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The test root, trusted by both sides.
    pub root: PathBuf,
    /// The client-side proxy's chain (leaf first).
    pub client_chain: PathBuf,
    /// The client-side proxy's PKCS#8 key.
    pub client_key: PathBuf,
    /// Chain followed by key (HAProxy's `crt` format).
    pub client_combined: PathBuf,
    /// The server-side proxy's chain (leaf first).
    pub server_chain: PathBuf,
    /// The server-side proxy's PKCS#8 key.
    pub server_key: PathBuf,
    /// Chain followed by key.
    pub server_combined: PathBuf,
}

/// Creates a self-signed test CA for `trust_domain` and issues, into `dir`: a workload
/// certificate for `client_identity` (SPIFFE URI SAN, client and server auth — what a sidecar
/// holds) and a serving certificate for `server_name` (DNS SAN, server auth), both ECDSA P-256
/// valid for one day. Returns the paths. Errors when the CA fails or a file cannot be written.
pub fn write_certificates(
    dir: &Path,
    client_identity: &Identity,
    server_name: &str,
) -> Result<TlsFiles, PeerError> {
    let ca = CertificateAuthority::self_signed(
        client_identity.trust_domain(),
        None,
        Arc::new(SystemClock),
    )?;
    let day = Duration::from_secs(24 * 3600);
    let client = ca.issue_workload(client_identity, day)?;
    let server = ca.issue_serving(&[server_name], day)?;
    let write = |name: &str, text: &str| -> Result<PathBuf, PeerError> {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|source| PeerError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    };
    let client_key = client.private_key_pem.expose_secret();
    let server_key = server.private_key_pem.expose_secret();
    Ok(TlsFiles {
        root: write("root-cert.pem", &ca.trust_bundle_pem())?,
        client_chain: write("client-chain.pem", &client.cert_chain_pem)?,
        client_key: write("client-key.pem", client_key)?,
        client_combined: write(
            "client-combined.pem",
            &format!("{}{client_key}", client.cert_chain_pem),
        )?,
        server_chain: write("server-chain.pem", &server.cert_chain_pem)?,
        server_key: write("server-key.pem", server_key)?,
        server_combined: write(
            "server-combined.pem",
            &format!("{}{server_key}", server.cert_chain_pem),
        )?,
    })
}

fn haproxy_head(threads: u32) -> String {
    format!(
        "global\n    nbthread {threads}\n    maxconn 4096\n\n\
         defaults\n    mode http\n    timeout connect 5s\n    timeout client 60s\n    \
         timeout server 60s\n    http-reuse always\n\n"
    )
}

/// HAProxy's client-side configuration: plain HTTP in on `listen`, TLS 1.3 out to `upstream`
/// with the client certificate, verifying the server against the root and `server_name`;
/// `threads` worker threads (`nbthread`).
pub fn haproxy_client(
    listen: SocketAddr,
    upstream: SocketAddr,
    server_name: &str,
    files: &TlsFiles,
    threads: u32,
) -> String {
    format!(
        "{head}frontend plain_in\n    bind {listen}\n    default_backend tls_out\n\n\
         backend tls_out\n    server peer {upstream} ssl ssl-min-ver TLSv1.3 verify required \
         ca-file {root} crt {crt} sni str({server_name}) verifyhost {server_name}\n",
        head = haproxy_head(threads),
        root = files.root.display(),
        crt = files.client_combined.display(),
    )
}

/// HAProxy's server-side configuration: TLS 1.3 in on `listen` requiring a client certificate
/// signed by the root, plain HTTP out to `app`.
pub fn haproxy_server(
    listen: SocketAddr,
    app: SocketAddr,
    files: &TlsFiles,
    threads: u32,
) -> String {
    format!(
        "{head}frontend tls_in\n    bind {listen} ssl ssl-min-ver TLSv1.3 crt {crt} ca-file {root} \
         verify required\n    default_backend app\n\n\
         backend app\n    server app {app}\n",
        head = haproxy_head(threads),
        root = files.root.display(),
        crt = files.server_combined.display(),
    )
}

/// HAProxy as one plain hop (the throughput run): HTTP in on `listen`, HTTP out to `upstream`.
pub fn haproxy_plain(listen: SocketAddr, upstream: SocketAddr, threads: u32) -> String {
    format!(
        "{head}frontend plain_in\n    bind {listen}\n    default_backend plain_out\n\n\
         backend plain_out\n    server upstream {upstream}\n",
        head = haproxy_head(threads),
    )
}

/// The parts every nginx configuration shares; `prefix` holds its pid file and temp paths.
fn nginx_wrap(prefix: &Path, workers: u32, upstream: &str, server: &str) -> String {
    let p = prefix.display();
    format!(
        "worker_processes {workers};\ndaemon off;\npid {p}/nginx.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {p}/body;\n    \
         proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n    \
         uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n    \
         keepalive_requests 1000000;\n    keepalive_timeout 120s;\n\
         {upstream}{server}}}\n"
    )
}

fn nginx_upstream(name: &str, address: SocketAddr) -> String {
    format!(
        "    upstream {name} {{\n        server {address};\n        keepalive 32;\n        \
         keepalive_requests 1000000;\n    }}\n"
    )
}

const NGINX_PROXY_HTTP11: &str =
    "            proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n";

/// nginx's client-side configuration: plain HTTP in on `listen`, TLS 1.3 out to `upstream` with
/// the client certificate, verifying the server against the root and `server_name`;
/// `workers` worker processes plus the master.
pub fn nginx_client(
    prefix: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    server_name: &str,
    files: &TlsFiles,
    workers: u32,
) -> String {
    let server = format!(
        "    server {{\n        listen {listen};\n        location / {{\n            \
         proxy_pass https://peer;\n{NGINX_PROXY_HTTP11}            \
         proxy_ssl_protocols TLSv1.3;\n            proxy_ssl_certificate {chain};\n            \
         proxy_ssl_certificate_key {key};\n            proxy_ssl_trusted_certificate {root};\n            \
         proxy_ssl_verify on;\n            proxy_ssl_name {server_name};\n            \
         proxy_ssl_server_name on;\n        }}\n    }}\n",
        chain = files.client_chain.display(),
        key = files.client_key.display(),
        root = files.root.display(),
    );
    nginx_wrap(prefix, workers, &nginx_upstream("peer", upstream), &server)
}

/// nginx's server-side configuration: TLS 1.3 in on `listen` requiring a client certificate
/// signed by the root, plain HTTP out to `app`.
pub fn nginx_server(
    prefix: &Path,
    listen: SocketAddr,
    app: SocketAddr,
    files: &TlsFiles,
    workers: u32,
) -> String {
    let server = format!(
        "    server {{\n        listen {listen} ssl;\n        ssl_protocols TLSv1.3;\n        \
         ssl_certificate {chain};\n        ssl_certificate_key {key};\n        \
         ssl_client_certificate {root};\n        ssl_verify_client on;\n        \
         location / {{\n            proxy_pass http://app;\n{NGINX_PROXY_HTTP11}        }}\n    }}\n",
        chain = files.server_chain.display(),
        key = files.server_key.display(),
        root = files.root.display(),
    );
    nginx_wrap(prefix, workers, &nginx_upstream("app", app), &server)
}

/// nginx as one plain hop (the throughput run).
pub fn nginx_plain(
    prefix: &Path,
    listen: SocketAddr,
    upstream: SocketAddr,
    workers: u32,
) -> String {
    let server = format!(
        "    server {{\n        listen {listen};\n        location / {{\n            \
         proxy_pass http://upstream_plain;\n{NGINX_PROXY_HTTP11}        }}\n    }}\n"
    );
    nginx_wrap(
        prefix,
        workers,
        &nginx_upstream("upstream_plain", upstream),
        &server,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn files(dir: &Path) -> TlsFiles {
        let identity = Identity::spiffe("cluster.local", "bench", "client").unwrap();
        write_certificates(dir, &identity, "server.bench.svc.cluster.local").unwrap()
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn certificates_name_the_client_identity_and_the_server_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let client = std::fs::read_to_string(&files.client_chain).unwrap();
        let der = weft_identity::pem::parse_certificates(&client, "client").unwrap();
        let identity = Identity::from_certificate_der(&der[0]).unwrap();
        assert_eq!(
            identity.to_string(),
            "spiffe://cluster.local/ns/bench/sa/client"
        );
        let combined = std::fs::read_to_string(&files.server_combined).unwrap();
        assert!(combined.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(combined.contains("PRIVATE KEY-----"));
        let bundle = std::fs::read_to_string(&files.root).unwrap();
        let root = weft_identity::TrustBundle::from_pem(&bundle).unwrap();
        let server = std::fs::read_to_string(&files.server_chain).unwrap();
        assert!(
            root.verify_chain_pem(&server, std::time::SystemTime::now())
                .is_ok()
        );
    }

    #[test]
    fn configs_carry_the_tls_and_reuse_settings() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let name = "server.bench.svc.cluster.local";
        let hc = haproxy_client(
            addr("127.0.0.1:10001"),
            addr("198.18.20.11:9443"),
            name,
            &f,
            1,
        );
        for needle in [
            "nbthread 1",
            "bind 127.0.0.1:10001",
            "server peer 198.18.20.11:9443 ssl ssl-min-ver TLSv1.3 verify required",
            "verifyhost server.bench.svc.cluster.local",
            "http-reuse always",
        ] {
            assert!(hc.contains(needle), "{needle:?} not in\n{hc}");
        }
        let hs = haproxy_server(addr("0.0.0.0:9443"), addr("127.0.0.1:9081"), &f, 2);
        assert!(hs.contains("nbthread 2"), "{hs}");
        assert!(hs.contains("verify required"), "{hs}");
        assert!(hs.contains("server app 127.0.0.1:9081"), "{hs}");
        let nc = nginx_client(
            dir.path(),
            addr("127.0.0.1:10002"),
            addr("198.18.20.11:9444"),
            name,
            &f,
            1,
        );
        for needle in [
            "worker_processes 1;",
            "server 198.18.20.11:9444;",
            "keepalive 32;",
            "proxy_http_version 1.1;",
            "proxy_ssl_verify on;",
            "proxy_ssl_name server.bench.svc.cluster.local;",
        ] {
            assert!(nc.contains(needle), "{needle:?} not in\n{nc}");
        }
        let ns = nginx_server(
            dir.path(),
            addr("0.0.0.0:9444"),
            addr("127.0.0.1:9081"),
            &f,
            1,
        );
        assert!(ns.contains("ssl_verify_client on;"), "{ns}");
        assert!(ns.contains("listen 0.0.0.0:9444 ssl;"), "{ns}");
    }

    /// Runs the real checkers when HAProxy and nginx are installed
    /// (`scripts/install-bench-deps.sh`); says SKIPPED otherwise.
    #[test]
    fn haproxy_and_nginx_accept_the_configs() {
        let dir = tempfile::tempdir().unwrap();
        let f = files(dir.path());
        let name = "server.bench.svc.cluster.local";
        let (listen, up) = (addr("127.0.0.1:10001"), addr("127.0.0.1:9443"));
        let haproxy = [
            haproxy_client(listen, up, name, &f, 1),
            haproxy_server(addr("127.0.0.1:9443"), addr("127.0.0.1:9081"), &f, 1),
            haproxy_plain(listen, up, 2),
        ];
        let nginx = [
            nginx_client(dir.path(), listen, up, name, &f, 1),
            nginx_server(dir.path(), addr("127.0.0.1:9444"), up, &f, 1),
            nginx_plain(dir.path(), listen, up, 2),
        ];
        match Command::new("haproxy").arg("-v").output() {
            Err(_) => println!("SKIPPED: haproxy is not installed (scripts/install-bench-deps.sh)"),
            Ok(_) => {
                for (i, config) in haproxy.iter().enumerate() {
                    let path = dir.path().join(format!("haproxy{i}.cfg"));
                    std::fs::write(&path, config).unwrap();
                    let out = Command::new("haproxy")
                        .arg("-c")
                        .arg("-f")
                        .arg(&path)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "haproxy -c refused\n{config}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let nginx_bin = ["nginx", "/usr/sbin/nginx"]
            .into_iter()
            .find(|b| Command::new(b).arg("-v").output().is_ok());
        match nginx_bin {
            None => println!("SKIPPED: nginx is not installed (scripts/install-bench-deps.sh)"),
            Some(bin) => {
                for (i, config) in nginx.iter().enumerate() {
                    let path = dir.path().join(format!("nginx{i}.conf"));
                    std::fs::write(&path, config).unwrap();
                    let out = Command::new(bin)
                        .args(["-t", "-e", "stderr", "-p"])
                        .arg(dir.path())
                        .arg("-c")
                        .arg(&path)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "nginx -t refused\n{config}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
    }
}
