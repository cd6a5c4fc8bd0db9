//! The upstream connection pool of one transport: HTTP/1.1 connections carry one request at a
//! time and are reused once their exchange is over; an HTTP/2 connection is shared by
//! concurrent requests.
//!
//! Each connection is driven by its own task on the runtime that opened it and is only reused
//! from that runtime's thread when that runtime is a current-thread worker (Envoy's per-worker
//! connection pools: a request and its upstream connection wake each other without crossing
//! threads). A request sends directly on a pooled connection's `SendRequest`: no task per
//! request, and the connection is back in the pool as soon as hyper is ready for its next
//! request (no hand-back after the body).
//!
//! Istio's `ConnectionPoolSettings` it applies: `http.idleTimeout` (a timer task closes
//! connections idle longer), `http.maxRequestsPerConnection` and `tcp.maxConnectionDuration`
//! (a connection that reached either takes no more requests and closes once its exchange is
//! done).

use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use futures::future::Either;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::{TrySendError, http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;

use super::{Connector, ProxyBody};

/// How many times a request is sent again after a pooled connection turned out to be closed
/// before the request was written (the request is then sent on a new connection).
const STALE_RETRIES: usize = 2;

/// Shortest and longest pause of the idle-connection timer (half the idle timeout, within
/// these bounds).
const REAP_MIN: Duration = Duration::from_millis(100);
const REAP_MAX: Duration = Duration::from_secs(30);

/// What a pool applies to its connections (Istio `ConnectionPoolSettings`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolSettings {
    /// Speak HTTP/2 (prior knowledge, or `h2` negotiated by the connector's ALPN).
    pub http2: bool,
    /// Close a connection idle this long (`http.idleTimeout`; `None`: never).
    pub idle_timeout: Option<Duration>,
    /// Requests a connection carries before it is retired (`http.maxRequestsPerConnection`;
    /// `None`: unlimited).
    pub max_requests_per_connection: Option<u32>,
    /// Age after which a connection takes no more requests (`tcp.maxConnectionDuration`).
    pub max_connection_duration: Option<Duration>,
}

/// Why a request could not be sent or answered.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The TCP connect, or the TLS handshake, failed or timed out.
    #[error("upstream {address}: connect: {source}")]
    Connect {
        /// The endpoint.
        address: SocketAddr,
        /// The connector's error.
        source: std::io::Error,
    },
    /// The HTTP/2 connection preface could not be exchanged.
    #[error("upstream {address}: HTTP handshake: {source}")]
    Handshake {
        /// The endpoint.
        address: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The request was lost before any connection took it (not expected to happen).
    #[error("upstream {address}: the request was not sent")]
    Unsent {
        /// The endpoint.
        address: SocketAddr,
    },
    /// The connection failed while the request was sent or before the response head arrived.
    #[error("upstream {address}: {source}")]
    Request {
        /// The endpoint.
        address: SocketAddr,
        /// hyper's error.
        source: hyper::Error,
    },
}

impl PoolError {
    /// Whether no connection could be opened (Envoy's `UF`, connect failure).
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect { .. } | Self::Handshake { .. })
    }
}

/// Which connections a request may use: those to the endpoint, and on a current-thread worker
/// only those that worker drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PoolKey {
    address: SocketAddr,
    worker: Option<ThreadId>,
}

impl PoolKey {
    fn new(address: SocketAddr) -> Self {
        let worker = match tokio::runtime::Handle::try_current() {
            Ok(handle)
                if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread =>
            {
                Some(std::thread::current().id())
            }
            _ => None,
        };
        Self { address, worker }
    }
}

/// The request side of a connection.
enum Sender {
    Http1(http1::SendRequest<ProxyBody>),
    Http2(http2::SendRequest<ProxyBody>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Self::Http1(sender) => sender.is_closed(),
            Self::Http2(sender) => sender.is_closed(),
        }
    }

    /// Hands `request` to the connection's task; the future resolves to the response head.
    fn send(
        &mut self,
        request: Request<ProxyBody>,
    ) -> impl Future<Output = SendResult> + Send + use<> {
        match self {
            Self::Http1(sender) => Either::Left(sender.try_send_request(request)),
            Self::Http2(sender) => Either::Right(sender.try_send_request(request)),
        }
    }

    /// Whether a new request can be sent now (HTTP/1.1: the previous exchange is over).
    fn is_ready(&self) -> bool {
        match self {
            Self::Http1(sender) => sender.is_ready(),
            Self::Http2(sender) => sender.is_ready(),
        }
    }
}

