//! Data path: DestinationRule `connectionPool` and `outlierDetection` fields that
//! `datapath_resilience.rs` does not cover, each observed where Istio documents its effect.
//!
//! - `tcp.connectTimeout`: a request to an endpoint whose SYNs are dropped fails with 503 `UF`
//!   after about the configured time (not Istio's default 10 s).
//! - `tcp.tcpKeepalive`: upstream sockets carry a keepalive timer of `time`; once the peer
//!   stops answering, `probes` probes `interval` apart are sent and the connection is dropped.
//! - `http.h2UpgradePolicy`: `UPGRADE` sends HTTP/1.1 requests upstream as HTTP/2 (the server
//!   sees the HTTP/2 preface), `DO_NOT_UPGRADE` keeps HTTP/1.1.
//! - `loadBalancer.simple`: `LEAST_REQUEST` (and its alias `LEAST_CONN`) sends few requests
//!   to an endpoint that is slow to answer; `ROUND_ROBIN` sends it its equal share, `RANDOM`
//!   about that share with a random spread; `PASSTHROUGH` forwards to the address the client
//!   dialled instead of the registered endpoints.
//! - `http.http2MaxRequests`: concurrent requests over the limit get 503 `UO` at once.
//! - `tcp.maxConnections` on a TCP port: connections over the limit are closed at once and
//!   reported with flag `UO`.
//! - `http.maxRetries`: retries beyond the number in flight are not made (the servers see
//!   fewer attempts) and the request ends with the upstream's answer and flag `UO`, as Envoy's
//!   retry overflow.
//! - `outlierDetection.maxEjectionPercent`: when every endpoint fails, no more than that share
//!   is ejected, and the rest keep serving.
//! - `outlierDetection.minHealthPercent`: below it, ejections are ignored (Envoy's panic
//!   threshold).
//! - `outlierDetection.baseEjectionTime` and `interval`: each ejection of an endpoint lasts
//!   longer (base × a multiplier raised by each ejection), ends on an interval sweep, and each
//!   interval the endpoint spends in rotation lowers the multiplier again.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use weft_e2e::{
    NS, apply, client, count, eventually, host, mesh_or_skip, reviews_mesh, reviews_requests,
    subsets_with_policy,
};
use weft_lab::mesh::LocalMesh;

#[path = "datapath_pool/http_server.rs"]
mod http_server;
#[path = "datapath_pool/ss.rs"]
mod ss;

use http_server::{Seen, serve_any_http};
use ss::keepalive_timers;

/// The DestinationRule of `reviews` (subsets v1 and v2) with `traffic_policy` (YAML mapping
/// lines indented by 4).
fn reviews_rule(traffic_policy: &str) -> String {
    subsets_with_policy("reviews", traffic_policy)
}

/// The summed `istio_requests_total` of `workload`'s proxy with `code` and, when given,
/// `flags`.
fn requests_with(mesh: &LocalMesh, workload: &str, code: &str, flags: Option<&str>) -> f64 {
    let metrics = mesh.proxy_metrics(workload).unwrap();
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("istio_requests_total")
                && l.contains(&format!("response_code=\"{code}\""))
                && flags.is_none_or(|flags| l.contains(&format!("response_flags=\"{flags}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A MESH_EXTERNAL ServiceEntry `name` at `vip` on HTTP 9080 with one static endpoint
/// `endpoint:port`.
fn external_entry(name: &str, vip: Ipv4Addr, endpoint: Ipv4Addr, port: u16) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  hosts: [{name}]\n  addresses: [{vip}]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{{address: {endpoint}, ports: {{http: {port}}}}}]\n"
    )
}

/// A DestinationRule for `host` with `traffic_policy` (a YAML flow mapping).
fn rule(name: &str, host: &str, traffic_policy: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  host: {host}\n  trafficPolicy: {traffic_policy}\n"
    )
}

