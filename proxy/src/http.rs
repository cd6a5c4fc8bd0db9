//! The HTTP request path: one hyper server connection per accepted downstream connection
//! (HTTP/1.1 or HTTP/2 by preface), route selection, local replies, and per-request logging.
//!
//! Per request: load the current snapshot (one `ArcSwap` load), find the outbound service by
//! the connection's original destination, pick the virtual host by authority and the first
//! matching route, then answer locally (redirect, direct response, fault abort, no route) or
//! forward (the `forward` submodule).

mod cors;
mod forward;
mod inbound;
mod local;
mod log_guard;
mod replay;
mod upgrade;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::header::{HeaderName, HeaderValue};
use http::{Request, Response};
use hyper::body::{Body as _, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::config::ConfigStore;
use crate::request_log::{Direction, RequestLog, RequestObserver, ResponseFlags};
use crate::router::RequestView;
use crate::snapshot::{CompiledAction, RouteTable, Snapshot};
use crate::upstream::ProxyBody;
use log_guard::LogGuard;

pub use cors::CompiledCors;
pub(crate) use forward::cluster_host;
pub use local::{full_body, local_reply};

/// The `x-request-id` header (Envoy generates it when absent; Istio's tracing relies on it).
/// Typed: a name given as `&str` is parsed and checked again on every use.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// W3C Trace Context's `traceparent` header, copied into the access log.
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Shared state of an HTTP listener.
pub struct HttpProxy {
    /// The config.
    pub store: Arc<ConfigStore>,
    /// Where finished requests go.
    pub observer: Arc<dyn RequestObserver>,
    /// Which listener this is.
    pub direction: Direction,
    /// Inbound only: pooled clients to the local application.
    app: Option<inbound::AppClients>,
}

impl HttpProxy {
    /// The outbound HTTP proxy: requests are routed by the config's outbound services.
    pub fn outbound(store: Arc<ConfigStore>, observer: Arc<dyn RequestObserver>) -> Self {
        Self {
            store,
            observer,
            direction: Direction::Outbound,
            app: None,
        }
    }

    /// The inbound HTTP proxy: requests go to the application at the connection's destination,
    /// connecting within `connect_timeout`.
    pub fn inbound(
        store: Arc<ConfigStore>,
        observer: Arc<dyn RequestObserver>,
        connect_timeout: std::time::Duration,
    ) -> Self {
        Self {
            store,
            observer,
            direction: Direction::Inbound,
            app: Some(inbound::AppClients::new(connect_timeout)),
        }
    }
}

/// What the request path knows about the downstream connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The original destination (outbound: the service VIP and port).
    pub destination: SocketAddr,
    /// The downstream peer.
    pub peer: SocketAddr,
    /// The peer's SPIFFE ID (inbound mTLS).
    pub source_principal: Option<String>,
    /// Lowercase hex SHA-256 of the peer's leaf certificate (inbound mTLS), for
    /// `x-forwarded-client-cert`.
    pub peer_certificate_hash: Option<String>,
    /// The SNI the peer sent in its TLS ClientHello (inbound mTLS), Istio's `connection.sni`.
    pub sni: Option<String>,
    /// Whether forwarding to `destination` itself is allowed (false when the connection was not
    /// redirected, so passthrough would loop back into the proxy).
    pub passthrough_allowed: bool,
    /// On a gateway listener: which listener accepted the connection and, after TLS
    /// termination, which server; requests are then routed by that listener's servers instead
    /// of the outbound services.
    pub gateway: Option<crate::gateway::GatewayTarget>,
}

/// Serves HTTP/1.1 and HTTP/2 (prior knowledge) on `io` until the client closes or `shutdown`
/// is cancelled, after which in-flight requests finish and the connection closes gracefully.
/// Malformed requests get hyper's 400 and close the connection.
pub async fn serve_connection<I>(
    io: I,
    proxy: Arc<HttpProxy>,
    conn: Arc<ConnInfo>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = Arc::clone(&proxy);
        let conn = Arc::clone(&conn);
        async move { Ok::<_, Infallible>(handle(&proxy, &conn, request).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "downstream HTTP connection ended with an error");
            }
            return;
        }
        () = shutdown.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    if let Err(error) = connection.await {
        tracing::debug!(%error, "downstream HTTP connection ended with an error while draining");
    }
}

