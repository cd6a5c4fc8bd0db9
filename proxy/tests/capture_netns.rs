//! `weft-proxy init` rules applied for real, inside a throwaway network namespace.
//!
//! Needs root, `ip` and `iptables`; otherwise each test prints `SKIPPED: needs root and
//! iptables` and returns. Namespaces are named `weft-t-<pid>-<n>` and deleted by a guard even
//! when an assertion fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use clap::Parser;
use weft_proxy::capture::{CaptureArgs, SystemRunner, run_with};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    capture: CaptureArgs,
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn environment_ok() -> bool {
    let ok = nix::unistd::geteuid().is_root()
        && runs("ip", &["-V"])
        && runs("iptables", &["--version"])
        && runs("iptables-save", &["--version"]);
    if !ok {
        println!("SKIPPED: needs root and iptables");
    }
    ok
}

/// A network namespace deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "weft-t-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        assert!(runs("ip", &["netns", "add", &name]), "ip netns add {name}");
        Netns(name)
    }

    fn exec(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0, program])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn runner(&self) -> SystemRunner {
        SystemRunner::wrapped(["ip", "netns", "exec", self.0.as_str()])
    }

    /// The nat table as `iptables-save` prints it: chain declarations (policy and counters
    /// dropped) and the `-A` rules of each chain, in order.
    fn nat(&self, save: &str) -> BTreeMap<String, Vec<String>> {
        let mut chains: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for line in self.exec(save, &["-t", "nat"]).lines() {
            if let Some(decl) = line.strip_prefix(':') {
                let name = decl.split_whitespace().next().unwrap().to_owned();
                chains.entry(name).or_default();
            } else if let Some(rule) = line.strip_prefix("-A ") {
                let (chain, spec) = rule.split_once(' ').unwrap();
                chains
                    .entry(chain.to_owned())
                    .or_default()
                    .push(spec.to_owned());
            }
        }
        chains
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.0])
            .status();
    }
}

fn args(argv: &[&str]) -> CaptureArgs {
    let mut full = vec!["weft-proxy-init"];
    full.extend(argv);
    Cli::try_parse_from(full).unwrap().capture
}

fn owned(rules: &[&str]) -> Vec<String> {
    rules.iter().map(|s| (*s).to_owned()).collect()
}

const INJECTOR_FLAGS: [&str; 18] = [
    "--proxy-uid",
    "1337",
    "--proxy-gid",
    "1337",
    "--inbound-port",
    "15006",
    "--outbound-port",
    "15001",
    "--include-inbound-ports",
    "*",
    "--exclude-inbound-ports",
    "15020,15021,15090",
    "--include-outbound-ip-ranges",
    "*",
    "--exclude-outbound-ip-ranges",
    "198.18.0.0/24",
    "--exclude-outbound-ports",
    "3306",
];

