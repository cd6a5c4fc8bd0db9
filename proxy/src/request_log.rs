//! What the proxy records about each request: Envoy's response flags and a per-request log
//! record handed to telemetry through [`RequestObserver`].

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Envoy's response flags (`%RESPONSE_FLAGS%` in Istio's access log), as a bit set.
///
/// Only the flags this proxy can produce are defined. Displayed Envoy-style: comma-separated
/// short codes in a fixed order, or `-` when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ResponseFlags(u16);

impl ResponseFlags {
    /// `UH`: no healthy upstream host (the cluster has no endpoints).
    pub const NO_HEALTHY_UPSTREAM: Self = Self(1);
    /// `UF`: upstream connection failure.
    pub const UPSTREAM_CONNECTION_FAILURE: Self = Self(1 << 1);
    /// `UO`: upstream overflow (circuit breaking).
    pub const UPSTREAM_OVERFLOW: Self = Self(1 << 2);
    /// `NR`: no route configured for the request (or REGISTRY_ONLY refused it).
    pub const NO_ROUTE_FOUND: Self = Self(1 << 3);
    /// `URX`: the retry limit was reached.
    pub const UPSTREAM_RETRY_LIMIT_EXCEEDED: Self = Self(1 << 4);
    /// `UT`: upstream request timeout (route or per-try).
    pub const UPSTREAM_REQUEST_TIMEOUT: Self = Self(1 << 5);
    /// `DC`: the downstream connection terminated before the response was complete.
    pub const DOWNSTREAM_CONNECTION_TERMINATION: Self = Self(1 << 6);
    /// `DI`: the request was delayed by fault injection.
    pub const DELAY_INJECTED: Self = Self(1 << 7);
    /// `FI`: the request was aborted by fault injection.
    pub const FAULT_INJECTED: Self = Self(1 << 8);
    /// `UC`: the upstream connection terminated (reset) before a response.
    pub const UPSTREAM_CONNECTION_TERMINATION: Self = Self(1 << 9);

    const CODES: [(Self, &'static str); 10] = [
        (Self::NO_HEALTHY_UPSTREAM, "UH"),
        (Self::UPSTREAM_CONNECTION_FAILURE, "UF"),
        (Self::UPSTREAM_OVERFLOW, "UO"),
        (Self::NO_ROUTE_FOUND, "NR"),
        (Self::UPSTREAM_RETRY_LIMIT_EXCEEDED, "URX"),
        (Self::UPSTREAM_REQUEST_TIMEOUT, "UT"),
        (Self::DOWNSTREAM_CONNECTION_TERMINATION, "DC"),
        (Self::DELAY_INJECTED, "DI"),
        (Self::FAULT_INJECTED, "FI"),
        (Self::UPSTREAM_CONNECTION_TERMINATION, "UC"),
    ];

    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every flag in `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets the flags in `other`.
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// The short codes of the set flags, in Envoy's order.
    pub fn codes(self) -> impl Iterator<Item = &'static str> {
        Self::CODES
            .into_iter()
            .filter(move |(flag, _)| self.contains(*flag))
            .map(|(_, code)| code)
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = Self;

    fn bitor(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

impl fmt::Display for ResponseFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        for (index, code) in self.codes().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            f.write_str(code)?;
        }
        Ok(())
    }
}

/// Which listener handled a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The outbound listener (the workload is the client).
    Outbound,
    /// The inbound listener (the workload is the server).
    Inbound,
}

/// One finished HTTP request (or TCP connection, with `method` empty), as the access log and
/// metrics need it (Istio's standard access-log fields).
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// Inbound or outbound.
    pub direction: Direction,
    /// When the request started.
    pub start: SystemTime,
    /// Total time until the response headers were sent (or the connection closed for TCP).
    pub duration: Duration,
    /// The HTTP method, empty for TCP (borrowed for the standard methods: no copy per
    /// request).
    pub method: Cow<'static, str>,
    /// The request's `:authority`/`Host`.
    pub authority: String,
    /// The request path with query.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2` or `TCP`.
    pub protocol: &'static str,
    /// The response status; 0 when none was sent (TCP, or the client went away).
    pub status: u16,
    /// Envoy response flags.
    pub flags: ResponseFlags,
    /// The `x-request-id`.
    pub request_id: String,
    /// The Istio route name that matched, if any.
    pub route_name: Arc<str>,
    /// The upstream cluster, if one was chosen.
    pub upstream_cluster: Arc<str>,
    /// The upstream host of the last try, if any.
    pub upstream_host: Option<SocketAddr>,
    /// The downstream peer.
    pub downstream_peer: Option<SocketAddr>,
    /// The downstream peer's SPIFFE ID (inbound mTLS only; Istio `source.principal`).
    pub source_principal: Option<String>,
    /// Tries made (1 + retries).
    pub attempts: u32,
    /// The destination service's hostname (outbound), empty when unknown.
    pub destination_service: Arc<str>,
    /// Bytes received from downstream (TCP: all bytes; HTTP: not counted yet, 0).
    pub request_bytes: u64,
    /// Bytes sent to downstream (TCP: all bytes; HTTP: not counted yet, 0).
    pub response_bytes: u64,
    /// The W3C `traceparent` of the request, if any (propagated untouched).
    pub traceparent: Option<String>,
    /// The AUDIT AuthorizationPolicy (`<namespace>/<name>`) the request matched, if any: Istio's
    /// AUDIT action only records (Envoy's `access_log_hint`), never decides.
    pub audit_policy: Option<String>,
}

/// The empty name as a shared `Arc<str>` (a log's route, cluster and service before they are
/// known): made once per process, then each use is a reference count.
pub fn empty_name() -> Arc<str> {
    static EMPTY: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(""));
    Arc::clone(&EMPTY)
}