#[test]
fn connect_timeout_fails_with_503_uf_after_the_configured_time() {
    let mut mesh = mesh_or_skip!();
    // A host that drops every SYN to 9080: connecting neither succeeds nor is refused.
    let dark = mesh.add_plain_host("dark").unwrap();
    let out = mesh
        .lab()
        .exec(
            &dark,
            "iptables",
            &["-I", "INPUT", "-p", "tcp", "--dport", "9080", "-j", "DROP"],
        )
        .unwrap();
    assert!(out.status.success(), "iptables: {out:?}");
    mesh.add_workload(client("client", "client")).unwrap();
    let vip = mesh.lab().vip(5);
    let name = "dark.example.com";
    mesh.write_config("se-dark.yaml", &external_entry(name, vip, dark.ip, 9080))
        .unwrap();
    // One try per request, so that the latency is one connect timeout.
    mesh.write_config(
        "vs-dark.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: dark, namespace: {NS}}}\nspec:\n  hosts: [{name}]\n  http:\n  - route:\n    - destination: {{host: {name}}}\n    retries: {{attempts: 0}}\n"
        ),
    )
    .unwrap();
    let url = format!("http://{name}:9080/");
    let mut measured = Vec::new();
    for (timeout_ms, requests) in [(600u64, 3u64), (1500, 2)] {
        apply(
            &mesh,
            "dr-dark.yaml",
            &rule(
                "dark",
                name,
                &format!("{{connectionPool: {{tcp: {{connectTimeout: {timeout_ms}ms}}}}}}"),
            ),
        );
        let before = requests_with(&mesh, "client", "503", Some("UF"));
        let report = mesh
            .load("client", &url, &[(name, vip)], &[], requests as usize, 1)
            .unwrap();
        assert_eq!(
            count(&report, "status", "503"),
            requests,
            "a connection that never completes must end in 503: {report}"
        );
        let p50 = report["p50_ms"].as_f64().unwrap();
        assert!(
            (timeout_ms as f64 * 0.9..timeout_ms as f64 + 900.0).contains(&p50),
            "connectTimeout {timeout_ms}ms must bound the attempt (p50 {p50} ms): {report}"
        );
        let uf = requests_with(&mesh, "client", "503", Some("UF")) - before;
        assert_eq!(
            uf, requests as f64,
            "each timed-out connection is reported as 503 UF"
        );
        measured.push((timeout_ms, p50));
    }
    println!("connectTimeout (configured ms, p50 ms): {measured:?}");
}

#[test]
fn tcp_keepalive_probes_idle_upstream_connections_and_drops_dead_ones() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let servers = [
        mesh.workload("reviews1").unwrap().host.clone(),
        mesh.workload("reviews2").unwrap().host.clone(),
    ];
    let peers = [servers[0].ip, servers[1].ip];
    // Without tcpKeepalive the pooled upstream connections carry no keepalive timer.
    let plain = reviews_requests(&mesh, vip, "/reviews/0", &[], 2, 1);
    assert_eq!(count(&plain, "status", "200"), 2, "{plain}");
    let without = keepalive_timers(&mesh, "client", &peers);
    assert!(
        !without.is_empty() && without.iter().all(|(_, timer)| timer.is_none()),
        "no keepalive without tcpKeepalive: {without:?}"
    );

    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    connectionPool:\n      tcp:\n        tcpKeepalive: {time: 2s, interval: 1s, probes: 2}\n",
        ),
    );
    let report = reviews_requests(&mesh, vip, "/reviews/0", &[], 2, 1);
    assert_eq!(count(&report, "status", "200"), 2, "{report}");
    let with: Vec<(u16, u64, u32)> = keepalive_timers(&mesh, "client", &peers)
        .into_iter()
        .filter_map(|(port, timer)| timer.map(|(ms, probes)| (port, ms, probes)))
        .collect();
    assert!(
        !with.is_empty(),
        "pooled upstream connections must carry a keepalive timer: {:?}",
        keepalive_timers(&mesh, "client", &peers)
    );
    assert!(
        with.iter()
            .all(|(_, ms, probes)| *ms <= 2_000 && *probes == 0),
        "the first probe is due within tcpKeepalive.time (2 s): {with:?}"
    );
    let watched: BTreeSet<u16> = with.iter().map(|(port, ..)| *port).collect();

    // The servers go silent (nothing from the client reaches them, nothing of theirs leaves):
    // probes go unanswered and the kernel drops the connections after time + probes ×
    // interval (2 s + 2 × 1 s) of silence.
    let client_ip = mesh.workload("client").unwrap().host.ip.to_string();
    for server in &servers {
        for rule in [["INPUT", "-s"], ["OUTPUT", "-d"]] {
            let out = mesh
                .lab()
                .exec(
                    server,
                    "iptables",
                    &["-I", rule[0], rule[1], &client_ip, "-j", "DROP"],
                )
                .unwrap();
            assert!(out.status.success(), "iptables: {out:?}");
        }
    }
    let blocked = Instant::now();
    let mut most_probes = 0;
    let mut samples = Vec::new();
    let (open, waited) = eventually(
        Duration::from_secs(15),
        || {
            let timers = keepalive_timers(&mesh, "client", &peers);
            samples.push(format!("{:?} {timers:?}", blocked.elapsed()));
            for (_, timer) in &timers {
                if let Some((_, probes)) = timer {
                    most_probes = most_probes.max(*probes);
                }
            }
            timers
                .iter()
                .filter(|(port, _)| watched.contains(port))
                .count()
        },
        |open| *open == 0,
    );
    assert_eq!(
        open, 0,
        "connections whose peer is gone must be dropped by keepalive"
    );
    assert!(
        (Duration::from_millis(2_500)..=Duration::from_secs(6)).contains(&waited),
        "dropped after {waited:?}; expected about 2 s + 2 × 1 s of silence (the OS defaults, \
         9 probes 75 s apart, would keep it far longer); timers seen: {samples:#?}"
    );
    assert!(
        (1..=2).contains(&most_probes),
        "probes are counted up to tcpKeepalive.probes (2); saw at most {most_probes}"
    );
    println!("tcpKeepalive: dead connections dropped after {waited:?}, {most_probes} probes seen");
}

