//! Inbound policy on the request path, as Envoy's filters do it for Istio: RequestAuthentication
//! first (`jwt_authn`: a present but invalid token is answered 401), then AuthorizationPolicy
//! (the RBAC filter: CUSTOM, DENY, ALLOW, AUDIT; a denial is answered 403 `RBAC: access denied`
//! for HTTP, and the connection is closed for TCP). The evaluation is `weft-policy`'s; this module
//! only gathers the request's attributes and applies the verdict.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use weft_policy::{
    HTTP_DENIED_BODY, HTTP_DENIED_STATUS, HTTP_UNAUTHENTICATED_BODY, HTTP_UNAUTHENTICATED_STATUS,
    HeaderEdit, JwtIdentity, JwtRequest, RequestAttributes, TransportProtocol, authenticate,
    authorize, header_edits, remote_ip_from_forwarded_for, sanitized_headers,
};
use weft_proxy_config::{InboundConfig, JwtRule};

/// A request refused by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status to answer (401 or 403).
    pub status: u16,
    /// The body to answer, Envoy's text.
    pub body: &'static str,
    /// The policy (`<namespace>/<name>`) that decided, when one did.
    pub policy: Option<String>,
    /// The AUDIT policy the request matched, if any (recorded, never deciding).
    pub audit_policy: Option<String>,
}

/// The peer identity as AuthorizationPolicy `principals` spell it (no `spiffe://`).
fn principal(peer_spiffe_id: Option<&str>) -> Option<&str> {
    peer_spiffe_id.map(|id| id.strip_prefix("spiffe://").unwrap_or(id))
}

/// Checks one inbound HTTP request arriving from `peer` at `destination`, authenticated as
/// `peer_spiffe_id` when over mTLS (whose ClientHello sent `sni`, Istio's `connection.sni`),
/// in Envoy's filter order as Istio installs it:
/// 1. `jwt_authn` (RequestAuthentication): the headers a verified token may write
///    (`outputPayloadToHeader`, `outputClaimToHeaders`) are removed from every request, so a
///    client cannot spoof them; the tokens are checked (`weft_policy::authenticate`), and a
///    verified token's edits are applied to `parts` (the token removed unless
///    `forwardOriginalToken`, the payload and claim headers written);
/// 2. RBAC (AuthorizationPolicy) on the request as `jwt_authn` left it, with the token's
///    identity.
///
/// Returns the AUDIT policy (`<namespace>/<name>`) the request matched, if any, for the access
/// log; or the refusal to answer instead of forwarding: 401 for a present but invalid token,
/// 403 for a denial. Costs nothing when no policy or JWT rule applies to the workload.
pub fn check_http(
    inbound: &InboundConfig,
    peer: SocketAddr,
    destination: SocketAddr,
    peer_spiffe_id: Option<&str>,
    sni: Option<&str>,
    parts: &mut Parts,
) -> Result<Option<String>, Refusal> {
    if inbound.jwt_rules.is_empty() && inbound.authorization_policies.is_empty() {
        return Ok(None);
    }
    let identity = if inbound.jwt_rules.is_empty() {
        None
    } else {
        authenticate_request(&inbound.jwt_rules, peer, parts)?
    };
    if inbound.authorization_policies.is_empty() {
        return Ok(None);
    }
    let headers = header_pairs(&parts.headers);
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()));
    let forwarded_for = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    let attributes = RequestAttributes {
        protocol: TransportProtocol::Http,
        source_principal: principal(peer_spiffe_id),
        source_ip: Some(peer.ip()),
        remote_ip: Some(remote_ip_from_forwarded_for(forwarded_for, 0, peer.ip())),
        destination_ip: Some(destination.ip()),
        destination_port: destination.port(),
        sni,
        host,
        method: Some(parts.method.as_str()),
        path: parts.uri.path_and_query().map(|p| p.as_str()),
        headers: &headers,
        jwt: identity.as_ref(),
    };
    let decision = authorize(&inbound.authorization_policies, &attributes);
    let audit_policy = decision.audit.map(str::to_string);
    if decision.allowed {
        Ok(audit_policy)
    } else {
        Err(Refusal {
            status: HTTP_DENIED_STATUS,
            body: HTTP_DENIED_BODY,
            policy: decision.policy.map(str::to_string),
            audit_policy,
        })
    }
}

/// The request's headers as `(name, value)` pairs (values that are not visible ASCII are left
/// out: no rule can match them).
fn header_pairs(headers: &http::HeaderMap) -> Vec<(&str, &str)> {
    headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
        .collect()
}

