//! The `weft-proxy` binary: `weft-proxy init` (traffic capture) and `weft-proxy run`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use weft_proxy::config::{ConfigStore, FileSource};
use weft_proxy::listener::DestinationMode;
use weft_proxy::mesh_tls::{CertStoreTls, MeshTls};
use weft_proxy::request_log::TracingObserver;
use weft_proxy::run::{Listeners, RunSettings, run};

#[derive(Parser)]
#[command(name = "weft-proxy", about = "The Weft sidecar data plane")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install the iptables rules that capture the pod's traffic (run as the init container).
    Init(weft_proxy::capture::CaptureArgs),
    /// Run the proxy.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The proxy config (YAML, or JSON by `.json` extension); re-read when it changes.
    #[arg(long, env = "WEFT_PROXY_CONFIG")]
    config: PathBuf,
    /// Directory with the workload certificate (Istio's cert-chain.pem, key.pem,
    /// root-cert.pem, or tls.crt, tls.key, ca.crt). Without it mTLS is unavailable.
    #[arg(long, env = "WEFT_CERT_DIR")]
    cert_dir: Option<PathBuf>,
    /// Outbound capture listener.
    #[arg(long, default_value = "0.0.0.0:15001")]
    outbound_addr: SocketAddr,
    /// Inbound capture listener.
    #[arg(long, default_value = "0.0.0.0:15006")]
    inbound_addr: SocketAddr,
    /// Health listener (`/healthz/ready`).
    #[arg(long, default_value = "0.0.0.0:15021")]
    health_addr: SocketAddr,
    /// Admin listener (`/config_dump`, `/ready`, `/stats`, `/quitquitquit`).
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_addr: SocketAddr,
    /// Prometheus listener (`/stats/prometheus`).
    #[arg(long, default_value = "0.0.0.0:15090")]
    prometheus_addr: SocketAddr,
    /// How long in-flight requests may take to finish after SIGTERM, in ms.
    #[arg(long, default_value_t = 5000)]
    drain_time_ms: u64,
    /// How often the config file is checked for changes, in ms.
    #[arg(long, default_value_t = 500)]
    config_poll_ms: u64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Init(args) => weft_proxy::capture::run(&args).context("traffic capture"),
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the runtime")?
            .block_on(run_proxy(args)),
    }
}

async fn run_proxy(args: RunArgs) -> anyhow::Result<()> {
    let tls: Option<Arc<dyn MeshTls>> = match &args.cert_dir {
        None => None,
        Some(dir) => {
            let paths =
                weft_proxy::tls::CertPaths::discover(dir).context("certificate directory")?;
            let store = weft_proxy::tls::CertStore::load(paths).context("workload certificates")?;
            store.watch(Duration::from_secs(5));
            Some(Arc::new(CertStoreTls::new(store)))
        }
    };
    let store = ConfigStore::new(tls);
    let source = FileSource::new(
        args.config.clone(),
        Duration::from_millis(args.config_poll_ms),
    );
    if let Err(error) = source.load_once(&store) {
        tracing::error!(%error, "initial config rejected; not ready until a valid one arrives");
    }
    let listeners = Listeners::bind(
        args.outbound_addr,
        args.inbound_addr,
        args.health_addr,
        args.admin_addr,
        Some(args.prometheus_addr),
    )
    .await
    .context("binding listeners")?;
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::error!(%error, "cannot watch SIGTERM");
                    return;
                }
            };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutdown signal received");
        signals.cancel();
    });
    let settings = RunSettings {
        store,
        source: Box::new(source),
        observer: Arc::new(TracingObserver),
        prometheus: None,
        destination_mode: DestinationMode::Original,
        drain_time: Duration::from_millis(args.drain_time_ms),
    };
    run(listeners, settings, shutdown).await;
    Ok(())
}
