//! Inbound: traffic arriving at the workload through the proxy's inbound listener (Istio's
//! `virtualInbound` on 15006).

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::cluster::ConnectionPoolSettings;
use crate::matcher::Cidr;
use crate::outbound::Protocol;

/// How the proxy handles traffic to its workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// The mTLS mode for workload ports not listed in `ports` (the workload-level
    /// PeerAuthentication `mtls.mode`, resolved against namespace and mesh policies; Istio's
    /// default is `PERMISSIVE`).
    #[serde(default)]
    pub default_mtls_mode: MtlsMode,
    /// Where inbound connections are forwarded.
    #[serde(default)]
    pub upstream: InboundUpstream,
    /// The workload's known ports: from the Services selecting it and its container ports, or,
    /// when the Sidecar that applies has `ingress` listeners, exactly those listeners' ports
    /// (Istio: ingress listeners replace the ports derived from Services). Traffic to any other
    /// port is passed through to its original destination.
    #[serde(default)]
    pub ports: Vec<InboundPort>,
    /// AuthorizationPolicies that apply to this workload (evaluated CUSTOM, then DENY, then
    /// ALLOW, as Istio does). Not enforced yet by the proxy.
    #[serde(default)]
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// RequestAuthentication JWT rules that apply to this workload. Not enforced yet by the proxy.
    #[serde(default)]
    pub jwt_rules: Vec<JwtRule>,
}

impl Default for InboundConfig {
    fn default() -> Self {
        Self {
            default_mtls_mode: MtlsMode::Permissive,
            upstream: InboundUpstream::default(),
            ports: Vec::new(),
            authorization_policies: Vec::new(),
            jwt_rules: Vec::new(),
        }
    }
}

impl InboundConfig {
    /// The port entry for `port`, if the workload declares it.
    pub fn port(&self, port: u16) -> Option<&InboundPort> {
        self.ports.iter().find(|entry| entry.port == port)
    }

    /// The effective mTLS mode for `port`: the port-level mode if the port is listed (Istio
    /// `PeerAuthentication.portLevelMtls`), otherwise `default_mtls_mode`.
    pub fn mtls_mode(&self, port: u16) -> MtlsMode {
        self.port(port)
            .map_or(self.default_mtls_mode, |entry| entry.mtls_mode)
    }

    /// The address the proxy forwards inbound traffic to, given the connection's original
    /// `destination` (the workload's IP and port): the listed port's
    /// [`InboundPort::default_endpoint`] when set (an unspecified IP, `0.0.0.0` or `::`, stands
    /// for `destination`'s IP, Istio's "instance IP"), else per [`InboundConfig::upstream`]:
    /// `destination` itself, or `127.0.0.1` on the same port. Never fails.
    pub fn forward_address(&self, destination: SocketAddr) -> SocketAddr {
        let port = destination.port();
        match self.port(port).and_then(|entry| entry.default_endpoint) {
            Some(endpoint) if endpoint.ip().is_unspecified() => {
                SocketAddr::new(destination.ip(), endpoint.port())
            }
            Some(endpoint) => endpoint,
            None => match self.upstream {
                InboundUpstream::OriginalDestination => destination,
                InboundUpstream::Localhost => SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            },
        }
    }
}

/// Where the inbound listener sends accepted connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InboundUpstream {
    /// `127.0.0.1:<original port>` (Istio before 1.10; works for apps bound to localhost).
    #[default]
    Localhost,
    /// `<original destination IP>:<original port>`, i.e. the pod IP (Istio 1.10 and later).
    OriginalDestination,
}