/// A pooled connection.
struct Pooled {
    sender: Sender,
    opened: Instant,
    requests: u32,
    /// When the connection was first seen ready after its last request (`None`: busy, or not
    /// looked at since).
    idle_since: Option<Instant>,
}

impl Pooled {
    /// Whether the connection reached `max_age` (`tcp.maxConnectionDuration`).
    fn too_old(&self, max_age: Option<Duration>) -> bool {
        max_age.is_some_and(|max| self.opened.elapsed() >= max)
    }
}

/// The pool's connections by key.
#[derive(Default)]
struct PoolState {
    connections: crate::FastMap<PoolKey, Vec<Pooled>>,
    /// Whether the idle-connection timer task runs.
    reaping: bool,
}

impl PoolState {
    /// Drops closed connections, those older than `max_age` and those idle longer than
    /// `idle_timeout`; marks newly idle ones. Returns whether any connection is left.
    fn sweep(
        &mut self,
        now: Instant,
        idle_timeout: Option<Duration>,
        max_age: Option<Duration>,
    ) -> bool {
        self.connections.retain(|_, list| {
            list.retain_mut(|pooled| {
                if pooled.sender.is_closed() || pooled.too_old(max_age) {
                    return false;
                }
                if !pooled.sender.is_ready() {
                    pooled.idle_since = None;
                    return true;
                }
                let since = *pooled.idle_since.get_or_insert(now);
                idle_timeout.is_none_or(|timeout| now.duration_since(since) < timeout)
            });
            !list.is_empty()
        });
        !self.connections.is_empty()
    }
}

/// A pool of upstream HTTP connections opened by one [`Connector`].
pub struct Pool {
    connector: Connector,
    settings: PoolSettings,
    state: Arc<Mutex<PoolState>>,
}

impl Pool {
    /// An empty pool opening connections with `connector` under `settings`.
    pub fn new(connector: Connector, settings: PoolSettings) -> Self {
        Self {
            connector,
            settings,
            state: Arc::default(),
        }
    }

    /// Whether requests go upstream as HTTP/2.
    pub fn http2(&self) -> bool {
        self.settings.http2
    }

    /// How many connections the pool holds (busy or idle).
    pub fn connections(&self) -> usize {
        self.state.lock().connections.values().map(Vec::len).sum()
    }

