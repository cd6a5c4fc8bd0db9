//! The `weft-proxy` binary: `weft-proxy init` (traffic capture), `weft-proxy run` (the sidecar)
//! and `weft-proxy gateway` (a standalone gateway).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use weft_proxy::admin::PrometheusRender;
use weft_proxy::app_health::AppProbers;
use weft_proxy::config::{ConfigSource, ConfigStore, FileSource};
use weft_proxy::discovery_source::DiscoverySource;
use weft_proxy::gateway::GatewaySettings;
use weft_proxy::listener::DestinationMode;
use weft_proxy::mesh_tls::{CertStoreTls, MeshTls};
use weft_proxy::run::{AdminListeners, Listeners, RunSettings, run_with_workers};
use weft_proxy::telemetry::{AccessLog, Telemetry};
use weft_proxy::telemetry_observer::TelemetryObserver;
use weft_proxy_config::ProxyType;

/// mimalloc instead of glibc's malloc: the request path allocates and frees per request
/// (hyper's read buffers, header maps, boxed bodies), and glibc's slow paths (`_int_malloc`,
/// `malloc_consolidate`, `unlink_chunk`) were ≈ 5 % of a sidecar's CPU samples at full load.
/// With the arena committed on demand (`.cargo/config.toml`) the peak RSS stays that of
/// glibc's (docs/benchmarks.md, "Session 6").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the proxy as a sidecar.
    Run(Box<RunArgs>),
    /// Run the proxy as a standalone gateway (Istio's `pilot-agent proxy router`): no traffic
    /// capture; the listeners are the config's gateway ports.
    Gateway(Box<CommonArgs>),
    /// Wait until the local proxy is ready (the injector's `postStart` hook when
    /// `holdApplicationUntilProxyStarts` is on): polls `/healthz/ready` on 15021.
    WaitReady(WaitReadyArgs),
}

#[derive(clap::Args)]
struct WaitReadyArgs {
    /// The health endpoint to poll.
    #[arg(long, default_value = "127.0.0.1:15021")]
    health_addr: SocketAddr,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_s: u64,
}

/// Flags shared by `run` and `gateway`: where the config comes from, identity, the admin,
/// health and Prometheus listeners, drain and logging.
#[derive(clap::Args)]
struct CommonArgs {
    /// The proxy config (YAML, or JSON by `.json` extension); re-read when it changes. For
    /// tests and standalone use; otherwise the config comes from `--discovery-address`.
    #[arg(long, env = "WEFT_PROXY_CONFIG", conflicts_with = "discovery_address")]
    config: Option<PathBuf>,
    /// The control plane's discovery service, `host:port` (Istio's `discoveryAddress`,
    /// e.g. `istiod.istio-system.svc:15012`). Needs `--cert-dir`.
    #[arg(long, env = "DISCOVERY_ADDRESS", required_unless_present = "config")]
    discovery_address: Option<String>,
    /// The mesh's SPIFFE trust domain (the control plane's identity is checked in it).
    #[arg(long, env = "TRUST_DOMAIN", default_value = "cluster.local")]
    trust_domain: String,
    /// The control plane's namespace (its SPIFFE ID is `.../ns/<this>/sa/weft-operator`).
    #[arg(long, env = "CONTROL_PLANE_NAMESPACE", default_value = "istio-system")]
    control_plane_namespace: String,
    /// The workload's namespace (downward API `POD_NAMESPACE`).
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// The workload's name: the pod name, or the WorkloadEntry name outside Kubernetes
    /// (downward API `POD_NAME`).
    #[arg(long, env = "POD_NAME", default_value = "")]
    workload: String,
    /// Log level when `RUST_LOG` is not set (`sidecar.istio.io/logLevel`).
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Worker threads (Istio `ProxyConfig.concurrency`); default: 2.
    #[arg(long)]
    concurrency: Option<usize>,
    /// Drain time on shutdown as a Go duration (Istio `terminationDrainDuration`, e.g. `5s`);
    /// overrides `--drain-time-ms`.
    #[arg(long)]
    termination_drain_duration: Option<String>,
    /// Directory with the workload certificate (Istio's cert-chain.pem, key.pem,
    /// root-cert.pem, or tls.crt, tls.key, ca.crt). Without it mTLS is unavailable.
    #[arg(long, env = "WEFT_CERT_DIR")]
    cert_dir: Option<PathBuf>,
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
    /// Access log destination: `stdout` (Istio's default with `accessLogFile: /dev/stdout`),
    /// `off`, or a file path.
    #[arg(long, default_value = "stdout")]
    access_log: String,
}

