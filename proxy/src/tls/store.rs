//! The workload certificate store: files on disk → the current [`CertSet`], re-read on change.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::RootCertStore;
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};

use super::{TlsError, spiffe_id};

/// Where the three files of a workload identity are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertPaths {
    /// PEM chain, leaf first (`cert-chain.pem` / `tls.crt`).
    pub cert_chain: PathBuf,
    /// PEM private key (`key.pem` / `tls.key`).
    pub key: PathBuf,
    /// PEM trust bundle, one or more roots (`root-cert.pem` / `ca.crt`).
    pub root_cert: PathBuf,
}

impl CertPaths {
    /// Istio's layout in `dir` (`/etc/certs` for file-mounted certs, the istio-agent output
    /// directory): `cert-chain.pem`, `key.pem`, `root-cert.pem`.
    pub fn istio(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        CertPaths {
            cert_chain: dir.join("cert-chain.pem"),
            key: dir.join("key.pem"),
            root_cert: dir.join("root-cert.pem"),
        }
    }

    /// The Kubernetes `kubernetes.io/tls` Secret layout (cert-manager adds `ca.crt`):
    /// `tls.crt`, `tls.key`, `ca.crt`.
    pub fn kubernetes_tls(dir: impl AsRef<Path>) -> Self {
        let dir = dir.as_ref();
        CertPaths {
            cert_chain: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            root_cert: dir.join("ca.crt"),
        }
    }

    /// The layout present in `dir`: Istio's if `cert-chain.pem` exists, else Kubernetes' if
    /// `tls.crt` exists. Errors: [`TlsError::NoLayout`] when neither file exists.
    pub fn discover(dir: impl AsRef<Path>) -> Result<Self, TlsError> {
        let dir = dir.as_ref();
        let istio = CertPaths::istio(dir);
        if istio.cert_chain.exists() {
            return Ok(istio);
        }
        let kube = CertPaths::kubernetes_tls(dir);
        if kube.cert_chain.exists() {
            return Ok(kube);
        }
        Err(TlsError::NoLayout {
            dir: dir.to_path_buf(),
        })
    }

    fn all(&self) -> [&Path; 3] {
        [&self.cert_chain, &self.key, &self.root_cert]
    }
}

