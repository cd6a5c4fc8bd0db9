//! `DestinationRule` (networking.istio.io): policies applied to traffic for a service after
//! routing has occurred — load balancing, connection pool sizes, outlier detection, upstream
//! TLS — and the named subsets (versions) of the service.
//!
//! Field for field as Istio's reference documents `networking.v1.DestinationRule`.

mod load_balancer;

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use load_balancer::*;

use super::common::{ConnectionPoolSettings, PortSelector, compact_opt_f64};
use crate::Duration;
use crate::selector::WorkloadSelector;
use crate::status::IstioStatus;

/// DestinationRule defines policies that apply to traffic intended for a service after
/// routing has occurred.
///
/// The rule applies to `host`; policies of a subset override the top-level policy for that
/// subset, and port-level settings override the policy for that port.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "networking.istio.io",
    version = "v1",
    kind = "DestinationRule",
    plural = "destinationrules",
    namespaced,
    status = "IstioStatus",
    shortname = "dr",
    category = "istio-io",
    category = "networking-istio-io",
    doc = "Configuration affecting load balancing, outlier detection, etc. See https://istio.io/docs/reference/config/networking/destination-rule.html",
    printcolumn(
        name = "Host",
        type_ = "string",
        json_path = ".spec.host",
        description = "The name of a service from the service registry"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the rule is accepted, resolved and reconciled by every affected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DestinationRuleSpec {
    /// The name of a service from the service registry: a Kubernetes service, a ServiceEntry
    /// host, or a wildcard such as `*.example.com`. Short names are qualified with the rule's
    /// namespace; prefer fully qualified names.
    pub host: String,
    /// Traffic policies to apply (load balancing policy, connection pool sizes, outlier
    /// detection, TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
    /// One or more named sets that represent individual versions of a service. Traffic
    /// policies can be overridden at subset level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<Subset>,
    /// Namespaces to which this rule is exported: `.` for the rule's own namespace, `*` for
    /// all namespaces (the default), or namespace names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_to: Vec<String>,
    /// Criteria used to select the pods/VMs this rule applies to (on the client side). Only
    /// honoured for rules in the workload's own namespace; without it the rule applies to
    /// every workload it is exported to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_selector: Option<WorkloadSelector>,
}

impl DestinationRuleSpec {
    /// Every `tls` block of the rule, where Istio lets one be set: the top-level
    /// `trafficPolicy.tls`, its `portLevelSettings[].tls`, then each subset's `trafficPolicy`
    /// likewise (Istio `DestinationRule`, `TrafficPolicy.tls`, `PortTrafficPolicy.tls`). Takes
    /// nothing; returns the blocks in that order, borrowed.
    pub fn client_tls_settings(&self) -> impl Iterator<Item = &ClientTlsSettings> {
        self.traffic_policy
            .iter()
            .chain(
                self.subsets
                    .iter()
                    .filter_map(|subset| subset.traffic_policy.as_ref()),
            )
            .flat_map(|policy| {
                policy.tls.iter().chain(
                    policy
                        .port_level_settings
                        .iter()
                        .filter_map(|level| level.tls.as_ref()),
                )
            })
    }
}

/// Traffic policies to apply for a destination across all ports, or for a subset (Istio
/// `TrafficPolicy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrafficPolicy {
    /// Settings controlling the load balancer algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Settings controlling the volume of connections to an upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Settings controlling eviction of unhealthy hosts from the load balancing pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS related settings for connections to the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
    /// Traffic policies specific to individual ports; they override the destination-level
    /// settings for that port, field by field group (a port-level `loadBalancer` replaces the
    /// whole top-level `loadBalancer`). At most 4096 entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_level_settings: Vec<PortTrafficPolicy>,
    /// Tunnelling of TCP over another transport or application layer (HTTP CONNECT or POST)
    /// for the host of this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<TunnelSettings>,
    /// The upstream PROXY protocol settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<ProxyProtocol>,
    /// A limit on concurrent retries in relation to the number of active requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<RetryBudget>,
}

/// Traffic policies that apply to one port of the service (Istio
/// `TrafficPolicy.PortTrafficPolicy`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortTrafficPolicy {
    /// The number of the port on the destination service this policy applies to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
    /// Settings controlling the load balancer algorithms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSettings>,
    /// Settings controlling the volume of connections to an upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_pool: Option<ConnectionPoolSettings>,
    /// Settings controlling eviction of unhealthy hosts from the load balancing pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outlier_detection: Option<OutlierDetection>,
    /// TLS related settings for connections to the upstream service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTlsSettings>,
}

/// Tunnelling settings (Istio `TrafficPolicy.TunnelSettings`): the downstream TCP connection
/// is carried to `targetHost:targetPort` through the destination acting as a proxy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TunnelSettings {
    /// The tunnelling protocol: `CONNECT` (default) or `POST`; both over HTTP/1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// The host (IP or DNS name) to which the downstream connection is tunnelled.
    pub target_host: String,
    /// The port to which the downstream connection is tunnelled.
    pub target_port: u32,
}

