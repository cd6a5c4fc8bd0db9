//! Rewriting application HTTP probes so the kubelet reaches them through the proxy agent
//! (Istio's `rewriteAppHTTPProbers`, `pkg/kube/inject/app_probe.go`).
//!
//! With mutual TLS the kubelet, which has no mesh certificate, cannot reach the application
//! through the proxy. Each `httpGet` probe is rewritten to `GET
//! /app-health/<container>/{livez,readyz,startupz}` on the agent's status port 15020, and the
//! original is recorded in the proxy's `ISTIO_KUBE_APP_PROBERS` environment variable so the agent
//! can forward the probe to the application itself. `tcpSocket`, `exec` and `grpc` probes are
//! left as written.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use crate::names::STATUS_PORT;

/// Which of a container's probes a rewritten path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// `livenessProbe`, served at `/app-health/<container>/livez`.
    Liveness,
    /// `readinessProbe`, served at `/app-health/<container>/readyz`.
    Readiness,
    /// `startupProbe`, served at `/app-health/<container>/startupz`.
    Startup,
}

/// The path the kubelet probes after rewriting: `/app-health/<container>/<kind>z`, as Istio's
/// `status.FormatProberURL`. Takes the container name and probe kind; returns the path.
pub fn app_health_path(container: &str, kind: ProbeKind) -> String {
    let suffix = match kind {
        ProbeKind::Liveness => "livez",
        ProbeKind::Readiness => "readyz",
        ProbeKind::Startup => "startupz",
    };
    format!("/app-health/{container}/{suffix}")
}

/// One original probe as recorded in `ISTIO_KUBE_APP_PROBERS` (Istio's `status.Prober`): the
/// `httpGet` action with any named port resolved to a number, and the probe's timeout (s).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Prober {
    pub http_get: HTTPGetAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
}

/// Rewrites the HTTP probes of `containers` in place and returns the originals keyed by their
/// new path (a sorted map, so the JSON is stable). A probe whose named port matches none of the
/// container's ports is left untouched: the agent could not forward it.
pub(crate) fn rewrite_http_probes(containers: &mut [Container]) -> BTreeMap<String, Prober> {
    let mut probers = BTreeMap::new();
    for container in containers {
        let Container {
            name,
            ports,
            liveness_probe,
            readiness_probe,
            startup_probe,
            ..
        } = container;
        for (kind, probe) in [
            (ProbeKind::Liveness, liveness_probe),
            (ProbeKind::Readiness, readiness_probe),
            (ProbeKind::Startup, startup_probe),
        ] {
            let Some(probe) = probe.as_mut() else {
                continue;
            };
            if let Some((path, prober)) = rewrite_one(name, kind, ports.as_deref(), probe) {
                probers.insert(path, prober);
            }
        }
    }
    probers
}

fn rewrite_one(
    container: &str,
    kind: ProbeKind,
    ports: Option<&[k8s_openapi::api::core::v1::ContainerPort]>,
    probe: &mut Probe,
) -> Option<(String, Prober)> {
    let http_get = probe.http_get.as_mut()?;
    let port = match &http_get.port {
        IntOrString::Int(port) => *port,
        IntOrString::String(name) => ports?
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)?,
    };
    let mut original = http_get.clone();
    original.port = IntOrString::Int(port);
    let path = app_health_path(container, kind);
    http_get.port = IntOrString::Int(i32::from(STATUS_PORT));
    http_get.path = Some(path.clone());
    // The agent speaks HTTPS to the application itself; the kubelet speaks HTTP to the agent.
    if http_get.scheme.as_deref() == Some("HTTPS") {
        http_get.scheme = Some("HTTP".to_string());
    }
    Some((
        path,
        Prober {
            http_get: original,
            timeout_seconds: probe.timeout_seconds,
        },
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ContainerPort;

    use super::*;

    fn http_probe(port: IntOrString, scheme: Option<&str>) -> Option<Probe> {
        Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port,
                scheme: scheme.map(str::to_string),
                ..Default::default()
            }),
            timeout_seconds: Some(4),
            ..Default::default()
        })
    }

    #[test]
    fn named_ports_are_resolved_and_https_becomes_http_towards_the_agent() {
        let mut containers = vec![Container {
            name: "web".into(),
            ports: Some(vec![ContainerPort {
                name: Some("admin".into()),
                container_port: 9443,
                ..Default::default()
            }]),
            liveness_probe: http_probe(IntOrString::String("admin".into()), Some("HTTPS")),
            ..Default::default()
        }];
        let probers = rewrite_http_probes(&mut containers);
        let rewritten = containers[0]
            .liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(rewritten.port, IntOrString::Int(15020));
        assert_eq!(rewritten.path.as_deref(), Some("/app-health/web/livez"));
        assert_eq!(rewritten.scheme.as_deref(), Some("HTTP"));
        let original = &probers["/app-health/web/livez"];
        assert_eq!(original.http_get.port, IntOrString::Int(9443));
        assert_eq!(original.http_get.scheme.as_deref(), Some("HTTPS"));
        assert_eq!(original.http_get.path.as_deref(), Some("/health"));
        assert_eq!(original.timeout_seconds, Some(4));
    }

    #[test]
    fn unresolvable_named_ports_are_left_alone() {
        let probe = http_probe(IntOrString::String("missing".into()), None);
        let mut containers = vec![Container {
            name: "web".into(),
            readiness_probe: probe.clone(),
            ..Default::default()
        }];
        let probers = rewrite_http_probes(&mut containers);
        assert!(probers.is_empty());
        assert_eq!(containers[0].readiness_probe, probe);
    }

    #[test]
    fn recorded_probers_serialize_as_istio_does() {
        let mut containers = vec![Container {
            name: "web".into(),
            startup_probe: http_probe(IntOrString::Int(8080), None),
            ..Default::default()
        }];
        let probers = rewrite_http_probes(&mut containers);
        assert_eq!(
            serde_json::to_string(&probers).unwrap(),
            r#"{"/app-health/web/startupz":{"httpGet":{"path":"/health","port":8080},"timeoutSeconds":4}}"#
        );
    }
}
