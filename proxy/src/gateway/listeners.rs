//! The gateway's listener set follows the config: ports new in a config are bound before it
//! becomes current (a port that cannot be bound refuses the config, as Envoy rejects an LDS
//! update, and the discovery stream NACKs it with the reason), ports it no longer has are
//! closed after it became current, and ports in both keep their socket and connections.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Socket, Type};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ApplyHook;
use crate::http::HttpProxy;
use crate::listener::accept_loop;
use crate::snapshot::Snapshot;

/// The listen backlog of gateway sockets (connections).
pub const BACKLOG: i32 = 1024;

#[derive(Default)]
struct State {
    /// Serving sockets and the token that closes each.
    active: BTreeMap<SocketAddr, CancellationToken>,
    /// Bound by `prepare`, served by `commit`.
    pending: Vec<(SocketAddr, std::net::TcpListener)>,
}

/// The gateway ports, reconciled with each config through [`ApplyHook`].
pub struct GatewayListeners {
    proxy: Arc<HttpProxy>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    runtime: tokio::runtime::Handle,
    state: parking_lot::Mutex<State>,
}

impl GatewayListeners {
    /// Listeners that serve connections with `proxy` (HTTP routing and telemetry), stop
    /// accepting when `shutdown` is cancelled and track connection tasks in `tracker`. Must be
    /// called within a tokio runtime (the sockets are served on it). Install the result with
    /// [`crate::config::ConfigStore::set_hook`].
    pub fn new(
        proxy: Arc<HttpProxy>,
        shutdown: CancellationToken,
        tracker: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            proxy,
            shutdown,
            tracker,
            runtime: tokio::runtime::Handle::current(),
            state: parking_lot::Mutex::new(State::default()),
        })
    }

    /// The addresses being served now, in order.
    pub fn serving(&self) -> Vec<SocketAddr> {
        self.state.lock().active.keys().copied().collect()
    }

    fn serve(
        &self,
        address: SocketAddr,
        listener: std::net::TcpListener,
    ) -> Option<CancellationToken> {
        let _entered = self.runtime.enter();
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::warn!(%address, %error, "gateway listener cannot be served");
                return None;
            }
        };
        let stop = self.shutdown.child_token();
        let proxy = Arc::clone(&self.proxy);
        let shutdown = self.shutdown.clone();
        let tracker = self.tracker.clone();
        self.runtime.spawn(accept_loop(
            listener,
            stop.clone(),
            tracker,
            move |stream, peer| {
                super::conn::handle(stream, peer, address, Arc::clone(&proxy), shutdown.clone())
            },
        ));
        tracing::info!(%address, "gateway listener open");
        Some(stop)
    }
}

/// Binds a listening socket at `address` with `SO_REUSEADDR` (so a port closed a moment ago
/// can be bound again), non-blocking, backlog [`BACKLOG`].
///
/// Errors: the OS error of socket creation, bind or listen (e.g. `EADDRINUSE`, `EACCES`).
pub fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

impl ApplyHook for GatewayListeners {
    /// Binds the snapshot's ports that are not served yet. Errors, binding nothing, when any
    /// cannot be bound: every failing port with its OS error.
    fn prepare(&self, snapshot: &Snapshot) -> Result<(), String> {
        let mut state = self.state.lock();
        state.pending.clear();
        let mut pending: Vec<(SocketAddr, std::net::TcpListener)> = Vec::new();
        let mut errors = Vec::new();
        for port in &snapshot.gateways {
            let address = port.address;
            if state.active.contains_key(&address) || pending.iter().any(|(a, _)| *a == address) {
                continue;
            }
            match bind(address) {
                Ok(listener) => pending.push((address, listener)),
                Err(error) => errors.push(format!(
                    "gateways[{}]: cannot bind {address}: {error}",
                    port.name
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("; "));
        }
        state.pending = pending;
        Ok(())
    }

    /// Closes the ports the snapshot no longer has (their open connections continue) and
    /// starts serving the ones `prepare` bound.
    fn commit(&self, snapshot: &Arc<Snapshot>) {
        let mut state = self.state.lock();
        let desired: BTreeSet<SocketAddr> =
            snapshot.gateways.iter().map(|port| port.address).collect();
        state.active.retain(|address, stop| {
            let keep = desired.contains(address);
            if !keep {
                stop.cancel();
                tracing::info!(%address, "gateway listener closed");
            }
            keep
        });
        for (address, listener) in std::mem::take(&mut state.pending) {
            if let Some(stop) = self.serve(address, listener) {
                state.active.insert(address, stop);
            }
        }
    }
}
