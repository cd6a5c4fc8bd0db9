//! Forwarding a request upstream: fault injection, weighted cluster pick, header mutation and
//! rewrite, then tries with per-try timeout, retries with jittered exponential back-off and
//! the route timeout around all of it (Envoy's router filter semantics as Istio configures it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use rand::Rng;
use weft_proxy_config::RetryOn;

use super::ConnInfo;
use super::cors::CompiledCors;
use super::local::{full_body, local_reply};
use super::replay::{Replay, TeeBody};
use super::upgrade;
use crate::outlier::TryResult;
use crate::request_log::{RequestLog, ResponseFlags};
use crate::snapshot::{ClusterRuntime, CompiledRetry, ForwardPlan};
use crate::upstream::{BoxError, ProxyBody};
use tokio::sync::oneshot;

/// How long a mirror waits for the request body to finish streaming.
const MIRROR_BODY_WAIT: Duration = Duration::from_secs(60);

/// Largest request body buffered so it can be replayed on retry or mirrored (Envoy's default
/// per-request buffer limit is 1 MiB).
const RETRY_BUFFER_LIMIT: usize = 1024 * 1024;

/// gRPC's status in response headers (or trailers-only responses), which the `retryOn` gRPC
/// conditions read. Typed: a `&str` name is parsed again on every lookup.
const GRPC_STATUS: header::HeaderName = header::HeaderName::from_static("grpc-status");

/// The response to send downstream: the upstream's, or a local reply.
enum Routed {
    /// From the upstream (response header mutations apply).
    Upstream(Response<ProxyBody>),
    /// Produced by the proxy.
    Local(Response<ProxyBody>),
}

/// How one try ended.
enum TryOutcome {
    /// The upstream answered.
    Response(Response<Incoming>),
    /// The cluster has no endpoint to pick (`UH`).
    NoHealthyUpstream,
    /// The cluster cannot be used (its clients failed to build), or the request cannot be sent.
    Unusable,
    /// Connecting failed (`UF`).
    ConnectFailure,
    /// The connection broke before the response headers (`UC`).
    Reset,
    /// The per-try timeout fired (`UT`).
    Timeout,
}

impl TryOutcome {
    /// Whether `retry` retries this outcome (Envoy: `5xx` covers resets, connect failures and
    /// per-try timeouts; `gateway-error` covers per-try timeouts; `reset`, `connect-failure`
    /// as named; HTTP/2 refused streams surface as resets here).
    fn retriable(&self, retry: &CompiledRetry) -> bool {
        match self {
            Self::Response(response) => {
                retry.retries_status(response.status().as_u16())
                    || response
                        .headers()
                        .get(&GRPC_STATUS)
                        .and_then(|value| value.to_str().ok())
                        .and_then(|value| value.parse().ok())
                        .is_some_and(|code| retry.retries_grpc(code))
            }
            Self::ConnectFailure => retry.on(&[
                RetryOn::ConnectFailure,
                RetryOn::FiveXx,
                RetryOn::GatewayError,
                RetryOn::Reset,
            ]),
            Self::Reset => retry.on(&[RetryOn::Reset, RetryOn::FiveXx, RetryOn::RefusedStream]),
            Self::Timeout => retry.on(&[RetryOn::FiveXx, RetryOn::GatewayError, RetryOn::Reset]),
            Self::NoHealthyUpstream | Self::Unusable => false,
        }
    }
}