#[test]
fn h2_upgrade_policy_upgrade_sends_http2_and_do_not_upgrade_keeps_http1() {
    let mut mesh = mesh_or_skip!();
    mesh.add_workload(client("client", "client")).unwrap();
    // The test process's own address on the lab bridge (`Lab::attach_root`).
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    let (port, seen) = serve_any_http(root_ip, Duration::ZERO);
    let vip = mesh.lab().vip(5);
    let name = "plain.example.com";
    mesh.write_config("se-plain.yaml", &external_entry(name, vip, root_ip, port))
        .unwrap();
    let url = format!("http://{name}:9080/");
    let mut observed = Vec::new();
    for (policy, expected) in [
        ("UPGRADE", "h2"),
        ("DO_NOT_UPGRADE", "http/1.1"),
        ("DEFAULT", "http/1.1"),
        ("UPGRADE", "h2"),
    ] {
        apply(
            &mesh,
            "dr-plain.yaml",
            &rule(
                "plain",
                name,
                &format!("{{connectionPool: {{http: {{h2UpgradePolicy: {policy}}}}}}}"),
            ),
        );
        seen.lock().unwrap().clear();
        let report = mesh
            .load("client", &url, &[(name, vip)], &[], 3, 1)
            .unwrap();
        assert_eq!(count(&report, "status", "200"), 3, "{policy}: {report}");
        let protocols = seen.lock().unwrap().clone();
        assert!(
            protocols.len() == 3 && protocols.iter().all(|p| *p == expected),
            "h2UpgradePolicy {policy}: the server must see {expected}, saw {protocols:?}"
        );
        observed.push((policy, protocols));
    }
    println!("h2UpgradePolicy: {observed:?}");
}

