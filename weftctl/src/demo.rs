//! `weftctl demo`: the whole mesh on one Linux machine, on Istio YAML.
//!
//! Starts the control plane in standalone mode and a bookinfo-style application —
//! productpage → details, productpage → reviews (v1, v2, v3) → ratings — each workload in its
//! own network namespace with a sidecar injected by the webhook's own function, and an ingress
//! gateway in front; applies the Istio YAML in `demo/`, sends traffic from a host outside the
//! mesh through the gateway and prints a report; then edits the reviews
//! VirtualService (100 % v3) and shows how long the change took. Everything is torn down at the
//! end, on error and on Ctrl-C, unless `--keep`.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use weft_lab::mesh::{LocalMesh, MeshBinaries, WorkloadSpec, service_entry_yaml};

/// The ingress gateway's HTTP port (demo/gateway.yaml's server port, as Istio's bookinfo).
const GATEWAY_PORT: u16 = 8080;

const NS: &str = "bookinfo";

/// Arguments of `weftctl demo`.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// The directory of Istio YAML applied to the mesh (its `edits/` holds the change the demo
    /// makes).
    #[arg(long, default_value = "demo")]
    rules: PathBuf,
    /// Leave the mesh running after the report, until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Requests sent through productpage for the report.
    #[arg(long, default_value_t = 1000)]
    requests: usize,
    /// Where weft-operator, weft-proxy and weft-sample-app are (default: beside weftctl).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

fn host(name: &str) -> String {
    format!("{name}.{NS}.svc.cluster.local")
}

/// The services of the demo and their VIP index in the lab.
const SERVICES: &[(&str, u8)] = &[
    ("productpage", 10),
    ("details", 11),
    ("reviews", 12),
    ("ratings", 13),
];

fn check_stop(stop: &AtomicBool) -> anyhow::Result<()> {
    if stop.load(Ordering::Relaxed) {
        bail!("interrupted; tearing everything down");
    }
    Ok(())
}

