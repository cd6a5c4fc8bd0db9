//! Types shared by several networking kinds: destinations and ports, percentages, header
//! manipulation, the label-based workload selector, connection pool settings (DestinationRule
//! and Sidecar) and server-side TLS settings (Gateway and Sidecar).
//!
//! Each type mirrors the Istio message of the same name in `istio.networking.v1`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize, Serializer};

use crate::Duration;

/// Writes a float the way Istio's protobuf JSON encoder does: an integral value without a
/// fraction (`50`, not `50.0`), anything else as a float. Keeps `value: 50` written by a user
/// unchanged through a parse/serialize round trip.
pub(crate) fn compact_f64<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    // 2^53: every integer below it is exact in an f64 and in an i64.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if value.fract() == 0.0 && value.abs() < EXACT {
        // Exact: the value is integral and within ±2^53.
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// [`compact_f64`] for optional fields (`google.protobuf.DoubleValue`).
pub(crate) fn compact_opt_f64<S: Serializer>(
    value: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => compact_f64(v, serializer),
        None => serializer.serialize_none(),
    }
}

/// Removes the type-level description from an enum's schema, so that the CRD describes an
/// enum field with the field's own doc (kube's handling of `Option<Enum>` would otherwise
/// replace it with the enum's doc). Used as `#[schemars(transform = ...)]` on every
/// networking enum.
pub(crate) fn omit_type_description(schema: &mut schemars::Schema) {
    schema.remove("description");
}

/// A port on a destination host (Istio `PortSelector`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PortSelector {
    /// Valid port number (1-65535).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// The network-addressable service a request or connection is sent to after routing
/// (Istio `Destination`).
///
/// `host` must name a service in the registry (Kubernetes services and ServiceEntry hosts).
/// Short names are resolved against the namespace of the rule, not of the service: prefer
/// fully qualified names such as `reviews.default.svc.cluster.local`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    /// The name of a service from the service registry (platform services or ServiceEntry
    /// hosts). Short names are qualified with the rule's namespace.
    pub host: String,
    /// The name of a subset within the service, declared in a DestinationRule. Applicable
    /// only to services within the mesh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    /// The port on the host that is being addressed. Required when the service exposes
    /// more than one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<PortSelector>,
}

/// A percentage in the range 0.0-100.0 (Istio `Percent`), e.g. `{value: 0.1}` for 0.1 %.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Percent {
    /// The percentage, 0.0 to 100.0; fractions are allowed.
    #[serde(default, serialize_with = "compact_f64")]
    pub value: f64,
}

/// Message headers can be manipulated when Envoy forwards requests to, or responses from, a
/// destination service (Istio `Headers`). Rules for a route apply after those of the
/// destination.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Headers {
    /// Header manipulation rules to apply before forwarding a request to the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<HeaderOperations>,
    /// Header manipulation rules to apply before returning a response to the caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<HeaderOperations>,
}

/// Header manipulation rules (Istio `Headers.HeaderOperations`), applied in the order
/// `set`, `add`, `remove`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderOperations {
    /// Overwrite the headers specified by key with the given values.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    /// Append the given values to the headers specified by keys (creating a comma-separated
    /// list of values).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    /// Remove the specified headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Selects the pods or VMs a Sidecar or a ServiceEntry applies to, by labels (Istio
/// `networking.v1.WorkloadSelector`, whose key is `labels`).
///
/// Not to be confused with [`crate::selector::WorkloadSelector`] (`matchLabels`), used by
/// DestinationRule and the security kinds.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// One or more labels that indicate a specific set of pods/VMs on which the configuration
    /// should be applied. The scope of label search is restricted to the configuration
    /// namespace in which the resource is present.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Connection pool settings for an upstream host (Istio `ConnectionPoolSettings`), applied to
/// each individual host. Used by DestinationRule traffic policies and, for inbound
/// connections, by Sidecar.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionPoolSettings {
    /// Settings common to both HTTP and TCP upstream connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpSettings>,
    /// HTTP connection pool settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpSettings>,
}

/// Settings common to both HTTP and TCP upstream connections (Istio
/// `ConnectionPoolSettings.TCPSettings`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpSettings {
    /// Maximum number of HTTP/1 or TCP connections to a destination host. Default 2^32-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<i32>,
    /// TCP connection timeout (e.g. `30ms`). Must be at least 1ms. Default 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<Duration>,
    /// If set, SO_KEEPALIVE is set on the socket to enable TCP keepalives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// The maximum duration of a connection, measured from when it was established; the
    /// connection is drained and closed when reached. Unset means no limit. Must be at
    /// least 1ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_duration: Option<Duration>,
    /// The idle timeout for TCP connections: the time without any bytes sent or received.
    /// Default 1h; `0s` disables it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

