//! HTTP routing: Envoy's `RouteConfiguration` → `VirtualHost` → `Route`, filled with the
//! semantics of Istio's `VirtualService` `HTTPRoute` (first match wins).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::matcher::{HeaderMatch, StringMatch};

/// The HTTP route table of one outbound listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfiguration {
    /// Virtual hosts; a request goes to the one whose `domains` match its authority (exact match
    /// beats suffix wildcard `*.foo`, which beats prefix wildcard `foo.*`, which beats `*`).
    #[serde(default)]
    pub virtual_hosts: Vec<VirtualHost>,
}

/// Envoy `VirtualHost`: a set of domains (one Istio service's host names, with and without the
/// port) and their ordered routes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VirtualHost {
    /// Name for logs, conventionally `<hostname>:<port>`.
    pub name: String,
    /// Authorities served: exact (`reviews`, `reviews:9080`), `*.suffix`, `prefix.*` or `*`.
    pub domains: Vec<String>,
    /// Ordered routes; the first whose match accepts the request wins. No match: 404 `NR`.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// One route: Istio `HTTPRoute`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Route name for logs (Istio `HTTPRoute.name`), may be empty.
    #[serde(default)]
    pub name: String,
    /// The request matches if it matches any of these (Istio: match blocks are ORed). Empty:
    /// every request.
    #[serde(default, rename = "match")]
    pub matches: Vec<RouteMatch>,
    /// What to do with a matching request.
    pub action: RouteAction,
}

/// Istio `HTTPMatchRequest`: every set condition must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The request path (without the query string).
    #[serde(default)]
    pub uri: Option<StringMatch>,
    /// The URI scheme (`http`, `https`).
    #[serde(default)]
    pub scheme: Option<StringMatch>,
    /// The HTTP method.
    #[serde(default)]
    pub method: Option<StringMatch>,
    /// The `:authority`/`Host` value.
    #[serde(default)]
    pub authority: Option<StringMatch>,
    /// Headers that must match (names lowercase).
    #[serde(default)]
    pub headers: BTreeMap<String, HeaderMatch>,
    /// Headers that must NOT match (Istio `withoutHeaders`).
    #[serde(default)]
    pub without_headers: BTreeMap<String, HeaderMatch>,
    /// Query parameters that must match (Istio supports `exact` and `regex`).
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatch>,
    /// The destination port the client used.
    #[serde(default)]
    pub port: Option<u16>,
    /// The proxy's own workload must have all these labels (Istio `sourceLabels`).
    #[serde(default)]
    pub source_labels: BTreeMap<String, String>,
    /// The proxy's own workload must be in this namespace (Istio `sourceNamespace`).
    #[serde(default)]
    pub source_namespace: Option<String>,
    /// Compare `uri` case-insensitively (Istio `ignoreUriCase`).
    #[serde(default)]
    pub ignore_uri_case: bool,
}

/// What a route does. Serialised as a single-key map: `route:`, `redirect:` or
/// `direct_response:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteAction {
    /// Forward to a weighted set of clusters (Istio `HTTPRoute.route`).
    Route(Box<ForwardAction>),
    /// Answer with a redirect (Istio `HTTPRoute.redirect`).
    Redirect(RedirectAction),
    /// Answer with a fixed response (Istio `HTTPRoute.directResponse`).
    DirectResponse(DirectResponseAction),
}