/// One workload port as seen by the inbound listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundPort {
    /// The workload (container) port, i.e. the Service's `targetPort`.
    pub port: u16,
    /// The application protocol (Istio protocol selection: the Service port's `appProtocol` or
    /// name prefix). [`Protocol::Unknown`] means sniff.
    #[serde(default)]
    pub protocol: Protocol,
    /// The resolved mTLS mode for this port (port-level PeerAuthentication over workload-level).
    #[serde(default)]
    pub mtls_mode: MtlsMode,
    /// Where this port's traffic goes instead of [`InboundConfig::upstream`] (Istio
    /// `Sidecar.ingress[].defaultEndpoint`): a loopback address (`127.0.0.1:PORT`,
    /// `[::1]:PORT`), or an unspecified one (`0.0.0.0:PORT`, `[::]:PORT`) for the workload's
    /// own IP on `PORT`. `None`: the original destination, as without a Sidecar. Validation
    /// refuses any other address and port 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_endpoint: Option<SocketAddr>,
    /// Limits on the traffic this port accepts (Istio `Sidecar.ingress[].connectionPool`, else
    /// `Sidecar.inboundConnectionPool`; Envoy's circuit breakers on the `inbound|<port>||`
    /// cluster), counted per port: `tcp.max_connections` caps concurrent TCP connections;
    /// HTTP requests beyond `max_connections + http.http1_max_pending_requests` (HTTP/1.1
    /// ports) or `http.http2_max_requests` in flight are answered 503 with response flag `UO`
    /// at once. Only these three limits apply on the inbound side; Pilot reports the pool's
    /// other fields as unsupported. `None`: unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
}

impl InboundPort {
    /// A port with `protocol` and `mtls_mode`, no default endpoint and no connection pool.
    pub fn new(port: u16, protocol: Protocol, mtls_mode: MtlsMode) -> Self {
        Self {
            port,
            protocol,
            mtls_mode,
            default_endpoint: None,
            connection_pool: None,
        }
    }
}

/// Istio `PeerAuthentication.MutualTLS.Mode`, already resolved (no `UNSET`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MtlsMode {
    /// Only mutual-TLS connections from mesh workloads are accepted.
    Strict,
    /// Both mutual-TLS and plaintext connections are accepted (Istio's default).
    #[default]
    Permissive,
    /// Only plaintext connections are accepted.
    Disable,
}

/// Istio `AuthorizationPolicy.Action`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthorizationAction {
    /// Allow a request that matches any rule.
    #[default]
    Allow,
    /// Deny a request that matches any rule.
    Deny,
    /// Audit a matching request (no effect on the decision).
    Audit,
    /// Delegate the decision to an extension provider.
    Custom,
}

/// One AuthorizationPolicy that selects this workload (Istio `security.istio.io/v1`
/// `AuthorizationPolicy`), with names kept for logs. The shape mirrors Istio's spec; a policy
/// with no rules matches nothing for ALLOW (deny-all) and nothing for DENY.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// `<namespace>/<name>` of the source object.
    pub name: String,
    /// The policy's action.
    #[serde(default)]
    pub action: AuthorizationAction,
    /// The rules; a request matches the policy if it matches any rule.
    #[serde(default)]
    pub rules: Vec<AuthorizationRule>,
}

/// Istio `Rule`: a request matches if it matches any `from`, any `to` and all `when` (an empty
/// list matches everything).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizationRule {
    /// Istio `Rule.from[].source`.
    #[serde(default)]
    pub from: Vec<AuthzSource>,
    /// Istio `Rule.to[].operation`.
    #[serde(default)]
    pub to: Vec<AuthzOperation>,
    /// Istio `Rule.when`.
    #[serde(default)]
    pub when: Vec<AuthzCondition>,
}

/// Istio `Source`: all non-empty fields must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzSource {
    /// Peer identities without `spiffe://` (e.g. `cluster.local/ns/default/sa/sleep`), `*` globs.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Negated `principals`.
    #[serde(default)]
    pub not_principals: Vec<String>,
    /// JWT `iss/sub` pairs.
    #[serde(default)]
    pub request_principals: Vec<String>,
    /// Negated `request_principals`.
    #[serde(default)]
    pub not_request_principals: Vec<String>,
    /// Peer namespaces.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Negated `namespaces`.
    #[serde(default)]
    pub not_namespaces: Vec<String>,
    /// Peer IP blocks.
    #[serde(default)]
    pub ip_blocks: Vec<Cidr>,
    /// Negated `ip_blocks`.
    #[serde(default)]
    pub not_ip_blocks: Vec<Cidr>,
    /// Original client IP blocks (Istio `Source.remoteIpBlocks`): tested against Envoy's
    /// `remote_ip`, the `X-Forwarded-For` address the proxy trusts (with Istio's default
    /// `numTrustedProxies` 0, the right-most entry), else the connection's source address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<Cidr>,
    /// Negated `remote_ip_blocks` (Istio `Source.notRemoteIpBlocks`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<Cidr>,
}