/// Step 1 of [`check_http`]: sanitizes the output headers, verifies the tokens and applies
/// the edits. Returns the verified identity (`None` without a token) or the 401 refusal.
fn authenticate_request(
    rules: &[JwtRule],
    peer: SocketAddr,
    parts: &mut Parts,
) -> Result<Option<JwtIdentity>, Refusal> {
    for name in sanitized_headers(rules) {
        parts.headers.remove(name);
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (identity, edits) = {
        let headers = header_pairs(&parts.headers);
        let request = JwtRequest {
            headers: &headers,
            query: parts.uri.query(),
        };
        match authenticate(rules, &request, now) {
            Ok(None) => return Ok(None),
            Ok(Some(authenticated)) => {
                let edits = header_edits(rules, &authenticated);
                (authenticated.identity, edits)
            }
            Err(error) => {
                tracing::debug!(%error, %peer, "JWT rejected");
                return Err(Refusal {
                    status: HTTP_UNAUTHENTICATED_STATUS,
                    body: HTTP_UNAUTHENTICATED_BODY,
                    policy: None,
                    audit_policy: None,
                });
            }
        }
    };
    for edit in edits {
        match edit {
            HeaderEdit::Set { name, value } => {
                if let (Ok(name), Ok(value)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    http::HeaderValue::from_str(&value),
                ) {
                    parts.headers.insert(name, value);
                }
            }
            HeaderEdit::Remove(name) => {
                parts.headers.remove(name.as_str());
            }
            HeaderEdit::RemoveQueryParam(name) => remove_query_param(parts, &name),
        }
    }
    Ok(Some(identity))
}

fn remove_query_param(parts: &mut Parts, name: &str) {
    let Some(query) = parts.uri.query() else {
        return;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    let path = parts.uri.path();
    let target = if kept.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut builder = http::Uri::builder();
    if let Some(scheme) = parts.uri.scheme() {
        builder = builder.scheme(scheme.clone());
    }
    if let Some(authority) = parts.uri.authority() {
        builder = builder.authority(authority.clone());
    }
    if let Ok(uri) = builder.path_and_query(target).build() {
        parts.uri = uri;
    }
}

/// Checks one inbound TCP connection from `peer` to `destination` (`peer_spiffe_id` and the
/// ClientHello's `sni` when over mTLS; no HTTP attributes: rules that need them follow
/// istiod's handling, see `weft_policy::authorize`). Returns the deciding policy when the
/// connection must be closed.
pub fn check_tcp(
    inbound: &InboundConfig,
    peer: SocketAddr,
    destination: SocketAddr,
    peer_spiffe_id: Option<&str>,
    sni: Option<&str>,
) -> Result<(), Option<String>> {
    if inbound.authorization_policies.is_empty() {
        return Ok(());
    }
    let attributes = RequestAttributes {
        protocol: TransportProtocol::Tcp,
        source_principal: principal(peer_spiffe_id),
        source_ip: Some(peer.ip()),
        remote_ip: None,
        destination_ip: Some(destination.ip()),
        destination_port: destination.port(),
        sni,
        ..RequestAttributes::default()
    };
    let decision = authorize(&inbound.authorization_policies, &attributes);
    if decision.allowed {
        Ok(())
    } else {
        Err(decision.policy.map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound() -> InboundConfig {
        InboundConfig {
            jwt_rules: vec![JwtRule {
                issuer: "https://issuer.test".into(),
                jwks: Some(r#"{"keys":[]}"#.into()),
                from_cookies: vec!["session".into()],
                output_payload_to_header: Some("x-jwt-payload".into()),
                output_claim_to_headers: vec![("x-jwt-sub".into(), "sub".into())],
                ..JwtRule::default()
            }],
            ..InboundConfig::default()
        }
    }

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get("/reviews/0");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    fn addresses() -> (SocketAddr, SocketAddr) {
        (
            "198.18.0.10:40000".parse().unwrap(),
            "198.18.0.20:9080".parse().unwrap(),
        )
    }

    #[test]
    fn spoofed_output_headers_are_removed_from_requests_without_a_token() {
        let (peer, destination) = addresses();
        let mut request = parts(&[
            ("x-jwt-sub", "admin"),
            ("x-jwt-payload", "e30"),
            ("x-other", "kept"),
        ]);
        assert_eq!(
            check_http(&inbound(), peer, destination, None, None, &mut request),
            Ok(None)
        );
        assert!(request.headers.get("x-jwt-sub").is_none());
        assert!(request.headers.get("x-jwt-payload").is_none());
        assert_eq!(request.headers["x-other"], "kept");
    }

    #[test]
    fn an_invalid_token_in_the_cookie_is_refused_with_401() {
        let (peer, destination) = addresses();
        let mut request = parts(&[("cookie", "theme=dark; session=not.a.token")]);
        let refusal =
            check_http(&inbound(), peer, destination, None, None, &mut request).unwrap_err();
        assert_eq!(refusal.status, HTTP_UNAUTHENTICATED_STATUS);
        assert_eq!(refusal.body, HTTP_UNAUTHENTICATED_BODY);
        // The rule reads only the cookie: a bad bearer token is no token to it.
        let mut request = parts(&[("authorization", "Bearer not.a.token")]);
        assert_eq!(
            check_http(&inbound(), peer, destination, None, None, &mut request),
            Ok(None)
        );
    }
}