/// Forwarding: Istio `HTTPRoute.route` plus the route's policies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardAction {
    /// Destinations and weights (Istio `HTTPRouteDestination`); picked per request in
    /// proportion to weight.
    pub clusters: Vec<WeightedCluster>,
    /// Whole-request timeout in ms, including retries (Istio `HTTPRoute.timeout`); `None` means
    /// none (Istio's default). Exceeded: 504 with flag `UT`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Retry policy (Istio `HTTPRoute.retries`); `None` means no retries.
    #[serde(default)]
    pub retry: Option<RetryPolicy>,
    /// Fault injection (Istio `HTTPRoute.fault`).
    #[serde(default)]
    pub fault: Option<FaultInjection>,
    /// URI and authority rewrite (Istio `HTTPRoute.rewrite`).
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Request header changes applied before forwarding (Istio `headers.request`).
    #[serde(default)]
    pub request_headers: HeaderMutation,
    /// Response header changes applied before answering (Istio `headers.response`).
    #[serde(default)]
    pub response_headers: HeaderMutation,
    /// Shadow copies of the request (Istio `mirror`/`mirrors`); responses are discarded.
    #[serde(default)]
    pub mirrors: Vec<Mirror>,
    /// CORS policy (Istio `corsPolicy`).
    #[serde(default)]
    pub cors: Option<CorsPolicy>,
}

/// One destination cluster and its weight (Istio `HTTPRouteDestination.weight`,
/// `RouteDestination.weight`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeightedCluster {
    /// A cluster name from [`crate::ProxyConfig::clusters`], or one of the special clusters
    /// [`crate::PASSTHROUGH_CLUSTER`] / [`crate::BLACK_HOLE_CLUSTER`].
    pub cluster: String,
    /// Relative weight; a list's weights need not sum to 100 but must not all be 0.
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// Istio `HTTPRetry` as Envoy's `RetryPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first try (Istio `attempts`; Istio's default policy uses 2).
    pub attempts: u32,
    /// Timeout in ms for each try (Istio `perTryTimeout`); `None`: only the route timeout applies.
    /// A try that exceeds it counts as retriable (Envoy: per-try timeout is retriable).
    #[serde(default)]
    pub per_try_timeout_ms: Option<u64>,
    /// Conditions that trigger a retry (Istio `retryOn`, Envoy's `x-envoy-retry-on` values).
    #[serde(default = "default_retry_on")]
    pub retry_on: Vec<RetryOn>,
    /// Status codes retried under [`RetryOn::RetriableStatusCodes`].
    #[serde(default)]
    pub retriable_status_codes: Vec<u16>,
    /// Base interval in ms of the jittered exponential back-off between tries (Envoy default 25;
    /// the maximum is 10x the base).
    #[serde(default = "default_backoff_base_ms")]
    pub backoff_base_ms: u64,
}

fn default_retry_on() -> Vec<RetryOn> {
    vec![
        RetryOn::ConnectFailure,
        RetryOn::RefusedStream,
        RetryOn::Unavailable,
        RetryOn::Cancelled,
        RetryOn::RetriableStatusCodes,
    ]
}

fn default_backoff_base_ms() -> u64 {
    25
}

/// One Envoy retry condition (`x-envoy-retry-on` / `x-envoy-retry-grpc-on` values), spelt as in
/// Istio's `retryOn` string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RetryOn {
    /// Any 5xx response, a reset, a connect failure or a per-try timeout.
    #[serde(rename = "5xx")]
    FiveXx,
    /// 502, 503 or 504.
    #[serde(rename = "gateway-error")]
    GatewayError,
    /// The upstream reset or closed the connection before a response.
    #[serde(rename = "reset")]
    Reset,
    /// Connecting to the upstream failed (including connect timeout).
    #[serde(rename = "connect-failure")]
    ConnectFailure,
    /// A 409 response.
    #[serde(rename = "retriable-4xx")]
    Retriable4xx,
    /// The upstream refused an HTTP/2 stream (REFUSED_STREAM).
    #[serde(rename = "refused-stream")]
    RefusedStream,
    /// A status listed in [`RetryPolicy::retriable_status_codes`].
    #[serde(rename = "retriable-status-codes")]
    RetriableStatusCodes,
    /// gRPC status CANCELLED (1).
    #[serde(rename = "cancelled")]
    Cancelled,
    /// gRPC status DEADLINE_EXCEEDED (4).
    #[serde(rename = "deadline-exceeded")]
    DeadlineExceeded,
    /// gRPC status INTERNAL (13).
    #[serde(rename = "internal")]
    Internal,
    /// gRPC status RESOURCE_EXHAUSTED (8).
    #[serde(rename = "resource-exhausted")]
    ResourceExhausted,
    /// gRPC status UNAVAILABLE (14).
    #[serde(rename = "unavailable")]
    Unavailable,
}

