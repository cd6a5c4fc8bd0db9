//! Istio's `BLOCKED_CIDRS_IN_JWKS_URIS`: address ranges the control plane must not fetch key
//! sets from (istiod refuses to connect to them, so that whoever may create a
//! RequestAuthentication cannot make the control plane send requests to internal services;
//! analyzer IST0175 warns when it is unset).
//!
//! The check sits where the address is chosen, not before it: the JWKS client resolves host
//! names through [`FilteringResolver`], which drops blocked addresses from the answer, so a name
//! that resolves differently a moment later (DNS rebinding) cannot slip through. A URL whose
//! host is an IP literal never reaches a resolver and is checked by [`BlockedCidrs::check_literal`].

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use ipnet::IpNet;

use super::JwksError;

/// The environment variable that lists the blocked ranges (Istio's name): CIDRs separated by
/// commas, e.g. `10.0.0.0/8,169.254.169.254/32`.
pub const BLOCKED_CIDRS_ENV: &str = "BLOCKED_CIDRS_IN_JWKS_URIS";

/// The address ranges key sets are never fetched from (empty by default: Istio blocks nothing
/// unless [`BLOCKED_CIDRS_ENV`] is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockedCidrs(Vec<IpNet>);

impl BlockedCidrs {
    /// Parses `value`, the value of [`BLOCKED_CIDRS_ENV`]: CIDRs (`10.0.0.0/8`, `fd00::/8`)
    /// separated by commas, spaces around each ignored, empty entries skipped; a bare address
    /// blocks that address alone (`/32` or `/128`).
    ///
    /// Errors: [`JwksError::BadBlockedCidr`] naming the first entry that is not a CIDR or an
    /// address (the control plane refuses to start rather than fetch from a range meant to be
    /// blocked).
    pub fn parse(value: &str) -> Result<Self, JwksError> {
        let mut nets = Vec::new();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| JwksError::BadBlockedCidr {
                    value: value.to_owned(),
                    entry: entry.to_owned(),
                })?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// Whether no range is blocked.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first blocked range that contains `address` (an IPv4-mapped IPv6 address is checked
    /// as its IPv4 address), if any.
    pub fn blocking(&self, address: IpAddr) -> Option<IpNet> {
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().find(|net| net.contains(&address)).copied()
    }

    /// Checks the host of `uri` when it is an IP literal (`http://10.0.0.1/keys`,
    /// `http://[fd00::1]/keys`), which the HTTP client connects to without a resolver; a host
    /// name passes here and is filtered by [`FilteringResolver`].
    ///
    /// Errors: [`JwksError::Blocked`] when the literal lies in a blocked range.
    pub fn check_literal(&self, uri: &str, host: &str) -> Result<(), JwksError> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let Ok(address) = literal.parse::<IpAddr>() else {
            return Ok(());
        };
        match self.blocking(address) {
            Some(net) => Err(JwksError::Blocked {
                uri: uri.to_owned(),
                host: host.to_owned(),
                addresses: format!("{address} in {net}"),
            }),
            None => Ok(()),
        }
    }
}

/// Every address a host name resolved to lies in a blocked range. The JWKS client's error
/// chain carries it; the resolver turns it into [`JwksError::Blocked`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{host} resolves only to addresses in {BLOCKED_CIDRS_ENV}: {addresses}")]
pub struct BlockedAddresses {
    /// The host name.
    pub host: String,
    /// Each refused address with the range that blocks it (`10.0.0.7 in 10.0.0.0/8`).
    pub addresses: String,
}

/// Why [`FilteringResolver`] gave no address.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The system resolver failed.
    #[error("cannot resolve the host: {0}")]
    Lookup(#[source] std::io::Error),
    /// Every address is blocked.
    #[error(transparent)]
    Blocked(#[from] BlockedAddresses),
}

/// The system resolver (`getaddrinfo`, as hyper-util's default) with the addresses in
/// [`BlockedCidrs`] removed from each answer; when none is left, the lookup fails with
/// [`BlockedAddresses`]. Each removed address is logged as a warning.
#[derive(Debug, Clone)]
pub struct FilteringResolver {
    inner: GaiResolver,
    blocked: Arc<BlockedCidrs>,
}

impl FilteringResolver {
    /// A resolver that removes the addresses in `blocked`.
    pub fn new(blocked: Arc<BlockedCidrs>) -> Self {
        Self {
            inner: GaiResolver::new(),
            blocked,
        }
    }
}

impl tower::Service<Name> for FilteringResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context).map_err(ResolveError::Lookup)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let lookup = self.inner.call(name.clone());
        let blocked = self.blocked.clone();
        Box::pin(async move {
            let resolved = lookup.await.map_err(ResolveError::Lookup)?;
            let mut allowed = Vec::new();
            let mut refused = Vec::new();
            for address in resolved {
                match blocked.blocking(address.ip()) {
                    Some(net) => refused.push(format!("{} in {net}", address.ip())),
                    None => allowed.push(address),
                }
            }
            if !refused.is_empty() {
                tracing::warn!(
                    host = name.as_str(),
                    refused = refused.join(", "),
                    "JWKS fetch: not connecting to addresses in {BLOCKED_CIDRS_ENV}"
                );
            }
            if allowed.is_empty() && !refused.is_empty() {
                return Err(ResolveError::Blocked(BlockedAddresses {
                    host: name.as_str().to_owned(),
                    addresses: refused.join(", "),
                }));
            }
            Ok(allowed.into_iter())
        })
    }
}

/// The [`BlockedAddresses`] in `error`'s source chain, if any.
pub fn find_blocked<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a BlockedAddresses> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(blocked) = error.downcast_ref::<BlockedAddresses>() {
            return Some(blocked);
        }
        if let Some(ResolveError::Blocked(blocked)) = error.downcast_ref::<ResolveError>() {
            return Some(blocked);
        }
        current = error.source();
    }
    None
}
