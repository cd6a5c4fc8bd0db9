use super::*;
use crate::capture::{CaptureArgs, CaptureConfig, InboundPorts, OutboundRanges};

fn config(f: impl FnOnce(&mut CaptureConfig)) -> CaptureConfig {
    let mut c = CaptureConfig::default();
    f(&mut c);
    c
}

fn cidrs(list: &[&str]) -> Vec<crate::capture::Cidr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Rules of one chain, rendered as `iptables-save` prints them (`-A CHAIN spec`).
fn chain(config: &CaptureConfig, family: IpFamily, name: &str) -> Vec<String> {
    chain_rules(config, family)
        .into_iter()
        .filter(|(c, _)| *c == name)
        .map(|(c, spec)| format!("-A {c} {}", spec.join(" ")))
        .collect()
}

#[test]
fn inbound_chain_table() {
    struct Case {
        name: &'static str,
        include: InboundPorts,
        exclude: Vec<u16>,
        want: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "all ports, own ports excluded even when not listed",
            include: InboundPorts::All,
            exclude: vec![],
            want: vec![
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
            ],
        },
        Case {
            name: "all ports with injector exclusions, no duplicates",
            include: InboundPorts::All,
            exclude: vec![15090, 15021, 15020, 9000],
            want: vec![
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -m tcp --dport 9000 -j RETURN",
                "-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT",
            ],
        },
        Case {
            name: "explicit list redirects only those ports, never the proxy's own",
            include: InboundPorts::Ports(vec![8080, 15021, 9090]),
            exclude: vec![9090],
            want: vec!["-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT"],
        },
        Case {
            name: "empty include list: no inbound rules",
            include: InboundPorts::None,
            exclude: vec![],
            want: vec![],
        },
    ];
    for case in cases {
        let c = config(|c| {
            c.include_inbound_ports = case.include;
            c.exclude_inbound_ports = case.exclude;
        });
        assert_eq!(
            chain(&c, IpFamily::V4, ISTIO_INBOUND),
            case.want,
            "{}",
            case.name
        );
    }
}

const LOOPBACK_V4: [&str; 8] = [
    "-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN",
    "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT",
    "-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
    "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
    "-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT",
    "-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
    "-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN",
    "-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN",
];

#[test]
fn outbound_chain_table() {
    struct Case {
        name: &'static str,
        config: CaptureConfig,
        before_loopback: Vec<&'static str>,
        after_loopback: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "capture all",
            config: CaptureConfig::default(),
            before_loopback: vec![],
            after_loopback: vec!["-A ISTIO_OUTPUT -j ISTIO_REDIRECT"],
        },
        Case {
            name: "excluded ports first, excluded ranges before the catch-all",
            config: config(|c| {
                c.exclude_outbound_ports = vec![3306, 9000];
                c.exclude_outbound_ip_ranges = cidrs(&["198.18.0.0/24", "198.19.1.7"]);
            }),
            before_loopback: vec![
                "-A ISTIO_OUTPUT -p tcp -m tcp --dport 3306 -j RETURN",
                "-A ISTIO_OUTPUT -p tcp -m tcp --dport 9000 -j RETURN",
            ],
            after_loopback: vec![
                "-A ISTIO_OUTPUT -d 198.18.0.0/24 -j RETURN",
                "-A ISTIO_OUTPUT -d 198.19.1.7/32 -j RETURN",
                "-A ISTIO_OUTPUT -j ISTIO_REDIRECT",
            ],
        },
        Case {
            name: "include list: redirect those, return the rest",
            config: config(|c| {
                c.include_outbound_ip_ranges =
                    OutboundRanges::Ranges(cidrs(&["10.96.0.0/12", "198.18.0.0/15"]));
                c.exclude_outbound_ip_ranges = cidrs(&["198.18.3.0/24"]);
            }),
            before_loopback: vec![],
            after_loopback: vec![
                "-A ISTIO_OUTPUT -d 198.18.3.0/24 -j RETURN",
                "-A ISTIO_OUTPUT -d 10.96.0.0/12 -j ISTIO_REDIRECT",
                "-A ISTIO_OUTPUT -d 198.18.0.0/15 -j ISTIO_REDIRECT",
                "-A ISTIO_OUTPUT -j RETURN",
            ],
        },
        Case {
            name: "empty include list: only the loopback cases",
            config: config(|c| c.include_outbound_ip_ranges = OutboundRanges::Ranges(vec![])),
            before_loopback: vec![],
            after_loopback: vec![],
        },
    ];
    for case in cases {
        let mut want: Vec<&str> = case.before_loopback.clone();
        want.extend(LOOPBACK_V4);
        want.extend(case.after_loopback.iter());
        assert_eq!(
            chain(&case.config, IpFamily::V4, ISTIO_OUTPUT),
            want,
            "{}",
            case.name
        );
        assert_eq!(families(&case.config), vec![IpFamily::V4], "{}", case.name);
    }
}

