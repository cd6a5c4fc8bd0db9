//! A whole mesh on one machine: the control plane in standalone mode in one lab host, and
//! workloads in others, each an application plus a `weft-proxy` injected exactly as the
//! mutating webhook injects a pod: the workload is described as a Pod, passed through
//! [`weft_webhook::inject`], and the injected init container's and proxy container's command
//! lines are what runs in the host's namespace (capture rules as root, the proxy as UID 1337).
//!
//! Workloads are registered with the control plane as Istio's WorkloadEntry objects, written
//! into its config directory; services are ServiceEntries the caller writes.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use weft_webhook::InjectionConfig;

use crate::lab::{Host, Lab, LabError};

/// The proxy's user and group (Istio's 1337).
pub const PROXY_UID: u32 = 1337;

/// The environment variable naming a directory that holds `weft-operator`, `weft-proxy` and
/// `weft-sample-app` (see [`MeshBinaries::locate`]).
pub const BIN_DIR_ENV: &str = "WEFT_MESH_BIN_DIR";

/// Paths of the binaries a local mesh runs.
#[derive(Debug, Clone)]
pub struct MeshBinaries {
    /// `weft-operator`.
    pub operator: PathBuf,
    /// `weft-proxy`.
    pub proxy: PathBuf,
    /// `weft-sample-app`.
    pub app: PathBuf,
}

impl MeshBinaries {
    /// Finds the binaries in `dir` when given, else in the directory named by the environment
    /// variable [`BIN_DIR_ENV`] when set (binaries built elsewhere, e.g. with their own
    /// `CARGO_TARGET_DIR`), else next to the running executable (`target/<profile>/` for tests
    /// run by cargo, whose executables live in `target/<profile>/deps/`). Errors when one is
    /// missing, saying to build them (`cargo build --workspace --bins`).
    pub fn locate(dir: Option<&Path>) -> Result<Self, LabError> {
        let mut candidates = Vec::new();
        if let Some(dir) = dir {
            candidates.push(dir.to_path_buf());
        }
        if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
            candidates.push(PathBuf::from(dir));
        }
        if let Ok(exe) = std::env::current_exe() {
            for ancestor in exe.ancestors().skip(1).take(2) {
                candidates.push(ancestor.to_path_buf());
            }
        }
        for dir in candidates {
            let bins = Self {
                operator: dir.join("weft-operator"),
                proxy: dir.join("weft-proxy"),
                app: dir.join("weft-sample-app"),
            };
            if bins.operator.is_file() && bins.proxy.is_file() && bins.app.is_file() {
                return Ok(bins);
            }
        }
        Err(LabError::MissingBinaries)
    }
}

/// One workload: a WorkloadEntry, a sample application and a sidecar.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    /// The lab host name (1-8 of `[a-z0-9]`) and the WorkloadEntry/pod name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// The service account (the workload's identity).
    pub service_account: String,
    /// Labels (`app`, `version`, ...), matched by ServiceEntry `workloadSelector` and subsets.
    pub labels: BTreeMap<String, String>,
    /// The application's port.
    pub port: u16,
    /// Arguments of `weft-sample-app` (e.g. `serve --service reviews --version v1`); `None`
    /// for a workload that only sends traffic.
    pub app_args: Option<Vec<String>>,
    /// Pod annotations (e.g. `traffic.sidecar.istio.io/excludeOutboundPorts`).
    pub annotations: BTreeMap<String, String>,
    /// Whether the sidecar writes its JSON access log (to its log, `<name>-proxy`); off by
    /// default, to keep the logs of load-heavy tests small.
    pub access_log: bool,
}

impl WorkloadSpec {
    /// A workload running `weft-sample-app serve --service <app> --version <version>` on 9080,
    /// with service account `<app>` and labels `app`/`version`; `extra` are more `serve`
    /// arguments (e.g. `--call NAME=URL`, `--resolve HOST=IP`).
    pub fn app(name: &str, namespace: &str, app: &str, version: &str, extra: &[String]) -> Self {
        let mut args: Vec<String> = [
            "serve",
            "--service",
            app,
            "--version",
            version,
            "--listen",
            "0.0.0.0:9080",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            service_account: app.to_string(),
            labels: BTreeMap::from([
                ("app".to_string(), app.to_string()),
                ("version".to_string(), version.to_string()),
            ]),
            port: 9080,
            app_args: Some(args),
            annotations: BTreeMap::new(),
            access_log: false,
        }
    }

