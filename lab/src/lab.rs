//! The lab itself: a hub namespace with a bridge, and hosts attached to it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::command::{CommandError, run_checked, run_quiet};
use crate::process::LabProcess;

/// Why a lab could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab needs root (network namespaces and iptables).
    #[error("the network-namespace lab needs root (run as root, e.g. with sudo)")]
    NotRoot,
    /// A required tool is missing.
    #[error(
        "`{0}` is not installed: install iproute2 and iptables (Debian: apt-get install iproute2 iptables)"
    )]
    MissingTool(&'static str),
    /// Every lab subnet (198.18.N.0/24) is in use.
    #[error("no free lab subnet in 198.18.0.0/16 (stale namespaces? see `ip netns list`)")]
    NoFreeSubnet,
    /// A host name that cannot become a namespace or interface name.
    #[error("host name {0:?} must be 1-8 characters of [a-z0-9]")]
    BadHostName(String),
    /// At most 200 hosts per lab.
    #[error("a lab holds at most 200 hosts")]
    TooManyHosts,
    /// A command failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// `weft-operator`, `weft-proxy` or `weft-sample-app` is not built.
    #[error(
        "weft-operator, weft-proxy and weft-sample-app must be built first: cargo build --workspace --bins (make test does)"
    )]
    MissingBinaries,
    /// A component did not become ready in time.
    #[error("{what} did not become ready; its log:\n{log}")]
    NotReady {
        /// What.
        what: String,
        /// The tail of its log.
        log: String,
    },
    /// Injection (the webhook's function) failed or gave an unexpected pod.
    #[error("injection: {0}")]
    Inject(String),
    /// The lab's DNS server could not start, or a resolver file could not be written.
    #[error("lab DNS: {0}")]
    Dns(String),
    /// A log file could not be created.
    #[error("cannot create log file {path}: {source}")]
    Log {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// Checks that this process can build a lab: root, `ip` and `iptables` present. Returns the
/// first thing missing, with what to do about it.
pub fn preflight() -> Result<(), LabError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(LabError::NotRoot);
    }
    for tool in ["ip", "iptables"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Err(LabError::MissingTool(tool));
        }
    }
    Ok(())
}

/// One host of the lab: a network namespace with one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// The short name given at creation (e.g. `client`).
    pub name: String,
    /// The network namespace's name (`wl<subnet>-<name>`).
    pub netns: String,
    /// The host's address on the lab bridge (198.18.<subnet>.<n>).
    pub ip: Ipv4Addr,
}

/// A network-namespace lab. Dropping it removes everything it created.
#[derive(Debug)]
pub struct Lab {
    subnet: u8,
    hub: String,
    hosts: Vec<Host>,
    processes: Vec<LabProcess>,
    root_link: Option<String>,
    log_dir: PathBuf,
    /// `/etc/netns/<ns>` directories created by [`Lab::set_resolver`].
    netns_etc: Vec<PathBuf>,
}

/// The range service VIPs are taken from; every host routes it onto its own link so that
/// traffic capture sees it, and no host answers for it.
pub const VIP_RANGE: &str = "198.19.0.0/16";

impl Lab {
    /// Creates an empty lab on a free `198.18.N.0/24` subnet: a hub namespace with a bridge.
    /// Errors when not root, a tool is missing, or no subnet is free.
    pub fn new() -> Result<Self, LabError> {
        preflight()?;
        let start = (std::process::id() % 200) as u16;
        for offset in 0..200u16 {
            let subnet = ((start + offset) % 200 + 20) as u8;
            let hub = format!("wl{subnet}-hub");
            // `ip netns add` fails when the name exists: the allocation is atomic.
            if run_checked("ip", &["netns", "add", &hub]).is_err() {
                continue;
            }
            let log_dir = std::env::temp_dir().join(format!("weft-lab-{subnet}"));
            let mut lab = Lab {
                subnet,
                hub,
                hosts: Vec::new(),
                processes: Vec::new(),
                root_link: None,
                log_dir,
                netns_etc: Vec::new(),
            };
            lab.init_hub()?;
            // A previous lab on the same subnet may have left its logs and state: start clean.
            let _ = std::fs::remove_dir_all(&lab.log_dir);
            std::fs::create_dir_all(&lab.log_dir).map_err(|source| LabError::Log {
                path: lab.log_dir.clone(),
                source,
            })?;
            return Ok(lab);
        }
        Err(LabError::NoFreeSubnet)
    }