/// Forwards `request` by `plan`. `matched_prefix` is the `prefix` uri of the match block that
/// selected the route (for `rewrite.uri`).
pub async fn forward(
    plan: &ForwardPlan,
    conn: &ConnInfo,
    mut request: Request<ProxyBody>,
    matched_prefix: Option<&str>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let upgrade = upgrade::is_upgrade_request(request.headers());
    let downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let cors_origin = match &plan.cors {
        None => None,
        Some(cors) => match cors.allowed_origin(request.headers()) {
            Some(origin) if CompiledCors::is_preflight(request.method(), request.headers()) => {
                return cors.preflight_response(origin);
            }
            origin => origin.cloned(),
        },
    };
    if let Some(fault) = &plan.fault {
        if let Some(delay) = &fault.delay
            && hit(delay.percentage)
        {
            log.flags.insert(ResponseFlags::DELAY_INJECTED);
            tokio::time::sleep(Duration::from_millis(delay.fixed_delay_ms)).await;
        }
        if let Some(abort) = &fault.abort
            && hit(abort.percentage)
        {
            return local_reply(
                abort.http_status,
                "fault filter abort",
                ResponseFlags::FAULT_INJECTED,
                log,
            );
        }
    }
    let point = rand::rng().random_range(0..plan.total_weight);
    let Some(cluster) = plan.cluster_at(point) else {
        return local_reply(
            503,
            "no healthy upstream",
            ResponseFlags::NO_HEALTHY_UPSTREAM,
            log,
        );
    };
    log.upstream_cluster.clone_from(&cluster.name);
    if log.destination_service.is_empty() {
        // Gateway routes name no listener service: Istio's `destination_service` is then the
        // host of the chosen cluster (`outbound|<port>|<subset>|<host>`).
        log.destination_service = cluster_host(&cluster.name).into();
    }
    if cluster.black_hole {
        return local_reply(502, "", ResponseFlags::NO_ROUTE_FOUND, log);
    }
    let Some(_admitted) = cluster.breaker.request() else {
        return local_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: overflow",
            ResponseFlags::UPSTREAM_OVERFLOW,
            log,
        );
    };
    let (mut parts, body) = request.into_parts();
    prepare_request(plan, &mut parts, matched_prefix, upgrade);
    // A `consistentHash.httpCookie` with a ttl and a request without the cookie: every try
    // hashes on the generated value (see `send`), and the response sets the cookie.
    let generated_cookie =
        cluster
            .endpoints
            .load()
            .generated_cookie(&parts, conn.peer, conn.destination);

    // Upgrades are neither retried nor mirrored: the body is the start of a byte stream.
    let replayable = !upgrade && (plan.retry.is_some() || !plan.mirrors.is_empty());
    let routed = async {
        if !replayable {
            let outcome = try_once(
                cluster,
                conn,
                &mut parts,
                body,
                None,
                plan.retry.as_ref(),
                log,
            )
            .await;
            log.attempts = 1;
            return outcome;
        }
        let mirrors: Vec<&Arc<ClusterRuntime>> = plan
            .mirrors
            .iter()
            .filter(|(_, percentage)| hit(*percentage))
            .map(|(mirror, _)| mirror)
            .collect();
        if mirrors.is_empty() && body.is_end_stream() {
            // No body (a GET): every try sends the same empty body, nothing to copy.
            let replay = NextBody::Complete(Bytes::new());
            return retry_loop(plan, cluster, conn, &mut parts, body, replay, log).await;
        }
        let (tee, replay, mirror_bodies) = TeeBody::new(body, RETRY_BUFFER_LIMIT, mirrors.len());
        for (mirror, body) in mirrors.into_iter().zip(mirror_bodies) {
            mirror_request(Arc::clone(mirror), conn.clone(), &parts, body);
        }
        let replay = NextBody::Teed(replay);
        retry_loop(plan, cluster, conn, &mut parts, tee.boxed(), replay, log).await
    };
    let outcome = match plan.timeout {
        None => Some(routed.await),
        Some(timeout) => tokio::time::timeout(timeout, routed).await.ok(),
    };
    let Some(outcome) = outcome else {
        return local_reply(
            504,
            "upstream request timeout",
            ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
            log,
        );
    };
    let mut response = match outcome {
        Routed::Upstream(response) => response,
        Routed::Local(local) => return local,
    };
    let switching = response.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    if let (true, Some(downstream)) = (switching, downstream_upgrade) {
        upgrade::splice(downstream, hyper::upgrade::on(&mut response));
    }
    upgrade::strip_hop_by_hop(response.headers_mut(), switching);
    if let Some(generated) = generated_cookie {
        response
            .headers_mut()
            .append(header::SET_COOKIE, generated.set_cookie);
    }
    plan.response_headers.apply(response.headers_mut());
    if let (Some(cors), Some(origin)) = (&plan.cors, cors_origin) {
        cors.decorate(origin, response.headers_mut());
    }
    response
}

/// Where the body of a retry comes from.
enum NextBody {
    /// The whole body is known (empty requests): each try sends a copy.
    Complete(Bytes),
    /// The first try's body is teed; the receiver gets what the next try can send.
    Teed(oneshot::Receiver<Replay>),
}