    /// A workload that only sends traffic (with `load`), as service account `service_account`.
    pub fn client(name: &str, namespace: &str, service_account: &str) -> Self {
        Self {
            name: name.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            labels: BTreeMap::from([("app".to_string(), service_account.to_string())]),
            port: 9080,
            app_args: None,
            annotations: BTreeMap::new(),
            access_log: false,
        }
    }
}

/// The namespace, labels and service account Istio's default ingress gateway is installed
/// with (the `istio-ingressgateway` Deployment of `istioctl install`).
pub const INGRESS_NAMESPACE: &str = "istio-system";
/// The ingress gateway's service account.
pub const INGRESS_SERVICE_ACCOUNT: &str = "istio-ingressgateway-service-account";

impl WorkloadSpec {
    /// An ingress gateway as Istio installs it: namespace `istio-system`, service account
    /// `istio-ingressgateway-service-account`, labels `istio: ingressgateway` and
    /// `app: istio-ingressgateway` (what `Gateway.selector` usually names). `ports` are the
    /// ports its Gateways will use (informational: the gateway binds what its config says; the
    /// first is recorded as the spec's `port`). Add it with [`LocalMesh::add_gateway`].
    pub fn ingress_gateway(name: &str, ports: &[u16]) -> Self {
        Self {
            name: name.to_string(),
            namespace: INGRESS_NAMESPACE.to_string(),
            service_account: INGRESS_SERVICE_ACCOUNT.to_string(),
            labels: BTreeMap::from([
                ("istio".to_string(), "ingressgateway".to_string()),
                ("app".to_string(), "istio-ingressgateway".to_string()),
            ]),
            port: ports.first().copied().unwrap_or(80),
            app_args: None,
            annotations: BTreeMap::new(),
            access_log: false,
        }
    }
}

/// A ServiceEntry registering `<name>.<namespace>.svc.cluster.local:9080` (HTTP) at `vip`, its
/// endpoints the WorkloadEntries labelled `app: <name>` — Istio's way of describing services
/// outside Kubernetes.
pub fn service_entry_yaml(name: &str, namespace: &str, vip: Ipv4Addr) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  hosts: [{name}.{namespace}.svc.cluster.local]
  addresses: [{vip}]
  ports: [{{number: 9080, name: http, protocol: HTTP}}]
  location: MESH_INTERNAL
  resolution: STATIC
  workloadSelector: {{labels: {{app: {name}}}}}
"#
    )
}

/// A running workload.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Its spec.
    pub spec: WorkloadSpec,
    /// Its lab host.
    pub host: Host,
    proxy_process: usize,
    app_process: Option<usize>,
}

/// A mesh on one machine. Dropping it tears everything down (the [`Lab`] does).
pub struct LocalMesh {
    lab: Lab,
    bins: MeshBinaries,
    config_dir: PathBuf,
    state_dir: PathBuf,
    operator_host: Host,
    operator_process: Option<usize>,
    workloads: BTreeMap<String, Workload>,
    injection: InjectionConfig,
    /// The resolver of workloads and gateways added from now on (see
    /// [`LocalMesh::set_nameserver`]); `None`: the machine's.
    nameserver: Option<Ipv4Addr>,
}

impl std::fmt::Debug for LocalMesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalMesh")
            .field("lab", &self.lab)
            .field("workloads", &self.workloads.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The discovery port of the control plane.
pub const DISCOVERY_PORT: u16 = 15012;
/// The monitoring port of the control plane.
pub const MONITORING_PORT: u16 = 15014;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LabError + '_ {
    move |source| LabError::Log {
        path: path.to_path_buf(),
        source,
    }
}

impl LocalMesh {
    /// Builds the lab, attaches this process to it, and starts the control plane with an
    /// empty config directory. Errors when the lab cannot be built or the binaries are missing.
    pub fn start(bins: MeshBinaries) -> Result<Self, LabError> {
        Self::start_with(bins, &[])
    }

