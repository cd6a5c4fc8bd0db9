//! `weft-bench compare`: the proxy comparison in network namespaces (needs root).
//!
//! One [`LocalMesh`] (standalone operator, sidecars injected by the webhook's function with
//! iptables capture, STRICT mTLS in namespace `bench`) with three workloads:
//! - `server`: `weft-bench responder` on 9080 (meshed), 9081 and 9082 (both excluded from
//!   inbound capture: 9081 for the direct path and the peers' server side, 9082 for the Weft
//!   one-hop throughput run), and the server-side HAProxy (9443) and nginx (9444);
//! - `client`: the load generator as UID 1000 (captured), its sidecar with concurrency 1, the
//!   client-side HAProxy (127.0.0.1:10001) and nginx (127.0.0.1:10002); ports 9081, 9443 and
//!   9444 are excluded from its outbound capture;
//! - `maxcli`: the throughput runs, its sidecar with concurrency 2 and one plain HAProxy
//!   (127.0.0.1:10011), nginx (127.0.0.1:10012) and `weft-bench floor` (127.0.0.1:10013, for
//!   reference: hyper and tokio without Weft's own work), each with 2 workers, in front of 9081.

mod exec;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use weft_bench::peers;
use weft_bench::procfs::{self, GroupSample, Usage};
use weft_bench::report::{Comparison, PathKind, PathMeasurement, ProxyMeasurement, Settings};
use weft_bench::samples;
use weft_bench::segments::{self, Segment};
use weft_bench::summary::{COMPARISON_JSON, format_utc};
use weft_identity::Identity;
use weft_lab::mesh::{LocalMesh, MeshBinaries, WorkloadSpec, service_entry_yaml};

use crate::responder::BODY_BYTES;
use exec::{APP_UID, Interrupt, OhaRun, Spawned, find_program, pids_in_netns, version_line};

const NS: &str = "bench";
const SERVER_HOST: &str = "server.bench.svc.cluster.local";
const PLAIN_HOST: &str = "plain.bench.svc.cluster.local";
const MESH_PORT: u16 = 9080;
const DIRECT_PORT: u16 = 9081;
const PLAIN_PORT: u16 = 9082;
const HAPROXY_TLS_PORT: u16 = 9443;
const NGINX_TLS_PORT: u16 = 9444;

/// Arguments of `weft-bench compare`.
#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// Short runs (5 s per path, 1 s warm-up, 5 s throughput) for trying it out.
    #[arg(long)]
    quick: bool,
    /// Where `proxy-comparison.json` and `.md` are written.
    #[arg(long, default_value = "target/weft-bench")]
    out: PathBuf,
    /// Directory holding `weft-operator` and `weft-proxy` (default: this executable's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Skip the maximum-throughput runs.
    #[arg(long)]
    no_throughput: bool,
}

fn settings(quick: bool) -> Settings {
    Settings {
        rate_per_s: 1000,
        connections: 16,
        duration_s: if quick { 5 } else { 30 },
        segments: if quick { 2 } else { 6 },
        lead_in_ms: LEAD_IN_MS,
        warmup_s: if quick { 1 } else { 3 },
        throughput_duration_s: if quick { 5 } else { 20 },
        throughput_segments: if quick { 1 } else { 4 },
        throughput_connections: 16,
        body_bytes: BODY_BYTES,
        pair_workers: 1,
        throughput_workers: 2,
        quick,
    }
}

/// The start of each segment whose requests are left out of the latencies: oha opens its
/// connections then, and the first request on each carries the connection's setup.
const LEAD_IN_MS: u64 = 250;

