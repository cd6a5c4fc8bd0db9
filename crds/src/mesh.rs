//! Weft's own `Mesh` kind (`mesh.weft.dev/v1alpha1`): the mesh-wide settings, one object per
//! cluster.
//!
//! The settings mirror Istio's `MeshConfig` (and `ProxyConfig` for the sidecar) where Istio has
//! an equivalent, with Istio's names and defaults; Weft-only settings (certificate lifetimes,
//! debounce) take the values of the Istio environment variables that control the same thing.
//! Every field is optional: read the effective value through the accessors on [`MeshSpec`],
//! which apply the documented defaults, and check it with [`MeshSpec::validate`].

mod settings;
mod status;
mod validation;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;

pub use settings::*;
pub use status::{
    CONDITION_CERTIFICATE_AUTHORITY_READY, CONDITION_DISCOVERY_READY, CONDITION_READY,
    CONDITION_WEBHOOKS_READY, MeshStatus,
};
pub use validation::MeshError;

/// The API group of Weft's own kinds.
pub const GROUP: &str = "mesh.weft.dev";
/// The only served (and storage) version of the `Mesh` kind.
pub const VERSION: &str = "v1alpha1";
/// The name the operator looks for: the cluster's single `Mesh` object is called `default`.
pub const DEFAULT_NAME: &str = "default";

/// Default SPIFFE trust domain, as Istio's `MeshConfig.trustDomain`.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";
/// Default root namespace, as Istio's `MeshConfig.rootNamespace`.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// The mesh-wide settings of a Weft mesh.
///
/// Cluster-scoped; the operator reads the object named `default`.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "mesh.weft.dev",
    version = "v1alpha1",
    kind = "Mesh",
    plural = "meshes",
    status = "MeshStatus",
    category = "weft",
    doc = "The mesh-wide settings of a Weft mesh.",
    printcolumn(
        name = "Trust Domain",
        type_ = "string",
        json_path = ".spec.trustDomain",
        description = "The SPIFFE trust domain of the mesh's workload identities."
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the mesh settings are accepted and applied by the operator."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshSpec {
    /// The trust domain of the mesh's SPIFFE identities (`spiffe://<trustDomain>/ns/<ns>/sa/<sa>`),
    /// as Istio's `MeshConfig.trustDomain`. Default `cluster.local`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    /// The namespace whose policies apply mesh-wide and where the root certificate is
    /// published, as Istio's `MeshConfig.rootNamespace`. Default `istio-system`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    /// Lifetimes and rotation of the mesh CA's certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificateSettings>,
    /// The sidecar proxy injected into workloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy: Option<ProxySettings>,
    /// What the sidecars do with traffic to destinations outside the service registry, as
    /// Istio's `MeshConfig.outboundTrafficPolicy`. Default mode `ALLOW_ANY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<OutboundTrafficPolicy>,
    /// How configuration pushes to the proxies are batched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<DebounceSettings>,
    /// The proxies' access logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log: Option<AccessLogSettings>,
    /// The proxies' distributed tracing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSettings>,
    /// The `host:port` of the discovery (xDS) and certificate service the proxies connect to,
    /// as Istio's `ProxyConfig.discoveryAddress`. Default: the operator's own Service,
    /// `weft-operator.<rootNamespace>.svc:15012`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_address: Option<String>,
}

/// The name of the operator's discovery Service, used to build the default discovery address.
pub const DISCOVERY_SERVICE: &str = "weft-operator";
/// The port of the discovery service: Istio's secure xDS port 15012.
pub const DISCOVERY_PORT: u16 = 15012;

impl MeshSpec {
    /// The trust domain: `trustDomain`, or [`DEFAULT_TRUST_DOMAIN`] (`cluster.local`).
    pub fn trust_domain(&self) -> &str {
        self.trust_domain.as_deref().unwrap_or(DEFAULT_TRUST_DOMAIN)
    }

    /// The root namespace: `rootNamespace`, or [`DEFAULT_ROOT_NAMESPACE`] (`istio-system`).
    pub fn root_namespace(&self) -> &str {
        self.root_namespace
            .as_deref()
            .unwrap_or(DEFAULT_ROOT_NAMESPACE)
    }

    /// Lifetime of workload certificates: `certificates.workloadCertTtl`, or 24 h
    /// ([`DEFAULT_WORKLOAD_CERT_TTL`], Istio's `DEFAULT_WORKLOAD_CERT_TTL`).
    pub fn workload_cert_ttl(&self) -> std::time::Duration {
        self.certificates
            .as_ref()
            .and_then(|c| c.workload_cert_ttl.as_ref())
            .map_or(DEFAULT_WORKLOAD_CERT_TTL, Duration::as_std)
    }

    /// The fraction of a workload certificate's lifetime after which it is renewed:
    /// `certificates.rotateAtFraction`, or 0.5 ([`DEFAULT_ROTATE_AT_FRACTION`]). The schema
    /// bounds it to `0..=1`; callers clamp it again before use.
    pub fn rotate_at_fraction(&self) -> f64 {
        self.certificates
            .as_ref()
            .and_then(|c| c.rotate_at_fraction)
            .unwrap_or(DEFAULT_ROTATE_AT_FRACTION)
    }

