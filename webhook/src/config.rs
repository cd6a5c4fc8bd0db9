//! The mesh settings the injector needs.
//!
//! `weft-operator` fills an [`InjectionConfig`] from the `Mesh` resource; until then
//! [`InjectionConfig::default`] gives Istio's defaults (the `values.global.proxy` block of
//! Istio's injection template).

/// The proxy's (and `istio-init`'s) resource requests and limits, as Kubernetes quantity
/// strings (`100m`, `128Mi`). `None` leaves the field unset.
///
/// Mirrors Istio's `values.global.proxy.resources`; each field can be overridden per pod by the
/// annotations `sidecar.istio.io/proxyCPU`, `proxyMemory`, `proxyCPULimit` and
/// `proxyMemoryLimit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyResources {
    /// CPU request (Istio default `100m`).
    pub cpu_request: Option<String>,
    /// Memory request (Istio default `128Mi`).
    pub memory_request: Option<String>,
    /// CPU limit (Istio default `2000m`).
    pub cpu_limit: Option<String>,
    /// Memory limit (Istio default `1024Mi`).
    pub memory_limit: Option<String>,
}

impl Default for ProxyResources {
    /// Istio's defaults: requests `100m` CPU and `128Mi` memory, limits `2000m` and `1024Mi`.
    fn default() -> Self {
        Self {
            cpu_request: Some("100m".to_string()),
            memory_request: Some("128Mi".to_string()),
            cpu_limit: Some("2000m".to_string()),
            memory_limit: Some("1024Mi".to_string()),
        }
    }
}

/// Everything the injector needs to know about the mesh, independent of any one pod.
///
/// A plain value: build it once (from the `Mesh` resource) and share it by reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectionConfig {
    /// Image of `weft-proxy`, used for both `istio-init` and `istio-proxy` (Istio's
    /// `values.global.proxy.image`). Overridden per pod by `sidecar.istio.io/proxyImage`.
    pub proxy_image: String,
    /// `imagePullPolicy` of the injected containers (`Always`, `IfNotPresent`, `Never`; Istio's
    /// `values.global.imagePullPolicy`). `None` leaves it to Kubernetes.
    pub image_pull_policy: Option<String>,
    /// Resources of the injected containers.
    pub resources: ProxyResources,
    /// Inject the proxy as a Kubernetes native sidecar (an init container with
    /// `restartPolicy: Always`), as Istio's `ENABLE_NATIVE_SIDECARS`. Default `false`.
    pub native_sidecars: bool,
    /// Start application containers only once the proxy is ready (Istio's
    /// `ProxyConfig.holdApplicationUntilProxyStarts`, default `false`). Overridden per pod by
    /// `proxy.istio.io/config`.
    pub hold_application_until_proxy_starts: bool,
    /// Address (`host:port`) of the discovery (xDS) and CA server the proxy connects to (Istio's
    /// `ProxyConfig.discoveryAddress`, default `istiod.istio-system.svc:15012`).
    pub discovery_address: String,
    /// The mesh's SPIFFE trust domain (Istio's `MeshConfig.trustDomain`, default
    /// `cluster.local`).
    pub trust_domain: String,
    /// Traffic capture is set up by the CNI plugin, so no `istio-init` container is injected
    /// (Istio's `values.istio_cni.enabled`). Default `false`.
    pub cni_enabled: bool,
    /// Namespace the operator runs in; its pods are never injected.
    pub operator_namespace: String,
    /// UID the proxy runs as; traffic from this UID is not captured (Istio's `1337`).
    pub proxy_uid: i64,
    /// GID the proxy runs as (Istio's `1337`).
    pub proxy_gid: i64,
    /// The proxy's log level (Istio's `values.global.proxy.logLevel`, default `warning`).
    /// Overridden per pod by `sidecar.istio.io/logLevel`.
    pub log_level: String,
    /// Inject pods in namespaces with no `istio-injection` label (Istio's
    /// `sidecarInjectorWebhook.enableNamespacesByDefault`, default `false`).
    pub enable_namespaces_by_default: bool,
    /// Rewrite application HTTP probes through the proxy unless the pod says otherwise (Istio's
    /// `sidecarInjectorWebhook.rewriteAppHTTPProbe`, default `true`).
    pub rewrite_app_http_probers: bool,
    /// This control plane's revision (Istio's `revision`, default `default`): namespaces and
    /// pods labelled `istio.io/rev=<revision>` are injected, and the value is recorded in
    /// `sidecar.istio.io/status`.
    pub revision: String,
}

impl Default for InjectionConfig {
    /// Istio's defaults, with the proxy image `ghcr.io/weft-mesh/weft-proxy:latest` and the
    /// operator in `weft-system`.
    fn default() -> Self {
        Self {
            proxy_image: "ghcr.io/weft-mesh/weft-proxy:latest".to_string(),
            image_pull_policy: None,
            resources: ProxyResources::default(),
            native_sidecars: false,
            hold_application_until_proxy_starts: false,
            discovery_address: "istiod.istio-system.svc:15012".to_string(),
            trust_domain: "cluster.local".to_string(),
            cni_enabled: false,
            operator_namespace: "weft-system".to_string(),
            proxy_uid: 1337,
            proxy_gid: 1337,
            log_level: "warning".to_string(),
            enable_namespaces_by_default: false,
            rewrite_app_http_probers: true,
            revision: "default".to_string(),
        }
    }
}
