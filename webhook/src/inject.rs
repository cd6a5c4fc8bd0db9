//! Sidecar injection: [`should_inject`] decides, [`inject`] rewrites the pod.
//!
//! Both are pure functions of the pod and the [`InjectionConfig`]: the admission webhook, a
//! future `weftctl kube-inject` and the tests call the same code.
//!
//! # The `weft-proxy` command lines
//!
//! The injected containers run `weft-proxy` (on `PATH` in the proxy image) with the flags below;
//! `weft-proxy` implements exactly this CLI, and the names are stable. Each flag is one argument
//! followed by its value as a separate argument; lists are comma-separated without spaces.
//!
//! `istio-init` (omitted in CNI mode) installs the capture rules and exits:
//!
//! ```text
//! weft-proxy init
//!   --proxy-uid <uid>                        traffic from this UID is never captured (1337)
//!   --proxy-gid <gid>                        ... nor from this GID (1337)
//!   --outbound-port <port>                   where captured outbound traffic goes (15001)
//!   --inbound-port <port>                    where captured inbound traffic goes (15006)
//!   --include-outbound-ip-ranges <cidrs|*>   always given; default `*`; empty = none
//!   --exclude-outbound-ip-ranges <cidrs>     only when non-empty
//!   --include-inbound-ports <ports|*>        always given; default `*`; empty = none
//!   --exclude-inbound-ports <ports>          always given: 15020,15021,15090 plus the pod's
//!   --include-outbound-ports <ports>         only when non-empty
//!   --exclude-outbound-ports <ports>         only when non-empty
//! ```
//!
//! Each list flag mirrors the annotation `traffic.sidecar.istio.io/<camelCaseName>`; CIDRs are
//! `addr/len`, IPv4 or IPv6; ports are 1-65535; exclusions are sorted and de-duplicated.
//!
//! `istio-proxy` runs the sidecar:
//!
//! ```text
//! weft-proxy run
//!   --discovery-address <host:port>          xDS and CA server (ProxyConfig.discoveryAddress)
//!   --cert-dir <dir>                         the workload certificate Secret's mount
//!                                            (/var/run/secrets/workload-spiffe-credentials)
//!   --control-plane-namespace <namespace>    the operator's namespace: the proxy expects the
//!                                            discovery server to be `.../ns/<it>/sa/weft-operator`
//!   --trust-domain <domain>                  the mesh's SPIFFE trust domain
//!   --log-level <level>                      trace|debug|info|warning|error|critical|off
//!   --concurrency <n>                        only when set (ProxyConfig.concurrency)
//!   --termination-drain-duration <duration>  only when set, Go syntax such as `5s`
//!                                            (ProxyConfig.terminationDrainDuration)
//! ```
//!
//! and, when the application is held until the proxy is ready (not in native-sidecar mode),
//! `weft-proxy wait-ready` as its `postStart` hook: it must exit 0 once `GET /healthz/ready` on
//! 15021 succeeds. The proxy also serves the rewritten application probes
//! (`/app-health/<container>/{livez,readyz,startupz}`, see [`app_health_path`]) on the status
//! port 15020, forwarding each to the original recorded in `ISTIO_KUBE_APP_PROBERS`.

mod containers;
mod decision;
mod metadata;
mod probes;
mod settings;

use k8s_openapi::api::core::v1::{ContainerPort, Pod};

pub use containers::{
    CA_ROOT_CERT_CONFIGMAP, CA_ROOT_CERT_DIR, CA_ROOT_CERT_VOLUME, PROXY_BINARY, PROXY_STATE_DIR,
    PROXY_STATE_VOLUME, WORKLOAD_CERT_DIR, WORKLOAD_CERT_VOLUME, workload_cert_secret_name,
};
pub use decision::{Decision, DecisionReason, IGNORED_NAMESPACES, should_inject};
pub use metadata::{SidecarStatus, workload_name};
pub use probes::{ProbeKind, app_health_path};

use crate::config::InjectionConfig;
use crate::names::{
    DEFAULT_CONTAINER_ANNOTATION, INIT_CONTAINER_NAME, KUBE_APP_PROBERS_ENV, PROXY_CONTAINER_NAME,
    SIDECAR_STATUS, TLS_MODE_LABEL,
};
use containers::value_env;
use settings::PodSettings;

