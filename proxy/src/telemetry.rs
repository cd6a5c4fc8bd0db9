//! Istio's standard metrics and JSON access logs.
//!
//! The metrics have Istio's names, types, labels and histogram buckets
//! (<https://istio.io/latest/docs/reference/config/metrics/>), so Kiali, Grafana dashboards and
//! alerts written for Istio work unchanged:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `istio_requests_total` | counter | [`RequestLabels`] |
//! | `istio_request_duration_milliseconds` | histogram (ms) | [`RequestLabels`] |
//! | `istio_request_bytes`, `istio_response_bytes` | histogram (bytes) | [`RequestLabels`] |
//! | `istio_tcp_connections_opened_total`, `istio_tcp_connections_closed_total` | counter | [`TcpLabels`] |
//! | `istio_tcp_sent_bytes_total`, `istio_tcp_received_bytes_total` | counter (bytes) | [`TcpLabels`] |
//!
//! The listeners fill a [`RequestRecord`] per HTTP request and a [`ConnectionRecord`] per TCP
//! connection and hand them to [`Telemetry`], which updates the metrics and writes one access
//! log line ([`AccessLog`]). Recording is synchronous and takes no lock across `.await`.
//! [`encode`] renders a registry for `/stats/prometheus`.

pub mod access_log;
pub mod labels;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

pub use access_log::{AccessLog, AccessLogEntry};
pub use labels::{
    PeerInfo, Reporter, RequestLabels, SecurityPolicy, ServiceInfo, TcpLabels, TrafficLabels,
    UNKNOWN,
};

/// Histogram buckets of every Istio histogram: Envoy's default bucket boundaries, used by
/// Istio's stats filter for durations (ms) and sizes (bytes) alike.
pub const ISTIO_BUCKETS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// Content type of [`encode`]'s output (OpenMetrics text, which Prometheus negotiates).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Response flags value meaning "none" (Envoy's `%RESPONSE_FLAGS%` convention).
pub const NO_FLAGS: &str = "-";

/// Errors from telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The registry could not be rendered as OpenMetrics text.
    #[error("encoding metrics for /stats/prometheus: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Application protocol of an HTTP request (the `request_protocol` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestProtocol {
    /// Plain HTTP/1.x or HTTP/2: `http`.
    Http,
    /// gRPC (HTTP/2 with `content-type: application/grpc*`): `grpc`.
    Grpc,
}

impl RequestProtocol {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            RequestProtocol::Http => "http",
            RequestProtocol::Grpc => "grpc",
        }
    }
}

/// Everything known about one finished HTTP request.
#[derive(Clone, Debug)]
pub struct RequestRecord {
    /// Labels of the connection/route, shared between the requests on it.
    pub labels: Arc<TrafficLabels>,
    /// `http` or `grpc`.
    pub request_protocol: RequestProtocol,
    /// Wire version (`HTTP/1.1`, `HTTP/2`) for the access log.
    pub version: http::Version,
    /// Request method.
    pub method: http::Method,
    /// Path and query as received.
    pub path: String,
    /// `:authority` / `Host`.
    pub authority: Option<String>,
    /// Status sent downstream; `0` when none was sent (reset, timeout before headers).
    pub response_code: u16,
    /// `grpc-status` of a gRPC response.
    pub grpc_status: Option<u32>,
    /// Envoy-style response flags (`UF`, `NR`, `UT`, ..., comma-separated), [`NO_FLAGS`] for none.
    pub response_flags: String,
    /// When the first request byte arrived.
    pub start_time: SystemTime,
    /// Until the last response byte was sent.
    pub duration: Duration,
    /// Request body bytes received from downstream.
    pub request_bytes: u64,
    /// Response body bytes sent downstream.
    pub response_bytes: u64,
    /// Upstream endpoint `ip:port`.
    pub upstream_host: Option<String>,
    /// Upstream cluster name.
    pub upstream_cluster: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// W3C `traceparent`.
    pub traceparent: Option<String>,
    /// The AUDIT AuthorizationPolicy the request matched (`<namespace>/<name>`), if any.
    pub audit_policy: Option<String>,
}