/// TCP keepalive settings (Istio `ConnectionPoolSettings.TCPSettings.TcpKeepalive`). Unset
/// fields use the operating system's defaults.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpKeepalive {
    /// Maximum number of keepalive probes to send without response before deciding the
    /// connection is dead (Linux default 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probes: Option<u32>,
    /// The time a connection needs to be idle before keepalive probes start being sent
    /// (Linux default 2 hours).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Duration>,
    /// The time between keepalive probes (Linux default 75s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
}

/// HTTP connection pool settings (Istio `ConnectionPoolSettings.HTTPSettings`), for
/// HTTP/1.1, HTTP/2 and gRPC connections.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpSettings {
    /// Maximum number of requests queued while waiting for a ready connection pool
    /// connection. Default 2^32-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http1_max_pending_requests: Option<i32>,
    /// Maximum number of active requests to a destination. Default 2^32-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2_max_requests: Option<i32>,
    /// Maximum number of requests per connection to a backend. 1 disables keep-alive; 0
    /// means unlimited (up to 2^29).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_requests_per_connection: Option<i32>,
    /// Maximum number of retries that can be outstanding to all hosts in a cluster at a
    /// given time. Default 2^32-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    /// The idle timeout for upstream connection pool connections: the time without active
    /// requests. Default 1h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
    /// Whether HTTP/1.1 connections to the destination are upgraded to HTTP/2: `DEFAULT`
    /// (the mesh-wide setting), `DO_NOT_UPGRADE` or `UPGRADE`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<H2UpgradePolicy>,
    /// If true, the client's protocol (HTTP/1.1 or HTTP/2) is preserved when connecting to
    /// the backend; `h2UpgradePolicy` has no effect then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_client_protocol: Option<bool>,
    /// The maximum number of concurrent streams allowed for a peer on one HTTP/2
    /// connection. Default 2^31-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_streams: Option<i32>,
}

/// Whether HTTP/1.1 connections are upgraded to HTTP/2 (Istio
/// `ConnectionPoolSettings.HTTPSettings.H2UpgradePolicy`): `DEFAULT` (use the mesh-wide
/// setting), `DO_NOT_UPGRADE` or `UPGRADE`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum H2UpgradePolicy {
    /// Use the global (mesh-wide) default.
    #[default]
    Default,
    /// Do not upgrade the connection to HTTP/2.
    DoNotUpgrade,
    /// Upgrade the connection to HTTP/2.
    Upgrade,
}

/// TLS settings of a server (Istio `ServerTLSSettings`): a Gateway server, or a Sidecar
/// ingress listener terminating TLS for traffic from outside the mesh.
///
/// Only one of `serverCertificate`/`privateKey`, `credentialName`, `credentialNames` or
/// `tlsCertificates` may be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerTlsSettings {
    /// If true, the server sends a 301 redirect for all HTTP connections, asking clients to
    /// use HTTPS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https_redirect: Option<bool>,
    /// Whether connections to this port are secured with TLS: `PASSTHROUGH` (routed by SNI,
    /// not terminated), `SIMPLE`, `MUTUAL` (client certificate required), `OPTIONAL_MUTUAL`
    /// (client certificate optional), `AUTO_PASSTHROUGH` (destination encoded in the SNI, no
    /// VirtualService needed) or `ISTIO_MUTUAL` (Istio's workload certificates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ServerTlsMode>,
    /// The path to the file holding the server-side TLS certificate. Required when mode is
    /// `SIMPLE` or `MUTUAL` and no credential is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// The path to the file holding the server's private key. Required when mode is
    /// `SIMPLE` or `MUTUAL` and no credential is named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The path to a file holding certificate authority certificates used to verify a
    /// presented client certificate. Required when mode is `MUTUAL` or `OPTIONAL_MUTUAL`
    /// unless a credential provides them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// The path to the certificate revocation list (CRL) used to verify a presented client
    /// certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_crl: Option<String>,
    /// For gateways on Kubernetes, the name of the secret holding the TLS certificate, key
    /// and (for mutual TLS) the CA certificates. Replaces the file paths above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_name: Option<String>,
    /// Like `credentialName`, for up to two certificates of different types (e.g. RSA and
    /// ECDSA), so clients pick one they support.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credential_names: Vec<String>,
    /// For mutual TLS, the name of the secret or configmap holding the CA certificates used
    /// to verify client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_credential_name: Option<String>,
    /// Up to two certificate/key pairs given as file paths (e.g. RSA and ECDSA).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tls_certificates: Vec<TlsCertificate>,
    /// Alternate names accepted as the subject identity of the certificate presented by the
    /// client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_alt_names: Vec<String>,
    /// Base64-encoded SHA-256 hashes of the SPKIs of authorized client certificates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_spki: Vec<String>,
    /// Hex-encoded SHA-256 hashes of authorized client certificates; colons are allowed
    /// between bytes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify_certificate_hash: Vec<String>,
    /// Minimum TLS protocol version: `TLS_AUTO`, `TLSV1_0`, `TLSV1_1`, `TLSV1_2` or
    /// `TLSV1_3`. Default TLS 1.2 for servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<TlsProtocol>,
    /// Maximum TLS protocol version: `TLS_AUTO`, `TLSV1_0`, `TLSV1_1`, `TLSV1_2` or
    /// `TLSV1_3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_protocol_version: Option<TlsProtocol>,
    /// If set, only these cipher suites are offered (OpenSSL/BoringSSL names). Default:
    /// Envoy's list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cipher_suites: Vec<String>,
}

