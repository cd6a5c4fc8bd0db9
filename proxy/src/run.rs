//! `weft-proxy run`: wiring the listeners, the config source and the admin endpoints together,
//! and the drain on shutdown (stop accepting, let in-flight requests finish up to the drain
//! time, then stop).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, Admin, PrometheusRender, ProxyStats};
use crate::app_health::AppProbers;
use crate::config::{ConfigSource, ConfigStore};
use crate::http::HttpProxy;
use crate::inbound::InboundProxy;
use crate::listener::DestinationMode;
use crate::request_log::RequestObserver;

/// The bound sockets of a proxy (bound by the caller, so tests can use ephemeral ports).
pub struct Listeners {
    /// Outbound capture (15001).
    pub outbound: TcpListener,
    /// Inbound capture (15006).
    pub inbound: TcpListener,
    /// Health (15021).
    pub health: TcpListener,
    /// Admin (127.0.0.1:15000).
    pub admin: TcpListener,
    /// Prometheus (15090), when telemetry is wired.
    pub prometheus: Option<TcpListener>,
    /// Status (15020: `/healthz/ready` and the rewritten application probes).
    pub status: Option<TcpListener>,
}

impl Listeners {
    /// Binds the four always-present listeners; add `prometheus` and `status` with
    /// [`Listeners::with_status`]. Errors: the OS error of the first bind that fails.
    pub async fn bind(
        outbound: SocketAddr,
        inbound: SocketAddr,
        health: SocketAddr,
        admin: SocketAddr,
        prometheus: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            outbound: TcpListener::bind(outbound).await?,
            inbound: TcpListener::bind(inbound).await?,
            health: TcpListener::bind(health).await?,
            admin: TcpListener::bind(admin).await?,
            prometheus: match prometheus {
                Some(address) => Some(TcpListener::bind(address).await?),
                None => None,
            },
            status: None,
        })
    }

    /// Also binds the status listener (15020). Errors: the OS error of the bind.
    pub async fn with_status(mut self, status: SocketAddr) -> std::io::Result<Self> {
        self.status = Some(TcpListener::bind(status).await?);
        Ok(self)
    }
}

/// The sockets every proxy serves besides its traffic listeners: health (15021), admin
/// (127.0.0.1:15000) and Prometheus (15090). A gateway has only these before its config
/// arrives.
pub struct AdminListeners {
    /// Health (15021).
    pub health: TcpListener,
    /// Admin (127.0.0.1:15000).
    pub admin: TcpListener,
    /// Prometheus (15090), when telemetry is wired.
    pub prometheus: Option<TcpListener>,
}

impl AdminListeners {
    /// Binds health, admin and (if given) Prometheus. Errors: the OS error of the first bind
    /// that fails.
    pub async fn bind(
        health: SocketAddr,
        admin: SocketAddr,
        prometheus: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            health: TcpListener::bind(health).await?,
            admin: TcpListener::bind(admin).await?,
            prometheus: match prometheus {
                Some(address) => Some(TcpListener::bind(address).await?),
                None => None,
            },
        })
    }
}

/// Starts the health, admin and Prometheus servers of `listeners` (Istio's 15021, 15000 and
/// 15090 endpoints) and returns their tasks, which end when `shutdown` is cancelled.
pub fn serve_admin(
    listeners: AdminListeners,
    admin: &Arc<Admin>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut servers = Vec::new();
    let health_store = Arc::clone(&admin.store);
    servers.push(tokio::spawn(admin::serve(
        listeners.health,
        move |_, path| admin::health_response(&health_store, path),
        shutdown.clone(),
        tracker.clone(),
    )));
    let admin_handler = Arc::clone(admin);
    servers.push(tokio::spawn(admin::serve(
        listeners.admin,
        move |method, path| admin_handler.response(method, path),
        shutdown.clone(),
        tracker.clone(),
    )));
    if let Some(listener) = listeners.prometheus {
        let prometheus = Arc::clone(admin);
        servers.push(tokio::spawn(admin::serve(
            listener,
            move |method, path| match path {
                "/stats/prometheus" => prometheus.response(method, path),
                _ => prometheus.response(method, "/not-found"),
            },
            shutdown.clone(),
            tracker.clone(),
        )));
    }
    servers
}

/// Waits for `servers` and `source_task` to end, then up to `drain_time` for the connections
/// in `tracker` (the drain after shutdown was requested).
pub async fn drain(
    servers: Vec<tokio::task::JoinHandle<()>>,
    source_task: tokio::task::JoinHandle<()>,
    tracker: TaskTracker,
    drain_time: Duration,
) {
    tracing::info!(drain_ms = drain_time.as_millis() as u64, "draining");
    for server in servers {
        let _ = server.await;
    }
    let _ = source_task.await;
    tracker.close();
    if tokio::time::timeout(drain_time, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = tracker.len(),
            "drain time over; closing remaining connections"
        );
    }
}

/// Everything `run` needs besides the sockets.
pub struct RunSettings {
    /// The config store (already holding the TLS provider, if any).
    pub store: Arc<ConfigStore>,
    /// The config source.
    pub source: Box<dyn ConfigSource>,
    /// Where finished requests go (wrapped in [`ProxyStats`]).
    pub observer: Arc<dyn RequestObserver>,
    /// Prometheus text for `/stats/prometheus` on 15090 and the admin port.
    pub prometheus: Option<PrometheusRender>,
    /// How listeners learn original destinations.
    pub destination_mode: DestinationMode,
    /// In-flight requests get this long after shutdown starts.
    pub drain_time: Duration,
    /// The rewritten application probes served on the status port.
    pub app_probers: Option<Arc<AppProbers>>,
}