/// Everything known about one closed TCP connection (opaque TCP, not HTTP).
#[derive(Clone, Debug)]
pub struct ConnectionRecord {
    /// Labels of the connection.
    pub labels: Arc<TrafficLabels>,
    /// Envoy-style response flags, [`NO_FLAGS`] for none (`UF` upstream connect failure...).
    pub response_flags: String,
    /// When the connection was accepted.
    pub start_time: SystemTime,
    /// How long it lived.
    pub duration: Duration,
    /// Bytes read from downstream (`istio_tcp_received_bytes_total`).
    pub bytes_received: u64,
    /// Bytes written to downstream (`istio_tcp_sent_bytes_total`).
    pub bytes_sent: u64,
    /// Upstream endpoint `ip:port`.
    pub upstream_host: Option<String>,
    /// Upstream cluster name.
    pub upstream_cluster: Option<String>,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn istio_histogram() -> Histogram {
    Histogram::new(ISTIO_BUCKETS)
}

/// The metric families, registered once per process (or per test registry).
#[derive(Clone, Debug)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    request_duration: HistogramFamily<RequestLabels>,
    request_bytes: HistogramFamily<RequestLabels>,
    response_bytes: HistogramFamily<RequestLabels>,
    tcp_opened: Family<TcpLabels, Counter>,
    tcp_closed: Family<TcpLabels, Counter>,
    tcp_sent: Family<TcpLabels, Counter>,
    tcp_received: Family<TcpLabels, Counter>,
}

impl Metrics {
    /// Creates the families and registers them in `registry` under Istio's names (counters
    /// get their `_total` suffix from the encoder).
    pub fn register(registry: &mut Registry) -> Self {
        let histogram = || HistogramFamily::new_with_constructor(istio_histogram as fn() -> _);
        let metrics = Metrics {
            requests: Family::default(),
            request_duration: histogram(),
            request_bytes: histogram(),
            response_bytes: histogram(),
            tcp_opened: Family::default(),
            tcp_closed: Family::default(),
            tcp_sent: Family::default(),
            tcp_received: Family::default(),
        };
        registry.register(
            "istio_requests",
            "Requests handled by the proxy",
            metrics.requests.clone(),
        );
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration in milliseconds",
            metrics.request_duration.clone(),
        );
        registry.register(
            "istio_request_bytes",
            "Request body size in bytes",
            metrics.request_bytes.clone(),
        );
        registry.register(
            "istio_response_bytes",
            "Response body size in bytes",
            metrics.response_bytes.clone(),
        );
        registry.register(
            "istio_tcp_connections_opened",
            "TCP connections opened",
            metrics.tcp_opened.clone(),
        );
        registry.register(
            "istio_tcp_connections_closed",
            "TCP connections closed",
            metrics.tcp_closed.clone(),
        );
        registry.register(
            "istio_tcp_sent_bytes",
            "Bytes sent to the downstream on TCP connections",
            metrics.tcp_sent.clone(),
        );
        registry.register(
            "istio_tcp_received_bytes",
            "Bytes received from the downstream on TCP connections",
            metrics.tcp_received.clone(),
        );
        metrics
    }
}

/// The series of Istio's four request metrics for one [`RequestLabels`] value
/// (`istio_requests_total`, `istio_request_duration_milliseconds`, `istio_request_bytes`,
/// `istio_response_bytes`), from [`Telemetry::request_series`]. Cloning shares the series.
#[derive(Clone, Debug)]
pub struct RequestSeries {
    requests: Counter,
    duration: Histogram,
    request_bytes: Histogram,
    response_bytes: Histogram,
}

impl RequestSeries {
    /// Counts one request that took `duration` (observed in ms) with `request_bytes` and
    /// `response_bytes` of body (observed in bytes).
    pub fn record(&self, duration: Duration, request_bytes: u64, response_bytes: u64) {
        self.requests.inc();
        self.duration.observe(millis(duration));
        // Byte counts above 2^53 lose precision as f64; irrelevant at these bucket bounds.
        self.request_bytes.observe(request_bytes as f64);
        self.response_bytes.observe(response_bytes as f64);
    }
}

