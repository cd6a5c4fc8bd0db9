//! The containers and volumes the injector adds: `istio-init` (traffic capture) and
//! `istio-proxy` (the sidecar), built from the validated [`PodSettings`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, Lifecycle, LifecycleHandler, ObjectFieldSelector,
    Probe, ResourceRequirements, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::settings::PodSettings;
use crate::config::{InjectionConfig, ProxyResources};
use crate::names::{
    HEALTH_PORT, INBOUND_CAPTURE_PORT, INIT_CONTAINER_NAME, OUTBOUND_CAPTURE_PORT, PROMETHEUS_PORT,
    PROXY_CONTAINER_NAME, READINESS_PATH,
};

/// The proxy binary, on `PATH` in the proxy image.
pub const PROXY_BINARY: &str = "weft-proxy";

/// Volume holding the proxy's writable state (an in-memory `emptyDir`, Istio's `istio-envoy`),
/// mounted at [`PROXY_STATE_DIR`].
pub const PROXY_STATE_VOLUME: &str = "istio-envoy";
/// Where the proxy's writable state is mounted (Istio's `/etc/istio/proxy`).
pub const PROXY_STATE_DIR: &str = "/etc/istio/proxy";
/// Volume holding the mesh root certificate from the `istio-ca-root-cert` ConfigMap (Istio's
/// `istiod-ca-cert`), mounted at [`CA_ROOT_CERT_DIR`].
pub const CA_ROOT_CERT_VOLUME: &str = "istiod-ca-cert";
/// ConfigMap the operator writes into every namespace with the mesh root certificate (Istio's
/// `istio-ca-root-cert`, key `root-cert.pem`).
pub const CA_ROOT_CERT_CONFIGMAP: &str = "istio-ca-root-cert";
/// Where the root certificate is mounted (Istio's `/var/run/secrets/istio`).
pub const CA_ROOT_CERT_DIR: &str = "/var/run/secrets/istio";
/// Volume holding the workload's certificate and key from the Secret named by
/// [`workload_cert_secret_name`], mounted at [`WORKLOAD_CERT_DIR`]. The volume is not
/// `optional`: the kubelet keeps the pod in `ContainerCreating` until the operator's CA has
/// written the Secret, so the proxy never starts without its identity.
pub const WORKLOAD_CERT_VOLUME: &str = "workload-certs";
/// Where the workload certificate is mounted (Istio's
/// `/var/run/secrets/workload-spiffe-credentials`).
pub const WORKLOAD_CERT_DIR: &str = "/var/run/secrets/workload-spiffe-credentials";

/// Name of the Secret holding the certificate and key of every pod running as
/// `service_account`: `weft-workload-cert-<service_account>`.
///
/// This is the one place the rule lives: the operator's CA (Citadel) writes one such Secret per
/// ServiceAccount and the injector mounts it. The result may exceed Kubernetes' 253-character
/// name limit for very long ServiceAccount names; [`crate::inject::inject`] rejects those.
pub fn workload_cert_secret_name(service_account: &str) -> String {
    format!("weft-workload-cert-{service_account}")
}

fn field_env(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A plain `name=value` environment variable.
pub(crate) fn value_env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        ..Default::default()
    }
}

fn resources(resources: &ProxyResources) -> ResourceRequirements {
    let pair = |cpu: &Option<String>, memory: &Option<String>| {
        let map: BTreeMap<String, Quantity> = [("cpu", cpu), ("memory", memory)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.to_string(), Quantity(v.clone()))))
            .collect();
        (!map.is_empty()).then_some(map)
    };
    ResourceRequirements {
        requests: pair(&resources.cpu_request, &resources.memory_request),
        limits: pair(&resources.cpu_limit, &resources.memory_limit),
        ..Default::default()
    }
}

fn capabilities(add: &[&str], drop: &[&str]) -> Capabilities {
    let list =
        |names: &[&str]| (!names.is_empty()).then(|| names.iter().map(|n| n.to_string()).collect());
    Capabilities {
        add: list(add),
        drop: list(drop),
    }
}