#[test]
fn redirect_chains_use_configured_ports() {
    let c = config(|c| {
        c.inbound_port = 25006;
        c.outbound_port = 25001;
    });
    assert_eq!(
        chain(&c, IpFamily::V4, ISTIO_REDIRECT),
        vec!["-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 25001"]
    );
    assert_eq!(
        chain(&c, IpFamily::V4, ISTIO_IN_REDIRECT),
        vec!["-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 25006"]
    );
}

#[test]
fn uid_and_gid_are_distinct() {
    let c = config(|c| {
        c.proxy_uid = 1000;
        c.proxy_gid = 2000;
    });
    let rules = chain(&c, IpFamily::V4, ISTIO_OUTPUT);
    assert!(rules.contains(&"-A ISTIO_OUTPUT -m owner --uid-owner 1000 -j RETURN".to_owned()));
    assert!(rules.contains(&"-A ISTIO_OUTPUT -m owner --gid-owner 2000 -j RETURN".to_owned()));
    assert!(!rules.iter().any(|r| r.contains("1337")));
}

#[test]
fn ipv6_ranges_add_an_ip6tables_rule_set_with_v6_loopback() {
    let c = config(|c| {
        c.exclude_outbound_ip_ranges = cidrs(&["198.18.0.0/24", "fd00:1::/64"]);
    });
    assert_eq!(families(&c), vec![IpFamily::V4, IpFamily::V6]);
    let v6 = chain(&c, IpFamily::V6, ISTIO_OUTPUT);
    assert_eq!(
        v6.first().unwrap(),
        "-A ISTIO_OUTPUT -s ::6/128 -o lo -j RETURN"
    );
    assert!(v6.contains(&"-A ISTIO_OUTPUT -d ::1/128 -j RETURN".to_owned()));
    assert!(v6.contains(&"-A ISTIO_OUTPUT -d fd00:1::/64 -j RETURN".to_owned()));
    assert!(!v6.iter().any(|r| r.contains("198.18")));
    let v4 = chain(&c, IpFamily::V4, ISTIO_OUTPUT);
    assert!(!v4.iter().any(|r| r.contains("fd00")));

    let commands = apply_commands(&c);
    assert!(commands.iter().any(|cmd| cmd.family == IpFamily::V6));
    assert!(
        commands
            .iter()
            .filter(|cmd| cmd.family == IpFamily::V6)
            .all(|cmd| cmd.to_string().starts_with("ip6tables -t nat "))
    );
}

#[test]
fn apply_sequence_creates_flushes_appends_then_jumps() {
    let commands: Vec<String> = apply_commands(&CaptureConfig::default())
        .iter()
        .map(|c| format!("{:?} {c}", c.action))
        .collect();
    let head = [
        "CreateChain iptables -t nat -N ISTIO_INBOUND",
        "CreateChain iptables -t nat -N ISTIO_IN_REDIRECT",
        "CreateChain iptables -t nat -N ISTIO_OUTPUT",
        "CreateChain iptables -t nat -N ISTIO_REDIRECT",
        "Flush iptables -t nat -F ISTIO_INBOUND",
        "Flush iptables -t nat -F ISTIO_IN_REDIRECT",
        "Flush iptables -t nat -F ISTIO_OUTPUT",
        "Flush iptables -t nat -F ISTIO_REDIRECT",
        "Append iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "Append iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
    ];
    assert_eq!(&commands[..head.len()], head);
    let tail = [
        "AppendUnlessPresent iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND",
        "AppendUnlessPresent iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT",
    ];
    assert_eq!(&commands[commands.len() - 2..], tail);
}