/// One server certificate given by file paths (Istio `ServerTLSSettings.TLSCertificate`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsCertificate {
    /// The path to the file holding the server-side TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_certificate: Option<String>,
    /// The path to the file holding the server's private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key: Option<String>,
    /// The path to a file holding CA certificates used to verify client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
}

/// How a server port handles TLS (Istio `ServerTLSSettings.TLSmode`): `PASSTHROUGH`,
/// `SIMPLE`, `MUTUAL`, `AUTO_PASSTHROUGH`, `ISTIO_MUTUAL` or `OPTIONAL_MUTUAL`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerTlsMode {
    /// Forward the connection upstream as is, routing on the SNI value.
    #[default]
    Passthrough,
    /// Terminate TLS with standard (server-authenticated) TLS.
    Simple,
    /// Terminate TLS and require a client certificate.
    Mutual,
    /// Like passthrough, with the destination encoded in the SNI value; no VirtualService
    /// is needed. Used by east-west gateways.
    AutoPassthrough,
    /// Terminate with Istio's mutual TLS certificates (workload identity).
    IstioMutual,
    /// Like `MUTUAL`, but a client certificate is optional.
    OptionalMutual,
}

/// A TLS protocol version (Istio `ServerTLSSettings.TLSProtocol`): `TLS_AUTO`, `TLSV1_0`,
/// `TLSV1_1`, `TLSV1_2` or `TLSV1_3`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[schemars(transform = crate::networking::common::omit_type_description)]
pub enum TlsProtocol {
    /// Let the proxy choose the optimal version.
    #[default]
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    /// TLS 1.0.
    #[serde(rename = "TLSV1_0")]
    Tlsv1_0,
    /// TLS 1.1.
    #[serde(rename = "TLSV1_1")]
    Tlsv1_1,
    /// TLS 1.2.
    #[serde(rename = "TLSV1_2")]
    Tlsv1_2,
    /// TLS 1.3.
    #[serde(rename = "TLSV1_3")]
    Tlsv1_3,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_keeps_integers_integral() {
        let p: Percent = serde_json::from_str(r#"{"value": 50}"#).unwrap();
        assert_eq!(p.value, 50.0);
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"value":50}"#);
        let p: Percent = serde_json::from_str(r#"{"value": 0.1}"#).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"value":0.1}"#);
    }

    #[test]
    fn tls_protocol_spelling() {
        let v: TlsProtocol = serde_json::from_str(r#""TLSV1_2""#).unwrap();
        assert_eq!(v, TlsProtocol::Tlsv1_2);
        assert_eq!(
            serde_json::to_string(&TlsProtocol::TlsAuto).unwrap(),
            r#""TLS_AUTO""#
        );
        assert!(serde_json::from_str::<TlsProtocol>(r#""TLS_V1_2""#).is_err());
    }

    #[test]
    fn server_tls_mode_spelling() {
        for (text, mode) in [
            ("PASSTHROUGH", ServerTlsMode::Passthrough),
            ("AUTO_PASSTHROUGH", ServerTlsMode::AutoPassthrough),
            ("ISTIO_MUTUAL", ServerTlsMode::IstioMutual),
            ("OPTIONAL_MUTUAL", ServerTlsMode::OptionalMutual),
        ] {
            let parsed: ServerTlsMode = serde_json::from_value(text.into()).unwrap();
            assert_eq!(parsed, mode);
            assert_eq!(serde_json::to_value(mode).unwrap(), text);
        }
    }

    #[test]
    fn connection_pool_durations_and_enums() {
        let pool: ConnectionPoolSettings = serde_json::from_value(serde_json::json!({
            "tcp": {"connectTimeout": "30ms", "tcpKeepalive": {"time": "7200s", "interval": "75s"}},
            "http": {"h2UpgradePolicy": "DO_NOT_UPGRADE", "idleTimeout": "1h"}
        }))
        .unwrap();
        let tcp = pool.tcp.as_ref().unwrap();
        assert_eq!(
            tcp.connect_timeout.as_ref().unwrap().as_std(),
            std::time::Duration::from_millis(30)
        );
        let http = pool.http.as_ref().unwrap();
        assert_eq!(http.h2_upgrade_policy, Some(H2UpgradePolicy::DoNotUpgrade));
        assert!(
            serde_json::from_value::<ConnectionPoolSettings>(
                serde_json::json!({"tcp": {"connectTimeout": "30"}})
            )
            .is_err()
        );
    }
}