    /// Lifetime of the self-signed root certificate: `certificates.rootCertTtl`, or 10 years
    /// (87600 h, [`DEFAULT_ROOT_CERT_TTL`], Istio's `CITADEL_SELF_SIGNED_CA_CERT_TTL`).
    pub fn root_cert_ttl(&self) -> std::time::Duration {
        self.certificates
            .as_ref()
            .and_then(|c| c.root_cert_ttl.as_ref())
            .map_or(DEFAULT_ROOT_CERT_TTL, Duration::as_std)
    }

    /// The proxy image, when set (`proxy.image`). `None` means the operator's own release
    /// image, which only the operator knows.
    pub fn proxy_image(&self) -> Option<&str> {
        self.proxy.as_ref().and_then(|p| p.image.as_deref())
    }

    /// The proxy container's resources with every unset quantity replaced by Istio's sidecar
    /// default ([`DEFAULT_PROXY_CPU_REQUEST`] and friends).
    pub fn proxy_resources(&self) -> EffectiveResources {
        let res = self.proxy.as_ref().and_then(|p| p.resources.as_ref());
        let pick = |list: Option<&ResourceList>, cpu: bool, default: &str| -> String {
            list.and_then(|l| if cpu { l.cpu.clone() } else { l.memory.clone() })
                .unwrap_or_else(|| default.to_string())
        };
        let requests = res.and_then(|r| r.requests.as_ref());
        let limits = res.and_then(|r| r.limits.as_ref());
        EffectiveResources {
            cpu_request: pick(requests, true, DEFAULT_PROXY_CPU_REQUEST),
            memory_request: pick(requests, false, DEFAULT_PROXY_MEMORY_REQUEST),
            cpu_limit: pick(limits, true, DEFAULT_PROXY_CPU_LIMIT),
            memory_limit: pick(limits, false, DEFAULT_PROXY_MEMORY_LIMIT),
        }
    }

    /// Whether the proxy runs as a Kubernetes native sidecar (an init container with
    /// `restartPolicy: Always`): `proxy.nativeSidecars`, or false (Istio's
    /// `ENABLE_NATIVE_SIDECARS` default).
    pub fn native_sidecars(&self) -> bool {
        self.proxy
            .as_ref()
            .and_then(|p| p.native_sidecars)
            .unwrap_or(false)
    }

    /// Whether application containers wait for the proxy to be ready:
    /// `proxy.holdApplicationUntilProxyStarts`, or false (Istio's default).
    pub fn hold_application_until_proxy_starts(&self) -> bool {
        self.proxy
            .as_ref()
            .and_then(|p| p.hold_application_until_proxy_starts)
            .unwrap_or(false)
    }

    /// The outbound traffic policy mode: `outboundTrafficPolicy.mode`, or `ALLOW_ANY`
    /// (Istio's default).
    pub fn outbound_traffic_mode(&self) -> OutboundTrafficPolicyMode {
        self.outbound_traffic_policy
            .as_ref()
            .and_then(|p| p.mode)
            .unwrap_or_default()
    }

    /// The quiet period after a change before a push: `debounce.debounceAfter`, or 100 ms
    /// (Istio's `PILOT_DEBOUNCE_AFTER`).
    pub fn debounce_after(&self) -> std::time::Duration {
        self.debounce
            .as_ref()
            .and_then(|d| d.debounce_after.as_ref())
            .map_or(DEFAULT_DEBOUNCE_AFTER, Duration::as_std)
    }

    /// The longest a change may wait for a push: `debounce.debounceMax`, or 10 s (Istio's
    /// `PILOT_DEBOUNCE_MAX`).
    pub fn debounce_max(&self) -> std::time::Duration {
        self.debounce
            .as_ref()
            .and_then(|d| d.debounce_max.as_ref())
            .map_or(DEFAULT_DEBOUNCE_MAX, Duration::as_std)
    }

    /// The access-log settings with defaults applied: disabled, `TEXT`, `/dev/stdout`
    /// (Istio's `accessLogFile`/`accessLogEncoding` defaults once logging is on).
    pub fn access_log(&self) -> EffectiveAccessLog {
        let a = self.access_log.as_ref();
        EffectiveAccessLog {
            enabled: a.and_then(|a| a.enabled).unwrap_or(false),
            encoding: a.and_then(|a| a.encoding).unwrap_or_default(),
            file: a
                .and_then(|a| a.file.clone())
                .unwrap_or_else(|| DEFAULT_ACCESS_LOG_FILE.to_string()),
        }
    }

    /// The percentage (0–100) of requests traced: `tracing.sampling`, or 1.0 (Istio's
    /// `ProxyConfig.tracing.sampling` default).
    pub fn tracing_sampling(&self) -> f64 {
        self.tracing
            .as_ref()
            .and_then(|t| t.sampling)
            .unwrap_or(DEFAULT_TRACING_SAMPLING)
    }