/// Longest name Kubernetes accepts for a Secret (a DNS subdomain), in characters.
const MAX_SECRET_NAME_LEN: usize = 253;

/// Why a pod could not be injected. Messages name the field or annotation and the rule.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The pod has no `spec`.
    #[error("pod has no spec; nothing to inject into")]
    MissingSpec,
    /// An annotation the injector reads has a value it cannot use.
    #[error("invalid annotation {annotation}={value:?}: {reason}")]
    InvalidAnnotation {
        /// The annotation's name, e.g. `sidecar.istio.io/proxyCPU`.
        annotation: &'static str,
        /// The value found on the pod.
        value: String,
        /// What is wrong and what is expected.
        reason: String,
    },
    /// The pod already has a container or volume with a name the injector adds.
    #[error(
        "pod already has a {kind} named {name:?}, which the injector adds; rename it or set \
         sidecar.istio.io/inject: \"false\""
    )]
    NameConflict {
        /// `container` or `volume`.
        kind: &'static str,
        /// The conflicting name.
        name: String,
    },
    /// The workload certificate Secret's name would exceed 253 characters.
    #[error(
        "spec.serviceAccountName {service_account:?} is too long: the certificate Secret name \
         {secret:?} exceeds {MAX_SECRET_NAME_LEN} characters"
    )]
    ServiceAccountTooLong {
        /// The pod's ServiceAccount.
        service_account: String,
        /// The Secret name it would need.
        secret: String,
    },
    /// Encoding a JSON value written into the pod failed.
    #[error("could not encode {what} as JSON: {source}")]
    Encode {
        /// Which value (e.g. the `sidecar.istio.io/status` annotation).
        what: &'static str,
        /// The encoder's error.
        source: serde_json::Error,
    },
}

/// Returns the injected copy of `pod`, or an error naming the invalid input.
///
/// Adds (Istio's injection template, with `weft-proxy` in place of `pilot-agent`):
/// - `istio-init` first in `initContainers` (omitted when `config.cni_enabled`);
/// - `istio-proxy`: with `config.native_sidecars`, an init container with
///   `restartPolicy: Always` right after `istio-init` (its startup probe holds the later
///   containers until the proxy is ready); otherwise a container, placed first with a
///   `weft-proxy wait-ready` `postStart` hook when `holdApplicationUntilProxyStarts` is on, and
///   last when it is off (as Istio);
/// - the volumes `istio-envoy`, `istiod-ca-cert` and `workload-certs`;
/// - HTTP probes rewritten through the agent (unless `sidecar.istio.io/rewriteAppHTTPProbers`
///   is `false`), with the originals in `ISTIO_KUBE_APP_PROBERS`;
/// - the labels `security.istio.io/tlsMode=istio`, `service.istio.io/canonical-name` and
///   `canonical-revision` (existing values kept), and the annotations `sidecar.istio.io/status`
///   and `kubectl.kubernetes.io/default-container` (if unset).
///
/// Everything else the pod carries is preserved. A pod that already carries
/// `sidecar.istio.io/status` is returned unchanged, so injection is idempotent.
///
/// Errors: [`InjectError::MissingSpec`], [`InjectError::InvalidAnnotation`] for any annotation
/// above with an unusable value, [`InjectError::NameConflict`],
/// [`InjectError::ServiceAccountTooLong`], [`InjectError::Encode`].
pub fn inject(pod: &Pod, config: &InjectionConfig) -> Result<Pod, InjectError> {
    inject_owned(pod.clone(), config)
}