#[derive(clap::Args)]
struct RunArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Outbound capture listener.
    #[arg(long, default_value = "0.0.0.0:15001")]
    outbound_addr: SocketAddr,
    /// Inbound capture listener.
    #[arg(long, default_value = "0.0.0.0:15006")]
    inbound_addr: SocketAddr,
    /// Status listener (`/healthz/ready` and the rewritten application probes
    /// `/app-health/<container>/<kind>z`, Istio's pilot-agent port).
    #[arg(long, default_value = "0.0.0.0:15020")]
    status_addr: SocketAddr,
    /// The original application probes, as the injector records them (JSON).
    #[arg(long, env = "ISTIO_KUBE_APP_PROBERS", default_value = "")]
    app_probers: String,
    /// The pod's IP (downward API `status.podIP`); application probes go there.
    #[arg(long, env = "INSTANCE_IP", default_value = "127.0.0.1")]
    instance_ip: std::net::IpAddr,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let level = match &cli.command {
        Command::Run(args) => args.common.log_level.clone(),
        Command::Gateway(args) => args.log_level.clone(),
        _ => "info".to_string(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .init();
    match cli.command {
        Command::Init(args) => weft_proxy::capture::run(&args).context("traffic capture"),
        Command::WaitReady(args) => wait_ready(&args),
        Command::Run(args) => {
            let (runtime, workers) = worker_runtimes(args.common.concurrency)?;
            runtime.block_on(run_proxy(*args, workers))
        }
        Command::Gateway(args) => runtime(args.concurrency)?.block_on(run_gateway(*args)),
    }
}

/// The runtime for `concurrency` workers (Istio `ProxyConfig.concurrency`, default 2). One
/// worker is a current-thread runtime: every task runs on the thread that runs the proxy, with
/// no work stealing and no wake-ups across threads (one event loop, as an Envoy worker or
/// HAProxy with one thread); a multi-threaded runtime with one worker would also keep the main
/// thread and hand every wake-up between the two. More workers: the multi-threaded runtime.
fn runtime(concurrency: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = concurrency.unwrap_or(2).max(1);
    let mut builder = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(workers);
        builder
    };
    builder.enable_all().build().context("starting the runtime")
}

/// The sidecar's runtimes for `concurrency` workers (Istio `ProxyConfig.concurrency`, default
/// 2), Envoy's threading model: each worker is a current-thread runtime on its own thread
/// (this one runs the admin endpoints and the config source too) serving the traffic
/// listeners, so a connection's tasks never wake each other across threads. Returns the
/// runtime for this thread and the handles of the others, whose threads run until the process
/// exits. Errors: a runtime or thread cannot be started.
fn worker_runtimes(
    concurrency: Option<usize>,
) -> anyhow::Result<(tokio::runtime::Runtime, Vec<tokio::runtime::Handle>)> {
    let workers = concurrency.unwrap_or(2).max(1);
    let main = runtime(Some(1))?;
    let mut handles = Vec::new();
    for index in 1..workers {
        let worker = runtime(Some(1))?;
        handles.push(worker.handle().clone());
        std::thread::Builder::new()
            .name(format!("weft-worker-{index}"))
            .spawn(move || worker.block_on(std::future::pending::<()>()))
            .context("starting a worker thread")?;
    }
    Ok((main, handles))
}