    /// Sends `request` to `address` on a pooled connection that is ready, or on a new one.
    /// The request's URI is written as it is (origin form for HTTP/1.1: `/path?query`), with
    /// the headers it has (`Host` included). A request that a pooled connection refused before
    /// writing it (the connection had just closed) is sent again on another connection
    /// (hyper-util's `retry_canceled_requests`).
    ///
    /// Errors: [`PoolError::Connect`]/[`PoolError::Handshake`] when no connection could be
    /// opened, [`PoolError::Request`] when the connection failed before the response head.
    ///
    /// The first pick happens when this is called; the returned future holds only what the
    /// exchange needs across its awaits (it is part of every request's future, which each
    /// caller up to hyper's dispatcher moves once or twice per request).
    pub fn request(
        &self,
        address: SocketAddr,
        mut request: Request<ProxyBody>,
    ) -> impl Future<Output = Result<Response<Incoming>, PoolError>> + Send + '_ {
        let key = PoolKey::new(address);
        if !self.settings.http2 {
            origin_form(&mut request);
        }
        let mut unsent = Some(request);
        // None: no ready connection, open one.
        let first = self.send_pooled(key, &mut unsent);
        async move {
            let mut sent = first;
            let mut attempts = 1;
            while let Some(future) = sent.take() {
                match future.await {
                    Ok(response) => return Ok(response),
                    Err(mut error) => match error.take_message() {
                        Some(request) => unsent = Some(request),
                        None => {
                            return Err(PoolError::Request {
                                address,
                                source: error.into_error(),
                            });
                        }
                    },
                }
                if attempts == STALE_RETRIES {
                    break;
                }
                attempts += 1;
                sent = self.send_pooled(key, &mut unsent);
            }
            let Some(request) = unsent else {
                // `send_pooled` only takes the request when it sends it.
                return Err(PoolError::Unsent { address });
            };
            // Opening a connection is the rare path: boxed, its future (TCP connect, TLS
            // handshake, HTTP/2 preface: ~2 KB) is not part of every request's future.
            Box::pin(self.send_new(key, request))
                .await?
                .await
                .map_err(|error| PoolError::Request {
                    address,
                    source: error.into_error(),
                })
        }
    }

    /// Hands `request` to a ready pooled connection for `key` and counts it; a connection
    /// that thereby reached its request limit leaves the pool (it closes once this exchange is
    /// done), as do connections older than `maxConnectionDuration` before the pick. Gives the
    /// request in `request` (and returns `None`) when no connection is ready.
    fn send_pooled(
        &self,
        key: PoolKey,
        request: &mut Option<Request<ProxyBody>>,
    ) -> Option<impl Future<Output = SendResult> + Send + use<>> {
        let mut state = self.state.lock();
        let list = state.connections.get_mut(&key)?;
        let max_age = self.settings.max_connection_duration;
        list.retain(|pooled| !pooled.sender.is_closed() && !pooled.too_old(max_age));
        // The most recently opened first: the likeliest to be warm.
        let index = list.iter().rposition(|pooled| pooled.sender.is_ready())?;
        let request = request.take()?;
        let pooled = &mut list[index];
        pooled.requests = pooled.requests.saturating_add(1);
        pooled.idle_since = None;
        let sent = pooled.sender.send(request);
        if self.spent(pooled) {
            list.swap_remove(index);
        }
        Some(sent)
    }

    /// Whether `pooled` carried as many requests as it may (`http.maxRequestsPerConnection`).
    fn spent(&self, pooled: &Pooled) -> bool {
        self.settings
            .max_requests_per_connection
            .is_some_and(|max| pooled.requests >= max)
    }

    /// Opens a connection for `key`, starts its task, hands it `request` and pools it.
    async fn send_new(
        &self,
        key: PoolKey,
        request: Request<ProxyBody>,
    ) -> Result<impl Future<Output = SendResult> + Send + use<>, PoolError> {
        let address = key.address;
        let stream = self
            .connector
            .connect(address)
            .await
            .map_err(|source| PoolError::Connect { address, source })?;
        let io = TokioIo::new(stream);
        let sender = if self.settings.http2 {
            let (sender, connection) = http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .handshake(io)
                .await
                .map_err(|source| PoolError::Handshake { address, source })?;
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!(%error, upstream = %address, "upstream HTTP/2 connection ended");
                }
            });
            Sender::Http2(sender)
        } else {
            let (sender, connection) = http1::Builder::new()
                .handshake(io)
                .await
                .map_err(|source| PoolError::Handshake { address, source })?;
            tokio::spawn(async move {
                if let Err(error) = connection.with_upgrades().await {
                    tracing::debug!(%error, upstream = %address, "upstream HTTP/1.1 connection ended");
                }
            });
            Sender::Http1(sender)
        };
        let mut pooled = Pooled {
            sender,
            opened: Instant::now(),
            requests: 1,
            idle_since: None,
        };
        let sent = pooled.sender.send(request);
        if !self.spent(&pooled) {
            let mut state = self.state.lock();
            state.connections.entry(key).or_default().push(pooled);
            if !state.reaping && self.settings.idle_timeout.is_some() {
                state.reaping = true;
                self.start_reaper();
            }
        }
        Ok(sent)
    }

    /// Starts the task that closes idle connections (ends when the pool is dropped or empty).
    fn start_reaper(&self) {
        let Some(timeout) = self.settings.idle_timeout else {
            return;
        };
        let period = (timeout / 2).clamp(REAP_MIN, REAP_MAX);
        let max_age = self.settings.max_connection_duration;
        let state: Weak<Mutex<PoolState>> = Arc::downgrade(&self.state);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(state) = state.upgrade() else {
                    return;
                };
                let mut state = state.lock();
                if !state.sweep(Instant::now(), Some(timeout), max_age) {
                    state.reaping = false;
                    return;
                }
            }
        });
    }
}

/// Rewrites an absolute-form request target to origin form (`/path?query`), which HTTP/1.1
/// requests to an origin server use (RFC 9112 §3.2.1); `CONNECT` keeps its authority form.
fn origin_form(request: &mut Request<ProxyBody>) {
    if request.method() == http::Method::CONNECT || request.uri().scheme().is_none() {
        return;
    }
    let path = request
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = http::Uri::from(path);
}