/// Tries until a non-retriable outcome or the attempts run out. `Ok` carries the upstream
/// response (possibly a retriable status after the last try), or a local reply. Each try but
/// the last sends a copy of `parts`' headers; the last takes them.
async fn retry_loop(
    plan: &ForwardPlan,
    cluster: &ClusterRuntime,
    conn: &ConnInfo,
    parts: &mut Parts,
    first_body: ProxyBody,
    next: NextBody,
    log: &mut RequestLog,
) -> Routed {
    let retries = plan.retry.as_ref().map_or(0, |retry| retry.attempts);
    let mut previous = None;
    let mut _retry_permit = None;
    let mut body = Some(first_body);
    let (mut replay, mut complete) = match next {
        NextBody::Complete(bytes) => (None, Some(bytes)),
        NextBody::Teed(receiver) => (Some(receiver), None),
    };
    for attempt in 0..=retries {
        log.attempts = attempt + 1;
        let Some(this_body) = body.take() else {
            break;
        };
        let last = attempt == retries;
        let headers = if last { Headers::Take } else { Headers::Copy };
        let (outcome, upstream) = send(
            cluster,
            conn,
            parts,
            headers,
            this_body,
            previous,
            plan.retry.as_ref(),
        )
        .await;
        log.upstream_host = upstream.or(log.upstream_host);
        previous = upstream;
        let retriable = plan
            .retry
            .as_ref()
            .is_some_and(|retry| outcome.retriable(retry));
        if !retriable || last {
            if retriable && retries > 0 {
                log.flags
                    .insert(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
            }
            return finish(outcome, log);
        }
        // The next try needs the body again: the complete copy, or what the last try left.
        body = match complete.as_ref() {
            Some(bytes) => Some(full_body(bytes.clone())),
            None => match replay.take().map(|mut receiver| receiver.try_recv()) {
                Some(Ok(Replay::Complete(bytes))) => {
                    let next = full_body(bytes.clone());
                    complete = Some(bytes);
                    Some(next)
                }
                Some(Ok(Replay::Resume(rest))) => {
                    let (tee, next_replay, _) = TeeBody::new(rest, RETRY_BUFFER_LIMIT, 0);
                    replay = Some(next_replay);
                    Some(tee.boxed())
                }
                _ => None,
            },
        };
        if body.is_none() {
            // Not replayable (too large, or still streaming): the outcome stands.
            return finish(outcome, log);
        }
        // Held through the next try; the previous one is released first (Envoy's
        // `resetRetry` before its `canCreate`), so `maxRetries: 1` still lets one request
        // retry again. Over `maxRetries` the current outcome stands, flagged `UO` (Envoy's
        // retry overflow).
        drop(_retry_permit.take());
        _retry_permit = match cluster.breaker.retry() {
            Some(permit) => Some(permit),
            None => {
                log.flags.insert(ResponseFlags::UPSTREAM_OVERFLOW);
                return finish(outcome, log);
            }
        };
        let base = plan
            .retry
            .as_ref()
            .map_or(Duration::from_millis(25), |retry| retry.backoff_base);
        tokio::time::sleep(backoff(base, attempt)).await;
    }
    Routed::Local(local_reply(
        503,
        "no healthy upstream",
        ResponseFlags::NO_HEALTHY_UPSTREAM,
        log,
    ))
}

/// One try without replay (streamed body); it takes `parts`' headers.
async fn try_once(
    cluster: &ClusterRuntime,
    conn: &ConnInfo,
    parts: &mut Parts,
    body: ProxyBody,
    exclude: Option<SocketAddr>,
    retry: Option<&CompiledRetry>,
    log: &mut RequestLog,
) -> Routed {
    let (outcome, upstream) = send(cluster, conn, parts, Headers::Take, body, exclude, retry).await;
    log.upstream_host = upstream;
    finish(outcome, log)
}

/// Turns the last outcome into the downstream response, with Envoy's local-reply bodies.
fn finish(outcome: TryOutcome, log: &mut RequestLog) -> Routed {
    match outcome {
        TryOutcome::Response(response) => {
            Routed::Upstream(response.map(|body| body.map_err(BoxError::from).boxed()))
        }
        TryOutcome::NoHealthyUpstream => Routed::Local(local_reply(
            503,
            "no healthy upstream",
            ResponseFlags::NO_HEALTHY_UPSTREAM,
            log,
        )),
        TryOutcome::Unusable | TryOutcome::ConnectFailure => Routed::Local(local_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
            ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
            log,
        )),
        TryOutcome::Reset => Routed::Local(local_reply(
            503,
            "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
            ResponseFlags::UPSTREAM_CONNECTION_TERMINATION,
            log,
        )),
        TryOutcome::Timeout => Routed::Local(local_reply(
            504,
            "upstream request timeout",
            ResponseFlags::UPSTREAM_REQUEST_TIMEOUT,
            log,
        )),
    }
}