#[test]
fn least_request_avoids_the_busy_endpoint_and_round_robin_and_random_do_not() {
    let mut mesh = mesh_or_skip!();
    mesh.add_workload(client("client", "client")).unwrap();
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    // Eight endpoints outside the mesh: one answers after 400 ms, seven at once.
    let servers: Vec<(u16, Seen)> = [400, 0, 0, 0, 0, 0, 0, 0]
        .into_iter()
        .map(|ms| serve_any_http(root_ip, Duration::from_millis(ms)))
        .collect();
    let endpoints: String = servers
        .iter()
        .map(|(port, _)| format!("  - {{address: {root_ip}, ports: {{http: {port}}}}}\n"))
        .collect();
    let vip = mesh.lab().vip(5);
    let name = "pool.example.com";
    apply(
        &mesh,
        "se-pool.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: pool, namespace: {NS}}}\nspec:\n  hosts: [{name}]\n  addresses: [{vip}]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints:\n{endpoints}"
        ),
    );
    let url = format!("http://{name}:9080/");
    // Warm up: the client's sidecar opens its pooled connections to every endpoint, so the
    // measured loads below compare endpoints, not connection set-up.
    let warm = mesh
        .load("client", &url, &[(name, vip)], &[], 32, 4)
        .unwrap();
    assert_eq!(count(&warm, "status", "200"), 32, "{warm}");
    let mut observed = Vec::new();
    // Round robin gives the slow endpoint its eighth; the power of two choices by requests
    // in flight gives it little more than the 1/64 chance of drawing it twice.
    // (LEAST_CONN, Istio's alias, and the default give the same config as LEAST_REQUEST:
    // round robin sits between them, as each step must change the config.)
    for (policy, to_slow_range) in [
        ("ROUND_ROBIN", 9..=11),
        ("LEAST_CONN", 0..=7),
        ("ROUND_ROBIN", 9..=11),
        ("LEAST_REQUEST", 0..=7),
        // Independent draws: the slow endpoint is not avoided (its eighth, 10 ± 3).
        ("RANDOM", 4..=20),
    ] {
        apply(
            &mesh,
            "dr-pool.yaml",
            &rule(
                "pool",
                name,
                &format!("{{loadBalancer: {{simple: {policy}}}}}"),
            ),
        );
        for (_, seen) in &servers {
            seen.lock().unwrap().clear();
        }
        let report = mesh
            .load("client", &url, &[(name, vip)], &[], 80, 4)
            .unwrap();
        assert_eq!(count(&report, "status", "200"), 80, "{policy}: {report}");
        let answered: Vec<usize> = servers
            .iter()
            .map(|(_, seen)| seen.lock().unwrap().len())
            .collect();
        assert_eq!(
            answered.iter().sum::<usize>(),
            80,
            "{policy}: every request reached a server: {answered:?}"
        );
        assert!(
            to_slow_range.contains(&answered[0]),
            "{policy}: the slow endpoint answered {} of 80, expected {to_slow_range:?} \
             (per endpoint, slow first: {answered:?})",
            answered[0]
        );
        if policy == "RANDOM" {
            assert!(
                answered.iter().any(|n| *n != 10),
                "RANDOM draws independently; an exact round-robin split is not expected: \
                 {answered:?}"
            );
        }
        observed.push((policy, answered));
    }
    println!("requests per endpoint (slow first) of 80: {observed:?}");
}

#[test]
fn passthrough_forwards_to_the_original_destination_instead_of_the_endpoints() {
    let mut mesh = mesh_or_skip!();
    mesh.add_workload(client("client", "client")).unwrap();
    let root_ip = Ipv4Addr::new(198, 18, mesh.lab().subnet(), 254);
    // The service's address is a real server (A); its registered endpoint is another (B).
    let (port_a, a) = serve_any_http(root_ip, Duration::ZERO);
    let (port_b, b) = serve_any_http(root_ip, Duration::ZERO);
    let name = "origin.example.com";
    apply(
        &mesh,
        "se-origin.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: origin, namespace: {NS}}}\nspec:\n  hosts: [{name}]\n  addresses: [{root_ip}]\n  ports: [{{number: {port_a}, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{{address: {root_ip}, ports: {{http: {port_b}}}}}]\n"
        ),
    );
    let url = format!("http://{name}:{port_a}/");
    let mut observed = Vec::new();
    for lb in ["{simple: ROUND_ROBIN}", "{simple: PASSTHROUGH}"] {
        apply(
            &mesh,
            "dr-origin.yaml",
            &rule("origin", name, &format!("{{loadBalancer: {lb}}}")),
        );
        a.lock().unwrap().clear();
        b.lock().unwrap().clear();
        let report = mesh
            .load("client", &url, &[(name, root_ip)], &[], 4, 1)
            .unwrap();
        assert_eq!(count(&report, "status", "200"), 4, "{lb}: {report}");
        let answered = (a.lock().unwrap().len(), b.lock().unwrap().len());
        observed.push((lb, answered));
    }
    assert_eq!(
        observed[0].1,
        (0, 4),
        "balanced, requests go to the registered endpoint (B): {observed:?}"
    );
    assert_eq!(
        observed[1].1,
        (4, 0),
        "PASSTHROUGH forwards to the address the client dialled (A): {observed:?}"
    );
}

