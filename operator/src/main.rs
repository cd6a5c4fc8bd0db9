//! The `weft-operator` binary: the Weft control plane.
//!
//! `weft-operator --config-dir DIR --state-dir DIR` runs the standalone mode (no Kubernetes);
//! without `--config-dir` it runs the Kubernetes mode against the in-cluster configuration or
//! the current KUBECONFIG context.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;

/// mimalloc instead of the system allocator: the control plane allocates many small, short-lived
/// objects per admission request and per config build (validation of a 20-route VirtualService:
/// p99 115 µs with glibc malloc, 90-98 µs with mimalloc; see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use weft_operator::kubernetes::{self, DEFAULT_NAMESPACE, DEFAULT_STATE_DIR, KubernetesSettings};
use weft_operator::standalone::runner::{StandaloneSettings, run};

/// The Weft control plane.
#[derive(Parser, Debug)]
#[command(name = "weft-operator", version, about)]
struct Args {
    /// Standalone mode: read mesh YAML (Istio kinds, ServiceEntry + WorkloadEntry, Mesh) from
    /// this directory instead of Kubernetes.
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Where certificates are kept: the CA and workload certificates in standalone mode
    /// (default /var/lib/weft); the operator's own certificates in Kubernetes mode (default
    /// /tmp/weft-operator).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Kubernetes mode: the operator's namespace (CA Secrets, Lease, Service `weft-operator`).
    #[arg(long, env = "POD_NAMESPACE", default_value = DEFAULT_NAMESPACE)]
    namespace: String,
    /// Kubernetes mode: elect a leader on the Lease `weft-operator-leader`; only the leader
    /// writes (Citadel, webhook configurations).
    #[arg(long)]
    leader_elect: bool,
    /// Kubernetes mode: this replica's identity in the election (default: the host name).
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    /// Kubernetes mode: admission webhook (HTTPS) address.
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_address: SocketAddr,
    /// Kubernetes mode: serve the webhooks with tls.crt/tls.key from this directory (re-read
    /// on change; OLM's layout) instead of a certificate issued from the mesh CA.
    #[arg(long)]
    webhook_cert_dir: Option<PathBuf>,
    /// Kubernetes mode: keep the caBundle of the webhook configurations `weft-sidecar-injector`
    /// and `weft-validator` (false under OLM, which manages them).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    manage_webhook_ca_bundle: bool,
    /// Kubernetes mode, running outside the cluster: `https://HOST:PORT` at which the API
    /// server reaches this process; the webhook configurations get `url:` instead of `service:`.
    #[arg(long)]
    webhook_url: Option<String>,
    /// Discovery service (mTLS) address.
    #[arg(long, default_value = "0.0.0.0:15012")]
    discovery_address: SocketAddr,
    /// Monitoring address (/metrics, /debug/syncz, /healthz, /readyz).
    #[arg(long, default_value = "0.0.0.0:15014")]
    monitoring_address: SocketAddr,
    /// Owner of workload certificate files as UID:GID (the proxies' user, Istio's 1337:1337).
    #[arg(long, value_parser = parse_owner)]
    cert_owner: Option<(u32, u32)>,
    /// How often the config directory is re-read, in milliseconds.
    #[arg(long, default_value_t = 200)]
    poll_interval_ms: u64,
    /// Kubernetes mode: the proxy image injected into workloads when the Mesh sets no
    /// `spec.proxy.image` (Istio's `global.proxy.image`).
    #[arg(long, env = "WEFT_PROXY_IMAGE")]
    proxy_image: Option<String>,
    /// Log format: text or json.
    #[arg(long, default_value = "text")]
    log_format: String,
}

fn parse_owner(s: &str) -> Result<(u32, u32), String> {
    let (u, g) = s.split_once(':').ok_or("expected UID:GID")?;
    Ok((
        u.parse().map_err(|_| format!("bad UID {u:?}"))?,
        g.parse().map_err(|_| format!("bad GID {g:?}"))?,
    ))
}

/// The host name (the pod name inside a cluster), or `weft-operator` when unreadable.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "weft-operator".to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // One process-wide TLS provider (ring, as everywhere in Weft) for kube's client too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        signal.cancel();
    });
    let Some(config_dir) = args.config_dir else {
        let client = kube::Client::try_default().await.map_err(|e| {
            anyhow::anyhow!("connecting to Kubernetes (in-cluster or KUBECONFIG): {e}")
        })?;
        let identity = args.pod_name.unwrap_or_else(host_name);
        return kubernetes::run(
            client,
            KubernetesSettings {
                namespace: args.namespace,
                leader_elect: args.leader_elect,
                identity,
                discovery_addr: args.discovery_address,
                monitoring_addr: args.monitoring_address,
                webhook_addr: args.webhook_address,
                webhook_cert_dir: args.webhook_cert_dir,
                manage_webhook_ca_bundle: args.manage_webhook_ca_bundle,
                webhook_url: args.webhook_url,
                state_dir: args.state_dir.unwrap_or_else(|| DEFAULT_STATE_DIR.into()),
                proxy_image: args.proxy_image,
            },
            shutdown,
        )
        .await;
    };
    run(
        StandaloneSettings {
            config_dir,
            state_dir: args.state_dir.unwrap_or_else(|| "/var/lib/weft".into()),
            discovery_addr: args.discovery_address,
            monitoring_addr: args.monitoring_address,
            cert_owner: args.cert_owner,
            poll_interval: Duration::from_millis(args.poll_interval_ms),
        },
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("weft-operator").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn install_contract_flags_parse() {
        let args = parse(&[
            "--namespace=mesh-ops",
            "--leader-elect",
            "--log-format=json",
            "--webhook-cert-dir=/tmp/k8s-webhook-server/serving-certs",
            "--manage-webhook-ca-bundle=false",
        ]);
        assert_eq!(args.namespace, "mesh-ops");
        assert!(args.leader_elect);
        assert!(!args.manage_webhook_ca_bundle);
        assert_eq!(args.log_format, "json");
        assert_eq!(
            args.webhook_cert_dir.as_deref(),
            Some(std::path::Path::new(
                "/tmp/k8s-webhook-server/serving-certs"
            ))
        );
    }

    #[test]
    fn defaults_manage_the_ca_bundle_and_listen_on_istio_ports() {
        let args = parse(&[]);
        assert!(args.manage_webhook_ca_bundle);
        assert!(parse(&["--manage-webhook-ca-bundle"]).manage_webhook_ca_bundle);
        assert!(!args.leader_elect);
        assert_eq!(args.discovery_address.port(), 15012);
        assert_eq!(args.monitoring_address.port(), 15014);
        assert_eq!(args.webhook_address.port(), 9443);
        assert_eq!(args.webhook_url, None);
    }
}
