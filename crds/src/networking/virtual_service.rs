//! `VirtualService` (networking.istio.io): traffic routing rules applied when a host is
//! addressed — HTTP routes with matching, rewrites, retries, fault injection and mirroring,
//! TLS routes by SNI and opaque TCP routes.
//!
//! Field for field as Istio's reference documents `networking.v1.VirtualService`.

mod http;

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use http::*;

use super::common::{Destination, Headers, Percent};
use crate::status::IstioStatus;
use crate::{Duration, StringMatch};

/// A VirtualService defines a set of traffic routing rules to apply when a host is
/// addressed.
///
/// Each rule matches traffic of one protocol (`http`, `tls`, `tcp`); the first matching rule
/// sends it to a destination service (or a subset of it) from the registry.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "VirtualService",
    plural = "virtualservices",
    namespaced,
    status = "IstioStatus",
    shortname = "vs",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting label/content routing, sni routing, etc. See https://istio.io/docs/reference/config/networking/virtual-service.html",
    printcolumn(
        name = "Gateways",
        type_ = "string",
        json_path = ".spec.gateways",
        description = "The names of gateways and sidecars that should apply these routes"
    ),
    printcolumn(
        name = "Hosts",
        type_ = "string",
        json_path = ".spec.hosts",
        description = "The destination hosts to which traffic is being sent"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the routes are accepted, resolved and reconciled by every affected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// The destination hosts to which traffic is being sent: DNS names (with an optional
    /// wildcard prefix) or IP addresses (only for gateways). Short names are qualified with
    /// the rule's namespace; prefer fully qualified names. Must be empty for a delegate
    /// VirtualService.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// The gateways and sidecars that apply these routes, as `<namespace>/<name>` or `<name>`
    /// (in the VirtualService's namespace). The reserved word `mesh` means every sidecar;
    /// when omitted, `mesh` is the default.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// An ordered list of route rules for HTTP traffic (HTTP, HTTP/2, gRPC and terminated
    /// HTTPS). The first rule matching a request is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http: Vec<HttpRoute>,
    /// An ordered list of route rules for non-terminated TLS and HTTPS traffic, routed
    /// mostly by SNI. The first matching rule is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsRoute>,
    /// An ordered list of route rules for opaque TCP traffic (any port that is not HTTP or
    /// TLS). The first matching rule is used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tcp: Vec<TcpRoute>,
    /// Namespaces to which this VirtualService is exported: `.` for its own namespace, `*`
    /// for all namespaces (the default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
}

/// Match conditions and actions for HTTP/1.1, HTTP/2 and gRPC traffic (Istio `HTTPRoute`).
///
/// A route either forwards (`route`), redirects (`redirect`), answers directly
/// (`directResponse`) or hands over to a delegate VirtualService (`delegate`): at most one
/// of these may be set.
// The large optional fields are boxed (not in the doc comment, which is the CRD's
// description): the webhook reads, and moves, every route of a VirtualService, and most
// routes set few of them. serde and schemars see through `Box`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRoute {
    /// The name of the route, for debugging; it is concatenated with the match's name in
    /// access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions that must hold for the rule to apply. Conditions within one entry are
    /// ANDed; the entries are ORed.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<HttpMatchRequest>,
    /// Weighted destinations to forward the traffic to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<HttpRouteDestination>,
    /// Answers with a redirect instead of forwarding. Exclusive with `route`,
    /// `directResponse` and `delegate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Box<HttpRedirect>>,
    /// Answers with a fixed response instead of forwarding. Exclusive with `route`,
    /// `redirect` and `delegate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_response: Option<Box<HttpDirectResponse>>,
    /// The VirtualService that defines the routes for matching traffic. Only allowed when
    /// `route` and `redirect` are empty, and in VirtualServices bound to gateways.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegate: Option<Box<Delegate>>,
    /// Rewrite of the URI and Authority header before forwarding. Not allowed with
    /// `redirect`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Box<HttpRewrite>>,
    /// Timeout for HTTP requests; default disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Retry policy for HTTP requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Box<HttpRetry>>,
    /// Fault injection applied on the client side. Timeouts and retries are not applied
    /// while a fault is injected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Box<HttpFaultInjection>>,
    /// Mirrors the traffic to another destination in addition to the intended one; the
    /// mirrored requests' responses are ignored. Mutually exclusive with `mirrors`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Box<Destination>>,
    /// Destinations to mirror the traffic to, each with its own percentage. Mutually
    /// exclusive with `mirror` and `mirrorPercentage`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mirrors: Vec<HttpMirrorPolicy>,
    /// Deprecated: use `mirrorPercentage`. Percentage (0-100) of traffic mirrored by
    /// `mirror`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percent: Option<u32>,
    /// Deprecated spelling of `mirrorPercent` that Istio's CRD still accepts.
    #[serde(
        default,
        rename = "mirror_percent",
        skip_serializing_if = "Option::is_none"
    )]
    pub mirror_percent_legacy: Option<u32>,
    /// Percentage of the traffic mirrored by `mirror`; 100 when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_percentage: Option<Percent>,
    /// Cross-Origin Resource Sharing (CORS) policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_policy: Option<Box<CorsPolicy>>,
    /// Header manipulation rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Box<Headers>>,
}

