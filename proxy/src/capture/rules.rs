//! The pure part of traffic capture: from a [`CaptureConfig`] to an ordered list of iptables
//! commands. No process is spawned here; [`super::executor`] runs the list.
//!
//! The rule set follows istio-iptables (`tools/istio-iptables/pkg/cmd/run.go`, REDIRECT mode):
//! the same chain names, the same order of RETURN / redirect rules and the same loopback
//! handling, so `iptables-save` in a Weft pod reads like one in an Istio pod. Differences, on
//! purpose: no HBONE tunnel port (15008) exception, no SSH (22) exception, no TPROXY mode and no
//! DNS capture; the proxy's own ports (15020, 15021, 15090) are always excluded from inbound
//! capture even when the injector omits them. Every argument vector is written in the canonical
//! order `iptables-save` prints, so saved rules compare equal to generated ones.

use std::fmt;

use super::{CaptureConfig, InboundPorts, OutboundRanges};

/// The table every Weft capture rule lives in.
pub const NAT: &str = "nat";
/// Inbound chain, jumped to from `PREROUTING` for TCP (Istio's `ISTIO_INBOUND`).
pub const ISTIO_INBOUND: &str = "ISTIO_INBOUND";
/// Redirects to the inbound listener port (Istio's `ISTIO_IN_REDIRECT`).
pub const ISTIO_IN_REDIRECT: &str = "ISTIO_IN_REDIRECT";
/// Outbound chain, jumped to from `OUTPUT` for TCP (Istio's `ISTIO_OUTPUT`).
pub const ISTIO_OUTPUT: &str = "ISTIO_OUTPUT";
/// Redirects to the outbound listener port (Istio's `ISTIO_REDIRECT`).
pub const ISTIO_REDIRECT: &str = "ISTIO_REDIRECT";
/// Every chain Weft creates, in creation order. Cleanup removes exactly these.
pub const CHAINS: [&str; 4] = [
    ISTIO_INBOUND,
    ISTIO_IN_REDIRECT,
    ISTIO_OUTPUT,
    ISTIO_REDIRECT,
];
/// The proxy's own inbound ports, never captured: 15020 (merged metrics / agent), 15021
/// (health), 15090 (Envoy-style `/stats/prometheus`). Istio's injector passes them in `-d`.
pub const PROXY_OWN_PORTS: [u16; 3] = [15020, 15021, 15090];

/// Which `iptables` binary a command is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4: `iptables`.
    V4,
    /// IPv6: `ip6tables`.
    V6,
}

impl IpFamily {
    /// The program to run: `iptables` or `ip6tables`.
    pub fn program(self) -> &'static str {
        match self {
            IpFamily::V4 => "iptables",
            IpFamily::V6 => "ip6tables",
        }
    }

    /// The save program: `iptables-save` or `ip6tables-save`.
    pub fn save_program(self) -> &'static str {
        match self {
            IpFamily::V4 => "iptables-save",
            IpFamily::V6 => "ip6tables-save",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            IpFamily::V4 => "127.0.0.1/32",
            IpFamily::V6 => "::1/128",
        }
    }

    /// Source address of the proxy's inbound passthrough connections (Istio binds 127.0.0.6 /
    /// ::6 so the application sees a local peer and the rule set can tell them apart).
    fn inbound_passthrough_source(self) -> &'static str {
        match self {
            IpFamily::V4 => "127.0.0.6/32",
            IpFamily::V6 => "::6/128",
        }
    }
}

/// What the executor does with a command's argument vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// `-N CHAIN`, skipped when the chain exists (checked with `-S CHAIN`).
    CreateChain,
    /// `-F CHAIN`; the chain must exist.
    Flush,
    /// `-A CHAIN ...`; always appended (the chain was just flushed).
    Append,
    /// `-A CHAIN ...` only when `-C CHAIN ...` says the rule is absent: jump rules in built-in
    /// chains are never duplicated.
    AppendUnlessPresent,
    /// `-D CHAIN ...` repeated while `-C` finds the rule (removes stray duplicates too).
    DeleteAllPresent,
    /// `-F CHAIN` when the chain exists, else nothing.
    FlushIfExists,
    /// `-X CHAIN` when the chain exists, else nothing.
    DeleteChainIfExists,
}

/// One iptables invocation: the family (binary), what to do, and the argument vector
/// (`-t nat -A ISTIO_OUTPUT ... -j RETURN`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IptablesCommand {
    /// `iptables` or `ip6tables`.
    pub family: IpFamily,
    /// How the executor treats `args` (see [`Action`]).
    pub action: Action,
    /// Arguments without the program name; always starts with `-t nat <op> <chain>`.
    pub args: Vec<String>,
}

