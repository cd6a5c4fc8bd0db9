//! Traffic capture: the nat-table rules `weft-proxy init` installs in the pod's network
//! namespace so that inbound TCP reaches the proxy's inbound listener (15006) and outbound TCP
//! its outbound listener (15001), as Istio's `istio-iptables` does in REDIRECT mode.
//!
//! Layout: [`CaptureArgs`] (the CLI flags the injector writes) → [`CaptureConfig`] (validated)
//! → [`rules::apply_commands`] / [`rules::cleanup_commands`] (pure: ordered iptables argument
//! vectors) → [`executor::execute`] (runs them through a [`executor::Runner`], idempotently).
//! [`run`] ties them together for the binary.

pub mod cidr;
pub mod executor;
pub mod rules;

pub use cidr::{Cidr, CidrError};
pub use executor::{Runner, SystemRunner, execute};
pub use rules::{IpFamily, IptablesCommand, apply_commands, cleanup_commands};

/// Errors from parsing the capture flags or running iptables.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A port list entry is not a number in 1..=65535.
    #[error("--{flag}: `{value}` is not a port (expected 1-65535, comma-separated)")]
    InvalidPort {
        /// The flag, without dashes.
        flag: &'static str,
        /// The offending entry.
        value: String,
    },
    /// A CIDR list entry does not parse.
    #[error("--{flag}: `{value}` is not a CIDR: {source}")]
    InvalidCidr {
        /// The flag, without dashes.
        flag: &'static str,
        /// The offending entry.
        value: String,
        /// What is wrong with it.
        source: CidrError,
    },
    /// `*` was given where only a CIDR list is allowed (istio-iptables rejects it too).
    #[error("--exclude-outbound-ip-ranges: `*` is not allowed; list CIDRs to exclude")]
    WildcardExclude,
    /// The program could not be started (not installed, not in PATH).
    #[error("could not run `{command}`: {source} (is iptables installed in the init image?)")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The program ran and failed.
    #[error("`{command}` failed with {status}: {stderr} (needs CAP_NET_ADMIN in the pod)")]
    CommandFailed {
        /// The command line.
        command: String,
        /// The exit status, rendered.
        status: String,
        /// Its standard error, trimmed.
        stderr: String,
    },
}

/// Which inbound ports are redirected to the inbound listener (istio-iptables `-b`,
/// annotation `traffic.sidecar.istio.io/includeInboundPorts`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InboundPorts {
    /// `*`: every port except the excluded ones.
    All,
    /// An explicit list.
    Ports(Vec<u16>),
    /// The empty string: no inbound capture at all (no `PREROUTING` jump).
    None,
}

/// Which outbound destinations are redirected to the outbound listener (istio-iptables `-i`,
/// annotation `traffic.sidecar.istio.io/includeOutboundIPRanges`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundRanges {
    /// `*`: every destination except the excluded ranges.
    All,
    /// Only these ranges (an empty list captures nothing but the loopback cases).
    Ranges(Vec<Cidr>),
}

/// A validated capture configuration. Built from [`CaptureArgs`] with `TryFrom`, or directly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// UID the proxy runs as; its traffic is never redirected (owner match). Istio: 1337.
    pub proxy_uid: u32,
    /// GID the proxy runs as; same treatment as the UID. Istio: 1337.
    pub proxy_gid: u32,
    /// Port of the inbound listener (`ISTIO_IN_REDIRECT` target). Istio: 15006.
    pub inbound_port: u16,
    /// Port of the outbound listener (`ISTIO_REDIRECT` target). Istio: 15001.
    pub outbound_port: u16,
    /// Inbound ports to capture.
    pub include_inbound_ports: InboundPorts,
    /// Inbound ports never captured (with `*`); the proxy's own ports are added to these.
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound destinations to capture.
    pub include_outbound_ip_ranges: OutboundRanges,
    /// Outbound destinations never captured.
    pub exclude_outbound_ip_ranges: Vec<Cidr>,
    /// Outbound destination ports never captured.
    pub exclude_outbound_ports: Vec<u16>,
}

impl Default for CaptureConfig {
    /// Istio's sidecar defaults: UID/GID 1337, 15006/15001, capture everything.
    fn default() -> Self {
        CaptureConfig {
            proxy_uid: 1337,
            proxy_gid: 1337,
            inbound_port: 15006,
            outbound_port: 15001,
            include_inbound_ports: InboundPorts::All,
            exclude_inbound_ports: Vec::new(),
            include_outbound_ip_ranges: OutboundRanges::All,
            exclude_outbound_ip_ranges: Vec::new(),
            exclude_outbound_ports: Vec::new(),
        }
    }
}

impl CaptureConfig {
    /// The inbound ports never captured: [`rules::PROXY_OWN_PORTS`] first, then the configured
    /// exclusions, without duplicates, order kept.
    pub fn effective_exclude_inbound_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = Vec::new();
        for port in rules::PROXY_OWN_PORTS
            .iter()
            .chain(self.exclude_inbound_ports.iter())
        {
            if !ports.contains(port) {
                ports.push(*port);
            }
        }
        ports
    }
}

