//! The discovery server: accepts proxies' mTLS HTTP/2 streams, checks their identity, pushes
//! configs when they change and records ACKs/NACKs.
//!
//! A config change rebuilds only the proxies it may affect ([`ConfigBuilder::may_differ`]),
//! on blocking threads (one per core), never on the async runtime. Each build is encoded once
//! into its frame, on the same thread, and only when its version differs from the one the
//! proxy was last sent. A builder may hand back a config that writes its own JSON
//! ([`BuiltConfig`], [`ConfigBuilder::build_push`]): Pilot's builds copy the side a proxy
//! shares with its scope from cached JSON.
//!
//! Incremental pushes (`weft_discovery::ServerMessage::Delta`): to a proxy whose Hello set
//! `incremental`, the server keeps the built config the proxy last acknowledged on the
//! stream (for Pilot's builds, its node, inbound side and a reference to its scope's shared
//! side) and the one in flight, and sends each later push as the delta from the acknowledged
//! one ([`BuiltConfig::write_delta_chunks`]). The first push of a stream is full, and a NACK
//! of a delta is answered with the full config of the same version under a new nonce. For
//! other proxies it keeps no config, only versions.

mod frame;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weft_discovery::{
    ClientMessage, FrameDecoder, Hello, ProxyConfig, STREAM_PATH, ServerMessage, encode_frame,
};

use super::debounce::{DebounceSettings, Debouncer};
use super::metrics::DiscoveryMetrics;
use super::outbox::{Outbox, outbox};
use super::sessions::{AckOutcome, ProxyKey, SessionState, Sessions, SyncStatus};
pub use frame::BuiltConfig;

/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Computes a proxy's configuration from the current cluster view. Implemented by Pilot over
/// a snapshot; the server swaps in a new builder on every config change.
pub trait ConfigBuilder: Send + Sync {
    /// Builds the config for the proxy that sent `hello`, authenticated with the SPIFFE ID
    /// `peer`. Errors when the peer may not have that workload's config, the workload is not
    /// known, or the build fails.
    fn build(&self, hello: &Hello, peer: &str) -> Result<ProxyConfig, BuildError>;

    /// The config [`ConfigBuilder::build`] gives, as the server pushes it: its version and a
    /// way to write its JSON (the server encodes the frame only when the version changed).
    /// Same errors as `build`. The default boxes `build`'s config; a builder that can write
    /// the JSON more cheaply than serialising a whole `ProxyConfig` overrides it, and its
    /// JSON must decode to the config `build` returns.
    fn build_push(&self, hello: &Hello, peer: &str) -> Result<Box<dyn BuiltConfig>, BuildError> {
        self.build(hello, peer)
            .map(|config| Box::new(config) as Box<dyn BuiltConfig>)
    }

    /// For each proxy that sent one of `hellos`, whether this builder may give it a different
    /// config than `previous` (the builder its current config came from) did: `false` only
    /// when the config is certainly equal, so the server need not rebuild it (Istio's
    /// `ProxyNeedsPush`). Returns one answer per hello, in order. The default answers `true`
    /// for every proxy: rebuild all, compare content hashes.
    fn may_differ(&self, previous: &dyn ConfigBuilder, hellos: &[&Hello]) -> Vec<bool> {
        let _ = previous;
        vec![true; hellos.len()]
    }

    /// This builder as [`std::any::Any`], so that [`ConfigBuilder::may_differ`] can recognise
    /// a previous builder of its own type; `None` (the default) when it does not need to.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
}

/// Why a proxy gets no config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The peer's identity does not match the workload it asks for.
    #[error("permission denied: {0}")]
    Denied(String),
    /// No workload of that name exists (yet).
    #[error("unknown workload: {0}")]
    UnknownWorkload(String),
    /// Translation failed.
    #[error("building the proxy config failed: {0}")]
    Failed(String),
}

/// What the server keeps of one connected stream: where to send frames, which builder the
/// proxy's current config came from, and for an incremental proxy the configs a delta needs.
struct Stream {
    outbox: Outbox,
    hello: Hello,
    peer: String,
    /// The builder whose config the proxy was last offered (or that was found to give the
    /// same config): the base of [`ConfigBuilder::may_differ`].
    built_with: Arc<dyn ConfigBuilder>,
    /// The last push not yet answered (incremental proxies only).
    in_flight: Option<InFlight>,
    /// The config the proxy last acknowledged on this stream: the base of delta pushes
    /// (incremental proxies only).
    acked: Option<Arc<dyn BuiltConfig>>,
}