/// Polls the health endpoint until it answers 200 or the timeout passes.
fn wait_ready(args: &WaitReadyArgs) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let deadline = std::time::Instant::now() + Duration::from_secs(args.timeout_s);
    while std::time::Instant::now() < deadline {
        if let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&args.health_addr, Duration::from_secs(1))
        {
            let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
            let _ = s.write_all(
                b"GET /healthz/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            );
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200") {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    anyhow::bail!("the proxy was not ready within {} s", args.timeout_s)
}

/// What `run` and `gateway` set up alike: certificates, the config store, telemetry, the
/// config source, the drain time and the shutdown signal.
struct Prepared {
    store: Arc<ConfigStore>,
    observer: Arc<TelemetryObserver>,
    prometheus: PrometheusRender,
    source: Box<dyn ConfigSource>,
    drain_time: Duration,
    shutdown: CancellationToken,
}

fn prepare(args: &CommonArgs, proxy_type: ProxyType) -> anyhow::Result<Prepared> {
    let cert_store = match &args.cert_dir {
        None => None,
        Some(dir) => {
            let paths =
                weft_proxy::tls::CertPaths::discover(dir).context("certificate directory")?;
            let store = weft_proxy::tls::CertStore::load(paths).context("workload certificates")?;
            store.watch(Duration::from_secs(1));
            Some(store)
        }
    };
    let tls: Option<Arc<dyn MeshTls>> = cert_store
        .as_ref()
        .map(|store| Arc::new(CertStoreTls::new(Arc::clone(store))) as Arc<dyn MeshTls>);
    let store = ConfigStore::new(tls);
    let access_log = match args.access_log.as_str() {
        "off" => AccessLog::off(),
        "stdout" => AccessLog::stdout(),
        path => AccessLog::file(path).with_context(|| format!("access log file {path}"))?,
    };
    let mut registry = Registry::default();
    let telemetry = Arc::new(Telemetry::new(&mut registry, access_log));
    let registry = Arc::new(registry);
    let observer = Arc::new(TelemetryObserver::new(telemetry, Arc::clone(&store)));
    let prometheus: PrometheusRender = Arc::new(move || {
        weft_proxy::telemetry::encode(&registry).unwrap_or_else(|error| {
            tracing::warn!(%error, "rendering metrics failed");
            String::new()
        })
    });
    let source: Box<dyn ConfigSource> = match (&args.config, &args.discovery_address) {
        (Some(path), _) => {
            let source = FileSource::new(path.clone(), Duration::from_millis(args.config_poll_ms));
            // A sidecar loads its first config before the listeners open, so it is ready at
            // once; a gateway's first config binds its listeners, so it is loaded by the
            // source once the gateway runs.
            if proxy_type == ProxyType::Sidecar
                && let Err(error) = source.load_once(&store)
            {
                tracing::error!(%error, "initial config rejected; not ready until a valid one arrives");
            }
            Box::new(source)
        }
        (None, Some(address)) => {
            let certs = cert_store
                .as_ref()
                .context("--discovery-address needs --cert-dir (the workload certificate)")?;
            let workload = if args.workload.is_empty() {
                anyhow::bail!("--workload (or POD_NAME) is required with --discovery-address");
            } else {
                args.workload.clone()
            };
            Box::new(
                DiscoverySource::new(
                    address.clone(),
                    certs,
                    &args.trust_domain,
                    &args.control_plane_namespace,
                    args.namespace.clone(),
                    workload,
                )
                .context("discovery TLS configuration")?
                .with_proxy_type(proxy_type),
            )
        }
        (None, None) => anyhow::bail!("either --config or --discovery-address is required"),
    };
    let drain_time = match &args.termination_drain_duration {
        Some(text) => parse_go_duration(text)
            .with_context(|| format!("--termination-drain-duration {text:?}"))?,
        None => Duration::from_millis(args.drain_time_ms),
    };
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
    Ok(Prepared {
        store,
        observer,
        prometheus,
        source,
        drain_time,
        shutdown,
    })
}

async fn run_proxy(args: RunArgs, workers: Vec<tokio::runtime::Handle>) -> anyhow::Result<()> {
    let prepared = prepare(&args.common, ProxyType::Sidecar)?;
    let common = &args.common;
    let listeners = Listeners::bind(
        args.outbound_addr,
        args.inbound_addr,
        common.health_addr,
        common.admin_addr,
        Some(common.prometheus_addr),
    )
    .await
    .context("binding listeners")?
    .with_status(args.status_addr)
    .await
    .context("binding the status listener")?;
    let app_probers = AppProbers::from_json(&args.app_probers, args.instance_ip)
        .context("ISTIO_KUBE_APP_PROBERS")?;
    let settings = RunSettings {
        store: prepared.store,
        source: prepared.source,
        observer: prepared.observer,
        prometheus: Some(prepared.prometheus),
        destination_mode: DestinationMode::Original,
        drain_time: prepared.drain_time,
        app_probers: Some(Arc::new(app_probers)),
    };
    run_with_workers(listeners, settings, &workers, prepared.shutdown).await;
    Ok(())
}

/// `weft-proxy gateway`: no capture, no 15001/15006; the gateway listeners follow the config.
async fn run_gateway(args: CommonArgs) -> anyhow::Result<()> {
    let prepared = prepare(&args, ProxyType::Router)?;
    let listeners = AdminListeners::bind(
        args.health_addr,
        args.admin_addr,
        Some(args.prometheus_addr),
    )
    .await
    .context("binding the admin, health and Prometheus listeners")?;
    let settings = GatewaySettings {
        store: prepared.store,
        source: prepared.source,
        observer: prepared.observer,
        prometheus: Some(prepared.prometheus),
        drain_time: prepared.drain_time,
    };
    weft_proxy::gateway::run(listeners, settings, prepared.shutdown).await;
    Ok(())
}

/// Parses a Go duration with one unit (`5s`, `500ms`, `1m`), as Istio's
/// `terminationDrainDuration`.
fn parse_go_duration(text: &str) -> anyhow::Result<Duration> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .context("missing unit (ms, s, m, h)")?;
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().context("not a number")?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => anyhow::bail!("unknown unit {other:?} (ms, s, m, h)"),
    };
    Ok(Duration::from_secs_f64(seconds))
}