/// Istio `Operation`: all non-empty fields must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzOperation {
    /// `Host` header values, `*` globs.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Negated `hosts`.
    #[serde(default)]
    pub not_hosts: Vec<String>,
    /// Destination ports.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Negated `ports`.
    #[serde(default)]
    pub not_ports: Vec<u16>,
    /// HTTP methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Negated `methods`.
    #[serde(default)]
    pub not_methods: Vec<String>,
    /// Request paths, `*` globs at either end.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Negated `paths`.
    #[serde(default)]
    pub not_paths: Vec<String>,
}

/// Istio `Condition`: `key` (e.g. `request.headers[x-user]`, `source.ip`) must have one of
/// `values` and none of `not_values`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzCondition {
    /// The attribute name, as Istio spells it.
    pub key: String,
    /// Accepted values.
    #[serde(default)]
    pub values: Vec<String>,
    /// Rejected values.
    #[serde(default)]
    pub not_values: Vec<String>,
}

/// One JWT rule from a RequestAuthentication that selects this workload (Istio `JWTRule`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRule {
    /// The expected `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values; empty accepts any audience.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Where to fetch the JWKS, if not inline.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// The JWKS as JSON text: the rule's inline `jwks`, else the key set the control plane
    /// fetched from `jwks_uri` (refreshed every `PILOT_JWT_PUB_KEY_REFRESH_INTERVAL`, default
    /// 20 min). `None` when the URI was never fetched: tokens of this issuer get 401, as in
    /// Istio.
    #[serde(default)]
    pub jwks: Option<String>,
    /// Headers carrying the token (`(name, prefix)`), read first (Istio `fromHeaders`).
    #[serde(default)]
    pub from_headers: Vec<(String, String)>,
    /// Query parameters carrying the token, read after the headers (Istio `fromParams`).
    #[serde(default)]
    pub from_params: Vec<String>,
    /// Keep the token in the request forwarded to the app.
    #[serde(default)]
    pub forward_original_token: bool,
    /// Header that receives the verified payload (base64url), if any.
    #[serde(default)]
    pub output_payload_to_header: Option<String>,
    /// Cookies carrying the token (Istio `JWTRule.fromCookies`, Envoy `from_cookies`; names
    /// compared exactly). Read after `from_headers` and `from_params`. When all three lists are
    /// empty the rule reads Istio's defaults (`Authorization: Bearer`, then `access_token`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// Claims copied into request headers after the token verifies, as `(header, claim)`
    /// (Istio `JWTRule.outputClaimToHeaders` `{header, claim}`, Envoy `claim_to_headers`).
    /// `.` in a claim separates the names of nested claims (`nested.key.group`); only string,
    /// number and boolean claims are copied. Every listed header is removed from each request
    /// first, so a client cannot supply it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<(String, String)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbound(upstream: InboundUpstream, endpoint: Option<&str>) -> InboundConfig {
        let mut port = InboundPort::new(8080, Protocol::Http, MtlsMode::Permissive);
        port.default_endpoint = endpoint.map(|text| text.parse().unwrap());
        InboundConfig {
            upstream,
            ports: vec![port],
            ..InboundConfig::default()
        }
    }

    #[test]
    fn forward_address_follows_the_default_endpoint() {
        let pod: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let original = InboundUpstream::OriginalDestination;
        let cases = [
            (None, "10.0.0.5:8080"),
            (Some("127.0.0.1:9090"), "127.0.0.1:9090"),
            (Some("[::1]:9090"), "[::1]:9090"),
            (Some("0.0.0.0:9091"), "10.0.0.5:9091"),
            (Some("[::]:9092"), "10.0.0.5:9092"),
        ];
        for (endpoint, expected) in cases {
            let config = inbound(original, endpoint);
            assert_eq!(
                config.forward_address(pod),
                expected.parse::<SocketAddr>().unwrap(),
                "{endpoint:?}"
            );
        }
        // Unlisted ports and the legacy localhost mode.
        let other: SocketAddr = "10.0.0.5:7000".parse().unwrap();
        let config = inbound(original, Some("127.0.0.1:9090"));
        assert_eq!(config.forward_address(other), other);
        let config = inbound(InboundUpstream::Localhost, None);
        assert_eq!(
            config.forward_address(pod),
            "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn new_fields_are_left_out_when_unset() {
        let config = inbound(InboundUpstream::OriginalDestination, None);
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(!yaml.contains("default_endpoint"), "{yaml}");
        assert!(!yaml.contains("connection_pool"), "{yaml}");
    }
}