#[test]
fn http2_max_requests_answers_overflow_with_503_uo() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    connectionPool:\n      http: {http2MaxRequests: 2, h2UpgradePolicy: UPGRADE}\n",
        ),
    );
    let sequential = reviews_requests(&mesh, vip, "/reviews/0", &[], 10, 1);
    assert_eq!(count(&sequential, "status", "200"), 10, "{sequential}");
    let before = requests_with(&mesh, "client", "503", Some("UO"));
    // Twelve at once over HTTP/2, each held 500 ms by the app: two are in flight, the rest
    // overflow at once.
    let slow = [("x-weft-delay-ms", "500")];
    let burst = reviews_requests(&mesh, vip, "/reviews/0", &slow, 12, 12);
    let (ok, rejected) = (
        count(&burst, "status", "200"),
        count(&burst, "status", "503"),
    );
    assert_eq!(ok + rejected, 12, "only 200 and 503 expected: {burst}");
    assert!(
        (1..=3).contains(&ok),
        "about http2MaxRequests (2) requests fit: {burst}"
    );
    assert!(
        burst["p50_ms"].as_f64().unwrap() < 400.0,
        "overflow must be refused at once, not queued: {burst}"
    );
    let uo = requests_with(&mesh, "client", "503", Some("UO")) - before;
    assert_eq!(
        uo, rejected as f64,
        "every overflow is reported as 503 UO by the client's sidecar"
    );
    println!("http2MaxRequests 2: {ok} admitted, {rejected} refused with 503 UO of 12");
}