/// Metrics plus access log: what the listeners call.
#[derive(Debug)]
pub struct Telemetry {
    metrics: Metrics,
    access_log: AccessLog,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn protocol_name(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2",
        http::Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

impl Telemetry {
    /// Registers the metrics in `registry` and writes access logs to `access_log`
    /// ([`AccessLog::off`] to disable).
    pub fn new(registry: &mut Registry, access_log: AccessLog) -> Self {
        Telemetry {
            metrics: Metrics::register(registry),
            access_log,
        }
    }

    /// Resolves the four request metrics of `labels` once (one label-set hash and map lookup
    /// per metric); the returned handles record into the same series as
    /// [`Telemetry::record_request`] with the same labels, without hashing them again.
    pub fn request_series(&self, labels: &RequestLabels) -> RequestSeries {
        let m = &self.metrics;
        RequestSeries {
            requests: m.requests.get_or_create(labels).clone(),
            duration: m.request_duration.get_or_create(labels).clone(),
            request_bytes: m.request_bytes.get_or_create(labels).clone(),
            response_bytes: m.response_bytes.get_or_create(labels).clone(),
        }
    }

    /// Whether access-log lines are written (when not, callers can skip building a
    /// [`RequestRecord`] for [`Telemetry::log_request`]).
    pub fn access_log_enabled(&self) -> bool {
        self.access_log.is_enabled()
    }

    /// Records a finished HTTP request: `istio_requests_total` +1, duration (ms), request and
    /// response body sizes (bytes), then one access-log line if logging is on.
    pub fn record_request(&self, record: &RequestRecord) {
        let labels = RequestLabels::new(
            &record.labels,
            record.request_protocol.as_str(),
            record.response_code,
            record.grpc_status,
            &record.response_flags,
        );
        self.request_series(&labels).record(
            record.duration,
            record.request_bytes,
            record.response_bytes,
        );
        self.log_request(record);
    }

    /// Writes `record`'s access-log line (Istio's JSON keys) if logging is on; no metrics.
    pub fn log_request(&self, record: &RequestRecord) {
        if self.access_log.is_enabled() {
            self.access_log.write(&AccessLogEntry {
                start_time: access_log::rfc3339_millis(record.start_time),
                method: Some(record.method.as_str()),
                path: Some(&record.path),
                authority: record.authority.as_deref(),
                protocol: protocol_name(record.version),
                response_code: Some(record.response_code),
                response_flags: &record.response_flags,
                bytes_received: record.request_bytes,
                bytes_sent: record.response_bytes,
                duration: u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
                upstream_host: record.upstream_host.as_deref(),
                upstream_cluster: record.upstream_cluster.as_deref(),
                request_id: record.request_id.as_deref(),
                traceparent: record.traceparent.as_deref(),
                audit_policy: record.audit_policy.as_deref(),
            });
        }
    }

    /// Records an accepted TCP connection: `istio_tcp_connections_opened_total` +1 (response
    /// flags `-`).
    pub fn connection_opened(&self, labels: &TrafficLabels) {
        self.metrics
            .tcp_opened
            .get_or_create(&TcpLabels::new(labels, NO_FLAGS))
            .inc();
    }

    /// Records a closed TCP connection: `istio_tcp_connections_closed_total` +1, its bytes
    /// added to `istio_tcp_sent_bytes_total` / `istio_tcp_received_bytes_total`, and one
    /// access-log line (`protocol: TCP`) if logging is on. Bytes are counted at close.
    pub fn record_connection(&self, record: &ConnectionRecord) {
        let labels = TcpLabels::new(&record.labels, &record.response_flags);
        let m = &self.metrics;
        m.tcp_closed.get_or_create(&labels).inc();
        m.tcp_sent.get_or_create(&labels).inc_by(record.bytes_sent);
        m.tcp_received
            .get_or_create(&labels)
            .inc_by(record.bytes_received);

        if self.access_log.is_enabled() {
            self.access_log.write(&AccessLogEntry {
                start_time: access_log::rfc3339_millis(record.start_time),
                method: None,
                path: None,
                authority: None,
                protocol: "TCP",
                response_code: None,
                response_flags: &record.response_flags,
                bytes_received: record.bytes_received,
                bytes_sent: record.bytes_sent,
                duration: u64::try_from(record.duration.as_millis()).unwrap_or(u64::MAX),
                upstream_host: record.upstream_host.as_deref(),
                upstream_cluster: record.upstream_cluster.as_deref(),
                request_id: None,
                traceparent: None,
                audit_policy: None,
            });
        }
    }
}

/// Renders `registry` in the OpenMetrics text format (serve with [`CONTENT_TYPE`] on
/// `/stats/prometheus`). Errors: [`TelemetryError::Encode`] if a metric fails to render.
pub fn encode(registry: &Registry) -> Result<String, TelemetryError> {
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, registry)?;
    Ok(out)
}

#[cfg(test)]
#[path = "telemetry/tests.rs"]
mod tests;