/// The `weft-proxy init` flags. Names match what the Weft injector writes (and istio-iptables'
/// long options in spirit); embed with `#[command(flatten)]`.
#[derive(Clone, Debug, clap::Args)]
pub struct CaptureArgs {
    /// UID of the proxy process; its traffic bypasses capture.
    #[arg(long, default_value_t = 1337)]
    pub proxy_uid: u32,
    /// GID of the proxy process; its traffic bypasses capture.
    #[arg(long, default_value_t = 1337)]
    pub proxy_gid: u32,
    /// Port of the inbound listener that captured inbound TCP is redirected to.
    #[arg(long, default_value_t = 15006)]
    pub inbound_port: u16,
    /// Port of the outbound listener that captured outbound TCP is redirected to.
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// Comma-separated inbound ports to capture, `*` for all, empty for none.
    #[arg(long, default_value = "*")]
    pub include_inbound_ports: String,
    /// Comma-separated inbound ports not to capture (with `*`).
    #[arg(long, default_value = "")]
    pub exclude_inbound_ports: String,
    /// Comma-separated CIDRs to capture outbound, `*` for all.
    #[arg(long, default_value = "*")]
    pub include_outbound_ip_ranges: String,
    /// Comma-separated CIDRs never captured outbound.
    #[arg(long, default_value = "")]
    pub exclude_outbound_ip_ranges: String,
    /// Comma-separated outbound destination ports never captured.
    #[arg(long, default_value = "")]
    pub exclude_outbound_ports: String,
    /// Remove Weft's chains and jump rules instead of installing them.
    #[arg(long)]
    pub cleanup: bool,
}

fn list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

fn parse_ports(flag: &'static str, value: &str) -> Result<Vec<u16>, CaptureError> {
    list(value)
        .map(|entry| match entry.parse::<u16>() {
            Ok(port) if port != 0 => Ok(port),
            _ => Err(CaptureError::InvalidPort {
                flag,
                value: entry.to_owned(),
            }),
        })
        .collect()
}

fn parse_cidrs(flag: &'static str, value: &str) -> Result<Vec<Cidr>, CaptureError> {
    list(value)
        .map(|entry| {
            entry.parse().map_err(|source| CaptureError::InvalidCidr {
                flag,
                value: entry.to_owned(),
                source,
            })
        })
        .collect()
}

impl TryFrom<&CaptureArgs> for CaptureConfig {
    type Error = CaptureError;

    /// Validates the flags: ports must be 1-65535, CIDRs must parse, `*` only where allowed.
    fn try_from(args: &CaptureArgs) -> Result<Self, Self::Error> {
        let include_inbound_ports = match args.include_inbound_ports.trim() {
            "*" => InboundPorts::All,
            "" => InboundPorts::None,
            other => InboundPorts::Ports(parse_ports("include-inbound-ports", other)?),
        };
        let include_outbound_ip_ranges = match args.include_outbound_ip_ranges.trim() {
            "*" => OutboundRanges::All,
            other => OutboundRanges::Ranges(parse_cidrs("include-outbound-ip-ranges", other)?),
        };
        if list(&args.exclude_outbound_ip_ranges).any(|e| e == "*") {
            return Err(CaptureError::WildcardExclude);
        }
        Ok(CaptureConfig {
            proxy_uid: args.proxy_uid,
            proxy_gid: args.proxy_gid,
            inbound_port: args.inbound_port,
            outbound_port: args.outbound_port,
            include_inbound_ports,
            exclude_inbound_ports: parse_ports(
                "exclude-inbound-ports",
                &args.exclude_inbound_ports,
            )?,
            include_outbound_ip_ranges,
            exclude_outbound_ip_ranges: parse_cidrs(
                "exclude-outbound-ip-ranges",
                &args.exclude_outbound_ip_ranges,
            )?,
            exclude_outbound_ports: parse_ports(
                "exclude-outbound-ports",
                &args.exclude_outbound_ports,
            )?,
        })
    }
}

/// Entry point of `weft-proxy init`: validates `args`, then installs capture (or removes it
/// with `--cleanup`) by running `iptables`/`ip6tables` from `PATH`.
///
/// IPv6 is handled only when an IPv6 range appears in the flags; otherwise `ip6tables` is not
/// run (neither on install nor on cleanup). Errors: invalid flags, or the first iptables command
/// that fails (see [`CaptureError`]).
pub fn run(args: &CaptureArgs) -> Result<(), CaptureError> {
    run_with(args, &SystemRunner::new())
}

/// [`run`] with an explicit runner (e.g. [`SystemRunner::wrapped`] around `ip netns exec NAME`,
/// or a fake in tests). Returns the same errors as [`run`].
pub fn run_with(args: &CaptureArgs, runner: &dyn Runner) -> Result<(), CaptureError> {
    let config = CaptureConfig::try_from(args)?;
    let commands = if args.cleanup {
        cleanup_commands(&rules::families(&config))
    } else {
        apply_commands(&config)
    };
    execute(&commands, runner)
}