    /// As [`LocalMesh::start`], with `files` (name, YAML) in the config directory before the
    /// control plane starts (e.g. a `Mesh` with short certificate lifetimes, read at start-up).
    pub fn start_with(bins: MeshBinaries, files: &[(&str, &str)]) -> Result<Self, LabError> {
        let mut lab = Lab::new()?;
        lab.attach_root()?;
        let operator_host = lab.add_host("istiod")?;
        let base = lab.log_dir().to_path_buf();
        let config_dir = base.join("config");
        let state_dir = base.join("state");
        for dir in [&config_dir, &state_dir] {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
            set_mode(dir, 0o755)?;
        }
        set_mode(&base, 0o755)?;
        let injection = InjectionConfig {
            discovery_address: format!("{}:{DISCOVERY_PORT}", operator_host.ip),
            trust_domain: "cluster.local".to_string(),
            // The standalone operator's identity is in the mesh's root namespace.
            operator_namespace: INGRESS_NAMESPACE.to_string(),
            ..InjectionConfig::default()
        };
        for (name, yaml) in files {
            let path = config_dir.join(name);
            std::fs::write(&path, yaml).map_err(io_err(&path))?;
        }
        let mut mesh = Self {
            lab,
            bins,
            config_dir,
            state_dir,
            operator_host,
            operator_process: None,
            workloads: BTreeMap::new(),
            injection,
            nameserver: None,
        };
        mesh.start_operator()?;
        Ok(mesh)
    }

    /// Makes the workloads and gateways added from now on resolve names with `nameserver`
    /// only (e.g. a [`crate::dns::DnsServer`] on a plain host), through
    /// [`Lab::set_resolver`]; `None`: the machine's resolver again.
    pub fn set_nameserver(&mut self, nameserver: Option<Ipv4Addr>) {
        self.nameserver = nameserver;
    }

    /// The lab.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The lab, mutably (to start processes of a test's own on its hosts with [`Lab::spawn`];
    /// they are stopped with the mesh).
    pub fn lab_mut(&mut self) -> &mut Lab {
        &mut self.lab
    }

    /// The control plane's config directory (Istio YAML goes here).
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// The control plane's state directory (CA, certificates).
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The control plane's address.
    pub fn operator_ip(&self) -> Ipv4Addr {
        self.operator_host.ip
    }

    /// (Re)starts the control plane and waits until its monitoring endpoint answers.
    pub fn start_operator(&mut self) -> Result<(), LabError> {
        let args = vec![
            "--config-dir".to_string(),
            self.config_dir.display().to_string(),
            "--state-dir".to_string(),
            self.state_dir.display().to_string(),
            "--cert-owner".to_string(),
            format!("{PROXY_UID}:{PROXY_UID}"),
            "--poll-interval-ms".to_string(),
            "100".to_string(),
        ];
        let host = self.operator_host.clone();
        let operator = self.bins.operator.clone();
        let index = self
            .lab
            .spawn(&host, "operator", &operator, &args, &[], None)?;
        self.operator_process = Some(index);
        let addr = SocketAddr::from((host.ip, MONITORING_PORT));
        if wait_until(Duration::from_secs(20), || {
            http_get(addr, "/healthz").is_ok_and(|(s, _)| s == 200)
        }) {
            Ok(())
        } else {
            Err(LabError::NotReady {
                what: "weft-operator".into(),
                log: self.lab.log("operator"),
            })
        }
    }

    /// Stops the control plane (the proxies keep their last config).
    pub fn stop_operator(&mut self) {
        if let Some(index) = self.operator_process.take()
            && let Some(p) = self.lab.process(index)
        {
            p.stop(Duration::from_secs(5));
        }
    }

