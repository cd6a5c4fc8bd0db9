//! The checker of the gateway samples: [`problems`] and what it compares against.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::support;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace, Service, ServiceAccount};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use weft_install::bundle::{kind_of, name_of, objects};
use weft_webhook::inject::workload_cert_secret_name;
use weft_webhook::names::{NAMESPACE_INJECTION_LABEL, SIDECAR_INJECT};

pub(crate) const SAMPLES: &str = "config/samples/gateways";

/// The objects of the kustomization in `dir` (its `resources`, files only), and every YAML file
/// of `dir` that the kustomization does not list.
pub(crate) fn render(dir: &Path) -> (Vec<Value>, Vec<String>) {
    let k: Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap())
            .unwrap();
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut out = Vec::new();
    for file in &listed {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        out.extend(objects(&path.display().to_string(), &text).unwrap());
    }
    let unlisted = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml" && !listed.contains(n))
        .collect();
    (out, unlisted)
}

/// What the proxy's command line accepts, read from `proxy/src/main.rs`: the `gateway`
/// subcommand's flags (`--kebab-case` of `CommonArgs`' fields marked `long`; all take a
/// value), the environment variables they read, and the defaults of the health and
/// Prometheus listeners' ports.
#[derive(Debug)]
pub(crate) struct ProxyCli {
    pub(crate) flags: BTreeSet<String>,
    env: BTreeSet<String>,
    health_port: i32,
    prometheus_port: i32,
}

pub(crate) fn proxy_cli() -> ProxyCli {
    let source = std::fs::read_to_string(support::root().join("proxy/src/main.rs")).unwrap();
    assert!(
        source.contains("Gateway(Box<CommonArgs>)"),
        "`weft-proxy gateway` no longer takes CommonArgs: update this test"
    );
    let start = source.find("struct CommonArgs {").unwrap();
    let body = &source[start..start + source[start..].find("\n}").unwrap()];
    let mut cli = ProxyCli {
        flags: BTreeSet::new(),
        env: BTreeSet::new(),
        health_port: 0,
        prometheus_port: 0,
    };
    let mut attributes = String::new();
    for line in body.lines().skip(1).map(str::trim) {
        if line.starts_with("#[arg(") {
            attributes.push_str(line);
            continue;
        }
        let Some((field, _)) = line.split_once(':').filter(|_| !line.starts_with("///")) else {
            continue;
        };
        if attributes.contains("long") {
            cli.flags.insert(format!("--{}", field.replace('_', "-")));
        }
        if let Some(env) = attributes.split("env = \"").nth(1) {
            cli.env.insert(env.split('"').next().unwrap().to_owned());
        }
        let default_port = || {
            let value = attributes.split("default_value = \"").nth(1).unwrap();
            let addr = value.split('"').next().unwrap();
            addr.rsplit(':').next().unwrap().parse::<i32>().unwrap()
        };
        match field {
            "health_addr" => cli.health_port = default_port(),
            "prometheus_addr" => cli.prometheus_port = default_port(),
            _ => {}
        }
        attributes.clear();
    }
    assert!(
        cli.flags.len() >= 10 && cli.health_port > 0 && cli.prometheus_port > 0,
        "could not read CommonArgs from proxy/src/main.rs: {cli:?}"
    );
    cli
}

/// What the samples must agree with outside themselves.
pub(crate) struct Context {
    cli: ProxyCli,
    /// The proxy image the operator injects (`--proxy-image=` in config/manager/manager.yaml).
    proxy_image: String,
    /// The Mesh sample's `discoveryAddress` and `trustDomain`.
    discovery_address: String,
    trust_domain: String,
    /// The operator's namespace (config/default's `namespace`).
    operator_namespace: String,
}

pub(crate) fn context() -> Context {
    let root = support::root();
    let manager = std::fs::read_to_string(root.join("config/manager/manager.yaml")).unwrap();
    let proxy_image = manager
        .split("--proxy-image=")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .trim()
        .to_owned();
    let mesh: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("config/samples/mesh_v1alpha1_mesh.yaml")).unwrap(),
    )
    .unwrap();
    let default: Value = serde_yaml::from_str(
        &std::fs::read_to_string(root.join("config/default/kustomization.yaml")).unwrap(),
    )
    .unwrap();
    Context {
        cli: proxy_cli(),
        proxy_image,
        discovery_address: mesh["spec"]["discoveryAddress"]
            .as_str()
            .unwrap()
            .to_owned(),
        trust_domain: mesh["spec"]["trustDomain"].as_str().unwrap().to_owned(),
        operator_namespace: default["namespace"].as_str().unwrap().to_owned(),
    }
}