/// A push sent to an incremental proxy and not yet answered.
struct InFlight {
    nonce: u64,
    config: Arc<dyn BuiltConfig>,
    /// Whether it went as a delta (a NACK is then answered with the full config).
    delta: bool,
}

/// What a NACK asks the server to do: send `config` again, whole.
struct Resend {
    nonce: u64,
    config: Arc<dyn BuiltConfig>,
    pending_since: Option<Instant>,
}

/// The installed builder and its sequence number (1 for the builder given to
/// [`DiscoveryServer::new`], then one more per [`DiscoveryServer::update`]).
#[derive(Clone)]
struct Installed {
    builder: Arc<dyn ConfigBuilder>,
    seq: u64,
}

/// One proxy to rebuild in a push.
struct Target {
    id: u64,
    hello: Hello,
    peer: String,
}

type Body = BoxBody<Bytes, Infallible>;

/// The discovery server. Create with [`DiscoveryServer::new`], run [`DiscoveryServer::run_pushes`]
/// and [`DiscoveryServer::serve`] as tasks, call [`DiscoveryServer::update`] on every change.
pub struct DiscoveryServer {
    installed: RwLock<Installed>,
    sessions: Mutex<Sessions>,
    streams: Mutex<HashMap<u64, Stream>>,
    debouncer: Mutex<Debouncer>,
    wake: Notify,
    /// Bounds the first builds of new streams to one per core: a thousand proxies connecting
    /// at once must not hold a thousand configs in memory.
    first_builds: tokio::sync::Semaphore,
    metrics: DiscoveryMetrics,
}

impl std::fmt::Debug for DiscoveryServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscoveryServer")
            .field("streams", &self.streams.lock().len())
            .finish()
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed());
    *resp.status_mut() = status;
    resp
}

/// The namespace of a peer's SPIFFE ID `spiffe://<td>/ns/<ns>/sa/<sa>`, `None` when the ID is
/// not a workload identity (parsed by [`weft_identity::Identity`]).
fn spiffe_namespace(peer: &str) -> Option<String> {
    peer.parse::<weft_identity::Identity>()
        .ok()
        .map(|identity| identity.namespace().to_string())
}

