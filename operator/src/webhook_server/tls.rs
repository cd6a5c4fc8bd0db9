//! The webhook's serving certificate, read from files and re-read when they change, so that a
//! rotated certificate is served to new connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Why the serving certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ServingCertError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    /// The key file holds no usable private key.
    #[error("{path}: not a private key rustls can use: {reason}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The current serving certificate and key, swapped atomically on reload.
#[derive(Debug)]
pub struct ServingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    stamp: parking_lot::Mutex<Option<(SystemTime, SystemTime)>>,
}

fn stamp(a: &Path, b: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(a)?, m(b)?))
}

fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, ServingCertError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ServingCertError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(ServingCertError::NoCertificate(cert_path.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| ServingCertError::Key {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider).map_err(|e| ServingCertError::Key {
        path: key_path.to_path_buf(),
        reason: e.to_string(),
    })
}

impl ServingCert {
    /// Loads `cert_path` (PEM chain, leaf first) and `key_path` (PEM private key). Errors name
    /// the file and what is wrong.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<Self>, ServingCertError> {
        let key = load(cert_path, key_path)?;
        Ok(Arc::new(Self {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(key),
            stamp: parking_lot::Mutex::new(stamp(cert_path, key_path)),
        }))
    }

    /// Re-reads the files when their modification times changed. A pair that does not load
    /// (e.g. half written) keeps the previous certificate and is retried on the next call.
    /// Returns whether a new certificate is now served.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.cert_path, &self.key_path);
        if now.is_none() || *self.stamp.lock() == now {
            return false;
        }
        match load(&self.cert_path, &self.key_path) {
            Ok(key) => {
                self.current.store(Arc::new(key));
                *self.stamp.lock() = now;
                tracing::info!(cert = %self.cert_path.display(), "webhook serving certificate reloaded");
                true
            }
            Err(error) => {
                tracing::warn!(%error, "new webhook serving certificate not usable yet; keeping the current one");
                false
            }
        }
    }

    /// Polls the files every `interval` until the task is dropped.
    pub fn watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let reloader = Arc::clone(&this);
                let _ = tokio::task::spawn_blocking(move || reloader.reload_if_changed()).await;
            }
        })
    }

    /// A rustls server configuration serving the current certificate (HTTP/1.1 and h2 by ALPN;
    /// the API server calls webhooks over HTTP/1.1 or h2).
    pub fn server_config(self: &Arc<Self>) -> rustls::ServerConfig {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions();
        let mut config = match builder {
            Ok(b) => b
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>),
            // The ring provider supports the default versions; keep a working config regardless.
            Err(_) => rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

impl ResolvesServerCert for ServingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
