//! `weftctl analyze -f FILE|DIR ... | -k`: validation plus cross-resource analysis, like
//! `istioctl analyze` (the analyzers are `weft_analyze`'s; this file reads files or lists a
//! cluster's objects and prints the messages).
//!
//! Exit code: 0 when no message reaches the failure threshold (default `Error`), 1 when one
//! does, 2 for usage and input problems (unreadable file, malformed YAML, no cluster).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use weft_analyze::{Input, Level, Message, Suppression};

/// Exit code when no message reaches the failure threshold.
const EXIT_CLEAN: i32 = 0;
/// Exit code when a message reaches the failure threshold.
const EXIT_FAILED: i32 = 1;
/// Exit code for usage and input errors.
const EXIT_USAGE: i32 = 2;

/// How long the list calls against a cluster may take in all before giving up.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(20);

/// Output format of `weftctl analyze` (istioctl's `--output`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One line per message, as istioctl prints them.
    Text,
    /// A JSON array of messages.
    Json,
    /// A YAML list of messages.
    Yaml,
}

/// A message level on the command line.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threshold {
    /// `Info` and above.
    Info,
    /// `Warning` and above.
    Warning,
    /// `Error` only.
    Error,
}

impl From<Threshold> for Level {
    fn from(threshold: Threshold) -> Self {
        match threshold {
            Threshold::Info => Level::Info,
            Threshold::Warning => Level::Warning,
            Threshold::Error => Level::Error,
        }
    }
}

/// Arguments of `weftctl analyze`.
#[derive(clap::Args, Debug)]
pub struct AnalyzeArgs {
    /// Files or directories of YAML/JSON (directories: their `*.yaml`, `*.yml`, `*.json`).
    #[arg(short = 'f', long = "filename", required_unless_present = "kubeconfig")]
    files: Vec<PathBuf>,
    /// Analyze the cluster's objects (list calls only), from the kubeconfig at PATH or, without
    /// PATH, from KUBECONFIG / ~/.kube/config; files given with -f are added to them.
    #[arg(short = 'k', long = "kubeconfig", value_name = "PATH", num_args = 0..=1)]
    kubeconfig: Option<Option<PathBuf>>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "text")]
    output: Format,
    /// Drop messages of one code about matching resources: `CODE=Kind name`, e.g.
    /// `IST0102=Namespace frod` or `IST0101=VirtualService default/*` (repeatable).
    #[arg(short = 'S', long = "suppress", value_name = "CODE=Kind name")]
    suppress: Vec<String>,
    /// The lowest level that makes the exit code 1.
    #[arg(long, value_enum, default_value = "error")]
    failure_threshold: Threshold,
    /// The lowest level printed.
    #[arg(long, value_enum, default_value = "info")]
    output_threshold: Threshold,
}

/// Runs the analysis and prints the messages; returns the exit code (0 clean, 1 a message at
/// or above the failure threshold, 2 usage or input error, reported on stderr).
pub fn run(args: AnalyzeArgs) -> i32 {
    match analyze(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("Error: {error:#}");
            EXIT_USAGE
        }
    }
}

fn analyze(args: &AnalyzeArgs) -> anyhow::Result<i32> {
    let suppressions = args
        .suppress
        .iter()
        .map(|s| s.parse::<Suppression>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut input = match &args.kubeconfig {
        Some(path) => cluster_input(path.as_deref())?,
        None => Input::default(),
    };
    let files = crate::validate::expand(&args.files)?;
    for file in &files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        input.add_yaml(&file.display().to_string(), &text)?;
    }
    let messages = weft_analyze::suppress(weft_analyze::analyze(&input), &suppressions);
    let failed = messages
        .iter()
        .any(|m| m.level >= Level::from(args.failure_threshold));
    let shown: Vec<&Message> = messages
        .iter()
        .filter(|m| m.level >= Level::from(args.output_threshold))
        .collect();
    match args.output {
        Format::Text => {
            for message in &shown {
                println!("{message}");
            }
            let what = match &args.kubeconfig {
                Some(_) => "the cluster".to_owned(),
                None => format!("{} file(s)", files.len()),
            };
            if shown.is_empty() {
                eprintln!("\u{2714} No validation issues found when analyzing {what}.");
            }
        }
        Format::Json => println!("{}", serde_json::to_string_pretty(&shown)?),
        Format::Yaml => print!("{}", serde_yaml::to_string(&shown)?),
    }
    Ok(if failed { EXIT_FAILED } else { EXIT_CLEAN })
}