/// One consistent, validated set of workload credentials.
pub struct CertSet {
    /// Chain and signing key, as presented in handshakes.
    pub certified_key: Arc<CertifiedKey>,
    /// The trust bundle.
    pub roots: Arc<RootCertStore>,
    /// The workload's own SPIFFE ID (the leaf's URI SAN).
    pub identity: String,
    pub(super) client_verifier: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for CertSet {
    /// Shows the identity and counts; never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSet")
            .field("identity", &self.identity)
            .field("chain_len", &self.certified_key.cert.len())
            .field("roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

/// File identity used to notice changes cheaply: (mtime, length, inode) per file; `None` for
/// a file that cannot be stat'ed.
type Fingerprint = [Option<(SystemTime, u64, u64)>; 3];

fn fingerprint(paths: &CertPaths) -> Fingerprint {
    paths.all().map(|p| {
        std::fs::metadata(p).ok().map(|m| {
            (
                m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                m.len(),
                m.ino(),
            )
        })
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificates {
            path: path.to_path_buf(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// Reads and validates the three files: chain and key must parse and match, the leaf must have
/// a SPIFFE ID and must verify against the bundle (so a half-rotated set is rejected).
fn load_set(paths: &CertPaths, provider: &Arc<CryptoProvider>) -> Result<CertSet, TlsError> {
    let chain = certificates(&paths.cert_chain, &read(&paths.cert_chain)?)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&paths.key)?).map_err(|_| TlsError::NoKey {
        path: paths.key.clone(),
    })?;
    let bundle = certificates(&paths.root_cert, &read(&paths.root_cert)?)?;

    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(bundle);
    if added == 0 {
        return Err(TlsError::Bundle {
            path: paths.root_cert.clone(),
            reason: "no certificate in it is a usable trust anchor".into(),
        });
    }
    let certified_key = CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Key)?;
    let leaf = certified_key.end_entity_cert().map_err(TlsError::Key)?;
    let identity = spiffe_id(leaf).ok_or(TlsError::NoSpiffeId)?;
    let parsed = ParsedCertificate::try_from(leaf).map_err(TlsError::Untrusted)?;
    let intermediates = certified_key.cert.get(1..).unwrap_or_default();
    rustls::client::verify_server_cert_signed_by_trust_anchor(
        &parsed,
        &roots,
        intermediates,
        UnixTime::now(),
        provider.signature_verification_algorithms.all,
    )
    .map_err(TlsError::Untrusted)?;

    let roots = Arc::new(roots);
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Verifier(e.to_string()))?;
    Ok(CertSet {
        certified_key: Arc::new(certified_key),
        roots,
        identity,
        client_verifier,
    })
}

/// The workload's current credentials, shared by every listener and re-read from disk when the
/// files change (istio-agent or kubelet rewrites them on rotation).
///
/// New handshakes take the current set; connections already established keep theirs, so a
/// rotation drops nothing. A set that fails validation (partially written files, key not
/// matching the chain, leaf not trusted by the bundle) is logged and ignored: the previous set
/// stays current until a valid one appears.
pub struct CertStore {
    paths: CertPaths,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertSet>,
    seen: Mutex<Fingerprint>,
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertStore")
            .field("paths", &self.paths)
            .field("current", &*self.current.load())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the files at `paths` with rustls' ring provider. Errors: any [`TlsError`] from
    /// reading or validating the set; there is no previous set to fall back to.
    pub fn load(paths: CertPaths) -> Result<Arc<Self>, TlsError> {
        CertStore::load_with_provider(paths, super::provider())
    }

    /// [`CertStore::load`] with an explicit crypto provider.
    pub fn load_with_provider(
        paths: CertPaths,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<Self>, TlsError> {
        let seen = fingerprint(&paths);
        let set = load_set(&paths, &provider)?;
        tracing::info!(identity = %set.identity, chain = ?paths.cert_chain, "workload certificate loaded");
        Ok(Arc::new(CertStore {
            paths,
            provider,
            current: ArcSwap::from_pointee(set),
            seen: Mutex::new(seen),
        }))
    }

    /// The current credentials (cheap: an atomic load).
    pub fn current(&self) -> Arc<CertSet> {
        self.current.load_full()
    }

    /// The files this store watches.
    pub fn paths(&self) -> &CertPaths {
        &self.paths
    }

    /// The crypto provider used for keys and verification.
    pub fn provider(&self) -> Arc<CryptoProvider> {
        self.provider.clone()
    }

    /// Re-reads the files unconditionally and makes them current if valid. Returns `Ok(())`
    /// after a swap; on error the previous set stays current and the error is returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        *self.seen.lock() = fingerprint(&self.paths);
        let set = load_set(&self.paths, &self.provider)?;
        tracing::info!(identity = %set.identity, "workload certificate rotated");
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// Polls the files' (mtime, size, inode): when any changed since the last look, re-reads
    /// them as [`CertStore::reload`] does. Returns `Ok(true)` when a new set became current,
    /// `Ok(false)` when nothing changed; on error the previous set stays current, the error is
    /// logged (once per change) and returned. Blocking file I/O on three small files: call it
    /// from a blocking context ([`CertStore::watch`] does).
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = fingerprint(&self.paths);
        {
            let mut seen = self.seen.lock();
            if *seen == now {
                return Ok(false);
            }
            *seen = now;
        }
        match load_set(&self.paths, &self.provider) {
            Ok(set) => {
                tracing::info!(identity = %set.identity, "workload certificate rotated");
                self.current.store(Arc::new(set));
                Ok(true)
            }
            Err(error) => {
                tracing::warn!(%error, "new certificate files rejected; keeping the previous ones");
                Err(error)
            }
        }
    }

    /// Spawns a tokio task polling [`CertStore::reload_if_changed`] every `interval` (1 s is
    /// Weft's default). Abort the returned handle to stop it. Must be called within a tokio
    /// runtime.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                // File I/O off the async workers. Errors are logged inside; the previous set
                // stays current.
                let store = Arc::clone(&store);
                let _ = tokio::task::spawn_blocking(move || store.reload_if_changed()).await;
            }
        })
    }
}

impl ResolvesServerCert for CertStore {
    /// Every server handshake presents the current workload certificate (no SNI selection:
    /// a sidecar has one identity).
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().certified_key.clone())
    }
}

impl ResolvesClientCert for CertStore {
    /// Every client handshake presents the current workload certificate.
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().certified_key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
