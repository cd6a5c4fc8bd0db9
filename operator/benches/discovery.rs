//! Discovery convergence at scale: 1,000 simulated proxies (WorkloadEntries) on one in-process
//! `DiscoveryServer` over real mTLS, 500 services (ServiceEntries) in 10 namespaces, one
//! VirtualService changed.
//!
//! Namespaces `ns0`–`ns4` see the whole mesh; `ns5`–`ns9` each have a default Sidecar whose
//! egress is `./*`, so they see only their own namespace. The changed VirtualService lives in
//! `ns5`: the proxies of `ns0`–`ns5` are affected (600), those of `ns6`–`ns9` (400) must get no
//! push. Which proxies are affected is computed independently with `weft_pilot` (config
//! versions before and after), then compared with what the clients received.
//!
//! Per affected proxy the bench measures the time from `DiscoveryServer::update` to the moment
//! its client applied the new version (the ACK is sent right after). It includes the default
//! 100 ms debounce (Istio's `PILOT_DEBOUNCE_AFTER`). Clients, server and config decoding share
//! this process and its cores, so the numbers are an upper bound of the server's share.
//!
//! Run: `cargo bench -p weft-operator --bench discovery`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use weft_discovery::client::{ClientSettings, stream_once};
use weft_discovery::{FrameDecoder, Hello, ServerMessage, encode_frame};
use weft_identity::{Identity, RotationPolicy, SystemClock};
use weft_operator::discovery::metrics::DiscoveryMetrics;
use weft_operator::discovery::{DebounceSettings, DiscoveryServer};
use weft_operator::snapshot::Snapshot;
use weft_operator::standalone::citadel::FileCitadel;
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};
use weft_proxy::tls::{CertPaths, CertStore, client_config, server_config};

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

/// What a client reports: proxy index, applied version, when.
type Applied = (usize, String, Instant);

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