/// The summed `istio_tcp_connections_closed_total` of `workload`'s proxy with `flags`.
fn tcp_closed_with(mesh: &LocalMesh, workload: &str, flags: &str) -> f64 {
    mesh.proxy_metrics(workload)
        .unwrap()
        .lines()
        .filter(|l| {
            l.starts_with("istio_tcp_connections_closed")
                && l.contains(&format!("response_flags=\"{flags}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn tcp_max_connections_closes_connections_over_the_limit_with_uo() {
    let mut mesh = mesh_or_skip!();
    let vip = mesh.lab().vip(5);
    let db = host("db");
    mesh.write_config(
        "svc-db.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: db, namespace: {NS}}}\nspec:\n  hosts: [{db}]\n  addresses: [{vip}]\n  ports: [{{number: 9080, name: tcp, protocol: TCP}}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  workloadSelector: {{labels: {{app: db}}}}\n"
        ),
    )
    .unwrap();
    mesh.add_workload(weft_lab::mesh::WorkloadSpec::app(
        "db1",
        NS,
        "db",
        "v1",
        &[],
    ))
    .unwrap();
    mesh.add_workload(client("client", "client")).unwrap();
    let url = format!("http://{db}:9080/db/0");
    // The sample app speaks HTTP; the sidecars see one TCP connection per request.
    let get = |headers: &[(&str, &str)], requests: usize, concurrency: usize| {
        mesh.load(
            "client",
            &url,
            &[(&db, vip)],
            headers,
            requests,
            concurrency,
        )
        .unwrap()
    };
    let (open, _) = eventually(
        Duration::from_secs(10),
        || get(&[], 4, 1),
        |r| count(r, "status", "200") == 4,
    );
    assert_eq!(
        count(&open, "status", "200"),
        4,
        "TCP before the rule: {open}"
    );
    apply(
        &mesh,
        "dr-db.yaml",
        &rule("db", &db, "{connectionPool: {tcp: {maxConnections: 1}}}"),
    );
    let before = tcp_closed_with(&mesh, "client", "UO");
    // Eight connections at once, each held 500 ms by the app: one is proxied, the sidecar
    // closes the others at once.
    let burst = get(&[("x-weft-delay-ms", "500")], 8, 8);
    let (ok, closed) = (count(&burst, "status", "200"), count(&burst, "status", "0"));
    assert_eq!(
        ok + closed,
        8,
        "only answers and closed connections expected: {burst}"
    );
    assert!(
        (1..=2).contains(&ok) && closed >= 6,
        "maxConnections 1 admits one TCP connection at a time: {burst}"
    );
    let uo = tcp_closed_with(&mesh, "client", "UO") - before;
    assert_eq!(
        uo, closed as f64,
        "each refused connection is reported closed with flag UO"
    );
    // Once the burst's connection has closed, a new one is admitted again (a connection
    // counts until both sides have closed it).
    let (after, _) = eventually(
        Duration::from_secs(5),
        || get(&[], 1, 1),
        |r| count(r, "status", "200") == 1,
    );
    assert_eq!(
        count(&after, "status", "200"),
        1,
        "the limit frees up: {after}"
    );
    println!("tcp maxConnections 1: {ok} proxied, {closed} closed with UO of 8");
}

/// The requests `reviews1` and `reviews2` answered with 503 so far (their sidecars' inbound
/// metrics): the attempts that reached a server.
fn server_attempts(mesh: &LocalMesh) -> f64 {
    requests_with(mesh, "reviews1", "503", None) + requests_with(mesh, "reviews2", "503", None)
}

#[test]
fn max_retries_caps_concurrent_retries_and_overflow_is_flagged_uo() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let reviews = host("reviews");
    apply(
        &mesh,
        "vs-reviews.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{reviews}]\n  http:\n  - route:\n    - destination: {{host: {reviews}}}\n    retries: {{attempts: 3, retryOn: 5xx}}\n"
        ),
    );
    // Every attempt takes 300 ms and answers 503, so six concurrent requests fail together
    // and all want to retry at once.
    let failing = [("x-weft-status", "503"), ("x-weft-delay-ms", "300")];
    let before = server_attempts(&mesh);
    let unlimited = reviews_requests(&mesh, vip, "/reviews/0", &failing, 6, 6);
    assert_eq!(count(&unlimited, "status", "503"), 6, "{unlimited}");
    let all = server_attempts(&mesh) - before;
    assert_eq!(
        all, 24.0,
        "without maxRetries each of 6 requests is tried 1 + 3 times"
    );

    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule("    connectionPool:\n      http: {maxRetries: 1}\n"),
    );
    let (before, before_uo) = (
        server_attempts(&mesh),
        requests_with(&mesh, "client", "503", Some("UO")),
    );
    let limited = reviews_requests(&mesh, vip, "/reviews/0", &failing, 6, 6);
    assert_eq!(count(&limited, "status", "503"), 6, "{limited}");
    let capped = server_attempts(&mesh) - before;
    // The six fail together: one takes the retry slot and, releasing it before each next
    // retry (Envoy's `resetRetry`), makes all three of its retries; the other five are not
    // retried. 6 + 3 attempts.
    assert!(
        (9.0..=12.0).contains(&capped),
        "maxRetries 1 must leave most retries unmade, yet let the request holding the slot \
         retry again: {capped} attempts for 6 requests"
    );
    let overflowed = requests_with(&mesh, "client", "503", Some("UO")) - before_uo;
    assert!(
        overflowed >= 3.0,
        "requests whose retry overflowed end with their 503 and flag UO (Envoy's retry \
         overflow); {overflowed} of 6:\n{}",
        mesh.proxy_metrics("client").unwrap()
    );
    println!(
        "maxRetries: {all} attempts without the limit, {capped} with maxRetries 1; \
         {overflowed} requests flagged UO"
    );
}

/// Sends `requests` GETs from `client` to `reviews`, one at a time, with `headers`.
fn sequential(
    mesh: &LocalMesh,
    vip: Ipv4Addr,
    headers: &[(&str, &str)],
    requests: usize,
) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, requests, 1)
}

#[test]
fn max_ejection_percent_keeps_an_endpoint_in_rotation_when_all_fail() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 50\n",
        ),
    );
    // Both endpoints answer 500. The first to reach two in a row is ejected; the other
    // reaches it too but may not be ejected (one of two is already 50 %), so it alone takes
    // the traffic. (At 100 % both would be ejected and the balancer would ignore ejections.)
    let failing = [("x-weft-status", "500")];
    let report = sequential(&mesh, vip, &failing, 20);
    assert_eq!(count(&report, "status", "500"), 20, "{report}");
    let (v1, v2) = (
        count(&report, "versions", "v1"),
        count(&report, "versions", "v2"),
    );
    assert!(
        v1.min(v2) <= 3 && v1.max(v2) >= 17,
        "maxEjectionPercent 50 ejects one of two endpoints, the other serves the rest: {report}"
    );
    let after = sequential(&mesh, vip, &failing, 10);
    assert!(
        count(&after, "versions", "v1") == 10 || count(&after, "versions", "v2") == 10,
        "the endpoint kept by maxEjectionPercent serves everything: {after}"
    );
    println!("maxEjectionPercent 50: v1 {v1}, v2 {v2} of 20 with both failing");
}