    /// Writes (or replaces) `name` in the config directory, atomically.
    pub fn write_config(&self, name: &str, yaml: &str) -> Result<(), LabError> {
        let tmp = self.config_dir.join(format!(".{name}.tmp"));
        let path = self.config_dir.join(name);
        std::fs::write(&tmp, yaml).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Removes `name` from the config directory.
    pub fn remove_config(&self, name: &str) -> Result<(), LabError> {
        let path = self.config_dir.join(name);
        std::fs::remove_file(&path).map_err(io_err(&path))
    }

    /// The directory of `namespace`/`service_account`'s certificate files.
    pub fn cert_dir(&self, namespace: &str, service_account: &str) -> PathBuf {
        self.state_dir
            .join("certs")
            .join(namespace)
            .join(service_account)
    }

    /// Adds a workload: registers its WorkloadEntry, waits for its certificate, starts its
    /// application, injects it (capture rules and proxy from the webhook's output) and waits
    /// until its proxy is ready. Errors name what did not come up, with its log.
    pub fn add_workload(&mut self, spec: WorkloadSpec) -> Result<Workload, LabError> {
        let host = self.lab.add_host(&spec.name)?;
        if let Some(nameserver) = self.nameserver {
            self.lab.set_resolver(&host, nameserver)?;
        }
        let cert_dir = self.register(&spec, &host)?;

        let app_process = match &spec.app_args {
            Some(args) => {
                let app = self.bins.app.clone();
                Some(
                    self.lab
                        .spawn(&host, &format!("{}-app", spec.name), &app, args, &[], None)?,
                )
            }
            None => None,
        };

        let injected = weft_webhook::inject(&self.pod(&spec), &self.injection)
            .map_err(|e| LabError::Inject(e.to_string()))?;
        let pod_spec = injected.spec.unwrap_or_default();
        let init = pod_spec
            .init_containers
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == "istio-init")
            .ok_or_else(|| LabError::Inject("no istio-init container".into()))?;
        let proxy = pod_spec
            .containers
            .iter()
            .find(|c| c.name == "istio-proxy")
            .cloned()
            .ok_or_else(|| LabError::Inject("no istio-proxy container".into()))?;
        let init_args = init.args.unwrap_or_default();
        let proxy_bin = self.bins.proxy.display().to_string();
        let mut full = vec![proxy_bin.as_str()];
        full.extend(init_args.iter().map(String::as_str));
        self.lab.exec(&host, full[0], &full[1..])?;

        let mut proxy_args = proxy.args.unwrap_or_default();
        // The injected `--cert-dir` names the pod's Secret volume; here the certificates are
        // in the lab's state directory.
        match proxy_args.iter().position(|arg| arg == "--cert-dir") {
            Some(flag) if flag + 1 < proxy_args.len() => {
                proxy_args[flag + 1] = cert_dir.display().to_string();
            }
            _ => proxy_args.extend(["--cert-dir".to_string(), cert_dir.display().to_string()]),
        }
        let access_log = if spec.access_log { "stdout" } else { "off" };
        proxy_args.extend(["--access-log".to_string(), access_log.to_string()]);
        let proxy_process =
            self.spawn_proxy(&spec, &host, &proxy_args, format!("proxy of {}", spec.name))?;
        let workload = Workload {
            spec,
            host,
            proxy_process,
            app_process,
        };
        self.workloads
            .insert(workload.spec.name.clone(), workload.clone());
        Ok(workload)
    }