/// The `istio-init` container: runs `weft-proxy init`, which installs the traffic-capture rules
/// in the pod's network namespace and exits.
///
/// Flags: see "The `weft-proxy` command lines" in the [`crate::inject`] module docs.
///
/// Lists are comma-separated without spaces; CIDRs are `addr/len` (IPv4 or IPv6). Each flag
/// mirrors the Istio annotation `traffic.sidecar.istio.io/<camelCaseName>`. Runs as root with
/// only `NET_ADMIN` and `NET_RAW` (Istio's `istio-init` security context).
pub(crate) fn init_container(settings: &PodSettings, config: &InjectionConfig) -> Container {
    let capture = &settings.capture;
    let mut args: Vec<String> = vec!["init".into()];
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    flag("proxy-uid", config.proxy_uid.to_string());
    flag("proxy-gid", config.proxy_gid.to_string());
    flag("outbound-port", OUTBOUND_CAPTURE_PORT.to_string());
    flag("inbound-port", INBOUND_CAPTURE_PORT.to_string());
    flag(
        "include-outbound-ip-ranges",
        capture.include_outbound_ip_ranges.clone(),
    );
    if !capture.exclude_outbound_ip_ranges.is_empty() {
        flag(
            "exclude-outbound-ip-ranges",
            capture.exclude_outbound_ip_ranges.clone(),
        );
    }
    flag(
        "include-inbound-ports",
        capture.include_inbound_ports.clone(),
    );
    flag(
        "exclude-inbound-ports",
        capture.exclude_inbound_ports.clone(),
    );
    if !capture.include_outbound_ports.is_empty() {
        flag(
            "include-outbound-ports",
            capture.include_outbound_ports.clone(),
        );
    }
    if !capture.exclude_outbound_ports.is_empty() {
        flag(
            "exclude-outbound-ports",
            capture.exclude_outbound_ports.clone(),
        );
    }
    Container {
        name: INIT_CONTAINER_NAME.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(vec![PROXY_BINARY.to_string()]),
        args: Some(args),
        resources: Some(resources(&settings.resources)),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(capabilities(&["NET_ADMIN", "NET_RAW"], &["ALL"])),
            privileged: Some(false),
            read_only_root_filesystem: Some(false),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            run_as_user: Some(0),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn health_probe(period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(READINESS_PATH.to_string()),
            port: IntOrString::Int(i32::from(HEALTH_PORT)),
            ..Default::default()
        }),
        period_seconds: Some(period_seconds),
        timeout_seconds: Some(3),
        failure_threshold: Some(failure_threshold),
        ..Default::default()
    }
}

/// The `istio-proxy` container: runs `weft-proxy run`.
///
/// Flags: see "The `weft-proxy` command lines" in the [`crate::inject`] module docs, including
/// `weft-proxy wait-ready` as the `postStart` hook when the application is held until the
/// proxy is ready. `extra_env` (workload metadata, recorded probes) is appended to the
/// downward-API variables `POD_NAME`, `POD_NAMESPACE`, `INSTANCE_IP`, `SERVICE_ACCOUNT`,
/// `HOST_IP`.
pub(crate) fn proxy_container(
    settings: &PodSettings,
    config: &InjectionConfig,
    native: bool,
    extra_env: Vec<EnvVar>,
) -> Container {
    let mut args: Vec<String> = vec!["run".into()];
    let mut flag = |name: &str, value: String| {
        args.push(format!("--{name}"));
        args.push(value);
    };
    flag("discovery-address", settings.discovery_address.clone());
    // The workload certificate (the volume below) and the namespace of the operator's own
    // identity, which the proxy verifies on the discovery stream.
    flag("cert-dir", WORKLOAD_CERT_DIR.to_string());
    flag("control-plane-namespace", config.operator_namespace.clone());
    flag("trust-domain", config.trust_domain.clone());
    flag("log-level", settings.log_level.clone());
    if let Some(concurrency) = settings.concurrency {
        flag("concurrency", concurrency.to_string());
    }
    if let Some(duration) = &settings.termination_drain_duration {
        flag("termination-drain-duration", duration.clone());
    }
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env("POD_NAMESPACE", "metadata.namespace"),
        field_env("INSTANCE_IP", "status.podIP"),
        field_env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        field_env("HOST_IP", "status.hostIP"),
    ];
    env.extend(extra_env);
    let mount = |name: &str, path: &str, read_only: bool| VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        ..Default::default()
    };
    let hold_hook = (settings.hold_application && !native).then(|| Lifecycle {
        post_start: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec![PROXY_BINARY.to_string(), "wait-ready".to_string()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    Container {
        name: PROXY_CONTAINER_NAME.to_string(),
        image: Some(settings.image.clone()),
        image_pull_policy: config.image_pull_policy.clone(),
        command: Some(vec![PROXY_BINARY.to_string()]),
        args: Some(args),
        env: Some(env),
        ports: Some(vec![ContainerPort {
            container_port: i32::from(PROMETHEUS_PORT),
            name: Some("http-envoy-prom".to_string()),
            protocol: Some("TCP".to_string()),
            ..Default::default()
        }]),
        readiness_probe: Some(health_probe(15, 4)),
        startup_probe: Some(health_probe(1, 600)),
        lifecycle: hold_hook,
        resources: Some(resources(&settings.resources)),
        restart_policy: native.then(|| "Always".to_string()),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            capabilities: Some(capabilities(&[], &["ALL"])),
            privileged: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_group: Some(config.proxy_gid),
            run_as_non_root: Some(true),
            run_as_user: Some(config.proxy_uid),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            mount(PROXY_STATE_VOLUME, PROXY_STATE_DIR, false),
            mount(CA_ROOT_CERT_VOLUME, CA_ROOT_CERT_DIR, true),
            mount(WORKLOAD_CERT_VOLUME, WORKLOAD_CERT_DIR, true),
        ]),
        ..Default::default()
    }
}

/// The volumes the proxy mounts; `cert_secret` is the workload certificate Secret's name.
pub(crate) fn proxy_volumes(cert_secret: String) -> Vec<Volume> {
    vec![
        Volume {
            name: PROXY_STATE_VOLUME.to_string(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: CA_ROOT_CERT_VOLUME.to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: CA_ROOT_CERT_CONFIGMAP.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: WORKLOAD_CERT_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(cert_secret),
                ..Default::default()
            }),
            ..Default::default()
        },
    ]
}
