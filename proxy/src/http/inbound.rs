//! Inbound HTTP: requests that passed the inbound listener's mTLS check go to the local
//! application over pooled connections, one log record per request with the peer's identity
//! (Istio's `inbound|<port>||` cluster).

use std::time::Duration;

use http::uri::PathAndQuery;
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;

use super::ConnInfo;
use super::local::local_reply;
use super::upgrade;
use crate::request_log::{RequestLog, ResponseFlags};
use crate::snapshot::Snapshot;
use crate::upstream::{BoxError, Connector, HttpClient, Pool, PoolSettings, ProxyBody};

/// Pooled plaintext clients to the application: HTTP/1.1 and HTTP/2 (for `HTTP2`/`GRPC`
/// ports).
pub struct AppClients {
    http1: HttpClient,
    http2: HttpClient,
}

impl AppClients {
    /// Clients connecting within `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        let build = |http2: bool| {
            let settings = PoolSettings {
                http2,
                idle_timeout: Some(Duration::from_secs(60)),
                ..PoolSettings::default()
            };
            // Bound to 127.0.0.6 so that the capture rules do not send it back to us.
            Pool::new(
                Connector::plain(connect_timeout)
                    .with_source(crate::upstream::INBOUND_PASSTHROUGH_SOURCE.into()),
                settings,
            )
        };
        Self {
            http1: build(false),
            http2: build(true),
        }
    }
}

/// Istio's sidecar default (`forwardClientCertDetails: SANITIZE_SET`): a client-supplied
/// `x-forwarded-client-cert` is dropped; with mTLS the proxy sets
/// `By=<own SPIFFE ID>;Hash=<peer cert SHA-256>;Subject="";URI=<peer SPIFFE ID>`.
fn set_forwarded_client_cert(headers: &mut http::HeaderMap, snapshot: &Snapshot, conn: &ConnInfo) {
    headers.remove(&X_FORWARDED_CLIENT_CERT);
    let Some(peer) = &conn.source_principal else {
        return;
    };
    let node = &snapshot.config.node;
    let mut value = String::with_capacity(160);
    if !node.service_account.is_empty() {
        // `Node::spiffe_id`, written in place.
        value.push_str("By=spiffe://");
        value.push_str(&node.trust_domain);
        value.push_str("/ns/");
        value.push_str(&node.namespace);
        value.push_str("/sa/");
        value.push_str(&node.service_account);
        value.push(';');
    }
    if let Some(hash) = &conn.peer_certificate_hash {
        value.push_str("Hash=");
        value.push_str(hash);
        value.push(';');
    }
    value.push_str("Subject=\"\";URI=");
    value.push_str(peer);
    if let Ok(value) = http::HeaderValue::from_str(&value) {
        headers.insert(X_FORWARDED_CLIENT_CERT, value);
    }
}

/// The XFCC header name, typed (a `&str` name is parsed again on every use).
const X_FORWARDED_CLIENT_CERT: http::HeaderName =
    http::HeaderName::from_static("x-forwarded-client-cert");

/// Forwards `request` to the application at `conn.destination` (the original destination)
/// mapped by [`weft_proxy_config::InboundConfig::forward_address`] (a Sidecar
/// `defaultEndpoint`); over the port's connection pool limits, answers 503 `UO` at once.
pub async fn forward(
    app: &AppClients,
    snapshot: &Snapshot,
    conn: &ConnInfo,
    mut request: Request<ProxyBody>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let upgrade = upgrade::is_upgrade_request(request.headers());
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let port = conn.destination.port();
    let target = snapshot.config.inbound.forward_address(conn.destination);
    log.upstream_cluster = crate::request_log::inbound_cluster_name(port);
    log.upstream_host = Some(target);
    log.attempts = 1;
    let http2 = snapshot.config.inbound.port(port).is_some_and(|entry| {
        matches!(
            entry.protocol,
            weft_proxy_config::Protocol::Http2 | weft_proxy_config::Protocol::Grpc
        )
    });
    let (mut parts, body) = request.into_parts();
    // RequestAuthentication, then AuthorizationPolicy, before anything reaches the app.
    match crate::authz::check_http(
        &snapshot.config.inbound,
        conn.peer,
        conn.destination,
        conn.source_principal.as_deref(),
        conn.sni.as_deref(),
        &mut parts,
    ) {
        Ok(audit_policy) => log.audit_policy = audit_policy,
        Err(refusal) => {
            tracing::debug!(status = refusal.status, policy = ?refusal.policy, "inbound request refused by policy");
            log.audit_policy = refusal.audit_policy;
            return local_reply(refusal.status, refusal.body, ResponseFlags::empty(), log);
        }
    }
    let admitted = snapshot
        .inbound_breaker(port)
        .map(|breaker| breaker.request());
    if matches!(admitted, Some(None)) {
        let overflow =
            "upstream connect error or disconnect/reset before headers. reset reason: overflow";
        return local_reply(503, overflow, ResponseFlags::UPSTREAM_OVERFLOW, log);
    }
    upgrade::strip_hop_by_hop(&mut parts.headers, upgrade);
    set_forwarded_client_cert(&mut parts.headers, snapshot, conn);
    if !parts.headers.contains_key(http::header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = http::HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(http::header::HOST, value);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let http2 = http2 && !upgrade;
    if http2 || parts.method == http::Method::CONNECT {
        // HTTP/2 needs `:scheme` and `:authority`: the absolute URI to the app (and
        // `CONNECT` keeps it, as the pool leaves it).
        let Ok(uri) = Uri::builder()
            .scheme("http")
            .authority(target.to_string())
            .path_and_query(path)
            .build()
        else {
            return local_reply(400, "bad request path", ResponseFlags::empty(), log);
        };
        parts.uri = uri;
    } else {
        // HTTP/1.1 sends the origin form (`/path?query`, RFC 9112 §3.2.1) and keeps `Host`;
        // the path's bytes are shared, not copied.
        parts.uri = Uri::from(path);
    }
    parts.version = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    let request = Request::from_parts(parts, body);
    let client = if http2 { &app.http2 } else { &app.http1 };
    match client.request(target, request).await {
        Ok(response) => {
            let mut response = response.map(|body| body.map_err(BoxError::from).boxed());
            let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if let (true, Some(downstream)) = (switching, downstream_upgrade) {
                upgrade::splice(downstream, hyper::upgrade::on(&mut response));
            }
            upgrade::strip_hop_by_hop(response.headers_mut(), switching);
            response
        }
        Err(error) if error.is_connect() => local_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            log,
        ),
        Err(error) => {
            tracing::debug!(%error, app = %target, "inbound request to the app failed");
            local_reply(
                503,
                "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
                ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
                log,
            )
        }
    }
}
