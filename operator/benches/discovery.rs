//! Discovery convergence at scale: 1,000 simulated proxies (WorkloadEntries) on one
//! `DiscoveryServer` over real mTLS, 500 services (ServiceEntries) in 10 namespaces, one
//! VirtualService changed.
//!
//! Namespaces `ns0`–`ns4` see the whole mesh; `ns5`–`ns9` each have a default Sidecar whose
//! egress is `./*`, so they see only their own namespace. The changed VirtualService lives in
//! `ns5`: the proxies of `ns0`–`ns5` are affected (600), those of `ns6`–`ns9` (400) must get no
//! push. Which proxies are affected is computed independently with `weft_pilot` (config
//! versions before and after), then compared with what the clients received.
//!
//! The server runs in this process; the 1,000 clients run in a child process (this binary
//! re-executed with `--clients`, see `discovery/clients.rs`), so the peak RSS reported is the
//! server's (process VmHWM, reset with `/proc/self/clear_refs` once the ground truth is
//! computed: it covers the two cluster views, the server and its 1,000 TLS streams). Both
//! processes share this machine's cores.
//!
//! Per affected proxy the bench measures the time from `DiscoveryServer::update` to the moment
//! its client applied (or, with `--full`, checked) the new version (the ACK is sent right after), on the wall clock both
//! processes share. It includes the default 100 ms debounce (Istio's `PILOT_DEBOUNCE_AFTER`).
//! Where that time goes: the server's build and encode time per push (its histograms), the
//! time until the last frame was handed to an outbox (`pilot_xds_pushes` reaching the count)
//! and until the server had the last ACK (`acked_seqs`), both polled every 2 ms, and the CPU
//! time each process used from the change to the last ACK (`/proc/<pid>/stat`).
//!
//! The clients are incremental (their Hello sets `incremental`): the server sends each change
//! as a delta from the config the proxy acknowledged, and each client applies it to the
//! config it keeps and checks the content hash, as `weft_discovery::client` does (see
//! `discovery/clients.rs`). With `--full` they ask for full configs and only check each frame's
//! JSON, as this bench did before incremental pushes. The table gives the frame bytes of
//! delta and full pushes.
//!
//! Run: `cargo bench -p weft-operator --bench discovery` (`-- --full` for full configs).
//! Prints a table and writes a JSON summary to `<target dir>/weft-bench/discovery.json`
//! (read by `make bench`; `discovery-full.json` with `--full`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

#[path = "discovery/clients.rs"]
mod clients;
#[path = "discovery/cost.rs"]
mod cost;

/// The allocator `weft-operator` runs with (see `operator/src/main.rs`), so that the server's
/// memory and time are measured as the binary has them.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::registry::Registry;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use weft_identity::{Identity, RotationPolicy, SystemClock};
use weft_operator::discovery::metrics::DiscoveryMetrics;
use weft_operator::discovery::{DebounceSettings, DiscoveryServer};
use weft_operator::snapshot::Snapshot;
use weft_operator::standalone::citadel::FileCitadel;
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};
use weft_proxy::tls::{CertPaths, CertStore, server_config};

const SERVICES: usize = 500;
const NAMESPACES: usize = 10;
const PROXIES_PER_SERVICE: usize = 2;
const SCOPED_FROM: usize = 5;
const CHANGED_SERVICE: usize = 5; // svc5, in ns5 (a VirtualService for every fifth service)
const SERVICE_ACCOUNT: &str = "workload";
const OPERATOR_SA: &str = "weft-operator";
const TRUST_DOMAIN: &str = "cluster.local";