/// Runs the demo. Errors (with what is needed) when not root or tools are missing, and when a
/// step fails; in every case the lab is torn down before returning.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    if let Err(e) = weft_lab::preflight() {
        bail!("weftctl demo builds network namespaces and iptables rules: {e}");
    }
    let rules = args.rules.clone();
    if !rules.is_dir() {
        bail!(
            "{}: the demo's Istio YAML directory is missing (run from the repository root)",
            rules.display()
        );
    }
    let bins = MeshBinaries::locate(args.bin_dir.as_deref()).context("locating the binaries")?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());

    println!("Starting the control plane (standalone mode) ...");
    let app_bin = bins.app.clone();
    let mut mesh = LocalMesh::start(bins).context("starting the mesh")?;
    let vip = |name: &str| -> Ipv4Addr {
        let index = SERVICES
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(99, |(_, i)| *i);
        mesh.lab().vip(index)
    };
    let vips: BTreeMap<&str, Ipv4Addr> = SERVICES.iter().map(|(n, _)| (*n, vip(n))).collect();
    for (name, ip) in &vips {
        mesh.write_config(
            &format!("registry-{name}.yaml"),
            &service_entry_yaml(name, NS, *ip),
        )?;
    }
    for entry in
        std::fs::read_dir(&rules).with_context(|| format!("reading {}", rules.display()))?
    {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path)?;
            mesh.write_config(&format!("rules-{name}"), &text)?;
            println!("  applied {}", path.display());
        }
    }
    check_stop(&stop)?;

    let resolve = |names: &[&str]| -> Vec<String> {
        names
            .iter()
            .flat_map(|n| ["--resolve".to_string(), format!("{}={}", host(n), vips[n])])
            .collect()
    };
    let call = |name: &str, path: &str| {
        [
            "--call".to_string(),
            format!("{name}=http://{}:9080{path}", host(name)),
        ]
    };
    let mut ratings_caller: Vec<String> = call("ratings", "/ratings/0").to_vec();
    ratings_caller.extend(resolve(&["ratings"]));
    let mut productpage: Vec<String> = call("details", "/details/0").to_vec();
    productpage.extend(call("reviews", "/reviews/0"));
    productpage.extend(resolve(&["details", "reviews"]));
    let workloads = vec![
        WorkloadSpec::app("ratings", NS, "ratings", "v1", &[]),
        WorkloadSpec::app("reviews1", NS, "reviews", "v1", &[]),
        WorkloadSpec::app("reviews2", NS, "reviews", "v2", &ratings_caller),
        WorkloadSpec::app("reviews3", NS, "reviews", "v3", &ratings_caller),
        WorkloadSpec::app("details", NS, "details", "v1", &[]),
        WorkloadSpec::app("product", NS, "productpage", "v1", &productpage),
        WorkloadSpec::client("client", NS, "client"),
    ];
    println!(
        "Starting {} workloads, each with an injected weft-proxy ...",
        workloads.len()
    );
    for spec in workloads {
        check_stop(&stop)?;
        let name = spec.name.clone();
        let w = mesh
            .add_workload(spec)
            .with_context(|| format!("starting {name}"))?;
        println!("  {:<9} {}  (netns {})", name, w.host.ip, w.host.netns);
    }
    check_stop(&stop)?;
    let gateway = mesh
        .add_gateway(WorkloadSpec::ingress_gateway("ingress", &[GATEWAY_PORT]))
        .context("starting the ingress gateway")?;
    println!(
        "  {:<9} {}  (netns {}; weft-proxy gateway, istio=ingressgateway)",
        "ingress", gateway.host.ip, gateway.host.netns
    );
    let outside = mesh
        .add_plain_host("outside")
        .context("adding the outside client")?;
    println!(
        "  {:<9} {}  (netns {}; no sidecar: a client outside the mesh)",
        "outside", outside.ip, outside.netns
    );
    let entry_url = format!("http://{}:{GATEWAY_PORT}/productpage", gateway.host.ip);
    // Load from the outside host, through the gateway (not captured: it has no sidecar).
    let load_outside = |requests: usize| -> anyhow::Result<serde_json::Value> {
        let app = app_bin.display().to_string();
        let requests = requests.to_string();
        let out = mesh.lab().exec(
            &outside,
            &app,
            &[
                "load",
                "--url",
                &entry_url,
                "--requests",
                &requests,
                "--concurrency",
                "4",
                "--timeout-ms",
                "5000",
            ],
        )?;
        serde_json::from_slice(&out.stdout).context("load report")
    };

    // Wait for every proxy to hold the config.
    let ready = wait_for(&stop, Duration::from_secs(30), || {
        load_outside(10).is_ok_and(|r| r["status"]["200"] == 10)
    })?;
    if !ready {
        bail!(
            "the application did not answer through the gateway in 30 s; logs: {}",
            mesh.lab().log_dir().display()
        );
    }

    println!(
        "\nSending {} requests: outside → ingress gateway → productpage → details, reviews (→ ratings) ...",
        args.requests
    );
    let report = load_outside(args.requests).context("load through the gateway")?;
    check_stop(&stop)?;
    let ratings_report = mesh
        .load(
            "client",
            &format!("http://{}:9080/ratings/0", host("ratings")),
            &[(&host("ratings"), vips["ratings"])],
            &[],
            20,
            2,
        )
        .context("ratings probe")?;
    let direct = mesh
        .load(
            "client",
            &format!("http://{}:9080/reviews/0", host("reviews")),
            &[(&host("reviews"), vips["reviews"])],
            &[],
            20,
            2,
        )
        .context("direct reviews probe")?;
    let mtls = mtls_share(
        &mesh,
        &[
            "product", "details", "reviews1", "reviews2", "reviews3", "ratings",
        ],
    );

    let n = report["requests"].as_u64().unwrap_or(0);
    let ok = report["status"]["200"].as_u64().unwrap_or(0);
    let up = |k: &str| report["upstream_versions"][k].as_u64().unwrap_or(0);
    let (v1, v2, v3) = (up("reviews/v1"), up("reviews/v2"), up("reviews/v3"));
    let total_reviews = (v1 + v2 + v3).max(1) as f64;
    println!("\n== Report ==");
    println!("requests: {n}, answered 200: {ok}");
    println!("reviews versions (rule: v1 50 %, v3 50 %):");
    for (label, count) in [("v1", v1), ("v2", v2), ("v3", v3)] {
        println!(
            "  {label}: {count:>5}  {:5.1} %",
            100.0 * count as f64 / total_reviews
        );
    }
    match mtls {
        Some((m, t)) => println!(
            "mutual TLS: {m} of {t} requests received by the services ({:.1} %)",
            100.0 * m as f64 / t.max(1) as f64
        ),
        None => println!("mutual TLS: metrics unavailable"),
    }
    println!(
        "injected delay on ratings (rule: 200 ms): p50 {:.0} ms, p99 {:.0} ms",
        ratings_report["p50_ms"].as_f64().unwrap_or(0.0),
        ratings_report["p99_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "latency through the gateway: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        report["p50_ms"].as_f64().unwrap_or(0.0),
        report["p90_ms"].as_f64().unwrap_or(0.0),
        report["p99_ms"].as_f64().unwrap_or(0.0),
        report["max_ms"].as_f64().unwrap_or(0.0)
    );
    println!(
        "authorization (reviews only from productpage): {} of 20 direct requests from client to reviews denied (403); productpage's {} calls to reviews allowed",
        direct["status"]["403"].as_u64().unwrap_or(0),
        v1 + v2 + v3
    );

    check_stop(&stop)?;
    let edit = rules.join("edits").join("reviews-all-v3.yaml");
    let text =
        std::fs::read_to_string(&edit).with_context(|| format!("reading {}", edit.display()))?;
    println!(
        "\nEditing the reviews VirtualService: 100 % to v3 ({}) ...",
        edit.display()
    );
    let before = mesh.acked_versions();
    let edited = format!("{}\n---\n{text}", split_out_reviews(&rules)?);
    let started = Instant::now();
    // One atomic write: the file's reviews VirtualService is replaced by the edit.
    mesh.write_config("rules-virtual-services.yaml", &edited)?;
    // Every sidecar reaches reviews, so each gets a new config; the gateway routes only to
    // productpage, so its config (and version) rightly stays as it was.
    let sidecars = |versions: &BTreeMap<String, String>| -> BTreeMap<String, String> {
        versions
            .iter()
            .filter(|(proxy, _)| proxy.ends_with(&format!(".{NS}")))
            .map(|(p, v)| (p.clone(), v.clone()))
            .collect()
    };
    let before = sidecars(&before);
    let acked = wait_for(&stop, Duration::from_secs(20), || {
        let now = sidecars(&mesh.acked_versions());
        now.len() == before.len()
            && now
                .iter()
                .all(|(proxy, version)| before.get(proxy) != Some(version))
    })?;
    let took = started.elapsed();
    if acked {
        println!(
            "every sidecar acknowledged the new config {:.0} ms after the file was written",
            took.as_secs_f64() * 1000.0
        );
    } else {
        println!("not every sidecar acknowledged a new config within {took:?}");
    }
    let check = load_outside(50).context("load through the gateway")?;
    let converged = check["upstream_versions"]["reviews/v3"] == 50;
    println!(
        "traffic after the edit: {} of 50 requests went to reviews v3",
        check["upstream_versions"]["reviews/v3"]
            .as_u64()
            .unwrap_or(0)
    );
    let status = mesh.sync_status().unwrap_or_default();
    let synced = status.as_array().map_or(0, |rows| {
        rows.iter().filter(|r| r["state"] == "SYNCED").count()
    });
    println!(
        "proxy-status: {synced} of {} proxies SYNCED",
        status.as_array().map_or(0, Vec::len)
    );

    if args.keep {
        println!("\nThe mesh keeps running (Ctrl-C tears it down):");
        println!(
            "  control plane  {}: discovery :15012, monitoring http://{}:15014/metrics and /debug/syncz",
            mesh.operator_ip(),
            mesh.operator_ip()
        );
        for (name, _) in [
            ("ingress", 0),
            ("client", 0),
            ("product", 0),
            ("details", 0),
            ("reviews1", 0),
            ("reviews2", 0),
            ("reviews3", 0),
            ("ratings", 0),
        ] {
            if let Some(w) = mesh.workload(name) {
                println!(
                    "  {:<9} {}  metrics http://{}:15090/stats/prometheus, admin: ip netns exec {} curl localhost:15000/config_dump",
                    name, w.host.ip, w.host.ip, w.host.netns
                );
            }
        }
        println!(
            "  entry: ip netns exec {} curl http://{}:{GATEWAY_PORT}/productpage",
            outside.netns, gateway.host.ip
        );
        println!("  logs and state: {}", mesh.lab().log_dir().display());
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!("\nTearing down namespaces, links, iptables rules and processes ...");
    drop(mesh);
    if !converged {
        bail!("the VirtualService edit did not take effect");
    }
    Ok(())
}

/// virtual-services.yaml without the reviews VirtualService (the edit replaces it).
fn split_out_reviews(rules: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(rules.join("virtual-services.yaml"))?;
    Ok(text
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: reviews\n"))
        .collect::<Vec<_>>()
        .join("\n---\n"))
}

/// Requests received over mTLS and in all, summed over the destination-side
/// `istio_requests_total` of the given workloads' proxies.
fn mtls_share(mesh: &LocalMesh, workloads: &[&str]) -> Option<(u64, u64)> {
    let (mut mtls, mut total) = (0u64, 0u64);
    for w in workloads {
        let text = mesh.proxy_metrics(w).ok()?;
        for line in text.lines() {
            if !line.starts_with("istio_requests_total{")
                || !line.contains("reporter=\"destination\"")
            {
                continue;
            }
            let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
            total += value as u64;
            if line.contains("connection_security_policy=\"mutual_tls\"") {
                mtls += value as u64;
            }
        }
    }
    Some((mtls, total))
}

fn wait_for(
    stop: &AtomicBool,
    timeout: Duration,
    mut ok: impl FnMut() -> bool,
) -> anyhow::Result<bool> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        check_stop(stop)?;
        if ok() {
            return Ok(true);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(false)
}

/// Sets `stop` on SIGINT or SIGTERM, so that the demo returns and its lab is dropped.
fn watch_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("\ninterrupted: tearing down ...");
            stop.store(true, Ordering::Relaxed);
        });
    });
}