/// What sending on a connection gives: the response head, or an error that carries the
/// request back when it was not written.
type SendResult = Result<Response<Incoming>, TrySendError<Request<ProxyBody>>>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty};
    use tokio::net::TcpListener;

    use super::*;

    /// A local server (HTTP/1.1, or HTTP/2 with prior knowledge) answering each request after
    /// `delay` with the request target in `x-target`; counts the connections it accepts.
    async fn server(http2: bool, delay: Duration) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let target = request.uri().to_string();
                        async move {
                            tokio::time::sleep(delay).await;
                            let mut response = Response::new(Empty::<Bytes>::new());
                            response
                                .headers_mut()
                                .insert("x-target", target.parse().unwrap());
                            Ok::<_, std::convert::Infallible>(response)
                        }
                    });
                    let io = TokioIo::new(stream);
                    if http2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(io, service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, service)
                            .await;
                    }
                });
            }
        });
        (address, accepted)
    }

    fn pool(settings: PoolSettings) -> Pool {
        Pool::new(Connector::plain(Duration::from_secs(1)), settings)
    }

    /// Sends a GET for `uri` and reads the whole response; returns its `x-target`.
    async fn get(pool: &Pool, address: SocketAddr, uri: &str) -> String {
        let body = Empty::<Bytes>::new()
            .map_err(|never| match never {})
            .boxed();
        let request = Request::get(uri).header("host", "test").body(body).unwrap();
        let response = pool.request(address, request).await.unwrap();
        assert_eq!(response.status(), 200);
        let target = response.headers()["x-target"].to_str().unwrap().to_owned();
        response.into_body().collect().await.unwrap();
        target
    }

    #[tokio::test]
    async fn concurrent_http1_requests_get_their_own_connections_which_are_then_reused() {
        let (address, accepted) = server(false, Duration::from_millis(50)).await;
        let pool = pool(PoolSettings::default());
        let (a, b, c) = tokio::join!(
            get(&pool, address, "/a"),
            get(&pool, address, "/b"),
            get(&pool, address, "/c")
        );
        assert_eq!((a.as_str(), b.as_str(), c.as_str()), ("/a", "/b", "/c"));
        assert_eq!(accepted.load(Ordering::Relaxed), 3);
        for _ in 0..5 {
            get(&pool, address, "/").await;
        }
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            3,
            "sequential requests reuse the pooled connections"
        );
        assert_eq!(pool.connections(), 3);
    }

    #[tokio::test]
    async fn http1_requests_are_sent_in_origin_form() {
        let (address, _) = server(false, Duration::ZERO).await;
        let pool = pool(PoolSettings::default());
        let target = get(&pool, address, &format!("http://{address}/path?q=1")).await;
        assert_eq!(target, "/path?q=1");
    }

    #[tokio::test]
    async fn http2_requests_share_one_connection() {
        let (address, accepted) = server(true, Duration::from_millis(50)).await;
        let pool = pool(PoolSettings {
            http2: true,
            ..PoolSettings::default()
        });
        let uri = format!("http://{address}/h2");
        let (a, b, c) = tokio::join!(
            get(&pool, address, &uri),
            get(&pool, address, &uri),
            get(&pool, address, &uri)
        );
        assert_eq!(
            (a.as_str(), b.as_str(), c.as_str()),
            (uri.as_str(), uri.as_str(), uri.as_str())
        );
        // The first request opens the connection; the others find it in the pool only once
        // it is there, so allow the ones that raced it their own.
        let opened = accepted.load(Ordering::Relaxed);
        assert!((1..=3).contains(&opened), "opened {opened}");
        get(&pool, address, &uri).await;
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            opened,
            "a pooled HTTP/2 connection is reused"
        );
    }

    #[tokio::test]
    async fn idle_connections_close_after_the_idle_timeout() {
        let (address, _) = server(false, Duration::ZERO).await;
        let pool = pool(PoolSettings {
            idle_timeout: Some(Duration::from_millis(200)),
            ..PoolSettings::default()
        });
        get(&pool, address, "/").await;
        assert_eq!(pool.connections(), 1);
        let mut left = pool.connections();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            left = pool.connections();
            if left == 0 {
                break;
            }
        }
        assert_eq!(left, 0, "the idle connection is closed by the pool's timer");
    }

    #[test]
    fn each_current_thread_worker_uses_its_own_connections() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let server_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (address, accepted) = server_runtime.block_on(server(false, Duration::ZERO));
        let pool = Arc::new(pool(PoolSettings::default()));
        let first = runtime();
        first.block_on(get(&pool, address, "/"));
        first.block_on(get(&pool, address, "/"));
        assert_eq!(accepted.load(Ordering::Relaxed), 1);
        let other = Arc::clone(&pool);
        std::thread::spawn(move || runtime().block_on(get(&other, address, "/")))
            .join()
            .unwrap();
        assert_eq!(
            accepted.load(Ordering::Relaxed),
            2,
            "another worker thread opens its own connection"
        );
    }
}