/// The VirtualService an HTTP route delegates to (Istio `Delegate`). Only one level of
/// delegation is supported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Delegate {
    /// The name of the delegate VirtualService.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace of the delegate VirtualService; default the delegating one's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Match conditions and actions for unterminated TLS and HTTPS traffic (Istio `TLSRoute`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsRoute {
    /// Conditions that must hold for the rule to apply. Conditions within one entry are
    /// ANDed; the entries are ORed.
    #[serde(rename = "match")]
    pub match_: Vec<TlsMatchAttributes>,
    /// The destinations the connection is forwarded to, with weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Match conditions and actions for opaque TCP traffic (Istio `TCPRoute`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpRoute {
    /// Conditions that must hold for the rule to apply. Conditions within one entry are
    /// ANDed; the entries are ORed.
    #[serde(default, rename = "match", skip_serializing_if = "Vec::is_empty")]
    pub match_: Vec<L4MatchAttributes>,
    /// The destinations the connection is forwarded to, with weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route: Vec<RouteDestination>,
}

/// Conditions on an HTTP request (Istio `HTTPMatchRequest`); all must hold. Cannot be empty;
/// a delegate's matches must be a subset of the root's.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpMatchRequest {
    /// The name of the match, concatenated with the route's name in access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Condition on the URI path (case-sensitive unless `ignoreUriCase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Condition on the URI scheme (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<StringMatch>,
    /// Condition on the HTTP method (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Condition on the HTTP Authority (Host) value (case-sensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<StringMatch>,
    /// Conditions on request headers. Keys must be lowercase and hyphen-separated; `uri`,
    /// `scheme`, `method` and `authority` are ignored here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, StringMatch>,
    /// The port on the host being addressed; needed only when the service exposes several
    /// ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels of the source (client) workloads the rule applies to. With gateways listed in
    /// the VirtualService, `mesh` must be among them for this to apply.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Names of gateways where the rule applies; overrides the VirtualService's `gateways`
    /// for this match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// Conditions on query parameters, e.g. `?key=true` matched by `key: {exact: "true"}`.
    /// Only `exact` and `regex` are supported.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub query_params: BTreeMap<String, StringMatch>,
    /// Whether URI matching is case-insensitive (only for `exact` and `prefix`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_uri_case: Option<bool>,
    /// Headers that must NOT match, with the same syntax as `headers`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub without_headers: BTreeMap<String, StringMatch>,
    /// The namespace of the source workloads the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
    /// A human-readable prefix for the statistics of this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_prefix: Option<String>,
}

/// One weighted destination of an HTTP route, with header manipulation (Istio
/// `HTTPRouteDestination`).
// `headers` is boxed, as in `HttpRoute`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteDestination {
    /// The service (and optionally subset and port) the request is forwarded to.
    pub destination: Destination,
    /// The relative share of traffic for this destination. Weights are relative; a single
    /// destination gets all traffic; a weight of 0 gets none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Header manipulation rules for this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Box<Headers>>,
}

/// One weighted destination of a TLS or TCP route (Istio `RouteDestination`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteDestination {
    /// The service (and optionally subset and port) the connection is forwarded to.
    pub destination: Destination,
    /// The relative share of traffic for this destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// L4 connection match attributes (Istio `L4MatchAttributes`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct L4MatchAttributes {
    /// IPv4 or IPv6 destination addresses with optional prefix length, e.g. `1.1.1.1/24`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The port on the host being addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// IPv4 or IPv6 source address with optional prefix length. Hidden from Istio's
    /// reference; kept because Istio's CRD accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_subnet: Option<String>,
    /// Labels of the source workloads the rule applies to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Names of gateways where the rule applies; overrides the VirtualService's `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// The namespace of the source workloads the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

/// TLS connection match attributes (Istio `TLSMatchAttributes`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsMatchAttributes {
    /// SNI values to match; wildcard prefixes allowed. Each must match one of the
    /// VirtualService's hosts.
    pub sni_hosts: Vec<String>,
    /// IPv4 or IPv6 destination addresses with optional prefix length.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destination_subnets: Vec<String>,
    /// The port on the host being addressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u32>,
    /// Labels of the source workloads the rule applies to.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// Names of gateways where the rule applies; overrides the VirtualService's `gateways`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<String>,
    /// The namespace of the source workloads the rule applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_namespace: Option<String>,
}

#[cfg(test)]
mod tests;