    /// Writes `spec`'s WorkloadEntry (address `host.ip`) and waits until the control plane has
    /// issued its service account's certificate; returns the certificate directory.
    fn register(&self, spec: &WorkloadSpec, host: &Host) -> Result<PathBuf, LabError> {
        let labels: String = spec
            .labels
            .iter()
            .map(|(k, v)| format!("{k}: {v:?}, "))
            .collect();
        let entry = format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  address: {ip}\n  serviceAccount: {sa}\n  labels: {{{labels}}}\n",
            name = spec.name,
            ns = spec.namespace,
            ip = host.ip,
            sa = spec.service_account,
            labels = labels.trim_end_matches(", "),
        );
        self.write_config(&format!("workload-{}.yaml", spec.name), &entry)?;
        let cert_dir = self.cert_dir(&spec.namespace, &spec.service_account);
        let chain = cert_dir.join("cert-chain.pem");
        if !wait_until(Duration::from_secs(20), || chain.is_file()) {
            return Err(LabError::NotReady {
                what: format!(
                    "certificate for {}/{}",
                    spec.namespace, spec.service_account
                ),
                log: self.lab.log("operator"),
            });
        }
        Ok(cert_dir)
    }

    /// Starts `weft-proxy` with `args` in `host` as the proxy user (UID 1337) with the downward-API
    /// environment the injector gives it (pod name, namespace, service account, instance IP), and
    /// waits until it holds a config (`/healthz/ready` on 15021). Returns the lab's process
    /// index; its log is `<name>-proxy`.
    ///
    /// Errors: the spawn's, or [`LabError::NotReady`] naming `what` with the proxy's log.
    fn spawn_proxy(
        &mut self,
        spec: &WorkloadSpec,
        host: &Host,
        args: &[String],
        what: String,
    ) -> Result<usize, LabError> {
        let env = vec![
            ("POD_NAME".to_string(), spec.name.clone()),
            ("POD_NAMESPACE".to_string(), spec.namespace.clone()),
            ("SERVICE_ACCOUNT".to_string(), spec.service_account.clone()),
            ("INSTANCE_IP".to_string(), host.ip.to_string()),
        ];
        let proxy_bin = self.bins.proxy.clone();
        let log_name = format!("{}-proxy", spec.name);
        let process = self.lab.spawn(
            host,
            &log_name,
            &proxy_bin,
            args,
            &env,
            Some((PROXY_UID, PROXY_UID)),
        )?;
        let health = SocketAddr::from((host.ip, 15021));
        if !wait_until(Duration::from_secs(20), || {
            http_get(health, "/healthz/ready").is_ok_and(|(s, _)| s == 200)
        }) {
            return Err(LabError::NotReady {
                what,
                log: self.lab.log(&log_name),
            });
        }
        Ok(process)
    }

    /// Adds a gateway (Istio's `pilot-agent proxy router`): a host running `weft-proxy
    /// gateway` with no application and no traffic capture, registered by a WorkloadEntry
    /// (so the control plane issues its certificate and selects Gateways by its labels), its
    /// config from the discovery service. It runs as UID 1337 with unprivileged ports starting
    /// at 0 in its namespace (`net.ipv4.ip_unprivileged_port_start=0`, as Istio's gateway
    /// Deployment sets), so it can bind 80 and 443. Waits until it holds a config
    /// (`/healthz/ready` on 15021). Its access log goes to its log (`<name>-proxy`).
    ///
    /// Errors name what did not come up, with its log.
    pub fn add_gateway(&mut self, spec: WorkloadSpec) -> Result<Workload, LabError> {
        let host = self.lab.add_host(&spec.name)?;
        if let Some(nameserver) = self.nameserver {
            self.lab.set_resolver(&host, nameserver)?;
        }
        let cert_dir = self.register(&spec, &host)?;
        self.lab.exec(
            &host,
            "sysctl",
            &["-q", "-w", "net.ipv4.ip_unprivileged_port_start=0"],
        )?;
        let args = vec![
            "gateway".to_string(),
            "--discovery-address".to_string(),
            self.injection.discovery_address.clone(),
            "--trust-domain".to_string(),
            self.injection.trust_domain.clone(),
            "--cert-dir".to_string(),
            cert_dir.display().to_string(),
        ];
        let proxy_process =
            self.spawn_proxy(&spec, &host, &args, format!("gateway {}", spec.name))?;
        let workload = Workload {
            spec,
            host,
            proxy_process,
            app_process: None,
        };
        self.workloads
            .insert(workload.spec.name.clone(), workload.clone());
        Ok(workload)
    }

    fn pod(&self, spec: &WorkloadSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(spec.name.clone()),
                namespace: Some(spec.namespace.clone()),
                labels: Some(spec.labels.clone()),
                annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                service_account_name: Some(spec.service_account.clone()),
                containers: vec![Container {
                    name: "app".to_string(),
                    image: Some("weft-sample-app".to_string()),
                    ports: Some(vec![ContainerPort {
                        container_port: i32::from(spec.port),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            status: None,
        }
    }

    /// Adds a host with no sidecar and no registration: a plaintext client outside the mesh.
    pub fn add_plain_host(&mut self, name: &str) -> Result<Host, LabError> {
        self.lab.add_host(name)
    }

    /// Runs `weft-sample-app load` from a host without sidecar (see [`LocalMesh::add_plain_host`]).
    pub fn load_from_host(
        &self,
        host: &Host,
        url: &str,
        resolve: &[(&str, Ipv4Addr)],
        requests: usize,
    ) -> Result<serde_json::Value, LabError> {
        let mut args = vec![
            "load".to_string(),
            "--url".to_string(),
            url.to_string(),
            "--requests".to_string(),
            requests.to_string(),
            "--concurrency".to_string(),
            "1".to_string(),
            "--timeout-ms".to_string(),
            "3000".to_string(),
        ];
        for (name, ip) in resolve {
            args.extend(["--resolve".to_string(), format!("{name}={ip}")]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let app = self.bins.app.display().to_string();
        let out = self.lab.exec(host, &app, &refs)?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| LabError::Inject(format!("load report: {e}")))
    }

    /// The running workload named `name`.
    pub fn workload(&self, name: &str) -> Option<&Workload> {
        self.workloads.get(name)
    }

    /// Runs `weft-sample-app load` inside `from`'s namespace (its traffic is captured by its
    /// sidecar) and returns the JSON report. `resolve` maps host names to VIPs.
    pub fn load(
        &self,
        from: &str,
        url: &str,
        resolve: &[(&str, Ipv4Addr)],
        headers: &[(&str, &str)],
        requests: usize,
        concurrency: usize,
    ) -> Result<serde_json::Value, LabError> {
        let workload = self
            .workloads
            .get(from)
            .ok_or_else(|| LabError::Inject(format!("no workload {from}")))?;
        let mut args = vec![
            "load".to_string(),
            "--url".to_string(),
            url.to_string(),
            "--requests".to_string(),
            requests.to_string(),
            "--concurrency".to_string(),
            concurrency.to_string(),
        ];
        for (host, ip) in resolve {
            args.extend(["--resolve".to_string(), format!("{host}={ip}")]);
        }
        for (k, v) in headers {
            args.extend(["--header".to_string(), format!("{k}={v}")]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let app = self.bins.app.display().to_string();
        let out = self.lab.exec(&workload.host, &app, &refs)?;
        serde_json::from_slice(&out.stdout)
            .map_err(|e| LabError::Inject(format!("load report: {e}")))
    }

    /// Stops the proxy of `name` with SIGTERM (graceful drain); returns whether it exited in time.
    pub fn stop_proxy(&mut self, name: &str) -> bool {
        let Some(index) = self.workloads.get(name).map(|w| w.proxy_process) else {
            return false;
        };
        self.lab
            .process(index)
            .is_some_and(|p| p.stop(Duration::from_secs(10)))
    }

    /// Whether `name`'s application process is still running.
    pub fn app_running(&mut self, name: &str) -> bool {
        let Some(Some(index)) = self.workloads.get(name).map(|w| w.app_process) else {
            return false;
        };
        self.lab.process(index).is_some_and(|p| p.is_running())
    }

    /// `name`'s proxy metrics (Prometheus text from 15090).
    pub fn proxy_metrics(&self, name: &str) -> Result<String, LabError> {
        let host = &self
            .workloads
            .get(name)
            .ok_or_else(|| LabError::Inject(format!("no workload {name}")))?
            .host;
        http_get(SocketAddr::from((host.ip, 15090)), "/stats/prometheus")
            .map(|(_, body)| body)
            .map_err(|e| LabError::Inject(format!("metrics of {name}: {e}")))
    }

    /// The control plane's `/debug/syncz` (every proxy's sync status), as JSON.
    pub fn sync_status(&self) -> Result<serde_json::Value, LabError> {
        let (_, body) = http_get(
            SocketAddr::from((self.operator_host.ip, MONITORING_PORT)),
            "/debug/syncz",
        )
        .map_err(|e| LabError::Inject(format!("syncz: {e}")))?;
        serde_json::from_str(&body).map_err(|e| LabError::Inject(format!("syncz: {e}")))
    }

    /// Each connected proxy's acknowledged config version, keyed `<workload>.<namespace>`
    /// (proxies that acknowledged nothing yet are absent), from [`LocalMesh::sync_status`].
    /// Empty when the control plane does not answer.
    pub fn acked_versions(&self) -> BTreeMap<String, String> {
        let Ok(status) = self.sync_status() else {
            return BTreeMap::new();
        };
        status
            .as_array()
            .map(|rows| {
                rows.iter()
                    .filter_map(|row| {
                        Some((
                            row["proxy"].as_str()?.to_string(),
                            row["acked"].as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The log of a process (`operator`, `<workload>-proxy`, `<workload>-app`).
    pub fn log(&self, name: &str) -> String {
        self.lab.log(name)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), LabError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io_err(path))
}

/// Polls `ok` every 50 ms until it holds or `timeout` passes. Returns whether it held.
pub fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A plain HTTP/1.1 GET with `Connection: close`; returns status and body. Errors on connection
/// or a response that is not HTTP.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