/// `object` as `T`, or why not (including fields `T` does not know, lost in the round trip).
pub(crate) fn typed<T: DeserializeOwned + Serialize>(object: &Value) -> Result<T, String> {
    let what = format!("{} {}", kind_of(object), name_of(object));
    let parsed: T = serde_json::from_value(object.clone()).map_err(|e| format!("{what}: {e}"))?;
    if serde_json::to_value(&parsed).unwrap() != *object {
        return Err(format!(
            "{what} has fields its Kubernetes type does not know"
        ));
    }
    Ok(parsed)
}

pub(crate) fn namespace_of(object: &Value) -> &str {
    object["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
}

pub(crate) fn is_subset(small: &BTreeMap<String, String>, big: &BTreeMap<String, String>) -> bool {
    !small.is_empty() && small.iter().all(|(k, v)| big.get(k) == Some(v))
}

pub(crate) fn labels(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

/// A gateway pod template or Service: namespace, name, labels (a Service's selector) and
/// ports (container ports; a Service's ports whose target is the same port).
pub(crate) type Selectable = (String, String, BTreeMap<String, String>, BTreeSet<i32>);

/// Everything wrong with the gateway sample `objects`, as readable lines (empty when fine).
pub(crate) fn problems(objects: &[Value], context: &Context) -> Vec<String> {
    let mut out = Vec::new();
    let of_kind = |kind: &'static str| objects.iter().filter(move |o| kind_of(o) == kind);
    let mut deployments = Vec::new();
    for object in of_kind("Deployment") {
        match typed::<Deployment>(object) {
            Ok(d) => deployments.push((namespace_of(object).to_owned(), d)),
            Err(e) => out.push(e),
        }
    }
    let mut services = Vec::new();
    for object in of_kind("Service") {
        match typed::<Service>(object) {
            Ok(s) => services.push((namespace_of(object).to_owned(), s)),
            Err(e) => out.push(e),
        }
    }
    let accounts: BTreeSet<(String, String)> = of_kind("ServiceAccount")
        .filter_map(|o| {
            typed::<ServiceAccount>(o)
                .map_err(|e| out.push(e))
                .ok()
                .map(|_| (namespace_of(o).to_owned(), name_of(o).to_owned()))
        })
        .collect();
    let namespaces: BTreeMap<String, Namespace> = of_kind("Namespace")
        .filter_map(|o| {
            typed::<Namespace>(o)
                .map_err(|e| out.push(e))
                .ok()
                .map(|n| (name_of(o).to_owned(), n))
        })
        .collect();

    // Each gateway Deployment: its pod template as `weft-proxy gateway` needs it.
    let mut pods: Vec<Selectable> = Vec::new();
    for (ns, deployment) in &deployments {
        let name = deployment.metadata.name.clone().unwrap_or_default();
        let spec = deployment.spec.clone().unwrap_or_default();
        let template_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        let selector = spec.selector.match_labels.clone().unwrap_or_default();
        if !is_subset(&selector, &template_labels) {
            out.push(format!(
                "Deployment {name}: selector {selector:?} does not match its pod labels"
            ));
        }
        for key in ["istio", "app"] {
            if !template_labels.contains_key(key) {
                out.push(format!(
                    "Deployment {name}: pod label {key} missing (Istio's gateway labels)"
                ));
            }
        }
        if template_labels.get(SIDECAR_INJECT).map(String::as_str) != Some("false") {
            out.push(format!(
                "Deployment {name}: a gateway pod needs {SIDECAR_INJECT}: \"false\" (its namespace is injection-enabled)"
            ));
        }
        match namespaces.get(ns) {
            Some(namespace)
                if namespace
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(NAMESPACE_INJECTION_LABEL))
                    .is_some_and(|v| v == "enabled") => {}
            _ => out.push(format!(
                "Deployment {name}: namespace {ns} must be a sample Namespace labelled {NAMESPACE_INJECTION_LABEL}=enabled (Citadel writes certificates only there)"
            )),
        }
        let pod = spec.template.spec.clone().unwrap_or_default();
        let account = pod.service_account_name.clone().unwrap_or_default();
        if !accounts.contains(&(ns.clone(), account.clone())) {
            out.push(format!(
                "Deployment {name}: ServiceAccount {ns}/{account:?} is not in the samples"
            ));
        }
        let [container]: [Container; 1] =
            pod.containers
                .clone()
                .try_into()
                .unwrap_or_else(|c: Vec<_>| {
                    out.push(format!(
                        "Deployment {name}: {} containers, expected one (the proxy)",
                        c.len()
                    ));
                    [Container::default()]
                });
        if container.image.as_deref() != Some(context.proxy_image.as_str()) {
            out.push(format!(
                "Deployment {name}: image {:?} is not the proxy image {:?}",
                container.image, context.proxy_image
            ));
        }
        if container
            .command
            .as_ref()
            .is_some_and(|c| c.first().map(String::as_str) != Some("weft-proxy"))
        {
            out.push(format!(
                "Deployment {name}: command does not run weft-proxy"
            ));
        }
        let args = container.args.clone().unwrap_or_default();
        if args.first().map(String::as_str) != Some("gateway") {
            out.push(format!(
                "Deployment {name}: args must start with the subcommand gateway"
            ));
        }
        let mut flags = BTreeMap::new();
        let mut rest = args.iter().skip(1);
        while let Some(arg) = rest.next() {
            let (flag, value) = match arg.split_once('=') {
                Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
                None => (arg.clone(), rest.next().cloned()),
            };
            if !context.cli.flags.contains(&flag) {
                out.push(format!(
                    "Deployment {name}: weft-proxy gateway has no flag {flag}"
                ));
            }
            flags.insert(flag, value.unwrap_or_default());
        }
        let env: BTreeMap<String, String> = container
            .env
            .clone()
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                let value = e.value.clone().unwrap_or_else(|| {
                    e.value_from
                        .and_then(|f| f.field_ref)
                        .map(|f| format!("fieldRef:{}", f.field_path))
                        .unwrap_or_default()
                });
                (e.name, value)
            })
            .collect();
        for variable in env.keys() {
            if !context.cli.env.contains(variable) {
                out.push(format!(
                    "Deployment {name}: weft-proxy reads no variable {variable}"
                ));
            }
        }
        let expect = |out: &mut Vec<String>, what: &str, got: Option<&String>, want: &str| {
            if got.map(String::as_str) != Some(want) {
                out.push(format!(
                    "Deployment {name}: {what} is {got:?}, expected {want:?}"
                ));
            }
        };
        expect(
            &mut out,
            "--discovery-address",
            flags.get("--discovery-address"),
            &context.discovery_address,
        );
        expect(
            &mut out,
            "--trust-domain",
            flags.get("--trust-domain"),
            &context.trust_domain,
        );
        expect(
            &mut out,
            "CONTROL_PLANE_NAMESPACE",
            env.get("CONTROL_PLANE_NAMESPACE"),
            &context.operator_namespace,
        );
        expect(
            &mut out,
            "POD_NAME",
            env.get("POD_NAME"),
            "fieldRef:metadata.name",
        );
        expect(
            &mut out,
            "POD_NAMESPACE",
            env.get("POD_NAMESPACE"),
            "fieldRef:metadata.namespace",
        );
        // The workload certificate: Citadel's Secret for the ServiceAccount, mounted at --cert-dir.
        let secret = workload_cert_secret_name(&account);
        let volume = pod
            .volumes
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|v| {
                v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(secret.as_str())
            });
        let mount = volume.and_then(|v| {
            container
                .volume_mounts
                .clone()
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.name == v.name)
        });
        match (mount, flags.get("--cert-dir")) {
            (Some(mount), Some(dir)) if mount.mount_path == *dir => {}
            (mount, dir) => out.push(format!(
                "Deployment {name}: --cert-dir {dir:?} must be where Secret {secret} is mounted ({:?})",
                mount.map(|m| m.mount_path)
            )),
        }
        let ports: BTreeSet<i32> = container
            .ports
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|p| p.container_port)
            .collect();
        let probe_port = container
            .readiness_probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .map(|h| h.port.clone());
        if probe_port != Some(IntOrString::Int(context.cli.health_port)) {
            out.push(format!(
                "Deployment {name}: readiness probe port {probe_port:?} is not the proxy's health port {}",
                context.cli.health_port
            ));
        }
        for port in [context.cli.health_port, context.cli.prometheus_port] {
            if !ports.contains(&port) {
                out.push(format!(
                    "Deployment {name}: container port {port} not declared"
                ));
            }
        }
        pods.push((ns.clone(), name, template_labels, ports));
    }

    // Services select a gateway pod and forward to its declared ports.
    let mut exposed: Vec<Selectable> = Vec::new();
    for (ns, service) in &services {
        let name = service.metadata.name.clone().unwrap_or_default();
        let spec = service.spec.clone().unwrap_or_default();
        let selector = spec.selector.clone().unwrap_or_default();
        let Some((_, _, _, container_ports)) = pods
            .iter()
            .find(|(pns, _, labels, _)| pns == ns && is_subset(&selector, labels))
        else {
            out.push(format!(
                "Service {name}: selector {selector:?} picks no gateway pod"
            ));
            continue;
        };
        let mut ports = BTreeSet::new();
        for port in spec.ports.clone().unwrap_or_default() {
            let target = match port.target_port {
                Some(IntOrString::Int(p)) => p,
                None => port.port,
                Some(IntOrString::String(_)) => -1,
            };
            if !container_ports.contains(&target) {
                out.push(format!(
                    "Service {name}: port {} targets {target}, not a container port",
                    port.port
                ));
            }
            if target == port.port {
                ports.insert(port.port);
            }
        }
        exposed.push((ns.clone(), name, selector, ports));
    }

    // Gateways: the selector picks a gateway pod, whose Service exposes the servers' ports
    // (the proxy binds a server's `port.number`, so Service port and target port are equal).
    for gateway in of_kind("Gateway") {
        let name = name_of(gateway);
        let selector = labels(&gateway["spec"]["selector"]);
        let picked: Vec<_> = pods
            .iter()
            .filter(|(_, _, l, _)| is_subset(&selector, l))
            .collect();
        let [(pns, _, pod_labels, _)] = picked[..] else {
            out.push(format!(
                "Gateway {name}: selector {selector:?} picks {} gateway Deployments, expected one",
                picked.len()
            ));
            continue;
        };
        let service_ports: BTreeSet<i32> = exposed
            .iter()
            .filter(|(sns, _, s, _)| sns == pns && is_subset(s, pod_labels))
            .flat_map(|(_, _, _, p)| p.iter().copied())
            .collect();
        for server in gateway["spec"]["servers"].as_array().into_iter().flatten() {
            let port = server["port"]["number"].as_i64().unwrap_or(0) as i32;
            if !service_ports.contains(&port) {
                out.push(format!(
                    "Gateway {name}: port {port} is not exposed by the gateway's Service"
                ));
            }
        }
    }

    // Egress: VirtualServices that send `mesh` traffic to a gateway Service name that Service,
    // a subset its DestinationRule defines, a port it exposes, and a Gateway of the samples.
    let fqdn = |ns: &str, name: &str| format!("{name}.{ns}.svc.cluster.local");
    let gateway_names: BTreeSet<(String, String)> = of_kind("Gateway")
        .map(|g| (namespace_of(g).to_owned(), name_of(g).to_owned()))
        .collect();
    for vs in of_kind("VirtualService") {
        let name = name_of(vs);
        for gateway in vs["spec"]["gateways"].as_array().into_iter().flatten() {
            let gateway = gateway.as_str().unwrap_or_default();
            let key = match gateway.split_once('/') {
                Some((ns, g)) => (ns.to_owned(), g.to_owned()),
                None => (namespace_of(vs).to_owned(), gateway.to_owned()),
            };
            if gateway != "mesh" && !gateway_names.contains(&key) {
                out.push(format!(
                    "VirtualService {name}: gateway {gateway} is not in the samples"
                ));
            }
        }
        let destinations = vs["spec"]["http"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|h| h["route"].as_array().into_iter().flatten())
            .map(|r| &r["destination"]);
        for destination in destinations {
            let host = destination["host"].as_str().unwrap_or_default();
            let Some((_, sname, _, ports)) =
                exposed.iter().find(|(ns, n, _, _)| fqdn(ns, n) == host)
            else {
                continue; // not a gateway Service
            };
            let port = destination["port"]["number"].as_i64().unwrap_or(0) as i32;
            if !ports.contains(&port) {
                out.push(format!(
                    "VirtualService {name}: port {port} of {sname} is not exposed"
                ));
            }
            if let Some(subset) = destination["subset"].as_str() {
                let defined = of_kind("DestinationRule").any(|dr| {
                    dr["spec"]["host"] == host
                        && dr["spec"]["subsets"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|s| s["name"] == subset)
                });
                if !defined {
                    out.push(format!("VirtualService {name}: no DestinationRule defines subset {subset} of {host}"));
                }
            }
        }
    }

    // Mesh objects: Weft's validation (the webhook's) accepts them.
    for object in objects.iter().filter(|o| {
        o["apiVersion"]
            .as_str()
            .is_some_and(|v| v.contains("istio.io"))
    }) {
        for error in weft_webhook::validate_value(object.clone()).errors {
            out.push(format!("{} {}: {error}", kind_of(object), name_of(object)));
        }
    }
    out
}

pub(crate) fn samples() -> Vec<Value> {
    let (objects, unlisted) = render(&support::root().join(SAMPLES));
    assert!(
        unlisted.is_empty(),
        "files not in {SAMPLES}/kustomization.yaml: {unlisted:?}"
    );
    objects
}
