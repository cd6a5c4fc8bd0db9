//! The label and annotation names the injector reads and writes, spelled exactly as Istio spells
//! them (`istio.io/api` `annotation` and `label` packages), plus the names of the containers,
//! volumes and ports the injector adds.

/// Namespace label that turns injection on (`enabled`) or off (`disabled`) for a whole
/// namespace (Istio's `istio-injection` label).
pub const NAMESPACE_INJECTION_LABEL: &str = "istio-injection";

/// Namespace or pod label naming the control-plane revision that injects it (Istio's
/// `istio.io/rev`); honoured when it names this mesh's revision (`default`).
pub const REVISION_LABEL: &str = "istio.io/rev";

/// Pod label or annotation that overrides the namespace's injection policy: `true` or `false`
/// (Istio's `sidecar.istio.io/inject`). The label wins over the annotation.
pub const SIDECAR_INJECT: &str = "sidecar.istio.io/inject";

/// Pod annotation written by the injector, recording what it added (Istio's
/// `sidecar.istio.io/status`). Its presence marks a pod as already injected.
pub const SIDECAR_STATUS: &str = "sidecar.istio.io/status";

/// Pod annotation: rewrite application HTTP probes to go through the proxy (`true`/`false`,
/// default `true`; Istio's `sidecar.istio.io/rewriteAppHTTPProbers`).
pub const REWRITE_APP_HTTP_PROBERS: &str = "sidecar.istio.io/rewriteAppHTTPProbers";

/// Pod annotation: the proxy's CPU request, a Kubernetes quantity (Istio's
/// `sidecar.istio.io/proxyCPU`).
pub const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";

/// Pod annotation: the proxy's memory request, a Kubernetes quantity (Istio's
/// `sidecar.istio.io/proxyMemory`).
pub const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";

/// Pod annotation: the proxy's CPU limit, a Kubernetes quantity (Istio's
/// `sidecar.istio.io/proxyCPULimit`).
pub const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";

/// Pod annotation: the proxy's memory limit, a Kubernetes quantity (Istio's
/// `sidecar.istio.io/proxyMemoryLimit`).
pub const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";

/// Pod annotation: the proxy image, overriding the mesh default (Istio's
/// `sidecar.istio.io/proxyImage`).
pub const PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";

/// Pod annotation: the proxy's log level (`trace`, `debug`, `info`, `warning`, `error`,
/// `critical`, `off`; Istio's `sidecar.istio.io/logLevel`).
pub const PROXY_LOG_LEVEL: &str = "sidecar.istio.io/logLevel";

/// Pod annotation: a YAML `ProxyConfig` overriding mesh defaults for this pod (Istio's
/// `proxy.istio.io/config`).
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";

/// Pod annotation: comma-separated CIDRs whose outbound traffic is captured, or `*` (Istio's
/// `traffic.sidecar.istio.io/includeOutboundIPRanges`, default `*`).
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";

/// Pod annotation: comma-separated CIDRs whose outbound traffic bypasses the proxy (Istio's
/// `traffic.sidecar.istio.io/excludeOutboundIPRanges`).
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";

/// Pod annotation: comma-separated inbound ports captured, or `*` (Istio's
/// `traffic.sidecar.istio.io/includeInboundPorts`, default `*`).
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";

/// Pod annotation: comma-separated inbound ports that bypass the proxy (Istio's
/// `traffic.sidecar.istio.io/excludeInboundPorts`).
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";

/// Pod annotation: comma-separated outbound ports captured even when their IP range is not
/// (Istio's `traffic.sidecar.istio.io/includeOutboundPorts`).
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";

/// Pod annotation: comma-separated outbound ports that bypass the proxy (Istio's
/// `traffic.sidecar.istio.io/excludeOutboundPorts`).
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";

/// Pod label set on injected pods: the proxy accepts Istio mutual TLS (Istio's
/// `security.istio.io/tlsMode`, value `istio`).
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";

/// Pod label: the workload's canonical service name (Istio's `service.istio.io/canonical-name`).
pub const CANONICAL_NAME_LABEL: &str = "service.istio.io/canonical-name";

/// Pod label: the workload's canonical revision (Istio's
/// `service.istio.io/canonical-revision`).
pub const CANONICAL_REVISION_LABEL: &str = "service.istio.io/canonical-revision";

/// Pod annotation read by `kubectl logs`/`exec` to choose a container when none is named
/// (Kubernetes' `kubectl.kubernetes.io/default-container`); Istio points it at the first
/// application container.
pub const DEFAULT_CONTAINER_ANNOTATION: &str = "kubectl.kubernetes.io/default-container";

/// Name of the traffic-capture init container (Istio's `istio-init`).
pub const INIT_CONTAINER_NAME: &str = "istio-init";

/// Name of the proxy container (Istio's `istio-proxy`).
pub const PROXY_CONTAINER_NAME: &str = "istio-proxy";

/// Environment variable on the proxy holding the original application HTTP probes as JSON,
/// keyed by their rewritten path (Istio's `ISTIO_KUBE_APP_PROBERS`).
pub const KUBE_APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

/// Port the proxy sends outbound traffic to after capture (Istio's `15001`).
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;

/// Port the proxy receives captured inbound traffic on (Istio's `15006`).
pub const INBOUND_CAPTURE_PORT: u16 = 15006;

/// The proxy agent's status port: rewritten application probes (`/app-health/...`) are served
/// here (Istio's pilot-agent status port, `15020`).
pub const STATUS_PORT: u16 = 15020;

/// The proxy's own health port: `GET /healthz/ready` (Istio's `15021`).
pub const HEALTH_PORT: u16 = 15021;

/// The proxy's Prometheus port, named `http-envoy-prom` (Istio's `15090`).
pub const PROMETHEUS_PORT: u16 = 15090;

/// Path of the proxy's readiness endpoint on [`HEALTH_PORT`] (Istio's `/healthz/ready`).
pub const READINESS_PATH: &str = "/healthz/ready";
