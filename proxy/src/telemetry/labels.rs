//! The fixed label sets of Istio's standard metrics
//! (<https://istio.io/latest/docs/reference/config/metrics/>). Every value comes from a typed
//! field; unknown peers use Istio's `unknown`.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use std::fmt::Write as _;

/// The value Istio uses for any label whose information is missing.
pub const UNKNOWN: &str = "unknown";

/// Which proxy reports the metric (Istio's `reporter` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reporter {
    /// The client-side proxy (outbound) or a gateway: `source`.
    Source,
    /// The server-side proxy (inbound): `destination`.
    Destination,
}

impl Reporter {
    /// The label value: `source` or `destination`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reporter::Source => "source",
            Reporter::Destination => "destination",
        }
    }
}

impl EncodeLabelValue for Reporter {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// Istio's `connection_security_policy` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityPolicy {
    /// mTLS was used (set by the destination reporter): `mutual_tls`.
    MutualTls,
    /// Plaintext (destination reporter, PERMISSIVE or DISABLE): `none`.
    None,
    /// The source reporter cannot know the server's policy: `unknown`.
    Unknown,
}

impl SecurityPolicy {
    /// The label value: `mutual_tls`, `none` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            SecurityPolicy::MutualTls => "mutual_tls",
            SecurityPolicy::None => "none",
            SecurityPolicy::Unknown => UNKNOWN,
        }
    }
}

impl EncodeLabelValue for SecurityPolicy {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(self.as_str())
    }
}

/// What is known about one side of the traffic (a workload).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PeerInfo {
    /// Workload name (Deployment etc.): `*_workload`.
    pub workload: String,
    /// Workload namespace: `*_workload_namespace`.
    pub namespace: String,
    /// SPIFFE ID from mTLS, `unknown` without it: `*_principal`.
    pub principal: String,
    /// `app` label: `*_app`.
    pub app: String,
    /// `version` label: `*_version`.
    pub version: String,
    /// `service.istio.io/canonical-name`: `*_canonical_service`.
    pub canonical_service: String,
    /// `service.istio.io/canonical-revision`: `*_canonical_revision`.
    pub canonical_revision: String,
    /// Cluster id: `*_cluster`.
    pub cluster: String,
}

impl Default for PeerInfo {
    /// Every field `unknown`.
    fn default() -> Self {
        PeerInfo {
            workload: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
            principal: UNKNOWN.into(),
            app: UNKNOWN.into(),
            version: UNKNOWN.into(),
            canonical_service: UNKNOWN.into(),
            canonical_revision: UNKNOWN.into(),
            cluster: UNKNOWN.into(),
        }
    }
}

/// The destination service (`destination_service*` labels).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ServiceInfo {
    /// Host, e.g. `details.default.svc.cluster.local`: `destination_service`.
    pub host: String,
    /// Short name, e.g. `details`: `destination_service_name`.
    pub name: String,
    /// Namespace: `destination_service_namespace`.
    pub namespace: String,
}

impl Default for ServiceInfo {
    /// Every field `unknown`.
    fn default() -> Self {
        ServiceInfo {
            host: UNKNOWN.into(),
            name: UNKNOWN.into(),
            namespace: UNKNOWN.into(),
        }
    }
}

/// Labels fixed for a connection (or a route on it): who talks to whom, reported by which
/// side, with which security. The listeners fill this once and reuse it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TrafficLabels {
    /// Which side reports.
    pub reporter: Reporter,
    /// The client workload.
    pub source: PeerInfo,
    /// The server workload.
    pub destination: PeerInfo,
    /// The destination service.
    pub destination_service: ServiceInfo,
    /// mTLS or not.
    pub connection_security_policy: SecurityPolicy,
}

/// Label set of the HTTP/gRPC metrics (`istio_requests_total`,
/// `istio_request_duration_milliseconds`, `istio_request_bytes`, `istio_response_bytes`), in
/// the order Istio's proxies export them.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// See [`Reporter`].
    pub reporter: Reporter,
    /// Source workload name.
    pub source_workload: String,
    /// Source canonical service.
    pub source_canonical_service: String,
    /// Source canonical revision.
    pub source_canonical_revision: String,
    /// Source workload namespace.
    pub source_workload_namespace: String,
    /// Source SPIFFE ID.
    pub source_principal: String,
    /// Source `app` label.
    pub source_app: String,
    /// Source `version` label.
    pub source_version: String,
    /// Source cluster.
    pub source_cluster: String,
    /// Destination workload name.
    pub destination_workload: String,
    /// Destination workload namespace.
    pub destination_workload_namespace: String,
    /// Destination SPIFFE ID.
    pub destination_principal: String,
    /// Destination `app` label.
    pub destination_app: String,
    /// Destination `version` label.
    pub destination_version: String,
    /// Destination service host.
    pub destination_service: String,
    /// Destination canonical service.
    pub destination_canonical_service: String,
    /// Destination canonical revision.
    pub destination_canonical_revision: String,
    /// Destination service short name.
    pub destination_service_name: String,
    /// Destination service namespace.
    pub destination_service_namespace: String,
    /// Destination cluster.
    pub destination_cluster: String,
    /// `http` or `grpc`.
    pub request_protocol: String,
    /// HTTP status code (`0` when no response was sent).
    pub response_code: u16,
    /// gRPC status code, empty for non-gRPC requests.
    pub grpc_response_status: String,
    /// Envoy-style response flags (`-` for none).
    pub response_flags: String,
    /// See [`SecurityPolicy`].
    pub connection_security_policy: SecurityPolicy,
}