/// How many threads build configs in a push: one per core.
fn build_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl DiscoveryServer {
    /// A server computing configs with `builder`.
    pub fn new(
        builder: Arc<dyn ConfigBuilder>,
        debounce: DebounceSettings,
        metrics: DiscoveryMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            installed: RwLock::new(Installed { builder, seq: 1 }),
            sessions: Mutex::new(Sessions::default()),
            streams: Mutex::new(HashMap::new()),
            debouncer: Mutex::new(Debouncer::new(debounce)),
            wake: Notify::new(),
            first_builds: tokio::sync::Semaphore::new(build_threads()),
            metrics,
        })
    }

    /// Installs a new builder (a new snapshot of the cluster view) and schedules a debounced
    /// push to every connected proxy whose config changed. Returns the builder's sequence
    /// number (the first builder, given to [`DiscoveryServer::new`], is 1): compare it with
    /// [`DiscoveryServer::acked_seqs`] to know when every proxy runs a config built from it.
    pub fn update(&self, builder: Arc<dyn ConfigBuilder>) -> u64 {
        let seq = {
            let mut installed = self.installed.write();
            installed.seq += 1;
            installed.builder = builder;
            installed.seq
        };
        self.schedule_push();
        seq
    }

    /// Per connected proxy that was sent a config: the sequence number (see
    /// [`DiscoveryServer::update`]) of the newest builder whose config for it the proxy has
    /// acknowledged, `None` before its first ACK. A proxy a change cannot affect counts as
    /// current with that change's builder once the push round has looked at it. This is what
    /// the `Reconciled` condition of mesh objects reads. Sorted by proxy.
    pub fn acked_seqs(&self) -> Vec<(ProxyKey, Option<u64>)> {
        self.sessions.lock().acked_seqs()
    }

    fn schedule_push(&self) {
        self.debouncer.lock().event(Instant::now());
        self.wake.notify_one();
    }

    /// The sync status of every connected proxy.
    pub fn statuses(&self) -> Vec<SyncStatus> {
        self.sessions.lock().statuses()
    }

    /// Pushes debounced changes until cancelled. The rebuilds run on blocking threads (see
    /// [`DiscoveryServer::push_all`]); events during a push start the next debounce.
    pub async fn run_pushes(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let deadline = self.debouncer.lock().deadline();
            match deadline {
                None => {
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = shutdown.cancelled() => return,
                    }
                }
                Some(deadline) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline.into()) => {}
                        _ = self.wake.notified() => continue,
                        _ = shutdown.cancelled() => return,
                    }
                    let fired = self.debouncer.lock().fire(Instant::now());
                    if let Some(changed_at) = fired {
                        let server = self.clone();
                        let push = tokio::task::spawn_blocking(move || server.push_all(changed_at));
                        if let Err(e) = push.await {
                            tracing::error!(error = %e, "push task failed");
                        }
                    }
                }
            }
        }
    }

    /// Rebuilds the config of every connected proxy the current builder may change (see
    /// [`ConfigBuilder::may_differ`]) and pushes those whose version changed. Blocks: the
    /// builds run on one thread per core; call it off the async runtime. `changed_at` is when
    /// the triggering change happened (for the convergence histogram).
    pub fn push_all(&self, changed_at: Instant) {
        let installed = self.installed.read().clone();
        let builder = &installed.builder;
        let targets = self.targets_to_rebuild(&installed);
        if targets.is_empty() {
            return;
        }
        let next = AtomicUsize::new(0);
        let worker = || {
            while let Some(target) = targets.get(next.fetch_add(1, Ordering::Relaxed)) {
                match self.build(&**builder, &target.hello, &target.peer) {
                    Ok(config) => self.offer(target.id, config, Some(changed_at), &installed),
                    Err(e) => {
                        self.metrics.push_errors.inc();
                        tracing::warn!(proxy = %target.hello.workload, namespace = %target.hello.namespace, error = %e, "no config for proxy");
                    }
                }
            }
        };
        let threads = build_threads().min(targets.len());
        std::thread::scope(|scope| {
            for _ in 1..threads {
                scope.spawn(worker);
            }
            worker();
        });
    }

    /// The streams whose config `builder` may change. Streams it cannot change are marked as
    /// built with `builder` (their config is the same). [`ConfigBuilder::may_differ`] runs
    /// without the streams' lock.
    fn targets_to_rebuild(&self, installed: &Installed) -> Vec<Target> {
        let builder = &installed.builder;
        // The streams, grouped by the builder their config came from (usually one group).
        let mut groups: Vec<(Arc<dyn ConfigBuilder>, Vec<Target>)> = Vec::new();
        for (id, stream) in self.streams.lock().iter() {
            if Arc::ptr_eq(&stream.built_with, builder) {
                continue;
            }
            let target = Target {
                id: *id,
                hello: stream.hello.clone(),
                peer: stream.peer.clone(),
            };
            match groups
                .iter_mut()
                .find(|(previous, _)| Arc::ptr_eq(previous, &stream.built_with))
            {
                Some((_, targets)) => targets.push(target),
                None => groups.push((stream.built_with.clone(), vec![target])),
            }
        }
        let mut rebuild = Vec::new();
        for (previous, targets) in groups {
            let hellos: Vec<&Hello> = targets.iter().map(|target| &target.hello).collect();
            let answers = builder.may_differ(&*previous, &hellos);
            let mut unchanged = Vec::new();
            for (target, may_differ) in targets.into_iter().zip(answers) {
                if may_differ {
                    rebuild.push(target);
                } else {
                    unchanged.push(target.id);
                }
            }
            let mut streams = self.streams.lock();
            let mut sessions = self.sessions.lock();
            for id in unchanged {
                if let Some(stream) = streams
                    .get_mut(&id)
                    .filter(|stream| Arc::ptr_eq(&stream.built_with, &previous))
                {
                    stream.built_with = builder.clone();
                    if let Some(session) = sessions.get_mut(id) {
                        session.current_with(installed.seq);
                    }
                }
            }
        }
        rebuild
    }

    fn build(
        &self,
        builder: &dyn ConfigBuilder,
        hello: &Hello,
        peer: &str,
    ) -> Result<Box<dyn BuiltConfig>, BuildError> {
        let started = Instant::now();
        let result = builder.build_push(hello, peer);
        self.metrics
            .build_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Sends `config`, built by `installed`, to stream `id` when its version differs from the
    /// last one sent there: encodes the frame here (the caller's thread) — a delta from the
    /// config the proxy acknowledged when it is incremental and has one, else the full config
    /// — and hands it to the stream's outbox. The config is kept only for an incremental proxy.
    fn offer(
        &self,
        id: u64,
        config: Box<dyn BuiltConfig>,
        changed_at: Option<Instant>,
        installed: &Installed,
    ) {
        let version = config.version().into_owned();
        let push = {
            let mut sessions = self.sessions.lock();
            let Some(session) = sessions.get_mut(id) else {
                return;
            };
            // The first config of a stream goes only if no push reached it meanwhile.
            if changed_at.is_none() && session.sent.is_some() {
                return;
            }
            session.plan_push(&version, installed.seq, changed_at)
        };
        let (incremental, base) = match self.streams.lock().get_mut(&id) {
            Some(stream) => {
                stream.built_with = installed.builder.clone();
                (stream.hello.incremental, stream.acked.clone())
            }
            None => return,
        };
        let Some(push) = push else { return };
        let config: Arc<dyn BuiltConfig> = Arc::from(config);
        let started = Instant::now();
        let delta = base.and_then(|base| {
            let base_version = base.version();
            frame::delta_frame(&push.version, &base_version, push.nonce, &*config, &*base)
        });
        let is_delta = delta.is_some();
        let encoded =
            delta.unwrap_or_else(|| frame::config_frame(&push.version, push.nonce, &*config));
        match encoded {
            Ok(frame) => {
                self.metrics
                    .encode_seconds
                    .observe(started.elapsed().as_secs_f64());
                let in_flight = incremental.then(|| InFlight {
                    nonce: push.nonce,
                    config,
                    delta: is_delta,
                });
                self.send(id, push.nonce, frame, in_flight);
                if is_delta {
                    self.metrics.delta_pushes.inc();
                }
            }
            Err(e) => {
                self.metrics.push_errors.inc();
                tracing::warn!(error = %e, "encoding a push failed");
            }
        }
    }

    /// Hands the push `nonce`'s frame to stream `id`'s outbox and, for an incremental proxy,
    /// records it as the push in flight (unless a newer one is).
    fn send(&self, id: u64, nonce: u64, frame: Vec<Bytes>, in_flight: Option<InFlight>) {
        let bytes: usize = frame.iter().map(Bytes::len).sum();
        let sent = {
            let mut streams = self.streams.lock();
            let Some(stream) = streams.get_mut(&id) else {
                return;
            };
            let newer = stream
                .in_flight
                .as_ref()
                .is_some_and(|current| current.nonce > nonce);
            if let Some(in_flight) = in_flight.filter(|_| !newer) {
                stream.in_flight = Some(in_flight);
            }
            stream.outbox.put(nonce, frame)
        };
        if sent {
            self.metrics.pushes.inc();
            self.metrics.config_size_bytes.observe(bytes as f64);
        }
    }

    /// Sends `resend.config` whole to stream `id` under a new nonce, if the NACKed push is
    /// still the latest (see [`SessionState::plan_resend`]). Blocks while encoding.
    fn resend_full(&self, id: u64, resend: Resend) {
        let push = {
            let mut sessions = self.sessions.lock();
            let Some(session) = sessions.get_mut(id) else {
                return;
            };
            session.plan_resend(resend.nonce, resend.pending_since)
        };
        let Some(push) = push else { return };
        match frame::config_frame(&push.version, push.nonce, &*resend.config) {
            Ok(frame) => {
                let in_flight = InFlight {
                    nonce: push.nonce,
                    config: resend.config,
                    delta: false,
                };
                self.send(id, push.nonce, frame, Some(in_flight));
            }
            Err(e) => {
                self.metrics.push_errors.inc();
                tracing::warn!(error = %e, "encoding a full push after a NACK failed");
            }
        }
    }

    /// Handles one HTTP request of a connection authenticated as `peer` (SPIFFE ID).
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: Option<String>,
    ) -> Response<Body> {
        if req.uri().path() != STREAM_PATH || req.method() != Method::POST {
            return full(StatusCode::NOT_FOUND, "not found");
        }
        let Some(peer) = peer else {
            return full(
                StatusCode::FORBIDDEN,
                "a workload certificate with a SPIFFE ID is required",
            );
        };
        let mut body = req.into_body();
        let mut decoder = FrameDecoder::new();
        let hello =
            match tokio::time::timeout(HELLO_TIMEOUT, read_hello(&mut body, &mut decoder)).await {
                Ok(Ok(hello)) => hello,
                Ok(Err(message)) => return full(StatusCode::BAD_REQUEST, message),
                Err(_) => return full(StatusCode::REQUEST_TIMEOUT, "no hello within 10s"),
            };
        if spiffe_namespace(&peer).as_deref() != Some(hello.namespace.as_str()) {
            return error_response(
                StatusCode::FORBIDDEN,
                format!(
                    "permission denied: peer {peer} may not read namespace {}",
                    hello.namespace
                ),
            );
        }
        // Held until the first push is encoded (closed never: the server owns the semaphore).
        let permit = self.first_builds.acquire().await.ok();
        let installed = self.installed.read().clone();
        let builder = installed.builder.clone();
        let built = {
            let (server, builder, hello, peer) =
                (self.clone(), builder.clone(), hello.clone(), peer.clone());
            tokio::task::spawn_blocking(move || server.build(&*builder, &hello, &peer)).await
        };
        let config = match built {
            Ok(Ok(config)) => config,
            Ok(Err(e @ BuildError::Denied(_))) => {
                return error_response(StatusCode::FORBIDDEN, e.to_string());
            }
            Ok(Err(e)) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
            Err(e) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        };
        let (outbox, frames) = outbox();
        let key = ProxyKey {
            namespace: hello.namespace.clone(),
            workload: hello.workload.clone(),
        };
        let id = self.sessions.lock().open(SessionState::new(
            key,
            peer.clone(),
            hello.proxy_version.clone(),
        ));
        self.streams.lock().insert(
            id,
            Stream {
                outbox,
                hello: hello.clone(),
                peer,
                built_with: builder.clone(),
                in_flight: None,
                acked: None,
            },
        );
        self.metrics.connected.inc();
        tracing::info!(proxy = %hello.workload, namespace = %hello.namespace, "proxy connected");
        {
            let server = self.clone();
            let offered =
                tokio::task::spawn_blocking(move || server.offer(id, config, None, &installed))
                    .await;
            if let Err(e) = offered {
                tracing::error!(error = %e, "first push failed");
            }
        }
        drop(permit);
        // A change installed while this stream was being set up may have been pushed before
        // the stream was listed: push again (debounced) so that it gets the current config.
        if !Arc::ptr_eq(&self.installed.read().builder, &builder) {
            self.schedule_push();
        }
        let server = self.clone();
        tokio::spawn(async move {
            server.read_acks(id, body, decoder).await;
            server.sessions.lock().close(id);
            server.streams.lock().remove(&id);
            server.metrics.connected.dec();
            tracing::info!(proxy = %hello.workload, namespace = %hello.namespace, "proxy disconnected");
        });
        let stream = futures::stream::unfold(frames, |mut frames| async move {
            let frame = frames.next().await?;
            Some((Ok::<_, Infallible>(Frame::data(frame)), frames))
        });
        Response::new(StreamBody::new(stream).boxed())
    }

    async fn read_acks(self: &Arc<Self>, id: u64, mut body: Incoming, mut decoder: FrameDecoder) {
        loop {
            loop {
                match decoder.next_message::<ClientMessage>() {
                    Ok(Some(message)) => {
                        if let Some(resend) = self.on_client_message(id, message) {
                            let server = self.clone();
                            let resent = tokio::task::spawn_blocking(move || {
                                server.resend_full(id, resend);
                            });
                            if let Err(e) = resent.await {
                                tracing::error!(error = %e, "full push after a NACK failed");
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "closing discovery stream");
                        return;
                    }
                }
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        decoder.push(data);
                    }
                }
                _ => return,
            }
        }
    }

    /// Records an ACK or NACK. An ACK of the push in flight makes its config the base of the
    /// next delta; a NACK of a delta push returns the full config to send instead.
    fn on_client_message(&self, id: u64, message: ClientMessage) -> Option<Resend> {
        match message {
            ClientMessage::Ack { version, nonce } => {
                let outcome =
                    self.sessions
                        .lock()
                        .get_mut(id)?
                        .ack(&version, nonce, Instant::now());
                let AckOutcome::Applied { convergence } = outcome else {
                    return None;
                };
                if let Some(d) = convergence {
                    self.metrics.convergence_seconds.observe(d.as_secs_f64());
                }
                let mut streams = self.streams.lock();
                let stream = streams.get_mut(&id)?;
                if stream
                    .in_flight
                    .as_ref()
                    .is_some_and(|sent| sent.nonce == nonce)
                {
                    stream.acked = stream.in_flight.take().map(|sent| sent.config);
                }
                None
            }
            ClientMessage::Nack {
                version,
                nonce,
                reason,
            } => {
                let pending_since = {
                    let mut sessions = self.sessions.lock();
                    let session = sessions.get_mut(id)?;
                    let pending_since = session.pending_since();
                    if session.nack(&version, nonce, &reason) != AckOutcome::Refused {
                        return None;
                    }
                    self.metrics.nacks.inc();
                    tracing::warn!(proxy = %session.key, %version, %reason, "proxy refused config");
                    pending_since
                };
                let mut streams = self.streams.lock();
                let stream = streams.get_mut(&id)?;
                let sent = stream.in_flight.take_if(|sent| sent.nonce == nonce)?;
                sent.delta.then_some(Resend {
                    nonce,
                    config: sent.config,
                    pending_since,
                })
            }
            ClientMessage::Hello(_) => {
                if let Some(session) = self.sessions.lock().get_mut(id) {
                    tracing::warn!(proxy = %session.key, "ignoring a second hello on one stream");
                }
                None
            }
        }
    }

    /// Binds `address` and spawns, on the current runtime, [`DiscoveryServer::serve`] there and
    /// [`DiscoveryServer::run_pushes`], both until `shutdown`: how both operator modes start the
    /// discovery service (istiod's 15012).
    ///
    /// Errors: the address cannot be bound (the error names it).
    pub async fn start(
        self: &Arc<Self>,
        address: std::net::SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let listener = TcpListener::bind(address).await.map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("binding discovery address {address}: {e}"),
            )
        })?;
        tracing::info!(%address, "discovery service listening");
        tokio::spawn(self.clone().serve(listener, tls, shutdown.clone()));
        tokio::spawn(self.clone().run_pushes(shutdown));
        Ok(())
    }

    /// Accepts mTLS connections on `listener` until `shutdown`, serving HTTP/2.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Arc<rustls::ServerConfig>,
        shutdown: CancellationToken,
    ) {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        continue;
                    }
                },
                _ = shutdown.cancelled() => return,
            };
            let acceptor = acceptor.clone();
            let server = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%remote, error = %e, "TLS handshake failed");
                        return;
                    }
                };
                let peer = weft_proxy::tls::peer_identity(tls.get_ref().1);
                let service = hyper::service::service_fn(move |req| {
                    let server = server.clone();
                    let peer = peer.clone();
                    async move { Ok::<_, Infallible>(server.handle(req, peer).await) }
                });
                let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(hyper_util::rt::TokioTimer::new())
                    .keep_alive_interval(Some(Duration::from_secs(20)))
                    .serve_connection(TokioIo::new(tls), service);
                tokio::select! {
                    result = conn => {
                        if let Err(e) = result {
                            tracing::debug!(%remote, error = %e, "discovery connection ended");
                        }
                    }
                    _ = shutdown.cancelled() => {}
                }
            });
        }
    }
}

fn error_response(status: StatusCode, message: String) -> Response<Body> {
    let frame = encode_frame(&ServerMessage::Error { message }).unwrap_or_default();
    full(status, frame)
}

async fn read_hello(body: &mut Incoming, decoder: &mut FrameDecoder) -> Result<Hello, String> {
    loop {
        match decoder.next_message::<ClientMessage>() {
            Ok(Some(ClientMessage::Hello(hello))) => return Ok(hello),
            Ok(Some(_)) => return Err("the first frame must be a hello".into()),
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    decoder.push(data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("stream ended before the hello".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_namespace_is_read_from_the_id() {
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/ns/demo/sa/web").as_deref(),
            Some("demo")
        );
        assert_eq!(
            spiffe_namespace("spiffe://cluster.local/sa/web").as_deref(),
            None
        );
        assert_eq!(spiffe_namespace("https://x/ns/demo").as_deref(), None);
    }
}