/// The mesh kinds listed from a cluster: (group, version, kind, plural).
const MESH_KINDS: &[(&str, &str, &str, &str)] = &[
    (
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
    ),
    (
        "networking.istio.io",
        "v1",
        "DestinationRule",
        "destinationrules",
    ),
    ("networking.istio.io", "v1", "Gateway", "gateways"),
    (
        "networking.istio.io",
        "v1",
        "ServiceEntry",
        "serviceentries",
    ),
    ("networking.istio.io", "v1", "Sidecar", "sidecars"),
    (
        "networking.istio.io",
        "v1",
        "WorkloadEntry",
        "workloadentries",
    ),
    (
        "security.istio.io",
        "v1",
        "PeerAuthentication",
        "peerauthentications",
    ),
    (
        "security.istio.io",
        "v1",
        "AuthorizationPolicy",
        "authorizationpolicies",
    ),
    (
        "security.istio.io",
        "v1",
        "RequestAuthentication",
        "requestauthentications",
    ),
    ("mesh.weft.dev", "v1alpha1", "Mesh", "meshes"),
];

/// Lists Namespaces, Services, Pods and the mesh kinds from the cluster (read-only list
/// calls). Errors when no kubeconfig is found, the cluster does not answer within
/// [`CLUSTER_TIMEOUT`], or a list call fails (a mesh kind whose CRD is not installed is
/// skipped with a note).
fn cluster_input(kubeconfig: Option<&Path>) -> anyhow::Result<Input> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        tokio::time::timeout(CLUSTER_TIMEOUT, list_cluster(kubeconfig))
            .await
            .map_err(|_| {
                anyhow::anyhow!(
                    "no cluster reachable: the API server did not answer within {}s",
                    CLUSTER_TIMEOUT.as_secs()
                )
            })?
    })
}

async fn list_cluster(kubeconfig: Option<&Path>) -> anyhow::Result<Input> {
    use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};

    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("no cluster: reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &kube::config::KubeConfigOptions::default())
                .await
                .with_context(|| format!("no cluster: kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no cluster: no kubeconfig found (set KUBECONFIG or pass -k PATH)")?,
    };
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("no cluster: building the client")?;
    let unreachable =
        |error: kube::Error| anyhow::anyhow!("no cluster reachable at {server}: {error}");
    let params = ListParams::default();
    let mut input = Input::for_cluster();
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&params)
        .await
        .map_err(unreachable)?;
    let services = Api::<Service>::all(client.clone())
        .list(&params)
        .await
        .map_err(unreachable)?;
    let pods = Api::<Pod>::all(client.clone())
        .list(&params)
        .await
        .map_err(unreachable)?;
    for value in namespaces
        .items
        .into_iter()
        .map(serde_json::to_value)
        .chain(services.items.into_iter().map(serde_json::to_value))
        .chain(pods.items.into_iter().map(serde_json::to_value))
    {
        input.add_value(value?, None);
    }
    for (group, version, kind, plural) in MESH_KINDS {
        let resource =
            ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural);
        let api = Api::<DynamicObject>::all_with(client.clone(), &resource);
        let list = match api.list(&params).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.is_not_found() => {
                eprintln!("note: {plural}.{group} is not served by the cluster; skipped");
                continue;
            }
            Err(error) => bail!("listing {plural}.{group}: {error}"),
        };
        for object in list.items {
            let mut value = serde_json::to_value(object)?;
            value["apiVersion"] = format!("{group}/{version}").into();
            value["kind"] = (*kind).into();
            input.add_value(value, None);
        }
    }
    Ok(input)
}