/// Whether a try copies the request's headers (another try may follow) or takes them.
#[derive(Clone, Copy)]
enum Headers {
    /// Clone them: `parts` is used again.
    Copy,
    /// Move them out of `parts` (left empty): no try follows.
    Take,
}

/// Sends one try to an endpoint of `cluster` (not `exclude` if another exists), within the
/// per-try timeout, with `parts`' headers copied or taken (`headers`). Returns the outcome and
/// the endpoint used.
async fn send(
    cluster: &ClusterRuntime,
    conn: &ConnInfo,
    parts: &mut Parts,
    headers: Headers,
    body: ProxyBody,
    exclude: Option<SocketAddr>,
    retry: Option<&CompiledRetry>,
) -> (TryOutcome, Option<SocketAddr>) {
    let Ok(clients) = &cluster.clients else {
        return (TryOutcome::Unusable, None);
    };
    let mut picked = None;
    let (address, has_sidecar) = if cluster.passthrough {
        if !conn.passthrough_allowed {
            return (TryOutcome::Unusable, None);
        }
        (conn.destination, false)
    } else {
        let endpoints = cluster.endpoints.load();
        let hash = endpoints
            .request_hash(parts, Some(conn.peer.ip()))
            .or_else(|| {
                endpoints
                    .generated_cookie(parts, conn.peer, conn.destination)
                    .map(|cookie| cookie.hash)
            });
        let Some(endpoint) = endpoints.pick_hashed(exclude, hash) else {
            return (TryOutcome::NoHealthyUpstream, None);
        };
        let target = (endpoint.endpoint().address, endpoint.endpoint().has_sidecar);
        picked = Some(endpoint);
        target
    };
    let client = clients.http_for(has_sidecar);
    let authority = match &picked {
        Some(picked) => Some(picked.endpoint().authority.clone()),
        None => Authority::try_from(address.to_string()).ok(),
    };
    let Some(request) = authority
        .and_then(|authority| upstream_request(parts, headers, authority, body, clients.http2()))
    else {
        return (TryOutcome::Unusable, Some(address));
    };
    let future = client.request(address, request);
    let result = match retry.and_then(|retry| retry.per_try_timeout) {
        None => Some(future.await),
        Some(per_try) => tokio::time::timeout(per_try, future).await.ok(),
    };
    let outcome = match result {
        None => TryOutcome::Timeout,
        Some(Ok(response)) => TryOutcome::Response(response),
        Some(Err(error)) if error.is_connect() => TryOutcome::ConnectFailure,
        Some(Err(error)) => {
            tracing::debug!(%error, upstream = %address, "upstream request failed");
            TryOutcome::Reset
        }
    };
    if let Some(picked) = &picked {
        picked.report(match &outcome {
            TryOutcome::Response(response) => TryResult::from_status(response.status().as_u16()),
            _ => TryResult::LOCAL_ERROR,
        });
    }
    (outcome, Some(address))
}

/// The request for one try: the protocol version of the upstream client, the prepared headers
/// (copied or taken from `parts`, as `headers` says) and the request target: absolute URI to
/// the endpoint for HTTP/2 (its `:scheme` and `:authority`), origin form (`/path?query`) for
/// HTTP/1.1.
fn upstream_request(
    parts: &mut Parts,
    headers: Headers,
    authority: Authority,
    body: ProxyBody,
    http2: bool,
) -> Option<Request<ProxyBody>> {
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let uri = if http2 {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(http::uri::Scheme::HTTP);
        uri.authority = Some(authority);
        uri.path_and_query = Some(path_and_query);
        Uri::from_parts(uri).ok()?
    } else {
        Uri::from(path_and_query)
    };
    let mut request = Request::new(body);
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = uri;
    *request.version_mut() = if http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    *request.headers_mut() = match headers {
        Headers::Copy => parts.headers.clone(),
        Headers::Take => std::mem::take(&mut parts.headers),
    };
    Some(request)
}