/// The wire cost of one push of `config`: (encoded bytes, server encode time, client decode
/// time), the median of a few runs.
fn push_cost(config: weft_discovery::ProxyConfig) -> (usize, Duration, Duration) {
    let message = ServerMessage::Config {
        version: config.version.clone(),
        nonce: 1,
        config: Box::new(config),
    };
    let mut encode = Vec::new();
    let mut decode = Vec::new();
    let mut size = 0;
    for _ in 0..9 {
        let started = Instant::now();
        let frame = encode_frame(&message).unwrap();
        encode.push(started.elapsed());
        size = frame.len();
        let started = Instant::now();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        let decoded: Option<ServerMessage> = decoder.next_message().unwrap();
        decode.push(started.elapsed());
        assert!(decoded.is_some());
    }
    encode.sort();
    decode.sort();
    (size, encode[4], decode[4])
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmHWM:"))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs the binary too: only bench.
    if !std::env::args().any(|arg| arg == "--bench") {
        println!("discovery bench: skipped (run with `cargo bench`)");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
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
    let new: Vec<String> = targets
        .iter()
        .map(|t| build_proxy_config(&after, t).config.version)
        .collect();
    let affected: Vec<bool> = old.iter().zip(&new).map(|(a, b)| a != b).collect();
    let affected_count = affected.iter().filter(|a| **a).count();
    let (frame_bytes, encode_time, decode_time) =
        push_cost(build_proxy_config(&after, &targets[0]).config);

    // The CA and certificates, as standalone mode writes them.
    let state = tempfile::tempdir().unwrap();
    let day = Duration::from_secs(24 * 3600);
    let citadel = FileCitadel::open(
        state.path(),
        TRUST_DOMAIN,
        day * 365,
        RotationPolicy::new(day, 0.5),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    let operator = Identity::spiffe(TRUST_DOMAIN, "istio-system", OPERATOR_SA).unwrap();
    let operator_dir = state.path().join("operator");
    citadel.issue_into(&operator, &operator_dir).unwrap();
    let store = CertStore::load(CertPaths::istio(&operator_dir)).unwrap();
    let server_tls = Arc::new(server_config(&store, &[b"h2"]).unwrap());
    let mut client_tls = BTreeMap::new();
    for ns in 0..NAMESPACES {
        let namespace = format!("ns{ns}");
        let identity = Identity::spiffe(TRUST_DOMAIN, &namespace, SERVICE_ACCOUNT).unwrap();
        citadel.ensure_workload(&identity).unwrap();
        let store = CertStore::load(CertPaths::istio(citadel.workload_dir(&identity))).unwrap();
        let expected = [format!(
            "spiffe://{TRUST_DOMAIN}/ns/istio-system/sa/{OPERATOR_SA}"
        )];
        let tls = client_config(&store, &expected, &[b"h2"]).unwrap();
        client_tls.insert(namespace, Arc::new(tls));
    }

    // The server.
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

    // 1,000 clients, each applying (and so ACKing) every config it is sent.
    let (tx, mut rx) = mpsc::unbounded_channel::<Applied>();
    let connect_started = Instant::now();
    for (index, target) in targets.iter().enumerate() {
        let hello = Hello {
            namespace: target.namespace.clone(),
            workload: target.instance_name.clone(),
            proxy_version: "bench".into(),
            current_version: String::new(),
            proxy_type: Default::default(),
        };
        let settings = ClientSettings {
            address: address.clone(),
            tls: client_tls[&target.namespace].clone(),
            hello: hello.clone(),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut apply = move |config: weft_discovery::ProxyConfig| {
                let _ = tx.send((index, config.version, Instant::now()));
                Ok(())
            };
            if let Err(error) = stream_once(&settings, hello, &mut apply).await {
                eprintln!("proxy {index}: stream ended: {error}");
            }
        });
    }
    let mut current: Vec<Option<String>> = vec![None; targets.len()];
    let mut connected = 0;
    while connected < targets.len() {
        let (index, version, _) = tokio::time::timeout(Duration::from_secs(600), rx.recv())
            .await
            .expect("every proxy gets its first config within 10 minutes")
            .unwrap();
        assert_eq!(version, old[index], "first config of proxy {index}");
        if current[index].replace(version).is_none() {
            connected += 1;
        }
    }
    let connect_time = connect_started.elapsed();
    let rss_connected = peak_rss_kib();

    // Change one VirtualService; wait for every affected proxy, then for strays.
    let pushes_before = metrics.pushes.get();
    let (build_sum_before, builds_before) =
        histogram_totals(&registry, "weft_config_build_seconds");
    let changed_at = Instant::now();
    server.update(Arc::new(Snapshot::new(after)));
    let mut converged: Vec<Option<Duration>> = vec![None; targets.len()];
    let mut unexpected = Vec::new();
    let mut remaining = affected_count;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let deadline = quiet_until.unwrap_or(changed_at + Duration::from_secs(120));
        let Ok(Some((index, version, at))) =
            tokio::time::timeout_at(deadline.into(), rx.recv()).await
        else {
            break;
        };
        if !affected[index] || version != new[index] {
            unexpected.push((index, version));
            continue;
        }
        if converged[index].replace(at - changed_at).is_none() {
            remaining -= 1;
            if remaining == 0 {
                // Two more seconds to catch pushes to unaffected proxies.
                quiet_until = Some(Instant::now() + Duration::from_secs(2));
            }
        }
    }
    let pushes = metrics.pushes.get() - pushes_before;
    let (build_sum, builds) = histogram_totals(&registry, "weft_config_build_seconds");
    let push_builds = builds - builds_before;
    let push_build_time = Duration::from_secs_f64(build_sum - build_sum_before);
    let rss_peak = peak_rss_kib();
    shutdown.cancel();

    let mut times: Vec<Duration> = converged.iter().flatten().copied().collect();
    times.sort();
    println!();
    println!(
        "discovery convergence: {SERVICES} services, {} proxies, 1 VirtualService changed",
        targets.len()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| pilot build per proxy (full-mesh view, before) | {build_each:?} |");
    println!(
        "| one full-mesh push: frame size | {} KiB |",
        frame_bytes / 1024
    );
    println!(
        "| one full-mesh push: server encode / client decode | {encode_time:?} / {decode_time:?} |"
    );
    println!(
        "| builds by the server for the change / their total time | {push_builds} / {push_build_time:?} |"
    );
    println!("| all proxies connected with first config | {connect_time:?} |");
    println!("| affected proxies (by pilot versions) | {affected_count} |");
    println!("| converged affected proxies | {} |", times.len());
    println!("| pushes sent after the change | {pushes} |");
    println!(
        "| configs received by unaffected proxies | {} |",
        unexpected.len()
    );
    if !times.is_empty() {
        println!("| convergence min | {:?} |", times[0]);
        println!("| convergence p50 | {:?} |", percentile(&times, 0.50));
        println!("| convergence p99 | {:?} |", percentile(&times, 0.99));
        println!("| convergence max | {:?} |", times[times.len() - 1]);
    }
    println!(
        "| peak RSS after connecting (VmHWM) | {} MiB |",
        rss_connected / 1024
    );
    println!(
        "| peak RSS, whole process incl. clients (VmHWM) | {} MiB |",
        rss_peak / 1024
    );
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
