//! The executor against an in-memory model of the nat table: enough of iptables' semantics
//! (`-N` fails on an existing chain, `-X` on a referenced or non-empty one, `-D` on a missing
//! rule) to show idempotence and exact cleanup without root.

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::*;
use crate::capture::rules::{IpFamily, apply_commands, cleanup_commands};
use crate::capture::{CaptureConfig, Cidr, InboundPorts};

type Table = BTreeMap<String, Vec<Vec<String>>>;

#[derive(Default)]
struct FakeIptables {
    tables: RefCell<BTreeMap<String, Table>>,
    calls: RefCell<Vec<String>>,
    refuse_appends: bool,
}

fn builtin() -> Table {
    ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"]
        .iter()
        .map(|c| ((*c).to_owned(), Vec::new()))
        .collect()
}

fn fail(msg: &str) -> Result<RunOutput, CaptureError> {
    Ok(RunOutput {
        success: false,
        status: "exit status: 1".into(),
        stderr: msg.into(),
    })
}

const OK: RunOutput = RunOutput {
    success: true,
    status: String::new(),
    stderr: String::new(),
};

impl FakeIptables {
    fn with_rule(self, program: &str, chain: &str, rule: &[&str]) -> Self {
        self.tables
            .borrow_mut()
            .entry(program.to_owned())
            .or_insert_with(builtin)
            .entry(chain.to_owned())
            .or_default()
            .push(rule.iter().map(|s| (*s).to_owned()).collect());
        self
    }

    fn table(&self, program: &str) -> Table {
        self.tables
            .borrow()
            .get(program)
            .cloned()
            .unwrap_or_else(builtin)
    }
}

impl Runner for FakeIptables {
    fn run(&self, program: &str, args: &[String]) -> Result<RunOutput, CaptureError> {
        self.calls
            .borrow_mut()
            .push(format!("{program} {}", args.join(" ")));
        let mut tables = self.tables.borrow_mut();
        let table = tables.entry(program.to_owned()).or_insert_with(builtin);
        let (op, chain, rule) = match args {
            [t, nat, op, chain, rule @ ..] if t == "-t" && nat == "nat" => {
                (op, chain, rule.to_vec())
            }
            _ => return fail("bad arguments"),
        };
        let target = rule.windows(2).find(|w| w[0] == "-j").map(|w| w[1].clone());
        match op.as_str() {
            "-S" => {
                if table.contains_key(chain) {
                    Ok(OK)
                } else {
                    fail("No chain/target/match by that name.")
                }
            }
            "-N" => {
                if table.contains_key(chain) {
                    return fail("Chain already exists.");
                }
                table.insert(chain.clone(), Vec::new());
                Ok(OK)
            }
            "-F" => match table.get_mut(chain) {
                Some(rules) => {
                    rules.clear();
                    Ok(OK)
                }
                None => fail("No chain/target/match by that name."),
            },
            "-X" => {
                let referenced = table
                    .values()
                    .flatten()
                    .any(|r| r.windows(2).any(|w| w[0] == "-j" && &w[1] == chain));
                match table.get(chain) {
                    Some(rules) if rules.is_empty() && !referenced => {
                        table.remove(chain);
                        Ok(OK)
                    }
                    Some(_) => fail("Directory not empty / referenced"),
                    None => fail("No chain/target/match by that name."),
                }
            }
            "-A" => {
                if self.refuse_appends {
                    return fail("Permission denied (you must be root)");
                }
                let target_ok = target.as_deref().is_none_or(|t| {
                    ["RETURN", "REDIRECT", "ACCEPT"].contains(&t) || table.contains_key(t)
                });
                match table.get_mut(chain) {
                    Some(rules) if target_ok => {
                        rules.push(rule);
                        Ok(OK)
                    }
                    _ => fail("Couldn't load target / no chain"),
                }
            }
            "-C" => match table.get(chain) {
                Some(rules) if rules.contains(&rule) => Ok(OK),
                _ => fail("Bad rule (does a matching rule exist in that chain?)."),
            },
            "-D" => match table.get_mut(chain) {
                Some(rules) => match rules.iter().position(|r| *r == rule) {
                    Some(i) => {
                        rules.remove(i);
                        Ok(OK)
                    }
                    None => fail("Bad rule"),
                },
                None => fail("No chain"),
            },
            _ => fail("unsupported"),
        }
    }
}