    fn init_hub(&mut self) -> Result<(), LabError> {
        let hub = self.hub.clone();
        run_checked("ip", &["-n", &hub, "link", "set", "lo", "up"])?;
        run_checked("ip", &["-n", &hub, "link", "add", "br0", "type", "bridge"])?;
        run_checked("ip", &["-n", &hub, "link", "set", "br0", "up"])?;
        Ok(())
    }

    /// The lab's subnet number N (addresses are 198.18.N.x).
    pub fn subnet(&self) -> u8 {
        self.subnet
    }

    /// The directory where process logs are written (`<name>.log`).
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// A service VIP for this lab: `198.19.N.index`. The VIP range is routed onto each host's
    /// link so that outbound capture sees connections to it.
    pub fn vip(&self, index: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 19, self.subnet, index)
    }

    /// Adds a host named `name` (1-8 of `[a-z0-9]`) with the next free address. Errors on a bad
    /// name, more than 200 hosts, or a failing `ip` command.
    pub fn add_host(&mut self, name: &str) -> Result<Host, LabError> {
        let valid = !name.is_empty()
            && name.len() <= 8
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !valid {
            return Err(LabError::BadHostName(name.to_string()));
        }
        let n = self.hosts.len();
        if n >= 200 {
            return Err(LabError::TooManyHosts);
        }
        let netns = format!("wl{}-{name}", self.subnet);
        let ip = Ipv4Addr::new(198, 18, self.subnet, (n + 10) as u8);
        run_checked("ip", &["netns", "add", &netns])?;
        let host = Host {
            name: name.to_string(),
            netns: netns.clone(),
            ip,
        };
        self.hosts.push(host.clone());
        let hub = self.hub.clone();
        let hub_end = format!("vh{n}");
        let cidr = format!("{ip}/24");
        run_checked("ip", &["-n", &netns, "link", "set", "lo", "up"])?;
        run_checked(
            "ip",
            &[
                "-n", &hub, "link", "add", &hub_end, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ],
        )?;
        run_checked(
            "ip",
            &["-n", &hub, "link", "set", &hub_end, "master", "br0", "up"],
        )?;
        run_checked("ip", &["-n", &netns, "addr", "add", &cidr, "dev", "eth0"])?;
        run_checked("ip", &["-n", &netns, "link", "set", "eth0", "up"])?;
        run_checked(
            "ip",
            &["-n", &netns, "route", "add", VIP_RANGE, "dev", "eth0"],
        )?;
        Ok(host)
    }

    /// Gives this (root) namespace a link onto the lab bridge with address 198.18.N.254, so the
    /// test process itself can reach the hosts. Only the lab's own /24 is routed there.
    pub fn attach_root(&mut self) -> Result<Ipv4Addr, LabError> {
        let link = format!("wl{}r", self.subnet);
        let hub = self.hub.clone();
        let ip = Ipv4Addr::new(198, 18, self.subnet, 254);
        run_checked(
            "ip",
            &[
                "link", "add", &link, "type", "veth", "peer", "name", "vroot", "netns", &hub,
            ],
        )?;
        self.root_link = Some(link.clone());
        run_checked(
            "ip",
            &["-n", &hub, "link", "set", "vroot", "master", "br0", "up"],
        )?;
        run_checked("ip", &["addr", "add", &format!("{ip}/24"), "dev", &link])?;
        run_checked("ip", &["link", "set", &link, "up"])?;
        Ok(ip)
    }

    /// Makes `host`'s resolver ask `nameserver` only: writes `/etc/netns/<ns>/resolv.conf`,
    /// which `ip netns exec` bind-mounts over `/etc/resolv.conf` for the processes started in
    /// the host afterwards (so call it before starting them). Removed on teardown. Errors:
    /// [`LabError::Dns`] when the file cannot be written.
    pub fn set_resolver(&mut self, host: &Host, nameserver: Ipv4Addr) -> Result<(), LabError> {
        let dir = Path::new("/etc/netns").join(&host.netns);
        std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join("resolv.conf"),
                    format!("# weft-lab\nnameserver {nameserver}\noptions timeout:1 attempts:2\n"),
                )
            })
            .map_err(|error| LabError::Dns(format!("{}: {error}", dir.display())))?;
        if !self.netns_etc.contains(&dir) {
            self.netns_etc.push(dir);
        }
        Ok(())
    }

    /// The hosts, in creation order.
    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// Runs a command to completion inside `host`'s namespace. Errors when it fails.
    pub fn exec(&self, host: &Host, program: &str, args: &[&str]) -> Result<Output, LabError> {
        let mut full = vec!["netns", "exec", host.netns.as_str(), program];
        full.extend_from_slice(args);
        Ok(run_checked("ip", &full)?)
    }

    /// Starts a long-running process inside `host`'s namespace, its output going to
    /// `<log_dir>/<name>.log`, optionally as `uid`/`gid` (e.g. the proxy's 1337). The process is
    /// stopped when the lab is dropped (or when [`Lab::stop`] is called).
    pub fn spawn(
        &mut self,
        host: &Host,
        name: &str,
        program: &Path,
        args: &[String],
        env: &[(String, String)],
        run_as: Option<(u32, u32)>,
    ) -> Result<usize, LabError> {
        let log_path = self.log_dir.join(format!("{name}.log"));
        let log = File::create(&log_path).map_err(|source| LabError::Log {
            path: log_path.clone(),
            source,
        })?;
        let err_log = log.try_clone().map_err(|source| LabError::Log {
            path: log_path.clone(),
            source,
        })?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.netns]);
        if let Some((uid, gid)) = run_as {
            cmd.args([
                "setpriv",
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--",
            ]);
        }
        cmd.arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(Stdio::null()).stdout(log).stderr(err_log);
        let child = cmd.spawn().map_err(|source| CommandError::Spawn {
            command: format!("{}", program.display()),
            source,
        })?;
        self.processes
            .push(LabProcess::new(name.to_string(), child));
        Ok(self.processes.len() - 1)
    }

    /// The process started as number `index` by [`Lab::spawn`].
    pub fn process(&mut self, index: usize) -> Option<&mut LabProcess> {
        self.processes.get_mut(index)
    }

    /// The text a process has written so far (its log file).
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// Tears everything down now (also done on drop): processes, root link, host namespaces
    /// (with their iptables rules), the hub.
    pub fn teardown(&mut self) {
        for p in self.processes.iter_mut() {
            p.stop(std::time::Duration::from_secs(2));
        }
        self.processes.clear();
        if let Some(link) = self.root_link.take() {
            run_quiet("ip", &["link", "del", &link]);
        }
        for host in self.hosts.drain(..) {
            run_quiet("ip", &["netns", "del", &host.netns]);
        }
        for dir in self.netns_etc.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !self.hub.is_empty() {
            run_quiet("ip", &["netns", "del", &self.hub]);
            self.hub.clear();
        }
        self.remove_log_dir();
    }

    /// Removes the log directory (process logs and, for a `LocalMesh`, its config and the
    /// standalone CA's keys) unless the current thread is panicking: a failing test keeps
    /// its logs for reading, and says where they are.
    fn remove_log_dir(&mut self) {
        if self.log_dir.as_os_str().is_empty() {
            return;
        }
        if std::thread::panicking() {
            eprintln!("weft-lab: logs kept in {}", self.log_dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
        self.log_dir = PathBuf::new();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}