/// Runs the proxy until `shutdown` is cancelled (SIGTERM, `/quitquitquit`), then drains:
/// listeners stop accepting, HTTP connections finish their in-flight requests and close, and
/// after `drain_time` whatever remains (long TCP streams) is cut.
pub async fn run(listeners: Listeners, settings: RunSettings, shutdown: CancellationToken) {
    run_with_workers(listeners, settings, &[], shutdown).await;
}

/// [`run`], with the outbound and inbound listeners also served on each runtime of `workers`
/// (Istio's `concurrency`: Envoy's worker threads, each with its own event loop accepting on
/// the shared listeners). A connection stays on the runtime that accepted it, so its tasks
/// wake each other without crossing threads. Each runtime must keep running until the process
/// exits (its connections drain on it). A listener that cannot be shared is served by this
/// runtime alone (logged).
pub async fn run_with_workers(
    listeners: Listeners,
    settings: RunSettings,
    workers: &[tokio::runtime::Handle],
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    let stats = ProxyStats::new(settings.observer);
    let observer: Arc<dyn RequestObserver> = stats.clone();
    let store = settings.store;
    let source_task = tokio::spawn(settings.source.run(Arc::clone(&store), shutdown.clone()));

    let outbound = Arc::new(HttpProxy::outbound(
        Arc::clone(&store),
        Arc::clone(&observer),
    ));
    let inbound = Arc::new(InboundProxy::new(
        Arc::clone(&store),
        observer,
        settings.destination_mode,
        Duration::from_secs(10),
    ));
    let admin = Arc::new(Admin {
        store: Arc::clone(&store),
        shutdown: shutdown.clone(),
        stats,
        prometheus: settings.prometheus.clone(),
    });

    let mut servers = Vec::new();
    for worker in workers {
        if let Some(listener) = share(&listeners.outbound) {
            let (outbound, shutdown, tracker) =
                (Arc::clone(&outbound), shutdown.clone(), tracker.clone());
            let mode = settings.destination_mode;
            servers.push(worker.spawn(async move {
                if let Some(listener) = register(listener) {
                    crate::outbound::serve(listener, outbound, mode, shutdown, tracker).await;
                }
            }));
        }
        if let Some(listener) = share(&listeners.inbound) {
            let (inbound, shutdown, tracker) =
                (Arc::clone(&inbound), shutdown.clone(), tracker.clone());
            servers.push(worker.spawn(async move {
                if let Some(listener) = register(listener) {
                    crate::inbound::serve(listener, inbound, shutdown, tracker).await;
                }
            }));
        }
    }
    servers.push(tokio::spawn(crate::outbound::serve(
        listeners.outbound,
        outbound,
        settings.destination_mode,
        shutdown.clone(),
        tracker.clone(),
    )));
    servers.push(tokio::spawn(crate::inbound::serve(
        listeners.inbound,
        inbound,
        shutdown.clone(),
        tracker.clone(),
    )));
    servers.extend(serve_admin(
        AdminListeners {
            health: listeners.health,
            admin: listeners.admin,
            prometheus: listeners.prometheus,
        },
        &admin,
        &shutdown,
        &tracker,
    ));
    if let Some(listener) = listeners.status {
        let status_store = Arc::clone(&store);
        let probers = settings.app_probers.clone();
        servers.push(tokio::spawn(admin::serve_async(
            listener,
            move |_, path| {
                let store = Arc::clone(&status_store);
                let probers = probers.clone();
                async move { admin::status_response(&store, probers.as_deref(), &path).await }
            },
            shutdown.clone(),
            tracker.clone(),
        )));
    }

    shutdown.cancelled().await;
    drain(servers, source_task, tracker, settings.drain_time).await;
}

/// A second handle on `listener`'s socket (`dup`), for another runtime to accept on; `None`
/// (logged) if the descriptor cannot be duplicated.
fn share(listener: &TcpListener) -> Option<std::net::TcpListener> {
    match socket2::SockRef::from(listener).try_clone() {
        Ok(socket) => Some(socket.into()),
        Err(error) => {
            tracing::warn!(%error, "listener not shared with a worker runtime");
            None
        }
    }
}

/// Registers a shared listener with the runtime running this task; `None` (logged) on error.
fn register(listener: std::net::TcpListener) -> Option<TcpListener> {
    match TcpListener::from_std(listener) {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "worker runtime cannot serve a shared listener");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A listener shared with another runtime is accepted on there: the first runtime's copy
    /// is dropped, so only the worker can answer.
    #[test]
    fn shared_listener_accepts_on_the_worker_runtime() {
        let main = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (listener, address) = main.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            (listener, address)
        });
        let shared = share(&listener).unwrap();
        drop(listener);
        let worker_thread = std::thread::Builder::new()
            .name("worker".into())
            .spawn(move || {
                worker.block_on(async move {
                    let listener = register(shared).unwrap();
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let name = std::thread::current().name().map(str::to_owned);
                    stream
                        .write_all(name.unwrap_or_default().as_bytes())
                        .await
                        .unwrap();
                });
            });
        let worker_thread = worker_thread.unwrap();
        let answer = main.block_on(async move {
            let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).await.unwrap();
            answer
        });
        worker_thread.join().unwrap();
        assert_eq!(answer, "worker");
    }
}
