//! The actions and policies of an HTTP route: redirect, direct response, rewrite, retries,
//! CORS, fault injection and mirroring (Istio `HTTPRedirect`, `HTTPDirectResponse`,
//! `HTTPRewrite`, `HTTPRetry`, `CorsPolicy`, `HTTPFaultInjection`, `HTTPMirrorPolicy`).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::networking::common::{Destination, Percent};
use crate::{Duration, StringMatch};

/// Sends a 301 (or `redirectCode`) redirect instead of forwarding (Istio `HTTPRedirect`).
///
/// `port` and `derivePort` are Istio's `redirectPort` oneOf: at most one may be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRedirect {
    /// Replaces the path of the URL with this value. The whole path is replaced, whatever
    /// the match was (exact or prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Replaces the authority (host) of the URL with this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Replaces the port of the URL with this value. At most one of `port` and `derivePort`
    /// may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Derives the port of the URL: `FROM_PROTOCOL_DEFAULT` (80 for HTTP, 443 for HTTPS) or
    /// `FROM_REQUEST_PORT`. At most one of `port` and `derivePort` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derive_port: Option<RedirectPortSelection>,
    /// Replaces the scheme of the URL with this value, e.g. `https`. Unset keeps the
    /// original scheme.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    /// The HTTP status code of the redirect response. Default 301.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_code: Option<u32>,
}

/// How a redirect derives its port (Istio `HTTPRedirect.RedirectPortSelection`):
/// `FROM_PROTOCOL_DEFAULT` (80 for HTTP, 443 for HTTPS) or `FROM_REQUEST_PORT`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RedirectPortSelection {
    /// Port 80 for HTTP and 443 for HTTPS.
    #[default]
    FromProtocolDefault,
    /// The port the request was received on.
    FromRequestPort,
}

/// Answers the request with a fixed status and body instead of forwarding it (Istio
/// `HTTPDirectResponse`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpDirectResponse {
    /// The HTTP status of the response.
    pub status: u32,
    /// The content of the response body; none when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<HttpBody>,
}

/// The body of a direct response (Istio `HTTPBody`). `string` and `bytes` are a oneOf: at
/// most one may be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpBody {
    /// The response body as text. At most one of `string` and `bytes` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string: Option<String>,
    /// The response body as base64-encoded bytes. At most one of `string` and `bytes` may
    /// be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "byte"))]
    pub bytes: Option<String>,
}

/// Rewrites parts of the request before forwarding (Istio `HTTPRewrite`). Not allowed
/// together with a redirect.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRewrite {
    /// Rewrites the path (or the matched prefix) of the URI with this value. At most one of
    /// `uri` and `uriRegexRewrite` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// Rewrites the Authority (Host) header with this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// Rewrites the path of the URI with a regular expression. At most one of `uri` and
    /// `uriRegexRewrite` may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_regex_rewrite: Option<RegexRewrite>,
}

/// A regex rewrite of the URI path (Istio `RegexRewrite`), e.g. match `^/service/([^/]+)(/.*)$`
/// with rewrite `\2/instance/\1`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegexRewrite {
    /// RE2-style regular expression matched against the path.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<String>,
    /// The replacement for the matched portions; may use numbered capture groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
}

/// The retry policy of an HTTP route (Istio `HTTPRetry`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRetry {
    /// Number of retries allowed for a request; `0` disables retries. The route's
    /// `timeout` and `perTryTimeout` may cut the actual number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout per attempt, including the first one. At least 1ms; default the route's
    /// timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Duration>,
    /// Comma-separated conditions under which to retry (Envoy's `x-envoy-retry-on` and
    /// `x-envoy-retry-grpc-on` policies, e.g. `5xx,connect-failure`). Integers are
    /// retriable HTTP status codes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Whether retries may go to other localities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_remote_localities: Option<bool>,
    /// Whether retries avoid previously tried hosts. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_ignore_previous_hosts: Option<bool>,
    /// The minimum time between retry attempts (exponential back-off base). Default 25ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Duration>,
}

/// Cross-Origin Resource Sharing policy of a route (Istio `CorsPolicy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CorsPolicy {
    /// Deprecated: use `allowOrigins`. Origins allowed to perform CORS requests, as exact
    /// strings (`*` allows all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origin: Vec<String>,
    /// Patterns of origins allowed to perform CORS requests. An origin is allowed if any
    /// pattern matches. Replaces `allowOrigin`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_origins: Vec<StringMatch>,
    /// HTTP methods allowed to access the resource (`Access-Control-Allow-Methods`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_methods: Vec<String>,
    /// HTTP headers allowed in the request (`Access-Control-Allow-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_headers: Vec<String>,
    /// HTTP headers browsers may access (`Access-Control-Expose-Headers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose_headers: Vec<String>,
    /// How long the results of a preflight request can be cached
    /// (`Access-Control-Max-Age`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<Duration>,
    /// Whether the actual request (not the preflight) may use credentials
    /// (`Access-Control-Allow-Credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_credentials: Option<bool>,
    /// What happens to preflight requests that match no allowed origin: `FORWARD` (the
    /// default, also for `UNSPECIFIED`) sends them upstream, `IGNORE` answers them at the
    /// proxy without CORS headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unmatched_preflights: Option<UnmatchedPreflights>,
}

/// What happens to preflight requests that match no allowed origin (Istio
/// `CorsPolicy.UnmatchedPreflights`): `UNSPECIFIED` (same as `FORWARD`), `FORWARD` or
/// `IGNORE` (answered by the proxy without CORS headers).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum UnmatchedPreflights {
    /// Default: forward.
    #[default]
    Unspecified,
    /// Forward preflight requests that do not match to the upstream.
    Forward,
    /// Answer them at the proxy without CORS headers.
    Ignore,
}

/// Faults injected into forwarded requests (Istio `HTTPFaultInjection`): delays, aborts or
/// both. Timeouts and retries are not applied while a fault is injected.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpFaultInjection {
    /// Delays requests before forwarding them, emulating network issues or an overloaded
    /// upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Aborts requests and returns an error to the caller, emulating a faulty upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
}

/// A delay injected before forwarding (Istio `HTTPFaultInjection.Delay`).
///
/// `fixedDelay` and `exponentialDelay` are a oneOf: at most one may be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delay {
    /// A fixed delay before forwarding the request. At least 1ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<Duration>,
    /// An exponential delay. Accepted by Istio's CRD but refused by its validation as not
    /// supported yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exponential_delay: Option<Duration>,
    /// The percentage of requests delayed; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
    /// Deprecated: use `percentage`. Percentage (0-100) of requests delayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<i32>,
}

/// An abort injected instead of forwarding (Istio `HTTPFaultInjection.Abort`).
///
/// `httpStatus`, `grpcStatus` and `http2Error` are a oneOf: at most one may be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Abort {
    /// The HTTP status code returned to the caller. At most one error type may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// The gRPC status returned to the caller, e.g. `UNAVAILABLE`. At most one error type
    /// may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc_status: Option<String>,
    /// The HTTP/2 error returned. Accepted by Istio's CRD but refused by its validation as
    /// not supported yet. At most one error type may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_error: Option<String>,
    /// The percentage of requests aborted; all when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}

/// One mirror destination of an HTTP route (Istio `HTTPMirrorPolicy`). Responses of the
/// mirrored requests are ignored.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMirrorPolicy {
    /// The target of the mirror operation.
    pub destination: Destination,
    /// The percentage of the traffic mirrored to `destination`; 100 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<Percent>,
}
