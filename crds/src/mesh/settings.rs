//! The groups of settings inside [`MeshSpec`](super::MeshSpec), their enums and defaults.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

/// Default workload certificate lifetime: 24 h (Istio's `DEFAULT_WORKLOAD_CERT_TTL`).
pub const DEFAULT_WORKLOAD_CERT_TTL: std::time::Duration =
    std::time::Duration::from_secs(24 * 3600);
/// Default rotation point: renew a workload certificate half-way through its life.
pub const DEFAULT_ROTATE_AT_FRACTION: f64 = 0.5;
/// Default root certificate lifetime: 10 years = 87600 h (Istio's
/// `CITADEL_SELF_SIGNED_CA_CERT_TTL`).
pub const DEFAULT_ROOT_CERT_TTL: std::time::Duration = std::time::Duration::from_secs(87600 * 3600);
/// Default proxy CPU request (Istio's sidecar default `100m`).
pub const DEFAULT_PROXY_CPU_REQUEST: &str = "100m";
/// Default proxy memory request (Istio's sidecar default `128Mi`).
pub const DEFAULT_PROXY_MEMORY_REQUEST: &str = "128Mi";
/// Default proxy CPU limit (Istio's sidecar default `2000m`).
pub const DEFAULT_PROXY_CPU_LIMIT: &str = "2000m";
/// Default proxy memory limit (Istio's sidecar default `1024Mi`).
pub const DEFAULT_PROXY_MEMORY_LIMIT: &str = "1024Mi";
/// Default quiet period before a push: 100 ms (Istio's `PILOT_DEBOUNCE_AFTER`).
pub const DEFAULT_DEBOUNCE_AFTER: std::time::Duration = std::time::Duration::from_millis(100);
/// Default longest wait before a push: 10 s (Istio's `PILOT_DEBOUNCE_MAX`).
pub const DEFAULT_DEBOUNCE_MAX: std::time::Duration = std::time::Duration::from_secs(10);
/// Default access-log path once logging is enabled (Istio's usual `accessLogFile`).
pub const DEFAULT_ACCESS_LOG_FILE: &str = "/dev/stdout";
/// Default trace sampling percentage: 1.0 (Istio's `ProxyConfig.tracing.sampling` default).
pub const DEFAULT_TRACING_SAMPLING: f64 = 1.0;

/// A Kubernetes resource quantity such as `100m` or `128Mi` (the grammar of
/// `resource.Quantity`).
const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// Lifetimes and rotation of the certificates issued by the mesh CA.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateSettings {
    /// Lifetime of workload certificates, e.g. `24h`. Default 24h (Istio's
    /// `DEFAULT_WORKLOAD_CERT_TTL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_cert_ttl: Option<Duration>,
    /// The fraction (strictly between 0 and 1) of a workload certificate's lifetime after which it is renewed;
    /// 0.5 renews half-way. Istio's `SECRET_GRACE_PERIOD_RATIO` counts from the other end (renew
    /// when less than ratio × lifetime remains); both agree at the default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0), extend("exclusiveMinimum" = true, "exclusiveMaximum" = true))]
    pub rotate_at_fraction: Option<f64>,
    /// Lifetime of the self-signed root certificate, e.g. `87600h`. Default 87600h (10 years,
    /// Istio's `CITADEL_SELF_SIGNED_CA_CERT_TTL`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_cert_ttl: Option<Duration>,
}

/// The sidecar proxy injected into workloads.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxySettings {
    /// The proxy container image, e.g. `ghcr.io/example/weft-proxy:1.0`. Default: the image
    /// of the operator's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// CPU and memory requests and limits of the proxy container. Unset quantities take
    /// Istio's sidecar defaults (requests 100m/128Mi, limits 2000m/1024Mi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ProxyResources>,
    /// Run the proxy as a Kubernetes native sidecar (an init container with
    /// `restartPolicy: Always`). Default false (Istio's `ENABLE_NATIVE_SIDECARS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_sidecars: Option<bool>,
    /// Start application containers only once the proxy is ready, as Istio's
    /// `ProxyConfig.holdApplicationUntilProxyStarts`. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
}

/// Requests and limits of the proxy container (the shape of Kubernetes
/// `ResourceRequirements`, CPU and memory only).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyResources {
    /// The resources the scheduler reserves for the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<ResourceList>,
    /// The most the proxy may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceList>,
}

/// CPU and memory quantities, written as Kubernetes quantities (`100m`, `128Mi`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceList {
    /// CPU, e.g. `100m` (0.1 core) or `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub cpu: Option<String>,
    /// Memory, e.g. `128Mi` or `1Gi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = QUANTITY_PATTERN))]
    pub memory: Option<String>,
}

/// The proxy resources with every default applied, from
/// [`MeshSpec::proxy_resources`](super::MeshSpec::proxy_resources).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveResources {
    /// CPU request, e.g. `100m`.
    pub cpu_request: String,
    /// Memory request, e.g. `128Mi`.
    pub memory_request: String,
    /// CPU limit, e.g. `2000m`.
    pub cpu_limit: String,
    /// Memory limit, e.g. `1024Mi`.
    pub memory_limit: String,
}

/// Istio's `MeshConfig.outboundTrafficPolicy`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutboundTrafficPolicy {
    /// What to do with traffic to unknown destinations. Default `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficPolicyMode>,
}

/// Istio's `MeshConfig.OutboundTrafficPolicy.Mode`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OutboundTrafficPolicyMode {
    /// Outbound traffic to unknown destinations is passed through.
    #[default]
    AllowAny,
    /// Outbound traffic is restricted to services in the service registry (and ServiceEntries).
    RegistryOnly,
}

/// Batching of configuration pushes: a push waits until no change has arrived for
/// `debounceAfter`, but never longer than `debounceMax` after the first change.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DebounceSettings {
    /// The quiet period after a change before a push. Default 100ms (Istio's
    /// `PILOT_DEBOUNCE_AFTER`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_after: Option<Duration>,
    /// The longest a change may wait for a push. Default 10s (Istio's `PILOT_DEBOUNCE_MAX`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce_max: Option<Duration>,
}

/// The proxies' access logs (Istio's `MeshConfig.accessLogFile` and `accessLogEncoding`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessLogSettings {
    /// Whether the proxies write access logs. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The log line format. Default `TEXT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<AccessLogEncoding>,
    /// The file the logs go to. Default `/dev/stdout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Istio's `MeshConfig.AccessLogEncoding`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    /// Plain text lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// The access-log settings with every default applied, from
/// [`MeshSpec::access_log`](super::MeshSpec::access_log).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveAccessLog {
    /// Whether the proxies write access logs.
    pub enabled: bool,
    /// The log line format.
    pub encoding: AccessLogEncoding,
    /// The file the logs go to.
    pub file: String,
}

/// The proxies' distributed tracing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TracingSettings {
    /// The percentage (0 to 100, 0.01 steps) of requests sampled, as Istio's
    /// `ProxyConfig.tracing.sampling`. Default 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub sampling: Option<f64>,
    /// The trace-context header format propagated by the proxies. Default `W3C`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<TracePropagation>,
}

/// Trace-context propagation formats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum TracePropagation {
    /// W3C Trace Context (`traceparent`, `tracestate`).
    #[default]
    #[serde(rename = "W3C")]
    W3c,
    /// Zipkin B3 headers (`x-b3-traceid`, `x-b3-spanid`, ...).
    #[serde(rename = "B3")]
    B3,
}