fn empty_log(direction: Direction) -> RequestLog {
    RequestLog {
        direction,
        start: SystemTime::now(),
        duration: Default::default(),
        method: std::borrow::Cow::Borrowed(""),
        authority: String::new(),
        path: String::new(),
        protocol: "HTTP/1.1",
        status: 0,
        flags: ResponseFlags::empty(),
        request_id: String::new(),
        route_name: crate::request_log::empty_name(),
        upstream_cluster: crate::request_log::empty_name(),
        upstream_host: None,
        downstream_peer: None,
        source_principal: None,
        attempts: 0,
        destination_service: crate::request_log::empty_name(),
        request_bytes: 0,
        response_bytes: 0,
        traceparent: None,
        audit_policy: None,
    }
}

/// The authority of a request: the URI's (HTTP/2, absolute-form) or the `Host` header.
pub(crate) fn authority_of<B>(request: &Request<B>) -> &str {
    request
        .uri()
        .authority()
        .map(|authority| authority.as_str())
        .or_else(|| {
            request
                .headers()
                .get(http::header::HOST)
                .and_then(|host| host.to_str().ok())
        })
        .unwrap_or("")
}

/// Handles one downstream request; never fails (errors become local replies).
async fn handle(
    proxy: &HttpProxy,
    conn: &ConnInfo,
    mut request: Request<Incoming>,
) -> Response<log_guard::LoggedBody> {
    // A request without a body (a GET) needs no byte counter and no boxed body wrapper.
    let request_bytes =
        (!request.body().is_end_stream()).then(|| Arc::new(std::sync::atomic::AtomicU64::new(0)));
    let mut guard = LogGuard::new(
        empty_log(proxy.direction),
        Arc::clone(&proxy.observer),
        request_bytes.clone(),
    );
    if !request.headers().contains_key(&X_REQUEST_ID) {
        request.headers_mut().insert(X_REQUEST_ID, request_id());
    }
    {
        let details = proxy.observer.wants_details();
        let log = guard.log();
        log.method = method_name(request.method());
        log.protocol = match request.version() {
            http::Version::HTTP_2 => "HTTP/2",
            http::Version::HTTP_10 => "HTTP/1.0",
            _ => "HTTP/1.1",
        };
        if details {
            fill_details(log, &request);
        }
        log.downstream_peer = Some(conn.peer);
        log.source_principal = conn.source_principal.clone();
    }
    let request = request.map(|body| match request_bytes {
        Some(counter) => log_guard::count_request_body(body, counter),
        None => log_guard::empty_request_body(),
    });
    let response = match (proxy.store.snapshot(), &proxy.app) {
        (None, _) => local_reply(
            503,
            "no configuration",
            ResponseFlags::NO_ROUTE_FOUND,
            guard.log(),
        ),
        (Some(snapshot), Some(app)) => {
            inbound::forward(app, &snapshot, conn, request, guard.log()).await
        }
        (Some(snapshot), None) => route(&snapshot, conn, request, guard.log()).await,
    };
    guard.attach(response)
}

/// The method as the log keeps it: the standard methods (RFC 9110 §9) borrowed, others
/// copied.
fn method_name(method: &http::Method) -> std::borrow::Cow<'static, str> {
    const STANDARD: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    let name = method.as_str();
    match STANDARD.iter().find(|known| **known == name) {
        Some(known) => std::borrow::Cow::Borrowed(known),
        None => std::borrow::Cow::Owned(name.to_owned()),
    }
}

/// The log's descriptive fields (only the access log and debug logging read them): authority,
/// path and query, `x-request-id` and `traceparent`.
fn fill_details<B>(log: &mut RequestLog, request: &Request<B>) {
    log.authority = authority_of(request).to_owned();
    log.path = request
        .uri()
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |pq| pq.as_str().to_owned());
    log.request_id = request
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    log.traceparent = request
        .headers()
        .get(&TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
}