#[test]
fn below_min_health_percent_ejections_are_ignored() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n      minHealthPercent: 60\n",
        ),
    );
    // v2 answers 500 and is ejected after two; then only 50 % of the endpoints are healthy,
    // below minHealthPercent 60, so the balancer ignores the ejection (Envoy's panic
    // threshold) and v2 keeps getting its share. (With minHealthPercent 0 it would get none:
    // `datapath_resilience.rs::outlier_detection_ejects_the_failing_endpoint_and_returns_it`.)
    let failing = [("x-weft-fail-version", "v2")];
    let report = sequential(&mesh, vip, &failing, 20);
    let errors = count(&report, "status", "500");
    assert!(
        (8..=12).contains(&errors),
        "below minHealthPercent the ejected endpoint keeps its round-robin share: {report}"
    );
    assert_eq!(count(&report, "status", "200"), 20 - errors, "{report}");
    println!("minHealthPercent 60: {errors} of 20 still reached the failing endpoint");
}

/// Polls `reviews` (4 requests at a time, without failure headers) until v2 answers again;
/// returns how long that took.
fn until_v2_returns(mesh: &LocalMesh, vip: Ipv4Addr) -> Duration {
    let (report, waited) = eventually(
        Duration::from_secs(15),
        || sequential(mesh, vip, &[], 4),
        |r| count(r, "versions", "v2") > 0,
    );
    assert!(
        count(&report, "versions", "v2") > 0,
        "v2 did not return within 15 s: {report}"
    );
    waited
}

/// Sends requests that make v2 fail until it is ejected (v1 answers them all); panics when it
/// is not ejected within 20 requests.
fn eject_v2(mesh: &LocalMesh, vip: Ipv4Addr) {
    let failing = [("x-weft-fail-version", "v2")];
    let report = sequential(mesh, vip, &failing, 8);
    let after = sequential(mesh, vip, &failing, 4);
    assert_eq!(
        count(&after, "versions", "v1"),
        4,
        "v2 must be ejected after consecutive5xxErrors (2): {report} then {after}"
    );
}

#[test]
fn base_ejection_time_grows_with_each_ejection_and_shrinks_with_each_interval_in_rotation() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "dr-reviews.yaml",
        &reviews_rule(
            "    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 2s\n      maxEjectionPercent: 100\n",
        ),
    );
    // First ejection: baseEjectionTime × 1, ended by the next 1 s sweep.
    eject_v2(&mesh, vip);
    let first = until_v2_returns(&mesh, vip);
    // Ejected again before a sweep found it in rotation: baseEjectionTime × 2.
    eject_v2(&mesh, vip);
    let second = until_v2_returns(&mesh, vip);
    // Three sweeps in rotation take the multiplier back down: baseEjectionTime × 1.
    std::thread::sleep(Duration::from_millis(3_500));
    eject_v2(&mesh, vip);
    let third = until_v2_returns(&mesh, vip);
    let about_once = Duration::from_millis(1_000)..=Duration::from_millis(3_500);
    assert!(
        about_once.contains(&first),
        "the first ejection lasts about baseEjectionTime (2 s, up to the next 1 s sweep), \
         took {first:?}"
    );
    assert!(
        (Duration::from_millis(3_500)..=Duration::from_millis(6_000)).contains(&second),
        "the second ejection lasts about 2 × baseEjectionTime (4 s), took {second:?} (first \
         {first:?})"
    );
    assert!(
        about_once.contains(&third),
        "after intervals in rotation the ejection is baseEjectionTime again, took {third:?} \
         (first {first:?}, second {second:?})"
    );
    println!("baseEjectionTime 2s, interval 1s: back after {first:?}, {second:?}, then {third:?}");
}