#[test]
fn no_inbound_capture_removes_the_prerouting_jump() {
    let c = config(|c| c.include_inbound_ports = InboundPorts::None);
    let jump = apply_commands(&c)
        .into_iter()
        .find(|cmd| cmd.chain() == "PREROUTING")
        .unwrap();
    assert_eq!(jump.action, Action::DeleteAllPresent);
    assert_eq!(
        jump.to_string(),
        "iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND"
    );
}

#[test]
fn cleanup_removes_jumps_then_chains_only() {
    let commands: Vec<String> = cleanup_commands(&[IpFamily::V4])
        .iter()
        .map(|c| format!("{:?} {c}", c.action))
        .collect();
    assert_eq!(
        commands,
        [
            "DeleteAllPresent iptables -t nat -D PREROUTING -p tcp -j ISTIO_INBOUND",
            "DeleteAllPresent iptables -t nat -D OUTPUT -p tcp -j ISTIO_OUTPUT",
            "FlushIfExists iptables -t nat -F ISTIO_INBOUND",
            "FlushIfExists iptables -t nat -F ISTIO_IN_REDIRECT",
            "FlushIfExists iptables -t nat -F ISTIO_OUTPUT",
            "FlushIfExists iptables -t nat -F ISTIO_REDIRECT",
            "DeleteChainIfExists iptables -t nat -X ISTIO_INBOUND",
            "DeleteChainIfExists iptables -t nat -X ISTIO_IN_REDIRECT",
            "DeleteChainIfExists iptables -t nat -X ISTIO_OUTPUT",
            "DeleteChainIfExists iptables -t nat -X ISTIO_REDIRECT",
        ]
    );
}

fn args(argv: &[&str]) -> CaptureArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        capture: CaptureArgs,
    }
    let mut full = vec!["weft-proxy-init"];
    full.extend(argv);
    Cli::try_parse_from(full).unwrap().capture
}

#[test]
fn injector_flags_parse_into_config() {
    let a = args(&[
        "--proxy-uid",
        "1337",
        "--proxy-gid",
        "1338",
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
        "198.18.0.0/24, fd00::/8",
        "--exclude-outbound-ports",
        "3306",
    ]);
    assert!(!a.cleanup);
    let c = CaptureConfig::try_from(&a).unwrap();
    assert_eq!(c.proxy_gid, 1338);
    assert_eq!(c.include_inbound_ports, InboundPorts::All);
    assert_eq!(c.exclude_inbound_ports, vec![15020, 15021, 15090]);
    assert_eq!(c.include_outbound_ip_ranges, OutboundRanges::All);
    assert_eq!(
        c.exclude_outbound_ip_ranges,
        cidrs(&["198.18.0.0/24", "fd00::/8"])
    );
    assert_eq!(c.exclude_outbound_ports, vec![3306]);
    assert!(args(&["--cleanup"]).cleanup);
}

#[test]
fn invalid_flags_are_rejected_with_the_flag_name() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--include-inbound-ports", "80,http"],
            "--include-inbound-ports: `http`",
        ),
        (
            &["--exclude-inbound-ports", "0"],
            "--exclude-inbound-ports: `0`",
        ),
        (
            &["--exclude-outbound-ports", "70000"],
            "--exclude-outbound-ports: `70000`",
        ),
        (
            &["--include-outbound-ip-ranges", "10.0.0.0/40"],
            "--include-outbound-ip-ranges: `10.0.0.0/40`",
        ),
        (
            &["--exclude-outbound-ip-ranges", "*"],
            "--exclude-outbound-ip-ranges: `*`",
        ),
    ];
    for (argv, want) in cases {
        let err = CaptureConfig::try_from(&args(argv))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(want), "{argv:?}: {err}");
    }
}