/// Label set of the TCP metrics (`istio_tcp_*`): the request labels without `response_code`
/// and `grpc_response_status`, `request_protocol` = `tcp`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TcpLabels {
    /// See [`Reporter`].
    pub reporter: Reporter,
    /// Source workload name.
    pub source_workload: String,
    /// Source canonical service.
    pub source_canonical_service: String,
    /// Source canonical revision.
    pub source_canonical_revision: String,
    /// Source workload namespace.
    pub source_workload_namespace: String,
    /// Source SPIFFE ID.
    pub source_principal: String,
    /// Source `app` label.
    pub source_app: String,
    /// Source `version` label.
    pub source_version: String,
    /// Source cluster.
    pub source_cluster: String,
    /// Destination workload name.
    pub destination_workload: String,
    /// Destination workload namespace.
    pub destination_workload_namespace: String,
    /// Destination SPIFFE ID.
    pub destination_principal: String,
    /// Destination `app` label.
    pub destination_app: String,
    /// Destination `version` label.
    pub destination_version: String,
    /// Destination service host.
    pub destination_service: String,
    /// Destination canonical service.
    pub destination_canonical_service: String,
    /// Destination canonical revision.
    pub destination_canonical_revision: String,
    /// Destination service short name.
    pub destination_service_name: String,
    /// Destination service namespace.
    pub destination_service_namespace: String,
    /// Destination cluster.
    pub destination_cluster: String,
    /// Always `tcp`.
    pub request_protocol: String,
    /// Envoy-style response flags (`-` for none).
    pub response_flags: String,
    /// See [`SecurityPolicy`].
    pub connection_security_policy: SecurityPolicy,
}

impl RequestLabels {
    /// Combines the connection's labels with one request's outcome.
    pub fn new(
        traffic: &TrafficLabels,
        request_protocol: &str,
        response_code: u16,
        grpc_response_status: Option<u32>,
        response_flags: &str,
    ) -> Self {
        let (s, d, svc) = (
            &traffic.source,
            &traffic.destination,
            &traffic.destination_service,
        );
        RequestLabels {
            reporter: traffic.reporter,
            source_workload: s.workload.clone(),
            source_canonical_service: s.canonical_service.clone(),
            source_canonical_revision: s.canonical_revision.clone(),
            source_workload_namespace: s.namespace.clone(),
            source_principal: s.principal.clone(),
            source_app: s.app.clone(),
            source_version: s.version.clone(),
            source_cluster: s.cluster.clone(),
            destination_workload: d.workload.clone(),
            destination_workload_namespace: d.namespace.clone(),
            destination_principal: d.principal.clone(),
            destination_app: d.app.clone(),
            destination_version: d.version.clone(),
            destination_service: svc.host.clone(),
            destination_canonical_service: d.canonical_service.clone(),
            destination_canonical_revision: d.canonical_revision.clone(),
            destination_service_name: svc.name.clone(),
            destination_service_namespace: svc.namespace.clone(),
            destination_cluster: d.cluster.clone(),
            request_protocol: request_protocol.to_owned(),
            response_code,
            grpc_response_status: grpc_response_status
                .map(|s| s.to_string())
                .unwrap_or_default(),
            response_flags: response_flags.to_owned(),
            connection_security_policy: traffic.connection_security_policy,
        }
    }
}

impl TcpLabels {
    /// The connection's labels with its response flags.
    pub fn new(traffic: &TrafficLabels, response_flags: &str) -> Self {
        let (s, d, svc) = (
            &traffic.source,
            &traffic.destination,
            &traffic.destination_service,
        );
        TcpLabels {
            reporter: traffic.reporter,
            source_workload: s.workload.clone(),
            source_canonical_service: s.canonical_service.clone(),
            source_canonical_revision: s.canonical_revision.clone(),
            source_workload_namespace: s.namespace.clone(),
            source_principal: s.principal.clone(),
            source_app: s.app.clone(),
            source_version: s.version.clone(),
            source_cluster: s.cluster.clone(),
            destination_workload: d.workload.clone(),
            destination_workload_namespace: d.namespace.clone(),
            destination_principal: d.principal.clone(),
            destination_app: d.app.clone(),
            destination_version: d.version.clone(),
            destination_service: svc.host.clone(),
            destination_canonical_service: d.canonical_service.clone(),
            destination_canonical_revision: d.canonical_revision.clone(),
            destination_service_name: svc.name.clone(),
            destination_service_namespace: svc.namespace.clone(),
            destination_cluster: d.cluster.clone(),
            request_protocol: "tcp".to_owned(),
            response_flags: response_flags.to_owned(),
            connection_security_policy: traffic.connection_security_policy,
        }
    }
}
