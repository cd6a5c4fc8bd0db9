//! Citadel in standalone mode: the mesh CA and workload certificates kept as files.
//!
//! Layout under the state directory (Istio's file names, so a proxy reads them as it would a
//! mounted Secret):
//! - `ca/ca-cert.pem`, `ca/ca-key.pem` (mode 0600), `ca/root-cert.pem`, `ca/cert-chain.pem` —
//!   the CA in Istio's plug-in layout. If the directory already holds them (for example copied
//!   from an Istio `cacerts` Secret), they are used as they are; otherwise a self-signed root is
//!   created.
//! - `certs/<namespace>/<service-account>/cert-chain.pem`, `key.pem` (0600), `root-cert.pem` —
//!   one set per workload identity, re-issued when [`RotationPolicy::evaluate`] says so.
//!
//! Private keys are written only to these files; they are never logged.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use weft_identity::ca::secret_keys;
use weft_identity::{
    CaPemParts, CertificateAuthority, Clock, Decision, Identity, PrivateKeyPem, RotationPolicy,
};

/// Errors of the file-based Citadel. Messages name the file and never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum CitadelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The CA could not be created, loaded or could not sign.
    #[error("certificate authority: {0}")]
    Ca(#[from] weft_identity::CaError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CitadelError + '_ {
    move |source| CitadelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `contents` to `path` atomically (temporary file + rename) with `mode`, owned by
/// `owner` when given.
fn write_atomic(
    path: &Path,
    contents: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), CitadelError> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(contents.as_bytes()).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
    }
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io(&tmp))?;
    if let Some((uid, gid)) = owner {
        nix::unistd::chown(
            &tmp,
            Some(nix::unistd::Uid::from_raw(uid)),
            Some(nix::unistd::Gid::from_raw(gid)),
        )
        .map_err(|e| CitadelError::Io {
            path: tmp.clone(),
            source: e.into(),
        })?;
    }
    fs::rename(&tmp, path).map_err(io(path))
}

fn read_optional(path: &Path) -> Result<Option<String>, CitadelError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CitadelError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// What [`FileCitadel::ensure_workload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnsureOutcome {
    /// Why a new certificate was issued, or `None` when the stored one was kept.
    pub reissued: Option<String>,
    /// When to check this identity again (its rotation point).
    pub next_check: SystemTime,
}

/// The CA and the workload certificates of a standalone mesh, as files.
pub struct FileCitadel {
    state_dir: PathBuf,
    ca: CertificateAuthority,
    policy: RotationPolicy,
    clock: Arc<dyn Clock>,
    owner: Option<(u32, u32)>,
}