/// Routes one request through `snapshot`.
async fn route(
    snapshot: &Snapshot,
    conn: &ConnInfo,
    request: Request<ProxyBody>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    if let Some(target) = &conn.gateway {
        // Boxed: a sidecar's requests never take this branch, and its future (~0.8 KB) would
        // otherwise be part of every request's future, moved once per level per request.
        return Box::pin(crate::gateway::route_request(
            snapshot, conn, target, request, log,
        ))
        .await;
    }
    let Some(service) = snapshot.outbound_for(conn.destination) else {
        // REGISTRY_ONLY (the listener only serves HTTP here when the policy refuses passthrough).
        return local_reply(502, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    log.destination_service.clone_from(&service.hostname);
    let Some(table) = &service.http else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    route_in(table, conn, request, "http", log).await
}

/// Routes one request through `table`: the virtual host by authority, then the first route
/// whose match accepts the request, then its action. `scheme` is the downstream scheme
/// (`http`, or `https` behind a gateway's TLS termination) for scheme matches and redirects.
pub(crate) async fn route_in(
    table: &RouteTable,
    conn: &ConnInfo,
    request: Request<ProxyBody>,
    scheme: &str,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let authority = authority_of(&request);
    let Some(vhost) = table
        .domains
        .find(authority)
        .and_then(|index| table.virtual_hosts.get(index))
    else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    let view = RequestView {
        path: request.uri().path(),
        query: request.uri().query(),
        method: request.method().as_str(),
        authority,
        scheme,
        port: conn.destination.port(),
        headers: request.headers(),
    };
    let mut matched_prefix = None;
    let found = vhost.routes.iter().find(|route| {
        if route.matches.is_empty() {
            return true;
        }
        match route
            .matches
            .iter()
            .find(|candidate| candidate.matches(&view))
        {
            Some(hit) => {
                matched_prefix = hit.uri_prefix.as_deref();
                true
            }
            None => false,
        }
    });
    let Some(found) = found else {
        return local_reply(404, "", ResponseFlags::NO_ROUTE_FOUND, log);
    };
    log.route_name.clone_from(&found.name);
    match &found.action {
        CompiledAction::Redirect(redirect) => local::redirect(redirect, &request, log),
        CompiledAction::DirectResponse(direct) => local::direct_response(direct),
        CompiledAction::Forward(plan) => {
            let matched_prefix = matched_prefix.map(str::to_owned);
            forward::forward(plan, conn, request, matched_prefix.as_deref(), log).await
        }
    }
}

/// A random UUID v4 in its canonical text form (Envoy's `x-request-id` format) as a header
/// value; one allocation (the value's bytes). The digits go to fixed positions of the
/// 8-4-4-4-12 layout: no branch per byte.
fn request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    /// Where each byte's two hex digits start in the text.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut id = *b"00000000-0000-0000-0000-000000000000";
    for (byte, at) in bytes.iter().zip(AT) {
        id[at] = HEX[usize::from(byte >> 4)];
        id[at + 1] = HEX[usize::from(byte & 0x0f)];
    }
    // Only hex digits and dashes: always a valid header value.
    HeaderValue::from_bytes(&id).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_4_uuids_and_differ() {
        let first = request_id();
        let text = first.to_str().unwrap();
        let groups: Vec<&str> = text.split('-').collect();
        assert_eq!(
            groups.iter().map(|group| group.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12],
            "{text}"
        );
        assert!(
            text.bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert!(groups[2].starts_with('4'), "version nibble: {text}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "variant bits: {text}"
        );
        assert_ne!(first, request_id());
    }

    #[test]
    fn standard_methods_are_borrowed_and_others_copied() {
        for method in [http::Method::GET, http::Method::POST, http::Method::TRACE] {
            let name = method_name(&method);
            assert!(matches!(name, std::borrow::Cow::Borrowed(_)), "{method}");
            assert_eq!(name, method.as_str());
        }
        let purge = http::Method::from_bytes(b"PURGE").unwrap();
        let name = method_name(&purge);
        assert!(matches!(name, std::borrow::Cow::Owned(_)));
        assert_eq!(name, "PURGE");
    }
}
