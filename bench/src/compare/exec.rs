//! Processes of the comparison that the mesh does not start: the peer proxies and the load
//! generator, each inside a lab host's network namespace; finding proxy processes; Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use weft_bench::load::LoadReport;
use weft_bench::procfs;

/// The UID/GID the load generator runs as in a workload's namespace: an application user, so
/// the sidecar's capture rules (which skip only UID/GID 1337) see its traffic.
pub const APP_UID: u32 = 1000;

/// Set when SIGINT or SIGTERM arrives; checked between steps and while waiting for processes.
#[derive(Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Watches SIGINT and SIGTERM on a thread of its own. Signal handlers are reset on exec,
    /// so the processes started later keep the default dispositions.
    pub fn install() -> anyhow::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        let set = Arc::clone(&flag);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::spawn(move || {
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
                eprintln!("weft-bench: interrupted; stopping and removing the lab");
                set.store(true, Ordering::SeqCst);
            });
        });
        Ok(Self(flag))
    }

    /// Errors when a signal arrived.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            bail!("interrupted");
        }
        Ok(())
    }
}

/// A process started in a namespace; stopped (SIGTERM, then SIGKILL after 2 s) when dropped.
pub struct Spawned {
    name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Spawned {
    /// Starts `program args` in network namespace `netns` as root, its output in `log`.
    pub fn start(
        netns: &str,
        name: &str,
        program: &Path,
        args: &[String],
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = std::fs::File::create(&log).with_context(|| format!("{}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({})", program.display()))?;
        Ok(Self {
            name: name.to_string(),
            child: Some(child),
            log,
        })
    }

    /// The process id (`ip netns exec` execs the program, so it is the program's).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The process and its descendants (nginx's workers).
    pub fn pids(&self) -> anyhow::Result<Vec<u32>> {
        let pid = self.pid().context("process already stopped")?;
        Ok(procfs::descendants(
            pid,
            &procfs::parents(Path::new("/proc"))?,
        ))
    }

    /// Errors, with its log, when the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            bail!("{} exited ({status}); its log:\n{log}", self.name);
        }
        Ok(())
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes named `comm` in network namespace `netns` (`ip netns pids`), sorted.
pub fn pids_in_netns(netns: &str, comm: &str) -> anyhow::Result<Vec<u32>> {
    let out = Command::new("ip").args(["netns", "pids", netns]).output()?;
    if !out.status.success() {
        bail!(
            "ip netns pids {netns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut pids: Vec<u32> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

/// One oha run.
pub struct OhaRun<'a> {
    /// The oha binary (readable and executable by [`APP_UID`]).
    pub oha: &'a Path,
    /// Network namespace to run in.
    pub netns: &'a str,
    /// URL to load.
    pub url: String,
    /// `Host` header, when it differs from the URL's authority.
    pub host: Option<String>,
    /// Fixed rate (requests/s); `None` for as fast as possible.
    pub rate: Option<u32>,
    /// Connections.
    pub connections: u32,
    /// How long it sends (ms resolution).
    pub duration: Duration,
    /// Where oha's JSON goes.
    pub output: PathBuf,
    /// Where oha stores every successful request (`--db-url`, SQLite), when the latencies
    /// are wanted one by one; its directory must be writable by [`APP_UID`].
    pub samples: Option<PathBuf>,
}

impl OhaRun<'_> {
    /// Runs oha as [`APP_UID`] in the namespace, calling `during` every 200 ms while it runs
    /// (to watch the proxies), and returns its parsed report. Errors when oha fails, the run is
    /// interrupted, `during` fails, or the report does not parse.
    pub fn run(
        &self,
        interrupt: &Interrupt,
        mut during: impl FnMut() -> anyhow::Result<()>,
    ) -> anyhow::Result<LoadReport> {
        let mut args: Vec<String> = vec![
            "--no-tui".into(),
            "--output-format".into(),
            "json".into(),
            "-c".into(),
            self.connections.to_string(),
            "-z".into(),
            format!("{}ms", self.duration.as_millis()),
            "-t".into(),
            "10s".into(),
            // Requests in flight at the deadline finish instead of counting as errors.
            "-w".into(),
        ];
        if let Some(rate) = self.rate {
            // A fixed schedule, latency measured from each request's scheduled time (no
            // coordinated omission).
            args.extend(["-q".into(), rate.to_string(), "--latency-correction".into()]);
        }
        if let Some(host) = &self.host {
            args.extend(["--host".into(), host.clone()]);
        }
        if let Some(samples) = &self.samples {
            args.extend(["--db-url".into(), samples.display().to_string()]);
        }
        args.push(self.url.clone());
        let out = std::fs::File::create(&self.output)
            .with_context(|| format!("{}", self.output.display()))?;
        let err_path = self.output.with_extension("stderr");
        let err = std::fs::File::create(&err_path)?;
        let mut child = Command::new("ip")
            .args(["netns", "exec", self.netns, "setpriv"])
            .args([
                format!("--reuid={APP_UID}"),
                format!("--regid={APP_UID}"),
                "--clear-groups".into(),
                "--".into(),
            ])
            .arg(self.oha)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting oha")?;
        let deadline = Instant::now() + self.duration + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait()? {
                break status;
            }
            let failed = interrupt.check().and_then(|()| during()).err();
            let failed = failed.or_else(|| {
                (Instant::now() > deadline).then(|| anyhow::anyhow!("oha did not finish in time"))
            });
            if let Some(error) = failed {
                let _ = child.kill();
                let _ = child.wait();
                return Err(error);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        if !status.success() {
            bail!("oha {} failed ({status}): {stderr}", self.url);
        }
        let text = std::fs::read_to_string(&self.output)?;
        LoadReport::from_oha_json(&text)
            .with_context(|| format!("oha {} (stderr: {stderr})", self.url))
    }
}

/// Finds `name` on `PATH`, in `~/.cargo/bin` or in `/usr/sbin`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.push(PathBuf::from("/usr/local/bin"));
    dirs.push(PathBuf::from("/usr/sbin"));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// The first line a program prints for `args` (stdout, else stderr), trimmed.
pub fn version_line(program: &Path, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        }
        Err(_) => format!("{} (not runnable)", program.display()),
    }
}
