//! The `weft-operator` binary: the Weft control plane.
//!
//! `weft-operator --config-dir DIR --state-dir DIR` runs the standalone mode (no Kubernetes).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tokio_util::sync::CancellationToken;
use weft_operator::standalone::runner::{StandaloneSettings, run};

/// The Weft control plane.
#[derive(Parser, Debug)]
#[command(name = "weft-operator", version, about)]
struct Args {
    /// Standalone mode: read mesh YAML (Istio kinds, ServiceEntry + WorkloadEntry, Mesh) from
    /// this directory instead of Kubernetes.
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Standalone mode: where the CA and the certificates are kept.
    #[arg(long, default_value = "/var/lib/weft")]
    state_dir: PathBuf,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    let Some(config_dir) = args.config_dir else {
        anyhow::bail!(
            "Kubernetes mode is not available in this build yet; run the standalone mode with --config-dir DIR"
        );
    };
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
    run(
        StandaloneSettings {
            config_dir,
            state_dir: args.state_dir,
            discovery_addr: args.discovery_address,
            monitoring_addr: args.monitoring_address,
            cert_owner: args.cert_owner,
            poll_interval: Duration::from_millis(args.poll_interval_ms),
        },
        shutdown,
    )
    .await
}