/// Applies the route's request-side changes once, before any try: hop-by-hop removal (but
/// not the upgrade headers of an upgrade request), a `Host`
/// header for HTTP/1.1 upstreams, header mutations, URI and authority rewrite.
fn prepare_request(
    plan: &ForwardPlan,
    parts: &mut Parts,
    matched_prefix: Option<&str>,
    upgrade: bool,
) {
    upgrade::strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(value) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, value);
    }
    plan.request_headers.apply(&mut parts.headers);
    let Some(rewrite) = &plan.rewrite else {
        return;
    };
    if let Some(authority) = &rewrite.authority {
        parts.headers.insert(header::HOST, authority.clone());
    }
    let path = parts.uri.path();
    let new_path = if let Some(replacement) = &rewrite.uri {
        match matched_prefix.and_then(|prefix| path.strip_prefix(prefix)) {
            Some(rest) => Some(format!("{replacement}{rest}")),
            None => Some(replacement.clone()),
        }
    } else {
        rewrite.uri_regex.as_ref().map(|(regex, substitution)| {
            regex.replace_all(path, substitution.as_str()).into_owned()
        })
    };
    if let Some(mut new_path) = new_path {
        if !new_path.starts_with('/') {
            new_path.insert(0, '/');
        }
        if let Some(query) = parts.uri.query() {
            new_path.push('?');
            new_path.push_str(query);
        }
        if let Ok(uri) = Uri::builder().path_and_query(new_path).build() {
            parts.uri = uri;
        }
    }
}

/// Sends a copy of the request to `cluster` in the background (Istio `mirror`): the `Host`
/// gets `-shadow` appended, as Envoy does, and the response is discarded.
fn mirror_request(
    cluster: Arc<ClusterRuntime>,
    conn: ConnInfo,
    parts: &Parts,
    body: oneshot::Receiver<Bytes>,
) {
    let mut shadow = Request::new(());
    *shadow.method_mut() = parts.method.clone();
    *shadow.uri_mut() = parts.uri.clone();
    *shadow.headers_mut() = parts.headers.clone();
    if let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
    {
        let (name, port) = match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (name, Some(port)),
            _ => (host, None),
        };
        let shadowed = match port {
            Some(port) => format!("{name}-shadow:{port}"),
            None => format!("{name}-shadow"),
        };
        if let Ok(value) = HeaderValue::from_str(&shadowed) {
            shadow.headers_mut().insert(header::HOST, value);
        }
    }
    let (mut shadow_parts, ()) = shadow.into_parts();
    tokio::spawn(async move {
        // The copy arrives when the request body has streamed through (never, if it is too
        // large to keep); give up after the longest time a request is expected to take.
        let Ok(Ok(bytes)) = tokio::time::timeout(MIRROR_BODY_WAIT, body).await else {
            return;
        };
        let (outcome, upstream) = send(
            &cluster,
            &conn,
            &mut shadow_parts,
            Headers::Take,
            full_body(bytes),
            None,
            None,
        )
        .await;
        if let TryOutcome::Response(response) = outcome {
            // Drain so the connection returns to the pool.
            let _ = response.into_body().collect().await;
        } else {
            tracing::debug!(cluster = %cluster.name, ?upstream, "mirror request failed");
        }
    });
}

/// Whether a `percentage` (0–100) chance hits.
fn hit(percentage: f64) -> bool {
    percentage >= 100.0 || (percentage > 0.0 && rand::rng().random::<f64>() * 100.0 < percentage)
}

/// Envoy's fully jittered exponential back-off: uniform in `[0, min(base * 2^retry, 10 * base))`.
fn backoff(base: Duration, retry: u32) -> Duration {
    let base_ms = u64::try_from(base.as_millis()).unwrap_or(u64::MAX).max(1);
    let ceiling = base_ms
        .saturating_mul(1u64 << retry.min(20))
        .min(base_ms.saturating_mul(10));
    Duration::from_millis(rand::rng().random_range(0..ceiling.max(1)))
}

/// The service host of an Istio cluster name (`outbound|9080|v1|reviews.default.svc...` →
/// `reviews.default.svc...`); empty for names that are not Istio cluster names.
pub(crate) fn cluster_host(name: &str) -> String {
    name.parse::<weft_proxy_config::ClusterName>()
        .map(|parsed| parsed.hostname)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_under_the_exponential_ceiling() {
        let base = Duration::from_millis(25);
        for retry in 0..6 {
            let ceiling = (25u64 << retry).min(250);
            for _ in 0..100 {
                assert!(backoff(base, retry) < Duration::from_millis(ceiling));
            }
        }
    }

    #[test]
    fn hit_respects_the_bounds() {
        assert!((0..1000).all(|_| hit(100.0)));
        assert!((0..1000).all(|_| !hit(0.0)));
    }
}
