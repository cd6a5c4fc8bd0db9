//! The discovery server: accepts proxies' mTLS HTTP/2 streams, checks their identity, pushes
//! configs when they change and records ACKs/NACKs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use weft_discovery::{
    ClientMessage, FrameDecoder, Hello, ProxyConfig, STREAM_PATH, ServerMessage, encode_frame,
};

use super::debounce::{DebounceSettings, Debouncer};
use super::metrics::DiscoveryMetrics;
use super::sessions::{AckOutcome, ProxyKey, SessionState, Sessions, SyncStatus};

/// How long a new stream may take to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Computes a proxy's configuration from the current cluster view. Implemented by Pilot over
/// a snapshot; the server swaps in a new builder on every config change.
pub trait ConfigBuilder: Send + Sync {
    /// Builds the config for the proxy that sent `hello`, authenticated with the SPIFFE ID
    /// `peer`. Errors when the peer may not have that workload's config, the workload is not
    /// known, or the build fails.
    fn build(&self, hello: &Hello, peer: &str) -> Result<ProxyConfig, BuildError>;
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

struct Stream {
    tx: watch::Sender<Option<ServerMessage>>,
    hello: Hello,
    peer: String,
}

type Body = BoxBody<Bytes, Infallible>;

/// The discovery server. Create with [`DiscoveryServer::new`], run [`DiscoveryServer::run_pushes`]
/// and [`DiscoveryServer::serve`] as tasks, call [`DiscoveryServer::update`] on every change.
pub struct DiscoveryServer {
    builder: RwLock<Arc<dyn ConfigBuilder>>,
    sessions: Mutex<Sessions>,
    streams: Mutex<HashMap<u64, Stream>>,
    debouncer: Mutex<Debouncer>,
    wake: Notify,
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

impl DiscoveryServer {
    /// A server computing configs with `builder`.
    pub fn new(
        builder: Arc<dyn ConfigBuilder>,
        debounce: DebounceSettings,
        metrics: DiscoveryMetrics,
    ) -> Arc<Self> {
        Arc::new(Self {
            builder: RwLock::new(builder),
            sessions: Mutex::new(Sessions::default()),
            streams: Mutex::new(HashMap::new()),
            debouncer: Mutex::new(Debouncer::new(debounce)),
            wake: Notify::new(),
            metrics,
        })
    }

    /// Installs a new builder (a new snapshot of the cluster view) and schedules a debounced
    /// push to every connected proxy whose config changed.
    pub fn update(&self, builder: Arc<dyn ConfigBuilder>) {
        *self.builder.write() = builder;
        self.debouncer.lock().event(Instant::now());
        self.wake.notify_one();
    }

    /// The sync status of every connected proxy.
    pub fn statuses(&self) -> Vec<SyncStatus> {
        self.sessions.lock().statuses()
    }

    /// Pushes debounced changes until cancelled.
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
                        self.push_all(changed_at);
                    }
                }
            }
        }
    }

    /// Rebuilds every connected proxy's config and pushes those that changed.
    pub fn push_all(&self, changed_at: Instant) {
        let builder = self.builder.read().clone();
        let targets: Vec<(u64, Hello, String)> = self
            .streams
            .lock()
            .iter()
            .map(|(id, s)| (*id, s.hello.clone(), s.peer.clone()))
            .collect();
        for (id, hello, peer) in targets {
            match self.build(&*builder, &hello, &peer) {
                Ok(config) => self.offer(id, config, Some(changed_at)),
                Err(e) => {
                    self.metrics.push_errors.inc();
                    tracing::warn!(proxy = %hello.workload, namespace = %hello.namespace, error = %e, "no config for proxy");
                }
            }
        }
    }

    fn build(
        &self,
        builder: &dyn ConfigBuilder,
        hello: &Hello,
        peer: &str,
    ) -> Result<ProxyConfig, BuildError> {
        let started = Instant::now();
        let result = builder.build(hello, peer);
        self.metrics
            .build_seconds
            .observe(started.elapsed().as_secs_f64());
        result
    }

    fn offer(&self, id: u64, config: ProxyConfig, changed_at: Option<Instant>) {
        let version = if config.version.is_empty() {
            config.content_hash().unwrap_or_default()
        } else {
            config.version.clone()
        };
        let push = match self.sessions.lock().get_mut(id) {
            Some(session) => session.plan_push(&version, changed_at),
            None => return,
        };
        let Some(push) = push else { return };
        if let Some(stream) = self.streams.lock().get(&id) {
            stream.tx.send_replace(Some(ServerMessage::Config {
                version: push.version,
                nonce: push.nonce,
                config: Box::new(config),
            }));
            self.metrics.pushes.inc();
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
        let builder = self.builder.read().clone();
        let config = match self.build(&*builder, &hello, &peer) {
            Ok(config) => config,
            Err(e @ BuildError::Denied(_)) => {
                return error_response(StatusCode::FORBIDDEN, e.to_string());
            }
            Err(e) => return error_response(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        };
        let (tx, rx) = watch::channel(None);
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
                tx,
                hello: hello.clone(),
                peer,
            },
        );
        self.metrics.connected.inc();
        tracing::info!(proxy = %hello.workload, namespace = %hello.namespace, "proxy connected");
        self.offer(id, config, None);
        let server = self.clone();
        tokio::spawn(async move {
            server.read_acks(id, body, decoder).await;
            server.sessions.lock().close(id);
            server.streams.lock().remove(&id);
            server.metrics.connected.dec();
            tracing::info!(proxy = %hello.workload, namespace = %hello.namespace, "proxy disconnected");
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                rx.changed().await.ok()?;
                let message = rx.borrow_and_update().clone();
                if let Some(message) = message {
                    let bytes = encode_frame(&message).ok()?;
                    return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(bytes))), rx));
                }
            }
        });
        Response::new(StreamBody::new(stream).boxed())
    }

    async fn read_acks(&self, id: u64, mut body: Incoming, mut decoder: FrameDecoder) {
        loop {
            loop {
                match decoder.next_message::<ClientMessage>() {
                    Ok(Some(message)) => self.on_client_message(id, message),
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

    fn on_client_message(&self, id: u64, message: ClientMessage) {
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(id) else {
            return;
        };
        match message {
            ClientMessage::Ack { version, nonce } => {
                if let AckOutcome::Applied {
                    convergence: Some(d),
                } = session.ack(&version, nonce, Instant::now())
                {
                    self.metrics.convergence_seconds.observe(d.as_secs_f64());
                }
            }
            ClientMessage::Nack {
                version,
                nonce,
                reason,
            } => {
                if session.nack(&version, nonce, &reason) == AckOutcome::Refused {
                    self.metrics.nacks.inc();
                    tracing::warn!(proxy = %session.key, %version, %reason, "proxy refused config");
                }
            }
            ClientMessage::Hello(_) => {
                tracing::warn!(proxy = %session.key, "ignoring a second hello on one stream");
            }
        }
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
