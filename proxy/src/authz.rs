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
    HeaderEdit, JwtRequest, RequestAttributes, TransportProtocol, authenticate, authorize,
    header_edits, remote_ip_from_forwarded_for,
};
use weft_proxy_config::InboundConfig;

/// A request refused by policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status to answer (401 or 403).
    pub status: u16,
    /// The body to answer, Envoy's text.
    pub body: &'static str,
    /// The policy (`<namespace>/<name>`) that decided, when one did.
    pub policy: Option<String>,
}

/// The peer identity as AuthorizationPolicy `principals` spell it (no `spiffe://`).
fn principal(peer_spiffe_id: Option<&str>) -> Option<&str> {
    peer_spiffe_id.map(|id| id.strip_prefix("spiffe://").unwrap_or(id))
}

/// Checks one inbound HTTP request arriving from `peer` at `destination`, authenticated as
/// `peer_spiffe_id` when over mTLS. Applies the header edits a verified JWT calls for (removing
/// the token unless `forwardOriginalToken`) to `parts`. Returns the refusal to answer instead
/// of forwarding, if any. Costs nothing when no policy or JWT rule applies to the workload.
pub fn check_http(
    inbound: &InboundConfig,
    peer: SocketAddr,
    destination: SocketAddr,
    peer_spiffe_id: Option<&str>,
    parts: &mut Parts,
) -> Result<(), Refusal> {
    if inbound.jwt_rules.is_empty() && inbound.authorization_policies.is_empty() {
        return Ok(());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let edits = {
        let headers: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let query = parts.uri.query();
        let authenticated = if inbound.jwt_rules.is_empty() {
            None
        } else {
            match authenticate(
                &inbound.jwt_rules,
                &JwtRequest {
                    headers: &headers,
                    query,
                },
                now,
            ) {
                Ok(found) => found,
                Err(error) => {
                    tracing::debug!(%error, %peer, "JWT rejected");
                    return Err(Refusal {
                        status: HTTP_UNAUTHENTICATED_STATUS,
                        body: HTTP_UNAUTHENTICATED_BODY,
                        policy: None,
                    });
                }
            }
        };
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
            sni: None,
            host,
            method: Some(parts.method.as_str()),
            path: parts.uri.path_and_query().map(|p| p.as_str()),
            headers: &headers,
            jwt: authenticated.as_ref().map(|a| &a.identity),
        };
        let decision = authorize(&inbound.authorization_policies, &attributes);
        if !decision.allowed {
            return Err(Refusal {
                status: HTTP_DENIED_STATUS,
                body: HTTP_DENIED_BODY,
                policy: decision.policy.map(str::to_string),
            });
        }
        authenticated
            .as_ref()
            .map(|a| header_edits(&inbound.jwt_rules, a, &[]))
            .unwrap_or_default()
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
    Ok(())
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

/// Checks one inbound TCP connection (no HTTP attributes: rules that need them follow istiod's
/// handling, see `weft_policy::authorize`). Returns the deciding policy when the connection must
/// be closed.
pub fn check_tcp(
    inbound: &InboundConfig,
    peer: SocketAddr,
    destination: SocketAddr,
    peer_spiffe_id: Option<&str>,
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
        ..RequestAttributes::default()
    };
    let decision = authorize(&inbound.authorization_policies, &attributes);
    if decision.allowed {
        Ok(())
    } else {
        Err(decision.policy.map(str::to_string))
    }
}
