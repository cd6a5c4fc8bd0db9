//! Where the proxy's config comes from and where it is kept.
//!
//! [`ConfigStore`] holds the current [`Snapshot`] in an `ArcSwap`: the request path loads it
//! without locks; an update builds a new snapshot off to the side and swaps it in atomically. A
//! config that fails validation is rejected with its reasons logged and the old one stays.
//!
//! A [`ConfigSource`] feeds the store: [`FileSource`] (`--config FILE`, re-read when the file
//! changes) now, the discovery stream from the control plane later.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use tokio_util::sync::CancellationToken;
use weft_proxy_config::{ParseError, ProxyConfig};

use crate::mesh_tls::MeshTls;
use crate::snapshot::{Snapshot, SnapshotError};

/// Errors applying a config.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("reading config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The text is not a config.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: ParseError,
    },
    /// The config is invalid or does not compile; the previous config stays.
    #[error(transparent)]
    Rejected(#[from] SnapshotError),
    /// The config compiled but its listeners could not be opened (a gateway port that cannot
    /// be bound); the previous config and its listeners stay (Envoy's LDS rejection).
    #[error("listeners: {0}")]
    Listeners(String),
}

/// Runs around every config update of a [`ConfigStore`] (the gateway's listener set follows
/// the config through it). Both are called under the store's update lock, so they never run
/// concurrently.
pub trait ApplyHook: Send + Sync {
    /// Called with a compiled snapshot before it becomes current. An error refuses the
    /// config: it is returned as [`ConfigError::Listeners`] (so the discovery stream NACKs it)
    /// and the previous snapshot stays current.
    ///
    /// Errors: a message naming what could not be done (e.g. the port that cannot be bound).
    fn prepare(&self, snapshot: &Snapshot) -> Result<(), String>;

    /// Called after `snapshot` became current (after a successful `prepare`).
    fn commit(&self, snapshot: &Arc<Snapshot>);
}

/// The current config of the proxy.
pub struct ConfigStore {
    current: ArcSwapOption<Snapshot>,
    tls: Option<Arc<dyn MeshTls>>,
    updating: parking_lot::Mutex<()>,
    hook: std::sync::OnceLock<Arc<dyn ApplyHook>>,
}

impl ConfigStore {
    /// An empty store (not ready). `tls` is used to build mTLS clients for `ISTIO_MUTUAL`
    /// clusters; without it such clusters fail their requests with `UF`.
    pub fn new(tls: Option<Arc<dyn MeshTls>>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwapOption::empty(),
            tls,
            updating: parking_lot::Mutex::new(()),
            hook: std::sync::OnceLock::new(),
        })
    }

    /// Installs the hook run around every later update (once; a second call is ignored and
    /// returns `false`). Returns whether `hook` was installed.
    pub fn set_hook(&self, hook: Arc<dyn ApplyHook>) -> bool {
        self.hook.set(hook).is_ok()
    }

    /// The current snapshot, if a valid config has been applied. Lock-free.
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.current.load_full()
    }

    /// Whether a valid config has been applied (the readiness condition of `/healthz/ready`).
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// The mesh TLS provider, if any.
    pub fn tls(&self) -> Option<&Arc<dyn MeshTls>> {
        self.tls.as_ref()
    }

    /// Validates and compiles `config` and makes it current. Returns the new version.
    ///
    /// Errors: [`ConfigError::Rejected`] with the reasons; the current config is unchanged.
    pub fn apply(&self, config: ProxyConfig) -> Result<String, ConfigError> {
        let _serial = self.updating.lock();
        let previous = self.current.load_full();
        let mut config = config;
        if config.version.is_empty() {
            config.version = config.content_hash().unwrap_or_default();
        }
        let version = config.version.clone();
        let snapshot = Snapshot::build(config, previous.as_deref(), self.tls.as_ref())?;
        let hook = self.hook.get();
        if let Some(hook) = hook {
            hook.prepare(&snapshot).map_err(ConfigError::Listeners)?;
        }
        let snapshot = Arc::new(snapshot);
        self.current.store(Some(Arc::clone(&snapshot)));
        if let Some(hook) = hook {
            hook.commit(&snapshot);
        }
        Ok(version)
    }
}

/// A source of configs for a [`ConfigStore`] (a file now; the discovery stream later).
pub trait ConfigSource: Send {
    /// Feeds `store` until `shutdown` is cancelled. Rejected configs are logged, not fatal.
    fn run(
        self: Box<Self>,
        store: Arc<ConfigStore>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// `--config FILE`: a YAML (or JSON, by extension `.json`) [`ProxyConfig`], re-read whenever
/// its modification time or size changes (polled every `interval`).
pub struct FileSource {
    path: PathBuf,
    interval: Duration,
    /// The file's (mtime, size) when it was last read, so an unchanged file is not re-applied.
    read_stamp: parking_lot::Mutex<Option<(SystemTime, u64)>>,
}

impl FileSource {
    /// Watches `path`, polling every `interval` (500 ms is plenty for a file).
    pub fn new(path: PathBuf, interval: Duration) -> Self {
        Self {
            path,
            interval,
            read_stamp: parking_lot::Mutex::new(None),
        }
    }

    /// Reads, parses and applies the file once. Returns the applied version.
    ///
    /// Errors: [`ConfigError`] for a missing, unparsable or invalid file.
    pub fn load_once(&self, store: &ConfigStore) -> Result<String, ConfigError> {
        *self.read_stamp.lock() = self.stamp();
        let text = std::fs::read_to_string(&self.path).map_err(|source| ConfigError::Read {
            path: self.path.clone(),
            source,
        })?;
        let is_json = self
            .path
            .extension()
            .is_some_and(|extension| extension == "json");
        let parsed = if is_json {
            ProxyConfig::from_json(&text)
        } else {
            ProxyConfig::from_yaml(&text)
        };
        let config = parsed.map_err(|source| ConfigError::Parse {
            path: self.path.clone(),
            source,
        })?;
        store.apply(config)
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let metadata = std::fs::metadata(&self.path).ok()?;
        Some((metadata.modified().ok()?, metadata.len()))
    }
}

impl ConfigSource for FileSource {
    fn run(
        self: Box<Self>,
        store: Arc<ConfigStore>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            loop {
                let stamp = self.stamp();
                let changed = stamp != *self.read_stamp.lock();
                if changed {
                    match self.load_once(&store) {
                        Ok(version) => {
                            tracing::info!(path = %self.path.display(), %version, "config applied")
                        }
                        Err(error) => {
                            tracing::error!(path = %self.path.display(), %error, "config rejected; keeping the previous config")
                        }
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.interval) => {}
                }
            }
        })
    }
}