#[test]
fn apply_is_exact_idempotent_and_cleanup_restores_the_table() {
    if !environment_ok() {
        return;
    }
    let ns = Netns::new();
    // Someone else's rules, which Weft must neither duplicate nor remove.
    ns.exec("iptables", &["-t", "nat", "-N", "FOREIGN"]);
    ns.exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "FOREIGN",
            "-d",
            "198.18.9.0/24",
            "-j",
            "RETURN",
        ],
    );
    ns.exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "OUTPUT",
            "-d",
            "198.18.5.0/24",
            "-j",
            "RETURN",
        ],
    );
    let before = ns.nat("iptables-save");

    let install = args(&INJECTOR_FLAGS);
    run_with(&install, &ns.runner()).unwrap();
    let applied = ns.nat("iptables-save");

    let mut want = before.clone();
    want.get_mut("PREROUTING")
        .unwrap()
        .push("-p tcp -j ISTIO_INBOUND".into());
    want.get_mut("OUTPUT")
        .unwrap()
        .push("-p tcp -j ISTIO_OUTPUT".into());
    want.insert(
        "ISTIO_INBOUND".into(),
        owned(&[
            "-p tcp -m tcp --dport 15020 -j RETURN",
            "-p tcp -m tcp --dport 15021 -j RETURN",
            "-p tcp -m tcp --dport 15090 -j RETURN",
            "-p tcp -j ISTIO_IN_REDIRECT",
        ]),
    );
    want.insert(
        "ISTIO_IN_REDIRECT".into(),
        owned(&["-p tcp -j REDIRECT --to-ports 15006"]),
    );
    want.insert(
        "ISTIO_REDIRECT".into(),
        owned(&["-p tcp -j REDIRECT --to-ports 15001"]),
    );
    want.insert(
        "ISTIO_OUTPUT".into(),
        owned(&[
            "-p tcp -m tcp --dport 3306 -j RETURN",
            "-s 127.0.0.6/32 -o lo -j RETURN",
            "! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
            "-o lo -m owner ! --uid-owner 1337 -j RETURN",
            "-m owner --uid-owner 1337 -j RETURN",
            "! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
            "-o lo -m owner ! --gid-owner 1337 -j RETURN",
            "-m owner --gid-owner 1337 -j RETURN",
            "-d 127.0.0.1/32 -j RETURN",
            "-d 198.18.0.0/24 -j RETURN",
            "-j ISTIO_REDIRECT",
        ]),
    );
    assert_eq!(applied, want);

    // Idempotent: a second run (e.g. a restarted init container) converges to the same table.
    run_with(&install, &ns.runner()).unwrap();
    assert_eq!(ns.nat("iptables-save"), want);

    let mut cleanup = install.clone();
    cleanup.cleanup = true;
    run_with(&cleanup, &ns.runner()).unwrap();
    assert_eq!(ns.nat("iptables-save"), before);
    // Cleaning a clean namespace is fine too.
    run_with(&cleanup, &ns.runner()).unwrap();
    assert_eq!(ns.nat("iptables-save"), before);
}

#[test]
fn ipv6_ranges_program_ip6tables_and_cleanup_removes_both() {
    if !environment_ok() {
        return;
    }
    if !runs("ip6tables-save", &["--version"]) {
        println!("SKIPPED: needs ip6tables");
        return;
    }
    let ns = Netns::new();
    let v4_before = ns.nat("iptables-save");
    let v6_before = ns.nat("ip6tables-save");

    let mut flags = INJECTOR_FLAGS.to_vec();
    flags[15] = "198.18.0.0/24,fd00:1::/64";
    let install = args(&flags);
    run_with(&install, &ns.runner()).unwrap();

    let v6 = ns.nat("ip6tables-save");
    let output = &v6["ISTIO_OUTPUT"];
    assert!(
        output.contains(&"-s ::6/128 -o lo -j RETURN".to_owned()),
        "{output:?}"
    );
    assert!(
        output.contains(&"-d fd00:1::/64 -j RETURN".to_owned()),
        "{output:?}"
    );
    assert!(!output.iter().any(|r| r.contains("198.18.")), "{output:?}");
    assert_eq!(v6["OUTPUT"], owned(&["-p tcp -j ISTIO_OUTPUT"]));
    let v4 = ns.nat("iptables-save");
    assert!(!v4["ISTIO_OUTPUT"].iter().any(|r| r.contains("fd00")));

    let mut cleanup = install.clone();
    cleanup.cleanup = true;
    run_with(&cleanup, &ns.runner()).unwrap();
    assert_eq!(ns.nat("iptables-save"), v4_before);
    assert_eq!(ns.nat("ip6tables-save"), v6_before);
}

#[test]
fn without_ipv6_ranges_ip6tables_is_untouched() {
    if !environment_ok() {
        return;
    }
    if !runs("ip6tables-save", &["--version"]) {
        println!("SKIPPED: needs ip6tables");
        return;
    }
    let ns = Netns::new();
    let v6_before = ns.nat("ip6tables-save");
    run_with(&args(&INJECTOR_FLAGS), &ns.runner()).unwrap();
    assert_eq!(ns.nat("ip6tables-save"), v6_before);
    assert!(ns.nat("iptables-save").contains_key("ISTIO_OUTPUT"));
}