    /// The trace-context propagation format: `tracing.propagation`, or `W3C`.
    pub fn tracing_propagation(&self) -> TracePropagation {
        self.tracing
            .as_ref()
            .and_then(|t| t.propagation)
            .unwrap_or_default()
    }

    /// The discovery address: `discoveryAddress`, or
    /// `weft-operator.<rootNamespace>.svc:15012` ([`DISCOVERY_SERVICE`], [`DISCOVERY_PORT`]).
    pub fn discovery_address(&self) -> String {
        match &self.discovery_address {
            Some(address) => address.clone(),
            None => format!(
                "{DISCOVERY_SERVICE}.{}.svc:{DISCOVERY_PORT}",
                self.root_namespace()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::from_yaml;

    fn mesh(spec: &str) -> MeshSpec {
        let m: Mesh = from_yaml(&format!(
            "apiVersion: mesh.weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{name: default}}\nspec: {spec}\n"
        ))
        .unwrap();
        m.spec
    }

    #[test]
    fn empty_spec_gives_istio_defaults() {
        let s = mesh("{}");
        assert_eq!(s.trust_domain(), "cluster.local");
        assert_eq!(s.root_namespace(), "istio-system");
        assert_eq!(
            s.workload_cert_ttl(),
            std::time::Duration::from_secs(24 * 3600)
        );
        assert_eq!(s.rotate_at_fraction(), 0.5);
        assert_eq!(
            s.root_cert_ttl(),
            std::time::Duration::from_secs(87600 * 3600)
        );
        assert_eq!(s.proxy_image(), None);
        let r = s.proxy_resources();
        assert_eq!(
            (r.cpu_request.as_str(), r.memory_request.as_str()),
            ("100m", "128Mi")
        );
        assert_eq!(
            (r.cpu_limit.as_str(), r.memory_limit.as_str()),
            ("2000m", "1024Mi")
        );
        assert!(!s.native_sidecars());
        assert!(!s.hold_application_until_proxy_starts());
        assert_eq!(
            s.outbound_traffic_mode(),
            OutboundTrafficPolicyMode::AllowAny
        );
        assert_eq!(s.debounce_after(), std::time::Duration::from_millis(100));
        assert_eq!(s.debounce_max(), std::time::Duration::from_secs(10));
        let log = s.access_log();
        assert!(!log.enabled);
        assert_eq!(log.encoding, AccessLogEncoding::Text);
        assert_eq!(log.file, "/dev/stdout");
        assert_eq!(s.tracing_sampling(), 1.0);
        assert_eq!(s.tracing_propagation(), TracePropagation::W3c);
        assert_eq!(
            s.discovery_address(),
            "weft-operator.istio-system.svc:15012"
        );
    }

    #[test]
    fn set_values_override_defaults() {
        let s = mesh(
            "{trustDomain: example.org, rootNamespace: mesh-root, certificates: {workloadCertTtl: 1h, rotateAtFraction: 0.8, rootCertTtl: 8760h}, proxy: {image: 'r/p:1', resources: {limits: {memory: 512Mi}}, nativeSidecars: true, holdApplicationUntilProxyStarts: true}, outboundTrafficPolicy: {mode: REGISTRY_ONLY}, debounce: {debounceAfter: 50ms, debounceMax: 2s}, accessLog: {enabled: true, encoding: JSON, file: /var/log/a.log}, tracing: {sampling: 12.5, propagation: B3}}",
        );
        assert_eq!(s.trust_domain(), "example.org");
        assert_eq!(s.workload_cert_ttl(), std::time::Duration::from_secs(3600));
        assert_eq!(s.rotate_at_fraction(), 0.8);
        assert_eq!(
            s.root_cert_ttl(),
            std::time::Duration::from_secs(8760 * 3600)
        );
        assert_eq!(s.proxy_image(), Some("r/p:1"));
        let r = s.proxy_resources();
        assert_eq!(r.memory_limit, "512Mi");
        assert_eq!(r.cpu_limit, "2000m", "unset quantities keep their default");
        assert!(s.native_sidecars() && s.hold_application_until_proxy_starts());
        assert_eq!(
            s.outbound_traffic_mode(),
            OutboundTrafficPolicyMode::RegistryOnly
        );
        assert_eq!(s.debounce_after(), std::time::Duration::from_millis(50));
        assert_eq!(s.debounce_max(), std::time::Duration::from_secs(2));
        let log = s.access_log();
        assert!(log.enabled);
        assert_eq!(log.encoding, AccessLogEncoding::Json);
        assert_eq!(log.file, "/var/log/a.log");
        assert_eq!(s.tracing_sampling(), 12.5);
        assert_eq!(s.tracing_propagation(), TracePropagation::B3);
        assert_eq!(s.discovery_address(), "weft-operator.mesh-root.svc:15012");
    }

    #[test]
    fn unknown_field_names_the_path() {
        let err = from_yaml::<Mesh>(
            "apiVersion: mesh.weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\nspec: {proxy: {imag: x}}\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("spec.proxy.imag"));
    }
}