/// Upstream PROXY protocol settings (Istio `TrafficPolicy.ProxyProtocol`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyProtocol {
    /// The PROXY protocol version to use: `V1` (human readable) or `V2` (binary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<ProxyProtocolVersion>,
}

/// The PROXY protocol version (Istio `TrafficPolicy.ProxyProtocol.VERSION`): `V1` (text) or
/// `V2` (binary).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
pub enum ProxyProtocolVersion {
    /// PROXY protocol version 1, human readable.
    #[default]
    V1,
    /// PROXY protocol version 2, binary.
    V2,
}

/// Retry budget (Istio `TrafficPolicy.RetryBudget`): caps concurrent retries as a share of
/// active requests, instead of the fixed `maxRetries` of the connection pool.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryBudget {
    /// The limit on concurrent retries, as a percentage (0-100) of active plus pending
    /// requests. Default 20.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "compact_opt_f64"
    )]
    pub percent: Option<f64>,
    /// The minimum retry concurrency always allowed, whatever the percentage. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_retry_concurrency: Option<u32>,
}

/// A subset of endpoints of a service (Istio `Subset`), e.g. one version for A/B testing or
/// canary rollouts, selected by labels, with its own traffic policy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Subset {
    /// Name of the subset, used in route destinations. Must be a DNS label (alphanumerics
    /// and `-`).
    pub name: String,
    /// Labels that filter the endpoints of the service in the registry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Traffic policies for this subset. They inherit nothing from the rule's top-level
    /// policy: fields not set here take their defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_policy: Option<TrafficPolicy>,
}

/// Circuit breaking that tracks the status of each host and ejects hosts that keep failing
/// (Istio `OutlierDetection`).
///
/// For HTTP, 5xx responses (or, with `consecutiveGatewayErrors`, 502/503/504) count as
/// errors; for TCP, connection timeouts and failures.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutlierDetection {
    /// Deprecated: use `consecutive5xxErrors` or `consecutiveGatewayErrors`. Number of
    /// errors before a host is ejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_errors: Option<i32>,
    /// Whether locally originated failures (timeouts, resets, connection failures) are
    /// counted apart from errors returned by the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_external_local_origin_errors: Option<bool>,
    /// The number of consecutive locally originated failures before ejection. Only used
    /// when `splitExternalLocalOriginErrors` is true. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_local_origin_failures: Option<u32>,
    /// Number of gateway errors (502, 503, 504, or connect failures for TCP) before a host
    /// is ejected. `0` disables this check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_gateway_errors: Option<u32>,
    /// Number of 5xx errors (or connect failures for TCP) before a host is ejected. Default
    /// 5; `0` disables this check.
    #[serde(
        default,
        rename = "consecutive5xxErrors",
        skip_serializing_if = "Option::is_none"
    )]
    pub consecutive_5xx_errors: Option<u32>,
    /// Time between ejection sweep analyses. At least 1ms; default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Minimum ejection duration; a host stays ejected for this times the number of times it
    /// was ejected. At least 1ms; default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection_time: Option<Duration>,
    /// Maximum percentage of hosts in the load balancing pool that can be ejected. Default
    /// 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection_percent: Option<i32>,
    /// Outlier detection is enabled only while at least this percentage of hosts is healthy.
    /// Default 0 (always enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_health_percent: Option<i32>,
}

/// TLS settings for upstream connections (Istio `ClientTLSSettings`), applicable to HTTP and
/// TCP upstreams.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientTlsSettings {
    /// Whether connections to this port are secured with TLS: `DISABLE`, `SIMPLE` (TLS
    /// origination), `MUTUAL` (with the client certificate given here) or `ISTIO_MUTUAL`
    /// (with Istio's workload certificates; the certificate fields must then be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ClientTlsMode>,
    /// The path to the file holding the client-side TLS certificate. Required when mode is
    /// `MUTUAL` and `credentialName` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The path to the file holding the client's private key. Required when mode is
    /// `MUTUAL` and `credentialName` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The path to a file holding CA certificates used to verify the server certificate.
    /// Without it (and without `credentialName`), the server certificate is not verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// The name of the secret holding the client certificate, key and CA certificates.
    /// Only for DestinationRules that apply to gateways (egress gateway TLS origination).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Alternate names accepted as the subject identity of the server certificate. When set,
    /// they override the `subjectAltNames` of the ServiceEntry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// SNI to present to the server during the TLS handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// Whether the proxy skips verifying the CA signature and SAN of the server
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// The path to the certificate revocation list (CRL) used to verify the server
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
}

/// How upstream connections use TLS (Istio `ClientTLSSettings.TLSmode`): `DISABLE`,
/// `SIMPLE`, `MUTUAL` or `ISTIO_MUTUAL`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientTlsMode {
    /// Do not set up a TLS connection to the upstream.
    #[default]
    Disable,
    /// Originate a TLS connection to the upstream.
    Simple,
    /// Originate mutual TLS, presenting the configured client certificate.
    Mutual,
    /// Originate mutual TLS with Istio's workload certificates; the other certificate
    /// fields must be empty.
    IstioMutual,
}

#[cfg(test)]
mod tests;