/// Istio's inbound cluster name for `port` (`inbound|<port>||`): made once per port and
/// thread, then shared by each request's log.
pub fn inbound_cluster_name(port: u16) -> Arc<str> {
    thread_local! {
        static NAMES: std::cell::RefCell<crate::FastMap<u16, Arc<str>>> =
            std::cell::RefCell::default();
    }
    NAMES.with(|names| {
        Arc::clone(
            names
                .borrow_mut()
                .entry(port)
                .or_insert_with(|| Arc::from(format!("inbound|{port}||"))),
        )
    })
}

/// Receives every finished request. The telemetry module implements it with metrics and the
/// access log; the default [`TracingObserver`] logs at debug level.
pub trait RequestObserver: Send + Sync {
    /// Records one finished request. Called on the request path: must not block.
    fn on_request(&self, log: &RequestLog);

    /// Whether [`RequestObserver::on_request`] reads a request's descriptive fields
    /// (`authority`, `path`, `request_id`, `traceparent`), which only the access log and debug
    /// logging print. When it returns `false` the HTTP path leaves them empty and saves their
    /// copies (Istio's metrics carry none of them). Asked once per request, so a change of the
    /// access log's state applies to the next request. Default: `true`.
    fn wants_details(&self) -> bool {
        true
    }
}

/// A [`RequestObserver`] that emits one `tracing` debug event per request.
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingObserver;

impl RequestObserver for TracingObserver {
    fn on_request(&self, log: &RequestLog) {
        tracing::debug!(
            direction = ?log.direction,
            method = %log.method,
            authority = %log.authority,
            path = %log.path,
            status = log.status,
            flags = %log.flags,
            cluster = %log.upstream_cluster,
            upstream = ?log.upstream_host,
            duration_ms = log.duration.as_millis() as u64,
            request_id = %log.request_id,
            "request"
        );
    }

    /// Only when debug events are enabled.
    fn wants_details(&self) -> bool {
        tracing::enabled!(tracing::Level::DEBUG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_cluster_names_follow_istio_and_are_shared_per_port() {
        let first = inbound_cluster_name(9080);
        assert_eq!(&*first, "inbound|9080||");
        assert!(Arc::ptr_eq(&first, &inbound_cluster_name(9080)));
        assert_eq!(&*inbound_cluster_name(8443), "inbound|8443||");
    }

    #[test]
    fn the_empty_name_is_empty() {
        assert!(empty_name().is_empty());
    }

    #[test]
    fn flags_display_in_envoy_order() {
        assert_eq!(ResponseFlags::empty().to_string(), "-");
        let flags = ResponseFlags::UPSTREAM_REQUEST_TIMEOUT
            | ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED
            | ResponseFlags::NO_HEALTHY_UPSTREAM;
        assert_eq!(flags.to_string(), "UH,URX,UT");
        assert!(flags.contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT));
        assert!(!flags.contains(ResponseFlags::FAULT_INJECTED));
    }
}