/// One path to load: where oha sends and which proxies are watched.
struct PathPlan {
    kind: PathKind,
    url: String,
    host: Option<String>,
    proxies: Vec<(&'static str, ProxySource)>,
}

/// How a set of paths is loaded: from which workload, at which rate, in how many segments.
struct LoadPlan {
    /// What the progress lines call it (`at 1000 req/s`, `maximum throughput`).
    name: String,
    from: &'static str,
    /// Fixed rate, or `None` for as fast as possible.
    rate: Option<u32>,
    connections: u32,
    warmup: Duration,
    segments: u32,
    /// Measured length of each segment (the lead-in comes on top).
    segment: Duration,
    lead_in: Duration,
}

/// The mesh and the processes it does not own. Fields drop in order: peers before the mesh,
/// so nothing keeps running in a namespace the mesh removes.
struct Bench {
    peers: Vec<Spawned>,
    mesh: LocalMesh,
    work: PathBuf,
    oha: PathBuf,
    interrupt: Interrupt,
}

/// Runs the comparison; prints its Markdown and writes JSON and Markdown under `--out`.
pub fn run(args: &CompareArgs) -> anyhow::Result<()> {
    weft_lab::preflight()?;
    let interrupt = Interrupt::install()?;
    let haproxy = find_program("haproxy");
    let nginx = find_program("nginx");
    let oha = find_program("oha");
    let (Some(haproxy), Some(nginx), Some(oha)) = (haproxy, nginx, oha) else {
        bail!("haproxy, nginx and oha are needed: run scripts/install-bench-deps.sh");
    };
    let settings = settings(args.quick);
    let started = format_utc(std::time::SystemTime::now());
    let load_before = load_average();
    let versions = vec![
        version_line(&oha, &["--version"]),
        version_line(&haproxy, &["-v"]),
        version_line(&nginx, &["-v"]),
    ];
    std::fs::create_dir_all(&args.out)?;

    let mut bench = start_mesh(args, &oha, interrupt)?;
    let server_ip = bench.workload_ip("server")?;
    start_pairs(&mut bench, &haproxy, &nginx, server_ip)?;

    let pair_paths = [
        (
            PathKind::Direct,
            format!("http://{server_ip}:{DIRECT_PORT}/"),
            None,
        ),
        (
            PathKind::Weft,
            format!("http://{}:{MESH_PORT}/", bench.mesh.lab().vip(3)),
            Some(format!("{SERVER_HOST}:{MESH_PORT}")),
        ),
        (
            PathKind::Haproxy,
            "http://127.0.0.1:10001/".to_string(),
            None,
        ),
        (PathKind::Nginx, "http://127.0.0.1:10002/".to_string(), None),
    ];
    for (_, url, host) in &pair_paths {
        bench.wait_serving("client", url, host.clone())?;
    }
    let mut plans = Vec::new();
    for (kind, url, host) in pair_paths {
        plans.push(PathPlan {
            kind,
            url,
            host,
            proxies: bench.pair_proxies(kind)?,
        });
    }
    let paths = bench.measure_interleaved(
        &LoadPlan {
            name: format!("at {} req/s", settings.rate_per_s),
            from: "client",
            rate: Some(settings.rate_per_s),
            connections: settings.connections,
            warmup: Duration::from_secs(settings.warmup_s),
            segments: settings.segments,
            segment: Duration::from_millis(
                settings.duration_s * 1000 / u64::from(settings.segments),
            ),
            lead_in: Duration::from_millis(settings.lead_in_ms),
        },
        &plans,
    )?;

    let mut throughput = Vec::new();
    if !args.no_throughput {
        let one_hop = start_one_hop(&mut bench, &haproxy, &nginx, server_ip)?;
        let plain_vip = bench.mesh.lab().vip(4);
        let runs = [
            (
                PathKind::Direct,
                format!("http://{server_ip}:{DIRECT_PORT}/"),
                None,
            ),
            (
                PathKind::Weft,
                format!("http://{plain_vip}:{PLAIN_PORT}/"),
                Some(format!("{PLAIN_HOST}:{PLAIN_PORT}")),
            ),
            (
                PathKind::Haproxy,
                "http://127.0.0.1:10011/".to_string(),
                None,
            ),
            (PathKind::Nginx, "http://127.0.0.1:10012/".to_string(), None),
            (PathKind::Floor, "http://127.0.0.1:10013/".to_string(), None),
        ];
        for (_, url, host) in &runs {
            bench.wait_serving("maxcli", url, host.clone())?;
        }
        let plans: Vec<PathPlan> = runs
            .into_iter()
            .map(|(kind, url, host)| PathPlan {
                kind,
                url,
                host,
                proxies: match kind {
                    PathKind::Direct => vec![],
                    PathKind::Weft => vec![("one hop", ProxySource::Sidecar("maxcli"))],
                    PathKind::Haproxy => vec![("one hop", ProxySource::Peer(one_hop.haproxy))],
                    PathKind::Nginx => vec![("one hop", ProxySource::Peer(one_hop.nginx))],
                    PathKind::Floor => vec![("one hop", ProxySource::Peer(one_hop.floor))],
                },
            })
            .collect();
        throughput = bench.measure_interleaved(
            &LoadPlan {
                name: "maximum throughput".into(),
                from: "maxcli",
                rate: None,
                connections: settings.throughput_connections,
                warmup: Duration::from_secs(1),
                segments: settings.throughput_segments,
                segment: Duration::from_millis(
                    settings.throughput_duration_s * 1000 / u64::from(settings.throughput_segments),
                ),
                lead_in: Duration::from_millis(settings.lead_in_ms),
            },
            &plans,
        )?;
    }

    let comparison = Comparison {
        started_utc: started,
        load_average_before: load_before,
        load_average_after: load_average(),
        versions,
        settings,
        paths,
        throughput,
    };
    drop(bench);
    let json_path = args.out.join(COMPARISON_JSON);
    std::fs::write(&json_path, serde_json::to_string_pretty(&comparison)?)?;
    let markdown = comparison.to_markdown();
    let md_path = json_path.with_extension("md");
    std::fs::write(&md_path, &markdown)?;
    println!("{markdown}");
    eprintln!(
        "weft-bench: results in {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}

/// Where a proxy's processes are found.
#[derive(Clone, Copy)]
enum ProxySource {
    /// The `weft-proxy` in a workload's namespace.
    Sidecar(&'static str),
    /// A peer started by the bench (index into `Bench::peers`).
    Peer(usize),
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn workload(name: &str, concurrency: u32, annotations: &[(&str, &str)]) -> WorkloadSpec {
    let mut spec = WorkloadSpec::client(name, NS, name);
    spec.annotations = BTreeMap::from([(
        "proxy.istio.io/config".to_string(),
        format!("concurrency: {concurrency}"),
    )]);
    for (key, value) in annotations {
        spec.annotations.insert(key.to_string(), value.to_string());
    }
    spec
}

fn start_mesh(args: &CompareArgs, oha: &Path, interrupt: Interrupt) -> anyhow::Result<Bench> {
    let exe = std::env::current_exe()?;
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => exe
            .parent()
            .context("executable has no directory")?
            .to_path_buf(),
    };
    // The workloads' application is this binary's responder.
    let bins = MeshBinaries {
        operator: bin_dir.join("weft-operator"),
        proxy: bin_dir.join("weft-proxy"),
        app: exe.clone(),
    };
    if !bins.operator.is_file() || !bins.proxy.is_file() {
        bail!(
            "{} needs weft-operator and weft-proxy: cargo build --release -p weft-operator -p weft-proxy",
            bin_dir.display()
        );
    }
    let peer_auth = format!(
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: {NS}}}\nspec:\n  mtls: {{mode: STRICT}}\n"
    );
    // The throughput service: the server's responder on 9082, reached through the client's
    // sidecar in plain text (DestinationRule tls DISABLE); 9082 bypasses the server's sidecar.
    let plain = format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: plain, namespace: {NS}}}\nspec:\n  hosts: [{PLAIN_HOST}]\n  addresses: [VIP]\n  ports: [{{number: {PLAIN_PORT}, name: http, protocol: HTTP}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: server}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: plain, namespace: {NS}}}\nspec:\n  host: {PLAIN_HOST}\n  trafficPolicy: {{tls: {{mode: DISABLE}}}}\n"
    );
    let mut mesh = LocalMesh::start_with(bins, &[("peer-authentication.yaml", &peer_auth)])?;
    mesh.write_config(
        "svc-server.yaml",
        &service_entry_yaml("server", NS, mesh.lab().vip(3)),
    )?;
    mesh.write_config(
        "svc-plain.yaml",
        &plain.replace("VIP", &mesh.lab().vip(4).to_string()),
    )?;
    interrupt.check()?;

    let mut server = workload(
        "server",
        1,
        &[(
            "traffic.sidecar.istio.io/excludeInboundPorts",
            "9081,9082,9443,9444",
        )],
    );
    server.labels.insert("app".into(), "server".into());
    server.app_args = Some(
        [
            "responder",
            "--listen",
            "0.0.0.0:9080",
            "--listen",
            "0.0.0.0:9081",
            "--listen",
            "0.0.0.0:9082",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    mesh.add_workload(server)?;
    interrupt.check()?;
    mesh.add_workload(workload(
        "client",
        1,
        &[(
            "traffic.sidecar.istio.io/excludeOutboundPorts",
            "9081,9443,9444",
        )],
    ))?;
    interrupt.check()?;
    mesh.add_workload(workload(
        "maxcli",
        2,
        &[("traffic.sidecar.istio.io/excludeOutboundPorts", "9081")],
    ))?;
    interrupt.check()?;

    let work = mesh.lab().log_dir().join("bench");
    std::fs::create_dir_all(&work)?;
    // The load generator runs as an application user: give it a copy it can execute.
    let oha_copy = work.join("oha");
    std::fs::copy(oha, &oha_copy).context("copying oha into the lab")?;
    set_mode(&oha_copy, 0o755)?;
    set_mode(&work, 0o755)?;
    Ok(Bench {
        peers: Vec::new(),
        mesh,
        work,
        oha: oha_copy,
        interrupt,
    })
}

fn remove_if_present(path: &Path) -> anyhow::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(error).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Starts the HAProxy and nginx pairs (client side in `client`, server side in `server`);
/// they are `Bench::peers` 0–3: HAProxy client, HAProxy server, nginx client, nginx server.
fn start_pairs(
    bench: &mut Bench,
    haproxy: &Path,
    nginx: &Path,
    server_ip: Ipv4Addr,
) -> anyhow::Result<()> {
    let dir = bench.work.join("pairs");
    std::fs::create_dir_all(&dir)?;
    let identity = Identity::spiffe("cluster.local", NS, "client")?;
    let files = peers::write_certificates(&dir, &identity, SERVER_HOST)?;
    let addr = |ip: Ipv4Addr, port: u16| SocketAddr::from((ip, port));
    let local = Ipv4Addr::LOCALHOST;
    let app = addr(local, DIRECT_PORT);
    let configs = [
        (
            "client",
            "haproxy-client",
            peers::haproxy_client(
                addr(local, 10001),
                addr(server_ip, HAPROXY_TLS_PORT),
                SERVER_HOST,
                &files,
                1,
            ),
        ),
        (
            "server",
            "haproxy-server",
            peers::haproxy_server(
                addr(Ipv4Addr::UNSPECIFIED, HAPROXY_TLS_PORT),
                app,
                &files,
                1,
            ),
        ),
        (
            "client",
            "nginx-client",
            peers::nginx_client(
                &dir.join("nginx-client"),
                addr(local, 10002),
                addr(server_ip, NGINX_TLS_PORT),
                SERVER_HOST,
                &files,
                1,
            ),
        ),
        (
            "server",
            "nginx-server",
            peers::nginx_server(
                &dir.join("nginx-server"),
                addr(Ipv4Addr::UNSPECIFIED, NGINX_TLS_PORT),
                app,
                &files,
                1,
            ),
        ),
    ];
    for (host, name, config) in configs {
        bench.start_peer(host, name, &dir, &config, haproxy, nginx)?;
    }
    Ok(())
}

/// The one-hop proxies of the throughput runs, as indexes in `Bench::peers`.
struct OneHop {
    haproxy: usize,
    nginx: usize,
    floor: usize,
}

/// Starts the one-hop HAProxy, nginx and `weft-bench floor` in `maxcli`.
fn start_one_hop(
    bench: &mut Bench,
    haproxy: &Path,
    nginx: &Path,
    server_ip: Ipv4Addr,
) -> anyhow::Result<OneHop> {
    let dir = bench.work.join("one-hop");
    std::fs::create_dir_all(&dir)?;
    let upstream = SocketAddr::from((server_ip, DIRECT_PORT));
    let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let h = bench.start_peer(
        "maxcli",
        "haproxy-onehop",
        &dir,
        &peers::haproxy_plain(local(10011), upstream, 2),
        haproxy,
        nginx,
    )?;
    let n = bench.start_peer(
        "maxcli",
        "nginx-onehop",
        &dir,
        &peers::nginx_plain(&dir.join("nginx-onehop"), local(10012), upstream, 2),
        haproxy,
        nginx,
    )?;
    let args = [
        "floor".to_string(),
        "--listen".to_string(),
        local(10013).to_string(),
        "--upstream".to_string(),
        upstream.to_string(),
        "--workers".to_string(),
        "2".to_string(),
    ];
    let netns = bench.netns("maxcli")?;
    let floor = Spawned::start(
        &netns,
        "floor-onehop",
        &std::env::current_exe()?,
        &args,
        dir.join("floor-onehop.log"),
    )?;
    bench.peers.push(floor);
    Ok(OneHop {
        haproxy: h,
        nginx: n,
        floor: bench.peers.len() - 1,
    })
}

impl Bench {
    fn workload_ip(&self, name: &str) -> anyhow::Result<Ipv4Addr> {
        Ok(self
            .mesh
            .workload(name)
            .with_context(|| format!("no workload {name}"))?
            .host
            .ip)
    }

    fn netns(&self, name: &str) -> anyhow::Result<String> {
        Ok(self
            .mesh
            .workload(name)
            .with_context(|| format!("no workload {name}"))?
            .host
            .netns
            .clone())
    }

    /// Writes `config` and starts HAProxy or nginx (by `name`'s prefix) in `host`'s namespace.
    fn start_peer(
        &mut self,
        host: &str,
        name: &str,
        dir: &Path,
        config: &str,
        haproxy: &Path,
        nginx: &Path,
    ) -> anyhow::Result<usize> {
        let netns = self.netns(host)?;
        let log = dir.join(format!("{name}.log"));
        let spawned = if name.starts_with("haproxy") {
            let path = dir.join(format!("{name}.cfg"));
            std::fs::write(&path, config)?;
            let args = vec![
                "-db".to_string(),
                "-f".to_string(),
                path.display().to_string(),
            ];
            Spawned::start(&netns, name, haproxy, &args, log)?
        } else {
            let prefix = dir.join(name);
            std::fs::create_dir_all(&prefix)?;
            let path = dir.join(format!("{name}.conf"));
            std::fs::write(&path, config)?;
            let args = vec![
                "-e".to_string(),
                "stderr".to_string(),
                "-p".to_string(),
                prefix.display().to_string(),
                "-c".to_string(),
                path.display().to_string(),
            ];
            Spawned::start(&netns, name, nginx, &args, log)?
        };
        self.peers.push(spawned);
        Ok(self.peers.len() - 1)
    }

    /// Sends small probes from `from` until `url` answers 200 every time (sidecar config
    /// pushed, peers listening), for at most 30 s.
    fn wait_serving(&mut self, from: &str, url: &str, host: Option<String>) -> anyhow::Result<()> {
        let netns = self.netns(from)?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = String::new();
        while Instant::now() < deadline {
            self.interrupt.check()?;
            for peer in &mut self.peers {
                peer.check_running()?;
            }
            let probe = OhaRun {
                oha: &self.oha,
                netns: &netns,
                url: url.to_string(),
                host: host.clone(),
                rate: Some(50),
                connections: 2,
                duration: Duration::from_secs(1),
                output: self.work.join("probe.json"),
                samples: None,
            };
            match probe.run(&self.interrupt, || Ok(())) {
                Ok(report) if report.all_ok() => return Ok(()),
                Ok(report) => last = format!("{report:?}"),
                Err(error) => last = format!("{error:#}"),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("{url} (from {from}) does not answer 200: {last}")
    }

    /// The proxies of a fixed-rate path, by role.
    fn pair_proxies(&self, kind: PathKind) -> anyhow::Result<Vec<(&'static str, ProxySource)>> {
        Ok(match kind {
            PathKind::Direct => vec![],
            PathKind::Weft => vec![
                ("client-side", ProxySource::Sidecar("client")),
                ("server-side", ProxySource::Sidecar("server")),
            ],
            PathKind::Haproxy => vec![
                ("client-side", ProxySource::Peer(0)),
                ("server-side", ProxySource::Peer(1)),
            ],
            PathKind::Nginx => vec![
                ("client-side", ProxySource::Peer(2)),
                ("server-side", ProxySource::Peer(3)),
            ],
            PathKind::Floor => bail!("the floor proxy has no pair"),
        })
    }

    fn pids(&self, source: ProxySource) -> anyhow::Result<Vec<u32>> {
        let pids = match source {
            ProxySource::Sidecar(workload) => pids_in_netns(&self.netns(workload)?, "weft-proxy")?,
            ProxySource::Peer(index) => self.peers.get(index).context("no such peer")?.pids()?,
        };
        if pids.is_empty() {
            bail!("no proxy process found");
        }
        Ok(pids)
    }

    /// Measures every path of `paths` under `plan`: one unmeasured warm-up per path, then
    /// `plan.segments` rounds taking each path in turn ([`segments::round_order`]), each
    /// segment with its proxies' CPU and memory sampled around it (their peak RSS reset just
    /// before) and its latencies read from oha's samples; each path's segments merged.
    fn measure_interleaved(
        &self,
        plan: &LoadPlan,
        paths: &[PathPlan],
    ) -> anyhow::Result<Vec<PathMeasurement>> {
        let netns = self.netns(plan.from)?;
        let samples_dir = self.work.join("samples");
        std::fs::create_dir_all(&samples_dir)?;
        // oha runs as the application user and SQLite writes a journal next to its file.
        std::os::unix::fs::chown(&samples_dir, Some(APP_UID), Some(APP_UID))?;
        let run = |path: &PathPlan, duration, output: PathBuf, samples| OhaRun {
            oha: &self.oha,
            netns: &netns,
            url: path.url.clone(),
            host: path.host.clone(),
            rate: plan.rate,
            connections: plan.connections,
            duration,
            output,
            samples,
        };
        let tag = |path: &PathPlan| {
            format!(
                "{}-{}",
                path.kind.label().to_lowercase().replace(' ', "-"),
                if plan.rate.is_some() { "rate" } else { "max" }
            )
        };
        for path in paths {
            eprintln!("weft-bench: {} {}, warm-up", path.kind.label(), plan.name);
            run(
                path,
                plan.warmup,
                self.work.join(format!("{}-warmup.json", tag(path))),
                None,
            )
            .run(&self.interrupt, || Ok(()))?;
        }
        let mut segments: Vec<Vec<Segment>> = paths.iter().map(|_| Vec::new()).collect();
        for round in 0..plan.segments as usize {
            for index in segments::round_order(round, paths.len()) {
                let path = &paths[index];
                eprintln!(
                    "weft-bench: {} {}, segment {}/{}",
                    path.kind.label(),
                    plan.name,
                    round + 1,
                    plan.segments
                );
                let name = format!("{}-{}", tag(path), round + 1);
                let db = samples_dir.join(format!("{name}.db"));
                remove_if_present(&db)?;
                let mut groups = Vec::new();
                for (role, source) in &path.proxies {
                    let pids = self.pids(*source)?;
                    for &pid in &pids {
                        procfs::reset_peak_rss(pid)?;
                    }
                    let before = GroupSample::take(Path::new("/proc"), &pids)?;
                    groups.push((*role, *source, before));
                }
                let load = run(
                    path,
                    plan.lead_in + plan.segment,
                    self.work.join(format!("{name}.json")),
                    Some(db.clone()),
                )
                .run(&self.interrupt, || Ok(()))?;
                let ticks = procfs::clock_ticks_per_second();
                let mut proxies = Vec::new();
                for (role, source, before) in groups {
                    let after = GroupSample::take(Path::new("/proc"), &self.pids(source)?)?;
                    proxies.push(ProxyMeasurement {
                        role: role.to_string(),
                        usage: Usage::between(&before, &after, ticks),
                    });
                }
                if !load.all_ok() {
                    eprintln!(
                        "weft-bench: {name}: {} ok, {} non-2xx, {} errors {:?}",
                        load.ok, load.non_2xx, load.errors, load.error_kinds
                    );
                }
                let latencies_ms = samples::read_oha_db(&db, plan.lead_in.as_secs_f64())?;
                // The samples of a maximum-throughput segment take tens of MB.
                remove_if_present(&db)?;
                segments[index].push(Segment {
                    load,
                    latencies_ms,
                    proxies,
                });
            }
        }
        let mut measured = Vec::new();
        for (path, segments) in paths.iter().zip(segments) {
            measured.push(segments::merge(path.kind, segments)?);
        }
        Ok(measured)
    }
}