impl IptablesCommand {
    fn new(family: IpFamily, action: Action, op: &str, chain: &str, spec: &[String]) -> Self {
        let mut args = vec![
            "-t".to_owned(),
            NAT.to_owned(),
            op.to_owned(),
            chain.to_owned(),
        ];
        args.extend(spec.iter().cloned());
        IptablesCommand {
            family,
            action,
            args,
        }
    }

    /// The chain the command operates on.
    pub fn chain(&self) -> &str {
        self.args.get(3).map(String::as_str).unwrap_or_default()
    }

    /// The same arguments with the operation flag (`-A`, `-N`, ...) replaced by `op` (`-C`,
    /// `-D`, `-S`): used by the executor for its existence checks.
    pub fn with_op(&self, op: &str) -> Vec<String> {
        let mut args = self.args.clone();
        if let Some(slot) = args.get_mut(2) {
            op.clone_into(slot);
        }
        args
    }
}

impl fmt::Display for IptablesCommand {
    /// Shell-like rendering for logs: `iptables -t nat -A ISTIO_OUTPUT -j RETURN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.program(), self.args.join(" "))
    }
}

fn spec(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

fn port_rule(port: u16, target: &str) -> Vec<String> {
    spec(&[
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        &port.to_string(),
        "-j",
        target,
    ])
}

/// The families a configuration needs: IPv4 always, IPv6 when any include or exclude range is
/// an IPv6 CIDR (istio-iptables' `separateV4V6`); otherwise ip6tables is never touched.
pub fn families(config: &CaptureConfig) -> Vec<IpFamily> {
    let included_v6 = match &config.include_outbound_ip_ranges {
        OutboundRanges::All => false,
        OutboundRanges::Ranges(ranges) => ranges.iter().any(|c| c.is_ipv6()),
    };
    let excluded_v6 = config
        .exclude_outbound_ip_ranges
        .iter()
        .any(|c| c.is_ipv6());
    if included_v6 || excluded_v6 {
        vec![IpFamily::V4, IpFamily::V6]
    } else {
        vec![IpFamily::V4]
    }
}

/// The rules (chain, match-and-target spec) Weft appends to its own chains for one family, in
/// order. Returned as `(chain, spec)` pairs.
pub fn chain_rules(config: &CaptureConfig, family: IpFamily) -> Vec<(&'static str, Vec<String>)> {
    let mut rules: Vec<(&'static str, Vec<String>)> = Vec::new();
    let outbound_port = config.outbound_port.to_string();
    let inbound_port = config.inbound_port.to_string();
    rules.push((
        ISTIO_REDIRECT,
        spec(&["-p", "tcp", "-j", "REDIRECT", "--to-ports", &outbound_port]),
    ));
    rules.push((
        ISTIO_IN_REDIRECT,
        spec(&["-p", "tcp", "-j", "REDIRECT", "--to-ports", &inbound_port]),
    ));

    let excluded_inbound = config.effective_exclude_inbound_ports();
    match &config.include_inbound_ports {
        InboundPorts::None => {}
        InboundPorts::All => {
            for port in &excluded_inbound {
                rules.push((ISTIO_INBOUND, port_rule(*port, "RETURN")));
            }
            rules.push((ISTIO_INBOUND, spec(&["-p", "tcp", "-j", ISTIO_IN_REDIRECT])));
        }
        InboundPorts::Ports(ports) => {
            for port in ports.iter().filter(|p| !excluded_inbound.contains(p)) {
                rules.push((ISTIO_INBOUND, port_rule(*port, ISTIO_IN_REDIRECT)));
            }
        }
    }

    // Port exclusions come first: they must win over the redirect of connections back to self.
    for port in &config.exclude_outbound_ports {
        rules.push((ISTIO_OUTPUT, port_rule(*port, "RETURN")));
    }
    // Inbound passthrough: the proxy connects to the app from 127.0.0.6; never capture that.
    rules.push((
        ISTIO_OUTPUT,
        spec(&[
            "-s",
            family.inbound_passthrough_source(),
            "-o",
            "lo",
            "-j",
            "RETURN",
        ]),
    ));
    let loopback = family.loopback();
    for (flag, id) in [
        ("--uid-owner", config.proxy_uid.to_string()),
        ("--gid-owner", config.proxy_gid.to_string()),
    ] {
        // The app calls itself through a Service VIP: app -> proxy (outbound) -> proxy
        // (inbound) -> app, so the proxy's own loopback traffic goes to the inbound listener.
        rules.push((
            ISTIO_OUTPUT,
            spec(&[
                "!",
                "-d",
                loopback,
                "-o",
                "lo",
                "-m",
                "owner",
                flag,
                &id,
                "-j",
                ISTIO_IN_REDIRECT,
            ]),
        ));
        // The app calls itself by its own address over lo: leave it alone.
        rules.push((
            ISTIO_OUTPUT,
            spec(&["-o", "lo", "-m", "owner", "!", flag, &id, "-j", "RETURN"]),
        ));
        // The proxy's own outbound traffic is never redirected back to itself (no loops).
        rules.push((
            ISTIO_OUTPUT,
            spec(&["-m", "owner", flag, &id, "-j", "RETURN"]),
        ));
    }
    // Applications that explicitly use localhost (sidecar-aware apps, container to container).
    rules.push((ISTIO_OUTPUT, spec(&["-d", loopback, "-j", "RETURN"])));
    let family_matches = |c: &&super::Cidr| c.is_ipv6() == (family == IpFamily::V6);
    for cidr in config
        .exclude_outbound_ip_ranges
        .iter()
        .filter(family_matches)
    {
        rules.push((
            ISTIO_OUTPUT,
            spec(&["-d", &cidr.to_string(), "-j", "RETURN"]),
        ));
    }
    match &config.include_outbound_ip_ranges {
        OutboundRanges::All => rules.push((ISTIO_OUTPUT, spec(&["-j", ISTIO_REDIRECT]))),
        OutboundRanges::Ranges(ranges) => {
            let ranges: Vec<_> = ranges.iter().filter(family_matches).collect();
            if !ranges.is_empty() {
                for cidr in ranges {
                    rules.push((
                        ISTIO_OUTPUT,
                        spec(&["-d", &cidr.to_string(), "-j", ISTIO_REDIRECT]),
                    ));
                }
                rules.push((ISTIO_OUTPUT, spec(&["-j", "RETURN"])));
            }
        }
    }
    rules
}

fn prerouting_jump() -> Vec<String> {
    spec(&["-p", "tcp", "-j", ISTIO_INBOUND])
}

fn output_jump() -> Vec<String> {
    spec(&["-p", "tcp", "-j", ISTIO_OUTPUT])
}

/// The ordered commands that install capture for `config` (what `weft-proxy init` runs).
///
/// Per family: create Weft's four chains when missing, flush them, append the rules of
/// [`chain_rules`], then add the jumps `PREROUTING -p tcp -j ISTIO_INBOUND` (unless inbound
/// capture is off, in which case a leftover jump is removed) and `OUTPUT -p tcp -j ISTIO_OUTPUT`
/// only when absent. Running the list twice leaves the same rules: it is idempotent.
pub fn apply_commands(config: &CaptureConfig) -> Vec<IptablesCommand> {
    let mut commands = Vec::new();
    for family in families(config) {
        for chain in CHAINS {
            commands.push(IptablesCommand::new(
                family,
                Action::CreateChain,
                "-N",
                chain,
                &[],
            ));
        }
        for chain in CHAINS {
            commands.push(IptablesCommand::new(
                family,
                Action::Flush,
                "-F",
                chain,
                &[],
            ));
        }
        for (chain, rule) in chain_rules(config, family) {
            commands.push(IptablesCommand::new(
                family,
                Action::Append,
                "-A",
                chain,
                &rule,
            ));
        }
        let inbound_jump = if config.include_inbound_ports == InboundPorts::None {
            Action::DeleteAllPresent
        } else {
            Action::AppendUnlessPresent
        };
        let op = if inbound_jump == Action::DeleteAllPresent {
            "-D"
        } else {
            "-A"
        };
        commands.push(IptablesCommand::new(
            family,
            inbound_jump,
            op,
            "PREROUTING",
            &prerouting_jump(),
        ));
        commands.push(IptablesCommand::new(
            family,
            Action::AppendUnlessPresent,
            "-A",
            "OUTPUT",
            &output_jump(),
        ));
    }
    commands
}

/// The ordered commands that remove capture for the given families: delete Weft's jump rules
/// from `PREROUTING` and `OUTPUT`, then flush and delete Weft's four chains when they exist.
/// Nothing else is touched (other chains and rules in the nat table stay).
pub fn cleanup_commands(families: &[IpFamily]) -> Vec<IptablesCommand> {
    let mut commands = Vec::new();
    for &family in families {
        commands.push(IptablesCommand::new(
            family,
            Action::DeleteAllPresent,
            "-D",
            "PREROUTING",
            &prerouting_jump(),
        ));
        commands.push(IptablesCommand::new(
            family,
            Action::DeleteAllPresent,
            "-D",
            "OUTPUT",
            &output_jump(),
        ));
        for chain in CHAINS {
            commands.push(IptablesCommand::new(
                family,
                Action::FlushIfExists,
                "-F",
                chain,
                &[],
            ));
        }
        for chain in CHAINS {
            commands.push(IptablesCommand::new(
                family,
                Action::DeleteChainIfExists,
                "-X",
                chain,
                &[],
            ));
        }
    }
    commands
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
