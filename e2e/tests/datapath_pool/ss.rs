//! Reading TCP keepalive timers with `ss -o` in a workload's namespace, for
//! `datapath_pool.rs`.

use std::net::Ipv4Addr;

use weft_lab::mesh::LocalMesh;

/// The keepalive timers of `workload`'s established TCP sockets to any of `peers`: (local
/// port, remaining ms, probes sent), from `ss -o` (`timer:(keepalive,1.2sec,0)`). Sockets
/// without a keepalive timer are listed with `None`.
pub fn keepalive_timers(
    mesh: &LocalMesh,
    workload: &str,
    peers: &[Ipv4Addr],
) -> Vec<(u16, Option<(u64, u32)>)> {
    let host = &mesh.workload(workload).unwrap().host;
    let mut filter = vec!["-Htno", "state", "established"];
    let peers: Vec<String> = peers.iter().map(|p| p.to_string()).collect();
    for (index, peer) in peers.iter().enumerate() {
        if index > 0 {
            filter.push("or");
        }
        filter.extend(["dst", peer.as_str()]);
    }
    let out = mesh.lab().exec(host, "ss", &filter).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local = fields.get(2)?;
            let port = local.rsplit(':').next()?.parse().ok()?;
            let timer = line
                .split("timer:(keepalive,")
                .nth(1)
                .and_then(|rest| rest.split(')').next())
                .and_then(|inner| {
                    let (time, probes) = inner.split_once(',')?;
                    Some((ss_millis(time)?, probes.parse().ok()?))
                });
            Some((port, timer))
        })
        .collect()
}

/// An `ss` timer value in ms, as iproute2's `print_ms_timer` writes it: `[<m>min][<s>sec |
/// <s>.][<ms>ms]`, e.g. `880ms`, `1.976ms` (1 s 976 ms), `2sec`, `1min30sec`.
fn ss_millis(text: &str) -> Option<u64> {
    let (minutes, rest) = match text.split_once("min") {
        Some((minutes, rest)) => (minutes.parse::<u64>().ok()?, rest),
        None => (0, text),
    };
    let (seconds, rest) = if let Some((seconds, rest)) = rest.split_once("sec") {
        (seconds.parse::<u64>().ok()?, rest)
    } else if let Some((seconds, rest)) = rest.split_once('.') {
        (seconds.parse::<u64>().ok()?, rest)
    } else {
        (0, rest)
    };
    let millis = match rest.strip_suffix("ms") {
        Some(millis) => millis.parse::<u64>().ok()?,
        None if rest.is_empty() => 0,
        None => return None,
    };
    Some(minutes * 60_000 + seconds * 1000 + millis)
}

#[test]
fn ss_timer_values_parse_as_iproute2_prints_them() {
    for (text, ms) in [
        ("880ms", 880),
        ("1.976ms", 1976),
        ("2sec", 2000),
        ("1min30sec", 90_000),
        ("2min", 120_000),
    ] {
        assert_eq!(ss_millis(text), Some(ms), "{text}");
    }
    assert_eq!(ss_millis("soon"), None);
}
