//! The operator's own certificates, issued by every replica from the mesh CA it loaded: the
//! discovery server's workload certificate (SPIFFE `spiffe://<td>/ns/<ns>/sa/weft-operator`,
//! what the proxies verify) and the webhook serving certificate (DNS
//! `weft-operator.<ns>.svc`, what the API server verifies against the `caBundle`).
//!
//! Both are written to files so that the existing file-watching TLS stores
//! ([`weft_proxy::tls::CertStore`], [`crate::webhook_server::ServingCert`]) serve a re-issued
//! certificate to new connections without a restart. The trust bundle written beside the
//! discovery certificate is the CA's whole `root-cert.pem`: during a root rotation it holds the
//! old and the new root, so proxies with either certificate keep connecting.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use weft_identity::{CaError, CertificateAuthority, Identity, IdentityError, RotationPolicy};
use weft_proxy::tls::CertPaths;

/// The operator's Service and ServiceAccount name (install contract: one Service
/// `weft-operator`).
pub const OPERATOR_NAME: &str = "weft-operator";

/// Lifetime of the webhook serving certificate (1 year, rotated at the mesh's fraction like
/// workload certificates). Istio's istiod DNS certificates default to 1 year as well.
pub const SERVING_CERT_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// File names of the webhook serving pair (the `kubernetes.io/tls` layout OLM mounts).
pub const SERVING_CERT_FILE: &str = "tls.crt";
/// See [`SERVING_CERT_FILE`].
pub const SERVING_KEY_FILE: &str = "tls.key";

/// Errors issuing or writing the operator's certificates. Never contains key material.
#[derive(Debug, thiserror::Error)]
pub enum OwnCertError {
    /// The namespace or trust domain does not form the operator's SPIFFE ID.
    #[error("operator identity in namespace {namespace}: {source}")]
    Identity {
        /// The operator's namespace.
        namespace: String,
        /// The rule broken.
        #[source]
        source: IdentityError,
    },
    /// The CA refused to issue.
    #[error("issuing the {what} certificate: {source}")]
    Issue {
        /// `discovery` or `webhook serving`.
        what: &'static str,
        /// The CA's error.
        #[source]
        source: CaError,
    },
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The DNS names of the operator's Service in `namespace` that the webhook serving certificate
/// carries: `weft-operator.<ns>.svc` (what the API server dials for a `service:` client
/// config), `weft-operator.<ns>.svc.cluster.local`, and `extra` (e.g. the host of
/// `--webhook-url` when the operator runs outside the cluster).
pub fn serving_dns_names(namespace: &str, extra: Option<&str>) -> Vec<String> {
    let mut names = vec![
        format!("{OPERATOR_NAME}.{namespace}.svc"),
        format!("{OPERATOR_NAME}.{namespace}.svc.cluster.local"),
    ];
    if let Some(host) = extra.filter(|h| !names.iter().any(|n| n == h)) {
        names.push(host.to_string());
    }
    names
}

/// Writes `contents` to `path` through a temporary file and a rename, so that a reader never
/// sees half a PEM file; keys are created mode 0600.
fn write_atomic(path: &Path, contents: &str, private: bool) -> Result<(), OwnCertError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |source| OwnCertError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(contents.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Issues the discovery server's certificate for `spiffe://<trust_domain>/ns/<namespace>/sa/
/// weft-operator` with the workload lifetime of `policy` and writes Istio's layout into `dir`
/// (`cert-chain.pem`, `key.pem`, `root-cert.pem` = the CA's whole trust bundle).
///
/// Returns the paths and the time the certificate reaches its rotation point. Errors:
/// [`OwnCertError::Identity`], [`OwnCertError::Issue`], [`OwnCertError::Write`].
pub fn write_discovery_cert(
    ca: &CertificateAuthority,
    policy: &RotationPolicy,
    trust_domain: &str,
    namespace: &str,
    dir: &Path,
) -> Result<(CertPaths, SystemTime), OwnCertError> {
    let identity = Identity::spiffe(trust_domain, namespace, OPERATOR_NAME).map_err(|source| {
        OwnCertError::Identity {
            namespace: namespace.to_string(),
            source,
        }
    })?;
    let issued = ca
        .issue_workload(&identity, policy.workload_ttl)
        .map_err(|source| OwnCertError::Issue {
            what: "discovery",
            source,
        })?;
    let paths = CertPaths::istio(dir);
    // The bundle first: a store reloading between the writes then sees a chain it trusts.
    write_atomic(&paths.root_cert, &ca.trust_bundle_pem(), false)?;
    write_atomic(&paths.key, issued.private_key_pem.expose_secret(), true)?;
    write_atomic(&paths.cert_chain, &issued.cert_chain_pem, false)?;
    Ok((
        paths,
        policy.rotation_time(issued.not_before, issued.not_after),
    ))
}

/// Issues the webhook serving certificate for [`serving_dns_names`] and writes `tls.crt`
/// (leaf + chain) and `tls.key` into `dir`. Returns the time the certificate reaches the
/// rotation point of `policy`'s fraction. Errors: [`OwnCertError::Issue`] (e.g. an extra host
/// that is not a DNS name), [`OwnCertError::Write`].
pub fn write_serving_cert(
    ca: &CertificateAuthority,
    policy: &RotationPolicy,
    namespace: &str,
    extra_host: Option<&str>,
    dir: &Path,
) -> Result<SystemTime, OwnCertError> {
    let issued = ca
        .issue_serving(&serving_dns_names(namespace, extra_host), SERVING_CERT_TTL)
        .map_err(|source| OwnCertError::Issue {
            what: "webhook serving",
            source,
        })?;
    write_atomic(
        &dir.join(SERVING_KEY_FILE),
        issued.private_key_pem.expose_secret(),
        true,
    )?;
    write_atomic(&dir.join(SERVING_CERT_FILE), &issued.cert_chain_pem, false)?;
    Ok(policy.rotation_time(issued.not_before, issued.not_after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use weft_identity::SystemClock;

    #[test]
    fn serving_names_are_the_service_names_plus_a_distinct_extra_host() {
        assert_eq!(
            serving_dns_names("weft-system", None),
            [
                "weft-operator.weft-system.svc",
                "weft-operator.weft-system.svc.cluster.local"
            ]
        );
        assert_eq!(serving_dns_names("ns", Some("dev.example")).len(), 3);
        assert_eq!(
            serving_dns_names("ns", Some("weft-operator.ns.svc")).len(),
            2
        );
    }

    #[test]
    fn discovery_cert_carries_the_operator_identity_and_the_whole_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let ca =
            CertificateAuthority::self_signed("prod.example", None, Arc::new(SystemClock)).unwrap();
        let policy = RotationPolicy::new(Duration::from_secs(3600), 0.5);
        let (paths, rotate_at) =
            write_discovery_cert(&ca, &policy, "prod.example", "weft-system", dir.path()).unwrap();
        let store = weft_proxy::tls::CertStore::load(paths).unwrap();
        assert_eq!(
            store.current().identity,
            "spiffe://prod.example/ns/weft-system/sa/weft-operator"
        );
        let in_secs = rotate_at
            .duration_since(SystemTime::now())
            .unwrap()
            .as_secs();
        assert!(
            (1700..=1800).contains(&in_secs),
            "rotation at half of one hour: {in_secs}"
        );
        let bundle = std::fs::read_to_string(dir.path().join("root-cert.pem")).unwrap();
        assert_eq!(bundle, ca.trust_bundle_pem());
    }
}