/// Istio `HTTPFaultInjection`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultInjection {
    /// Delay before forwarding (response flag `DI`).
    #[serde(default)]
    pub delay: Option<FaultDelay>,
    /// Abort instead of forwarding (response flag `FI`).
    #[serde(default)]
    pub abort: Option<FaultAbort>,
}

/// Istio `HTTPFaultInjection.Delay`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultDelay {
    /// The delay in ms (Istio `fixedDelay`).
    pub fixed_delay_ms: u64,
    /// Share of requests delayed, 0–100 (Istio `percentage.value`).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// Istio `HTTPFaultInjection.Abort`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultAbort {
    /// The HTTP status returned (Istio `httpStatus`), 200–599.
    pub http_status: u16,
    /// Share of requests aborted, 0–100 (Istio `percentage.value`).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

fn hundred() -> f64 {
    100.0
}

/// Istio `HTTPRewrite`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Replaces the part of the path matched by a `prefix` uri match, or the whole path otherwise
    /// (Istio `rewrite.uri`).
    #[serde(default)]
    pub uri: Option<String>,
    /// Regex rewrite of the path (Istio `uriRegexRewrite`).
    #[serde(default)]
    pub uri_regex: Option<RegexRewrite>,
    /// Replaces the `:authority`/`Host` (Istio `rewrite.authority`).
    #[serde(default)]
    pub authority: Option<String>,
}

/// Istio `RegexRewrite`: every match of `pattern` in the path is replaced by `substitution`
/// (`\1`-style groups as `$1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegexRewrite {
    /// The RE2 pattern.
    pub pattern: String,
    /// The replacement.
    pub substitution: String,
}

/// Istio `Headers.HeaderOperations`: applied in the order remove, set, add.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderMutation {
    /// Overwrite these headers.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Append these values (existing values kept).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Remove these headers.
    #[serde(default)]
    pub remove: Vec<String>,
}

impl HeaderMutation {
    /// Whether the mutation changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// Istio `HTTPMirrorPolicy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mirror {
    /// The cluster receiving the copy.
    pub cluster: String,
    /// Share of requests mirrored, 0–100 (Istio's default is 100).
    #[serde(default = "hundred")]
    pub percentage: f64,
}

/// Istio `CorsPolicy`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsPolicy {
    /// Allowed origins.
    #[serde(default)]
    pub allow_origins: Vec<StringMatch>,
    /// `Access-Control-Allow-Methods` values.
    #[serde(default)]
    pub allow_methods: Vec<String>,
    /// `Access-Control-Allow-Headers` values.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// `Access-Control-Expose-Headers` values.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` in ms (sent rounded down to seconds).
    #[serde(default)]
    pub max_age_ms: Option<u64>,
    /// `Access-Control-Allow-Credentials`.
    #[serde(default)]
    pub allow_credentials: Option<bool>,
}

/// Istio `HTTPRedirect`: parts not set keep the request's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectAction {
    /// Replacement path.
    #[serde(default)]
    pub uri: Option<String>,
    /// Replacement authority (host).
    #[serde(default)]
    pub authority: Option<String>,
    /// Replacement port.
    #[serde(default)]
    pub port: Option<u16>,
    /// Replacement scheme.
    #[serde(default)]
    pub scheme: Option<String>,
    /// The status: 301 (Istio's default), 302, 303, 307 or 308.
    #[serde(default = "default_redirect_code")]
    pub redirect_code: u16,
}

fn default_redirect_code() -> u16 {
    301
}

/// Istio `HTTPDirectResponse`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectResponseAction {
    /// The status, 200–599.
    pub status: u16,
    /// The body, if any.
    #[serde(default)]
    pub body: Option<String>,
}
