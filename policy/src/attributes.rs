//! What a request or connection offers to authorization: Istio's attribute vocabulary
//! (`source.principal`, `request.headers[...]`, `destination.port`, ...), borrowed from the
//! proxy's own buffers.

use std::net::IpAddr;

use crate::jwt::JwtIdentity;

/// Whether authorization sees an HTTP request or a plain TCP connection. Istio's HTTP-only
/// fields (hosts, methods, paths, request principals, `request.headers`, `request.auth.*`)
/// can only be evaluated for [`TransportProtocol::Http`]; see [`crate::authorize`] for what
/// happens to them on TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportProtocol {
    /// An HTTP/1.1 or HTTP/2 request (Envoy's HTTP RBAC filter).
    #[default]
    Http,
    /// A TCP connection, opaque bytes (Envoy's network RBAC filter).
    Tcp,
}

/// The attributes of one request (or one TCP connection) that authorization rules test.
///
/// Every string is borrowed; building one allocates nothing. Fields the request does not
/// offer are `None` (or empty): a positive matcher on an absent attribute fails and its
/// `not*` form succeeds, as Envoy's RBAC matchers do.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestAttributes<'a> {
    /// HTTP request or plain TCP connection.
    pub protocol: TransportProtocol,
    /// The peer's SPIFFE ID without `spiffe://` (e.g. `cluster.local/ns/default/sa/sleep`),
    /// from the client certificate of an mTLS connection; `None` for plaintext (Istio
    /// `source.principal`, `Source.principals`).
    pub source_principal: Option<&'a str>,
    /// The downstream peer's IP address (Istio `source.ip`, `Source.ipBlocks`; Envoy
    /// `direct_remote_ip`).
    pub source_ip: Option<IpAddr>,
    /// The original client IP as Envoy determines it from `X-Forwarded-For` or the PROXY
    /// protocol (Istio `remote.ip`; Envoy `remote_ip`). `None` means "same as `source_ip`";
    /// see [`remote_ip_from_forwarded_for`].
    pub remote_ip: Option<IpAddr>,
    /// The local address the connection arrived on (Istio `destination.ip`).
    pub destination_ip: Option<IpAddr>,
    /// The workload port the connection arrived on (Istio `destination.port`,
    /// `Operation.ports`).
    pub destination_port: u16,
    /// The TLS server name the client sent (Istio `connection.sni`).
    pub sni: Option<&'a str>,
    /// The `Host` / `:authority` header, as sent (Istio `Operation.hosts`, compared without
    /// regard to case).
    pub host: Option<&'a str>,
    /// The HTTP method (Istio `Operation.methods`).
    pub method: Option<&'a str>,
    /// The request target as sent (`/path?query`); rules compare the part before `?` (Envoy's
    /// `url_path`), as Istio's `Operation.paths` do.
    pub path: Option<&'a str>,
    /// The request headers as `(name, value)` pairs, one per occurrence (Istio
    /// `request.headers[<name>]`; names compared without regard to case).
    pub headers: &'a [(&'a str, &'a str)],
    /// The identity from a JWT that [`crate::authenticate`] validated (Istio
    /// `request.auth.*`, `Source.requestPrincipals`); `None` when the request carried none.
    pub jwt: Option<&'a JwtIdentity>,
}

impl<'a> RequestAttributes<'a> {
    /// The peer's namespace, parsed from [`Self::source_principal`] (`<td>/ns/<ns>/sa/<sa>`):
    /// the path segment after `ns` (Istio `source.namespace`, which requires mTLS). `None`
    /// without a principal or when the principal has no `/ns/` segment.
    pub fn source_namespace(&self) -> Option<&'a str> {
        let principal = self.source_principal?;
        let mut segments = principal.split('/');
        while let Some(segment) = segments.next() {
            if segment == "ns" {
                return segments.next().filter(|ns| !ns.is_empty());
            }
        }
        None
    }

    /// The client address Istio's `remote.ip` tests: [`Self::remote_ip`] if set, else
    /// [`Self::source_ip`].
    pub fn effective_remote_ip(&self) -> Option<IpAddr> {
        self.remote_ip.or(self.source_ip)
    }

    /// The value of the first header named `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }

    /// The request path without its query string (Envoy `url_path`), if this is a request.
    pub fn url_path(&self) -> Option<&'a str> {
        self.path
            .map(|path| path.split_once('?').map_or(path, |(path, _)| path))
    }
}

/// The client address Envoy reports as `remote_ip` for a request (Istio `remote.ip` and
/// `Source.remoteIpBlocks`), from the `X-Forwarded-For` header value `forwarded_for`.
///
/// Envoy (with `use_remote_address: false`, the sidecar inbound setting) skips
/// `trusted_hops` addresses from the right of `X-Forwarded-For` and takes the next one
/// (`xff_num_trusted_hops`, Istio `meshConfig.defaultConfig.gatewayTopology.numTrustedProxies`;
/// 0 means the right-most address). Without the header, with too few entries or with an
/// entry that is not an IP address, the answer is `peer` (the connection's source address).
pub fn remote_ip_from_forwarded_for(
    forwarded_for: Option<&str>,
    trusted_hops: usize,
    peer: IpAddr,
) -> IpAddr {
    forwarded_for
        .and_then(|header| header.rsplit(',').nth(trusted_hops))
        .and_then(|entry| entry.trim().parse().ok())
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_from_principal() {
        let cases = [
            (Some("cluster.local/ns/foo/sa/sleep"), Some("foo")),
            (Some("td/ns/bar/sa/x/extra"), Some("bar")),
            (Some("td/ns//sa/x"), None),
            (Some("td/sa/x"), None),
            (None, None),
        ];
        for (principal, want) in cases {
            let attributes = RequestAttributes {
                source_principal: principal,
                ..RequestAttributes::default()
            };
            assert_eq!(attributes.source_namespace(), want, "{principal:?}");
        }
    }

    #[test]
    fn forwarded_for() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let xff = Some("203.0.113.1, 198.51.100.2,10.1.1.1");
        let cases = [
            (xff, 0, "10.1.1.1"),
            (xff, 1, "198.51.100.2"),
            (xff, 2, "203.0.113.1"),
            (xff, 3, "10.0.0.9"),
            (Some("garbage"), 0, "10.0.0.9"),
            (Some("2001:db8::1"), 0, "2001:db8::1"),
            (None, 0, "10.0.0.9"),
        ];
        for (header, hops, want) in cases {
            let want: IpAddr = want.parse().unwrap();
            assert_eq!(
                remote_ip_from_forwarded_for(header, hops, peer),
                want,
                "{header:?} {hops}"
            );
        }
    }

    #[test]
    fn url_path_drops_query_and_header_lookup_ignores_case() {
        let headers = [("X-Test", "1")];
        let attributes = RequestAttributes {
            path: Some("/a/b?c=d"),
            headers: &headers,
            ..RequestAttributes::default()
        };
        assert_eq!(attributes.url_path(), Some("/a/b"));
        assert_eq!(attributes.header("x-test"), Some("1"));
        assert_eq!(attributes.header("x-other"), None);
    }
}