/// The mesh as YAML; `canary_weight` is the weight of subset v1 in svc5's VirtualService.
fn mesh(canary_weight: u32) -> String {
    let mut text = String::new();
    for ns in SCOPED_FROM..NAMESPACES {
        writeln!(
            text,
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: \
             {{name: default, namespace: ns{ns}}}\nspec:\n  egress:\n  - hosts: ['./*']"
        )
        .unwrap();
    }
    for index in 0..SERVICES {
        let ns = format!("ns{}", index % NAMESPACES);
        let name = format!("svc{index}");
        let host = format!("{name}.{ns}.svc.cluster.local");
        let vip = format!("240.240.{}.{}", index / 250, index % 250 + 1);
        writeln!(
            text,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: \
             {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  addresses: [{vip}]\n  \
             location: MESH_INTERNAL\n  resolution: STATIC\n  \
             ports: [{{number: 8080, name: http, protocol: HTTP}}]\n  \
             workloadSelector: {{labels: {{app: {name}}}}}"
        )
        .unwrap();
        for replica in 0..PROXIES_PER_SERVICE {
            writeln!(
                text,
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: \
                 {{name: {name}-{replica}, namespace: {ns}}}\nspec:\n  \
                 address: 10.{}.{}.{}\n  serviceAccount: {SERVICE_ACCOUNT}\n  \
                 labels: {{app: {name}, version: v{replica}}}",
                100 + replica,
                index / 250,
                index % 250 + 1
            )
            .unwrap();
        }
        if index % 5 == 0 {
            let weight = if index == CHANGED_SERVICE {
                canary_weight
            } else {
                10
            };
            writeln!(
                text,
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: \
                 {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  http:\n  \
                 - match: [{{headers: {{x-canary: {{exact: 'yes'}}}}}}]\n    route: \
                 [{{destination: {{host: {host}, subset: v1}}}}]\n  - route:\n    \
                 - {{destination: {{host: {host}, subset: v0}}, weight: {}}}\n    \
                 - {{destination: {{host: {host}, subset: v1}}, weight: {weight}}}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: \
                 {{name: {name}, namespace: {ns}}}\nspec:\n  host: {host}\n  subsets:\n  \
                 - {{name: v0, labels: {{version: v0}}}}\n  - {{name: v1, labels: {{version: v1}}}}",
                100 - weight
            )
            .unwrap();
        }
    }
    text
}

/// What a client reports: proxy index, version, when (ns since the Unix epoch), frame bytes.
struct Applied {
    index: usize,
    version: String,
    at: u128,
    bytes: usize,
    /// `full`, `delta` or `nack` (a delta the client refused).
    kind: String,
}

fn parse_applied(line: &str) -> Option<Applied> {
    let mut words = line.strip_prefix("applied ")?.split(' ');
    Some(Applied {
        index: words.next()?.parse().ok()?,
        version: words.next()?.to_owned(),
        at: words.next()?.parse().ok()?,
        bytes: words.next()?.parse().ok()?,
        kind: words.next()?.to_owned(),
    })
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Every proxy of the mesh as (namespace, WorkloadEntry name), in `ProxyTarget::all` order.
fn targets() -> Vec<(String, String)> {
    ProxyTarget::all(&ClusterView::from_yaml(&mesh(10)).unwrap())
        .into_iter()
        .map(|target| (target.namespace, target.instance_name))
        .collect()
}

/// The CA under `state` (created on first use, reopened by the child process).
fn citadel(state: &Path) -> FileCitadel {
    let day = Duration::from_secs(24 * 3600);
    FileCitadel::open(
        state,
        TRUST_DOMAIN,
        day * 365,
        RotationPolicy::new(day, 0.5),
        Arc::new(SystemClock),
        None,
    )
    .unwrap()
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let rank = ((sorted.len() as f64) * fraction).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The sum (seconds) and count of histogram `name` in the registry's text exposition.
fn histogram_totals(registry: &Registry, name: &str) -> (f64, u64) {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).unwrap();
    let value = |suffix: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}{suffix} ")))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (value("_sum"), value("_count") as u64)
}

/// CPU time (user + system) used so far by process `pid` (`self` for this one), from
/// `/proc/<pid>/stat` in clock ticks of 10 ms (`USER_HZ` is 100 on Linux).
fn cpu_time(pid: &str) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces), from field 3 on: utime is
    // field 14, stime field 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|field| field.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`).
fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| text.split(' ').take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `<target dir>/weft-bench/discovery.json` (`discovery-full.json` with `--full`).
fn summary_path(full: bool) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let name = if full {
        "discovery-full.json"
    } else {
        "discovery.json"
    };
    target.join("weft-bench").join(name)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--clients") {
        let full = args.get(position + 3).is_some_and(|mode| mode == "full");
        clients::run(&args[position + 1], Path::new(&args[position + 2]), full);
        return;
    }
    // `cargo bench` passes `--bench`; `cargo test --benches` runs the binary too: only bench.
    if !args.iter().any(|arg| arg == "--bench") {
        println!("discovery bench: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args.iter().any(|arg| arg == "--full")));
}

async fn run(full: bool) {
    let load_at_start = load_average();
    // Ground truth from Pilot alone: each proxy's version before and after the change.
    let before = ClusterView::from_yaml(&mesh(10)).unwrap();
    let after = ClusterView::from_yaml(&mesh(20)).unwrap();
    let targets = ProxyTarget::all(&before);
    assert_eq!(targets.len(), SERVICES * PROXIES_PER_SERVICE);
    let started = Instant::now();
    let old: Vec<String> = targets
        .iter()
        .map(|t| build_proxy_config(&before, t).config.version)
        .collect();
    let build_each = started.elapsed() / targets.len() as u32;
    let new: Vec<String> = {
        // A fresh copy of `after`, so that the server's view starts with a cold cache.
        let after = ClusterView::from_yaml(&mesh(20)).unwrap();
        targets
            .iter()
            .map(|t| build_proxy_config(&after, t).config.version)
            .collect()
    };
    let affected: Vec<bool> = old.iter().zip(&new).map(|(a, b)| a != b).collect();
    let affected_count = affected.iter().filter(|a| **a).count();
    let cost = cost::push_cost(&before, &targets[0]);
    let delta_cost = {
        // Fresh views, so that the server's start with cold caches.
        let (before, after) = (
            ClusterView::from_yaml(&mesh(10)).unwrap(),
            ClusterView::from_yaml(&mesh(20)).unwrap(),
        );
        cost::delta_cost(&before, &after, &targets[0])
    };
    drop(targets);

    // The CA and certificates, as standalone mode writes them.
    let state = tempfile::tempdir().unwrap();
    let citadel = citadel(state.path());
    let operator = Identity::spiffe(TRUST_DOMAIN, "istio-system", OPERATOR_SA).unwrap();
    let operator_dir = state.path().join("operator");
    citadel.issue_into(&operator, &operator_dir).unwrap();
    for ns in 0..NAMESPACES {
        let identity = Identity::spiffe(TRUST_DOMAIN, format!("ns{ns}"), SERVICE_ACCOUNT).unwrap();
        citadel.ensure_workload(&identity).unwrap();
    }
    let store = CertStore::load(CertPaths::istio(&operator_dir)).unwrap();
    let server_tls = Arc::new(server_config(&store, &[b"h2"]).unwrap());

    // From here on the process is the server: reset its peak RSS.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let mut registry = Registry::default();
    let metrics = DiscoveryMetrics::new(&mut registry);
    let server = DiscoveryServer::new(
        Arc::new(Snapshot::new(before)),
        DebounceSettings::default(),
        metrics.clone(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let shutdown = CancellationToken::new();
    tokio::spawn(server.clone().serve(listener, server_tls, shutdown.clone()));
    tokio::spawn(server.clone().run_pushes(shutdown.clone()));

    // 1,000 clients in a child process, each checking and ACKing every config it is sent.
    let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
        .arg("--clients")
        .arg(&address)
        .arg(state.path())
        .arg(if full { "full" } else { "delta" })
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let child_pid = child.id().unwrap().to_string();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, mut rx) = mpsc::unbounded_channel::<Applied>();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(applied) = parse_applied(&line) {
                let _ = tx.send(applied);
            }
        }
    });
    let connect_started = Instant::now();
    let mut current: Vec<Option<String>> = vec![None; old.len()];
    let mut connected = 0;
    let mut first_frame_bytes = 0;
    while connected < old.len() {
        let applied = tokio::time::timeout(Duration::from_secs(600), rx.recv())
            .await
            .expect("every proxy gets its first config within 10 minutes")
            .expect("the clients' process runs");
        assert_eq!(
            applied.version, old[applied.index],
            "first config of proxy {}",
            applied.index
        );
        first_frame_bytes = first_frame_bytes.max(applied.bytes);
        if current[applied.index].replace(applied.version).is_none() {
            connected += 1;
        }
    }
    let connect_time = connect_started.elapsed();
    let rss_connected = status_kib("self", "VmRSS");

    // Change one VirtualService; wait for every affected proxy, then for strays.
    let load_at_change = load_average();
    let pushes_before = metrics.pushes.get();
    let (build_sum_before, builds_before) =
        histogram_totals(&registry, "weft_config_build_seconds");
    let (encode_sum_before, encodes_before) =
        histogram_totals(&registry, "weft_config_encode_seconds");
    let (server_cpu_before, clients_cpu_before) = (cpu_time("self"), cpu_time(&child_pid));
    let changed_at = Instant::now();
    let changed_at_unix = unix_nanos();
    let seq = server.update(Arc::new(Snapshot::new(after)));
    // When the last frame was handed to an outbox and when the server had the last ACK.
    let milestones = {
        let (server, metrics) = (server.clone(), metrics.clone());
        let expected_pushes = pushes_before + affected_count as u64;
        tokio::spawn(async move {
            let (mut queued, mut acked) = (None, None);
            while changed_at.elapsed() < Duration::from_secs(120) {
                if queued.is_none() && metrics.pushes.get() >= expected_pushes {
                    queued = Some(changed_at.elapsed());
                }
                if acked.is_none()
                    && server
                        .acked_seqs()
                        .iter()
                        .all(|(_, acked)| *acked == Some(seq))
                {
                    acked = Some(changed_at.elapsed());
                }
                if queued.is_some() && acked.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (queued, acked)
        })
    };
    let mut converged: Vec<Option<Duration>> = vec![None; old.len()];
    let mut unexpected = Vec::new();
    let mut pushed_bytes = 0;
    let mut push_bytes = 0;
    // Frames after the change by kind: (count, bytes, largest).
    let (mut delta_frames, mut full_frames) = ((0, 0, 0), (0, 0, 0));
    let mut nacks = Vec::new();
    let mut remaining = affected_count;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let deadline = quiet_until.unwrap_or(changed_at + Duration::from_secs(120));
        let Ok(Some(applied)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            break;
        };
        pushed_bytes += applied.bytes;
        push_bytes = push_bytes.max(applied.bytes);
        let kind = match applied.kind.as_str() {
            "delta" => &mut delta_frames,
            _ => &mut full_frames,
        };
        kind.0 += 1;
        kind.1 += applied.bytes;
        kind.2 = kind.2.max(applied.bytes);
        if applied.kind == "nack" {
            nacks.push(applied.index);
            continue;
        }
        if !affected[applied.index] || applied.version != new[applied.index] {
            unexpected.push((applied.index, applied.version));
            continue;
        }
        let took = Duration::from_nanos(applied.at.saturating_sub(changed_at_unix) as u64);
        if converged[applied.index].replace(took).is_none() {
            remaining -= 1;
            if remaining == 0 {
                // Two more seconds to catch pushes to unaffected proxies.
                quiet_until = Some(Instant::now() + Duration::from_secs(2));
            }
        }
    }
    let (last_queued, last_acked) = milestones.await.unwrap();
    let server_cpu = cpu_time("self") - server_cpu_before;
    let clients_cpu = cpu_time(&child_pid) - clients_cpu_before;
    let pushes = metrics.pushes.get() - pushes_before;
    let (encode_sum, encodes) = histogram_totals(&registry, "weft_config_encode_seconds");
    let (build_sum, builds) = histogram_totals(&registry, "weft_config_build_seconds");
    let push_builds = builds - builds_before;
    let push_build_time = Duration::from_secs_f64(build_sum - build_sum_before);
    let server_hwm = status_kib("self", "VmHWM");
    let clients_hwm = status_kib(&child_pid, "VmHWM");
    shutdown.cancel();
    let _ = child.kill().await;

    let mut times: Vec<Duration> = converged.iter().flatten().copied().collect();
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p99, max) = if times.is_empty() {
        (Duration::ZERO, Duration::ZERO, Duration::ZERO)
    } else {
        (
            percentile(&times, 0.50),
            percentile(&times, 0.99),
            times[times.len() - 1],
        )
    };
    let mean_build = if push_builds == 0 {
        Duration::ZERO
    } else {
        push_build_time / push_builds as u32
    };
    let push_encodes = encodes - encodes_before;
    let push_encode_time = Duration::from_secs_f64(encode_sum - encode_sum_before);
    let mean_encode = if push_encodes == 0 {
        Duration::ZERO
    } else {
        push_encode_time / push_encodes as u32
    };
    let show = |d: Option<Duration>| d.map_or_else(|| "never".to_owned(), |d| format!("{d:?}"));
    println!();
    println!(
        "discovery convergence: {SERVICES} services, {} proxies, 1 VirtualService changed, {} clients",
        old.len(),
        if full {
            "full-config (--full: every push a whole config, checked not decoded)"
        } else {
            "incremental (deltas decoded, applied and hash-checked)"
        }
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| load average at start / at the change | {load_at_start} / {load_at_change} |");
    println!("| pilot build per proxy (full-mesh view, cold then warm cache) | {build_each:?} |");
    println!(
        "| one full-mesh push: frame size | {} KiB |",
        cost.bytes / 1024
    );
    println!(
        "| one full-mesh push, scope cached: build in parts / encode from parts | {:?} / {:?} |",
        cost.build_parts, cost.encode_parts
    );
    println!(
        "| the same, typed: build_proxy_config / encode_frame | {:?} / {:?} |",
        cost.build_typed, cost.encode_typed
    );
    println!(
        "| one full-mesh push: clients' check / typed decode (not done by the clients) | {:?} / {:?} |",
        cost.check, cost.decode
    );
    println!(
        "| one full-mesh delta (the change): frame size / server's encode from parts / client's decode / apply + hash check | {} B / {:?} / {:?} / {:?} |",
        delta_cost.bytes, delta_cost.encode, delta_cost.decode, delta_cost.apply
    );
    println!(
        "| builds by the server for the change / their total time / mean | {push_builds} / {push_build_time:?} / {mean_build:?} |"
    );
    println!(
        "| frames encoded for the change / their total time / mean | {push_encodes} / {push_encode_time:?} / {mean_encode:?} |"
    );
    println!(
        "| after the change: last frame handed to an outbox / last ACK at the server | {} / {} |",
        show(last_queued),
        show(last_acked)
    );
    println!(
        "| CPU time from the change to the end (2 s quiet period incl.): server / clients | {server_cpu:?} / {clients_cpu:?} |"
    );
    println!("| all proxies connected with first config | {connect_time:?} |");
    println!("| affected proxies (by pilot versions) | {affected_count} |");
    println!("| converged affected proxies | {} |", times.len());
    println!("| pushes sent after the change | {pushes} |");
    println!(
        "| configs received by unaffected proxies | {} |",
        unexpected.len()
    );
    println!("| bytes pushed after the change (largest frame) | {pushed_bytes} ({push_bytes}) |");
    println!(
        "| frames after the change: delta count / bytes / largest | {} / {} / {} |",
        delta_frames.0, delta_frames.1, delta_frames.2
    );
    println!(
        "| frames after the change: full count / bytes / largest (first configs at connect: largest {first_frame_bytes}) | {} / {} / {} |",
        full_frames.0, full_frames.1, full_frames.2
    );
    println!("| deltas refused by clients (NACK) | {} |", nacks.len());
    println!("| convergence p50 / p99 / max | {p50:?} / {p99:?} / {max:?} |");
    println!(
        "| server RSS with 1,000 streams connected (VmRSS) | {} MiB |",
        rss_connected / 1024
    );
    println!(
        "| server peak RSS (VmHWM{}) | {} MiB |",
        if reset {
            ", reset after the ground truth"
        } else {
            ", NOT reset: includes the ground truth"
        },
        server_hwm / 1024
    );
    println!(
        "| clients' process peak RSS (VmHWM) | {} MiB |",
        clients_hwm / 1024
    );

    let summary = serde_json::json!({
        "proxies": old.len(),
        "services": SERVICES,
        "affected": affected_count,
        "converged": times.len(),
        "pushes": pushes,
        "unaffected_pushes": unexpected.len(),
        "convergence_ms": { "p50": ms(p50), "p99": ms(p99), "max": ms(max) },
        "server_rss_mib": server_hwm / 1024,
        "server_rss_reset": reset,
        "clients_rss_mib": clients_hwm / 1024,
        "builds": push_builds,
        "build_ms": ms(mean_build),
        "build_total_ms": ms(push_build_time),
        "encode_ms": ms(mean_encode),
        "encode_total_ms": ms(push_encode_time),
        "last_queued_ms": last_queued.map(ms),
        "last_acked_ms": last_acked.map(ms),
        "server_cpu_ms": ms(server_cpu),
        "clients_cpu_ms": ms(clients_cpu),
        "push_bytes": push_bytes,
        "pushed_bytes_total": pushed_bytes,
        "mode": if full { "full" } else { "incremental" },
        "delta_frames": delta_frames.0,
        "delta_bytes_total": delta_frames.1,
        "delta_bytes_max": delta_frames.2,
        "full_frames": full_frames.0,
        "full_bytes_total": full_frames.1,
        "full_bytes_max": full_frames.2,
        "first_config_bytes": first_frame_bytes,
        "nacks": nacks.len(),
        "connect_ms": ms(connect_time),
        "load_average": load_at_change,
    });
    let path = summary_path(full);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    println!("summary: {}", path.display());

    assert!(nacks.is_empty(), "deltas refused: {nacks:?}");
    assert!(
        unexpected.is_empty(),
        "pushes to unaffected proxies or wrong versions: {unexpected:?}"
    );
    assert_eq!(
        times.len(),
        affected_count,
        "every affected proxy converged"
    );
    assert_eq!(pushes, affected_count as u64, "one push per affected proxy");
}