impl std::fmt::Debug for FileCitadel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileCitadel")
            .field("state_dir", &self.state_dir)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl FileCitadel {
    /// Opens the CA under `state_dir/ca`, creating a self-signed root for `trust_domain` valid
    /// for `root_ttl` when none is stored. Workload files are chowned to `owner` (uid, gid) when
    /// given, so that a proxy running as that user (Istio's 1337) can read its key.
    ///
    /// Errors: a stored CA that does not load (the message names the file and the rule), or a
    /// file that cannot be written.
    pub fn open(
        state_dir: &Path,
        trust_domain: &str,
        root_ttl: Duration,
        policy: RotationPolicy,
        clock: Arc<dyn Clock>,
        owner: Option<(u32, u32)>,
    ) -> Result<Self, CitadelError> {
        let ca_dir = state_dir.join("ca");
        fs::create_dir_all(&ca_dir).map_err(io(&ca_dir))?;
        let cert_path = ca_dir.join(secret_keys::CA_CERT);
        let ca = match read_optional(&cert_path)? {
            Some(ca_cert_pem) => {
                let key_path = ca_dir.join(secret_keys::CA_KEY);
                let key = read_optional(&key_path)?.unwrap_or_default();
                let root = read_optional(&ca_dir.join(secret_keys::ROOT_CERT))?.unwrap_or_default();
                let chain =
                    read_optional(&ca_dir.join(secret_keys::CERT_CHAIN))?.unwrap_or_default();
                CertificateAuthority::from_plugin(&ca_cert_pem, &key, &root, &chain, clock.clone())?
            }
            None => {
                let ca =
                    CertificateAuthority::self_signed(trust_domain, Some(root_ttl), clock.clone())?;
                Self::write_ca(&ca_dir, &ca.to_pem_parts())?;
                tracing::info!(dir = %ca_dir.display(), "created a self-signed mesh root CA");
                ca
            }
        };
        Ok(Self {
            state_dir: state_dir.to_path_buf(),
            ca,
            policy,
            clock,
            owner,
        })
    }

    fn write_ca(dir: &Path, parts: &CaPemParts) -> Result<(), CitadelError> {
        write_atomic(
            &dir.join(secret_keys::CA_CERT),
            &parts.ca_cert_pem,
            0o644,
            None,
        )?;
        write_atomic(
            &dir.join(secret_keys::CA_KEY),
            parts.ca_key_pem.expose_secret(),
            0o600,
            None,
        )?;
        write_atomic(
            &dir.join(secret_keys::ROOT_CERT),
            &parts.root_cert_pem,
            0o644,
            None,
        )?;
        write_atomic(
            &dir.join(secret_keys::CERT_CHAIN),
            &parts.cert_chain_pem,
            0o644,
            None,
        )
    }

    /// The CA.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The directory holding `identity`'s certificate files:
    /// `<state>/certs/<namespace>/<service-account>`.
    pub fn workload_dir(&self, identity: &Identity) -> PathBuf {
        self.state_dir
            .join("certs")
            .join(identity.namespace())
            .join(identity.service_account())
    }

    /// Checks `identity`'s stored certificate and issues a new one when it is missing,
    /// malformed, for another identity, signed by another CA, or past its rotation point.
    /// The trust bundle file is refreshed too. Errors when a file cannot be written or the CA
    /// cannot sign.
    pub fn ensure_workload(&self, identity: &Identity) -> Result<EnsureOutcome, CitadelError> {
        let dir = self.workload_dir(identity);
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        if let Some((uid, gid)) = self.owner {
            let _ = nix::unistd::chown(
                &dir,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            );
        }
        let chain_path = dir.join("cert-chain.pem");
        let key_path = dir.join("key.pem");
        let root_path = dir.join("root-cert.pem");
        let bundle = self.ca.trust_bundle_pem();
        if read_optional(&root_path)?.as_deref() != Some(bundle.as_str()) {
            write_atomic(&root_path, &bundle, 0o644, self.owner)?;
        }
        let chain = read_optional(&chain_path)?;
        let key = read_optional(&key_path)?;
        let decision = self.policy.evaluate(
            chain.as_deref(),
            key.as_deref(),
            identity,
            &self.ca,
            self.clock.now(),
        );
        match decision {
            Decision::Valid { next_check } => Ok(EnsureOutcome {
                reissued: None,
                next_check,
            }),
            Decision::Reissue(reason) => {
                let issued = self.ca.issue_workload(identity, self.policy.workload_ttl)?;
                // Key first, then chain: a proxy that reads between the two writes sees a
                // mismatched pair, refuses it and keeps its previous certificate until the
                // next poll.
                write_atomic(
                    &key_path,
                    issued.private_key_pem.expose_secret(),
                    0o600,
                    self.owner,
                )?;
                write_atomic(&chain_path, &issued.cert_chain_pem, 0o644, self.owner)?;
                tracing::info!(identity = %identity, %reason, "issued workload certificate");
                Ok(EnsureOutcome {
                    reissued: Some(reason.to_string()),
                    next_check: self
                        .policy
                        .rotation_time(issued.not_before, issued.not_after),
                })
            }
        }
    }

    /// Issues the operator's own certificate (for the discovery server) into `dir`, always
    /// fresh. Errors when the CA cannot sign or a file cannot be written.
    pub fn issue_into(&self, identity: &Identity, dir: &Path) -> Result<(), CitadelError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let issued = self.ca.issue_workload(identity, self.policy.workload_ttl)?;
        let key = PrivateKeyPem::new(issued.private_key_pem.expose_secret().to_string());
        write_atomic(&dir.join("key.pem"), key.expose_secret(), 0o600, None)?;
        write_atomic(
            &dir.join("cert-chain.pem"),
            &issued.cert_chain_pem,
            0o644,
            None,
        )?;
        write_atomic(
            &dir.join("root-cert.pem"),
            &self.ca.trust_bundle_pem(),
            0o644,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_identity::TestClock;

    fn identity() -> Identity {
        "spiffe://cluster.local/ns/demo/sa/reviews".parse().unwrap()
    }

    fn open(dir: &Path, clock: Arc<TestClock>) -> FileCitadel {
        FileCitadel::open(
            dir,
            "cluster.local",
            Duration::from_secs(3600 * 24 * 365),
            RotationPolicy::new(Duration::from_secs(3600), 0.5),
            clock,
            None,
        )
        .unwrap()
    }

    #[test]
    fn issues_then_keeps_then_rotates_at_the_rotation_point() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock::new(SystemTime::now()));
        let citadel = open(tmp.path(), clock.clone());
        let first = citadel.ensure_workload(&identity()).unwrap();
        assert!(first.reissued.is_some(), "missing certificate is issued");
        let dir = citadel.workload_dir(&identity());
        let mode = fs::metadata(dir.join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "private key is not world-readable");
        let second = citadel.ensure_workload(&identity()).unwrap();
        assert_eq!(second.reissued, None, "a valid certificate is kept");
        assert_eq!(second.next_check, first.next_check);
        clock.set(first.next_check + Duration::from_secs(1));
        let third = citadel.ensure_workload(&identity()).unwrap();
        assert!(third.reissued.unwrap().contains("rotation point"));
    }

    #[test]
    fn reopening_keeps_the_same_ca() {
        let tmp = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock::new(SystemTime::now()));
        let a = open(tmp.path(), clock.clone());
        a.ensure_workload(&identity()).unwrap();
        let b = open(tmp.path(), clock);
        assert_eq!(a.ca().ca_cert_pem(), b.ca().ca_cert_pem());
        assert_eq!(b.ensure_workload(&identity()).unwrap().reissued, None);
    }
}
