//! Responses the proxy produces itself: errors with Envoy's bodies, redirects and direct
//! responses.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use weft_proxy_config::{DirectResponseAction, RedirectAction};

use crate::request_log::{RequestLog, ResponseFlags};
use crate::upstream::ProxyBody;

/// A body from static or owned bytes.
pub fn full_body(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A local reply: `status` with a `text/plain` `body` (Envoy's local-reply bodies, e.g.
/// `no healthy upstream`), recording `flags` in `log`. An invalid status becomes 500.
pub fn local_reply(
    status: u16,
    body: &'static str,
    flags: ResponseFlags,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    log.flags.insert(flags);
    let mut response = Response::new(full_body(body));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if !body.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    }
    response
}

/// Istio `HTTPRedirect`: `Location` built from the request with the redirect's parts replaced.
pub fn redirect<B>(
    redirect: &RedirectAction,
    request: &Request<B>,
    log: &mut RequestLog,
) -> Response<ProxyBody> {
    let authority = super::authority_of(request);
    let (host, port) = split_host_port(authority);
    let host = redirect.authority.as_deref().unwrap_or(host);
    let port = redirect
        .port
        .map(|port| port.to_string())
        .or(port.map(str::to_owned));
    let scheme = redirect.scheme.as_deref().unwrap_or("http");
    let path = match &redirect.uri {
        Some(uri) => uri.as_str(),
        None => request
            .uri()
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str()),
    };
    let location = match port {
        Some(port) => format!("{scheme}://{host}:{port}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut response = local_reply(redirect.redirect_code, "", ResponseFlags::empty(), log);
    if let Ok(value) = http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Istio `HTTPDirectResponse`.
pub fn direct_response(direct: &DirectResponseAction) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(direct.body.clone().unwrap_or_default()));
    *response.status_mut() =
        StatusCode::from_u16(direct.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if direct.body.is_some() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    }
    response
}

/// Splits `host[:port]` (IPv6 literals in brackets).
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((host, port))
            if !port.is_empty()
                && port.bytes().all(|byte| byte.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            (host, Some(port))
        }
        _ => (authority, None),
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn host_port_split_handles_ipv6() {
        assert_eq!(split_host_port("a.b:80"), ("a.b", Some("80")));
        assert_eq!(split_host_port("a.b"), ("a.b", None));
        assert_eq!(split_host_port("[fd00::1]:80"), ("[fd00::1]", Some("80")));
        assert_eq!(split_host_port("[fd00::1]"), ("[fd00::1]", None));
    }
}