fn jump_count(table: &Table, chain: &str, target: &str) -> usize {
    table
        .get(chain)
        .map(|rules| {
            rules
                .iter()
                .filter(|r| r.last().map(String::as_str) == Some(target))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn apply_twice_gives_the_same_rules_and_single_jumps() {
    let fake = FakeIptables::default();
    let commands = apply_commands(&CaptureConfig::default());
    execute(&commands, &fake).unwrap();
    let first = fake.table("iptables");
    execute(&commands, &fake).unwrap();
    let second = fake.table("iptables");
    assert_eq!(first, second);
    assert_eq!(jump_count(&second, "PREROUTING", "ISTIO_INBOUND"), 1);
    assert_eq!(jump_count(&second, "OUTPUT", "ISTIO_OUTPUT"), 1);
    assert_eq!(second.get("ISTIO_OUTPUT").map(Vec::len), Some(9));
    // The second run checked the jumps with -C and did not create chains again.
    let calls = fake.calls.borrow();
    assert_eq!(calls.iter().filter(|c| c.contains(" -N ")).count(), 4);
    assert_eq!(
        calls
            .iter()
            .filter(|c| *c == "iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT")
            .count(),
        1
    );
    // ip6tables was never run: no IPv6 range configured.
    assert!(calls.iter().all(|c| c.starts_with("iptables ")));
}

#[test]
fn cleanup_restores_the_table_exactly_and_keeps_foreign_rules() {
    let foreign = ["-d", "198.18.5.0/24", "-j", "RETURN"];
    let fake = FakeIptables::default().with_rule("iptables", "OUTPUT", &foreign);
    let before = fake.table("iptables");
    execute(&apply_commands(&CaptureConfig::default()), &fake).unwrap();
    assert_ne!(fake.table("iptables"), before);
    execute(&cleanup_commands(&[IpFamily::V4]), &fake).unwrap();
    assert_eq!(fake.table("iptables"), before);
}

#[test]
fn cleanup_removes_duplicated_jumps() {
    let jump = ["-p", "tcp", "-j", "ISTIO_OUTPUT"];
    let fake = FakeIptables::default();
    execute(&apply_commands(&CaptureConfig::default()), &fake).unwrap();
    let fake = fake
        .with_rule("iptables", "OUTPUT", &jump)
        .with_rule("iptables", "OUTPUT", &jump);
    execute(&cleanup_commands(&[IpFamily::V4]), &fake).unwrap();
    assert_eq!(fake.table("iptables"), builtin());
}

#[test]
fn cleanup_of_a_clean_namespace_is_a_no_op() {
    let fake = FakeIptables::default();
    execute(&cleanup_commands(&[IpFamily::V4, IpFamily::V6]), &fake).unwrap();
    assert_eq!(fake.table("iptables"), builtin());
    assert_eq!(fake.table("ip6tables"), builtin());
    assert!(
        !fake
            .calls
            .borrow()
            .iter()
            .any(|c| c.contains(" -X ") || c.contains(" -F "))
    );
}

#[test]
fn turning_inbound_capture_off_removes_the_prerouting_jump() {
    let fake = FakeIptables::default();
    execute(&apply_commands(&CaptureConfig::default()), &fake).unwrap();
    assert_eq!(
        jump_count(&fake.table("iptables"), "PREROUTING", "ISTIO_INBOUND"),
        1
    );
    let off = CaptureConfig {
        include_inbound_ports: InboundPorts::None,
        ..CaptureConfig::default()
    };
    execute(&apply_commands(&off), &fake).unwrap();
    let table = fake.table("iptables");
    assert_eq!(jump_count(&table, "PREROUTING", "ISTIO_INBOUND"), 0);
    assert_eq!(table.get("ISTIO_INBOUND"), Some(&Vec::new()));
}

#[test]
fn ipv6_ranges_program_ip6tables_too() {
    let config = CaptureConfig {
        exclude_outbound_ip_ranges: vec!["fd00::/8".parse::<Cidr>().unwrap()],
        ..CaptureConfig::default()
    };
    let fake = FakeIptables::default();
    execute(&apply_commands(&config), &fake).unwrap();
    let v6 = fake.table("ip6tables");
    assert_eq!(jump_count(&v6, "OUTPUT", "ISTIO_OUTPUT"), 1);
    assert!(v6["ISTIO_OUTPUT"].contains(&vec![
        "-d".into(),
        "fd00::/8".into(),
        "-j".into(),
        "RETURN".into()
    ]));
}

#[test]
fn a_failing_command_is_reported_with_its_command_line() {
    let fake = FakeIptables {
        refuse_appends: true,
        ..FakeIptables::default()
    };
    let err = execute(&apply_commands(&CaptureConfig::default()), &fake).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "`iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001` failed"
        ),
        "{msg}"
    );
    assert!(msg.contains("Permission denied"), "{msg}");
}

#[test]
fn system_runner_reports_exit_status_and_spawn_failures() {
    let runner = SystemRunner::new();
    assert!(runner.run("true", &[]).unwrap().success);
    let failed = runner.run("false", &[]).unwrap();
    assert!(!failed.success);
    assert!(failed.status.contains('1'), "{}", failed.status);

    let missing = SystemRunner::wrapped(["/nonexistent/weft-test-wrapper"]);
    let err = missing
        .run("iptables", &["-t".into(), "nat".into()])
        .unwrap_err();
    assert!(matches!(err, CaptureError::Spawn { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("could not run `/nonexistent/weft-test-wrapper iptables -t nat`"),
        "{err}"
    );
}