/// [`inject`] for a pod the caller no longer needs: same rules, same errors, one copy fewer.
pub fn inject_owned(mut pod: Pod, config: &InjectionConfig) -> Result<Pod, InjectError> {
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    if annotations.contains_key(SIDECAR_STATUS) {
        return Ok(pod);
    }
    let settings = PodSettings::read(&annotations, config)?;
    let workload = workload_name(&pod.metadata);
    let spec = pod.spec.as_mut().ok_or(InjectError::MissingSpec)?;

    let service_account = spec
        .service_account_name
        .clone()
        .or_else(|| spec.service_account.clone())
        .filter(|sa| !sa.is_empty())
        .unwrap_or_else(|| "default".to_string());
    let secret = workload_cert_secret_name(&service_account);
    if secret.len() > MAX_SECRET_NAME_LEN {
        return Err(InjectError::ServiceAccountTooLong {
            service_account,
            secret,
        });
    }
    let container_names = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .map(|c| c.name.as_str());
    for name in container_names {
        if name == PROXY_CONTAINER_NAME || name == INIT_CONTAINER_NAME {
            return Err(InjectError::NameConflict {
                kind: "container",
                name: name.to_string(),
            });
        }
    }
    let volumes = containers::proxy_volumes(secret);
    for existing in spec.volumes.iter().flatten() {
        if volumes.iter().any(|v| v.name == existing.name) {
            return Err(InjectError::NameConflict {
                kind: "volume",
                name: existing.name.clone(),
            });
        }
    }

    // Workload metadata for the proxy, read before probes are rewritten.
    let app_ports: Vec<&ContainerPort> = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .collect();
    let mut env = vec![value_env("ISTIO_META_WORKLOAD_NAME", workload.as_str())];
    if !app_ports.is_empty() {
        let json = serde_json::to_string(&app_ports).map_err(|source| InjectError::Encode {
            what: "ISTIO_META_POD_PORTS",
            source,
        })?;
        env.push(value_env("ISTIO_META_POD_PORTS", json));
    }
    let app_names: Vec<&str> = spec.containers.iter().map(|c| c.name.as_str()).collect();
    env.push(value_env("ISTIO_META_APP_CONTAINERS", app_names.join(",")));
    let default_container = app_names.first().map(|n| n.to_string());
    env.extend(
        settings
            .proxy_metadata
            .iter()
            .map(|(k, v)| value_env(k, v.as_str())),
    );
    if settings.rewrite_app_http_probers {
        let probers = probes::rewrite_http_probes(&mut spec.containers);
        if !probers.is_empty() {
            let json = serde_json::to_string(&probers).map_err(|source| InjectError::Encode {
                what: KUBE_APP_PROBERS_ENV,
                source,
            })?;
            env.push(value_env(KUBE_APP_PROBERS_ENV, json));
        }
    }

    let native = config.native_sidecars;
    let proxy = containers::proxy_container(&settings, config, native, env);
    let mut injected_init = Vec::new();
    if !config.cni_enabled {
        injected_init.push(containers::init_container(&settings, config));
    }
    let mut status = SidecarStatus {
        init_containers: None,
        containers: None,
        volumes: Some(volumes.iter().map(|v| v.name.clone()).collect()),
        image_pull_secrets: None,
        revision: config.revision.clone(),
    };
    if native {
        injected_init.push(proxy);
    } else if settings.hold_application {
        spec.containers.insert(0, proxy);
        status.containers = Some(vec![PROXY_CONTAINER_NAME.to_string()]);
    } else {
        spec.containers.push(proxy);
        status.containers = Some(vec![PROXY_CONTAINER_NAME.to_string()]);
    }
    if !injected_init.is_empty() {
        status.init_containers = Some(injected_init.iter().map(|c| c.name.clone()).collect());
        let user_init = spec.init_containers.take().unwrap_or_default();
        injected_init.extend(user_init);
        spec.init_containers = Some(injected_init);
    }
    spec.volumes.get_or_insert_with(Vec::new).extend(volumes);

    let labels = pod.metadata.labels.get_or_insert_with(Default::default);
    labels
        .entry(TLS_MODE_LABEL.to_string())
        .or_insert_with(|| "istio".to_string());
    metadata::add_canonical_labels(labels, &workload);
    let status_json = serde_json::to_string(&status).map_err(|source| InjectError::Encode {
        what: SIDECAR_STATUS,
        source,
    })?;
    let annotations = pod
        .metadata
        .annotations
        .get_or_insert_with(Default::default);
    annotations.insert(SIDECAR_STATUS.to_string(), status_json);
    if let Some(name) = default_container {
        annotations
            .entry(DEFAULT_CONTAINER_ANNOTATION.to_string())
            .or_insert(name);
    }
    Ok(pod)
}
