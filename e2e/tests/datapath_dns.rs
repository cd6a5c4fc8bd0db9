//! Data path: ServiceEntry `resolution: DNS` and `DNS_ROUND_ROBIN`. The client's sidecar
//! resolves the entry's host with the namespace's resolver (a lab DNS server the test
//! controls, named in `/etc/netns/<ns>/resolv.conf`), balances over every address (`DNS`,
//! Envoy `STRICT_DNS`) or uses the first one (`DNS_ROUND_ROBIN`, Envoy `LOGICAL_DNS`),
//! follows record changes after the TTL, and keeps the last good addresses while the name
//! does not resolve.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{NS, count, eventually, mesh_or_skip, outside_server};
use weft_lab::dns::DnsServer;

/// A MESH_EXTERNAL ServiceEntry for `host` on HTTP 9080 with `resolution`, no endpoints and
/// no addresses: the host itself is the name the proxy resolves.
fn dns_entry(name: &str, host: &str, resolution: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: {NS}}}\nspec:\n  hosts: [{host}]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: {resolution}\n"
    )
}

#[test]
fn dns_service_entries_route_to_resolved_addresses_and_follow_record_changes() {
    let mut mesh = mesh_or_skip!();
    let dns_host = mesh.add_plain_host("dns").unwrap();
    let dns = DnsServer::start(&dns_host).unwrap();
    let one = outside_server(&mut mesh, "one", Some("v1"));
    let two = outside_server(&mut mesh, "two", Some("v2"));
    let (strict, logical) = ("api.external.test", "rr.external.test");
    dns.set(strict, &[one.ip], 1);
    dns.set(logical, &[one.ip, two.ip], 1);
    mesh.write_config("se-strict.yaml", &dns_entry("strict", strict, "DNS"))
        .unwrap();
    mesh.write_config(
        "se-logical.yaml",
        &dns_entry("logical", logical, "DNS_ROUND_ROBIN"),
    )
    .unwrap();
    mesh.set_nameserver(Some(dns_host.ip));
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    // The application's own resolution does not matter: the sidecar routes by Host on the
    // port and connects to the addresses it resolved itself.
    let elsewhere = mesh.lab().vip(9);
    let get = |host: &str| {
        mesh.load(
            "client",
            &format!("http://{host}:9080/dns/1"),
            &[(host, elsewhere)],
            &[],
            10,
            1,
        )
        .unwrap()
    };

    let (first, _) = eventually(
        Duration::from_secs(15),
        || get(strict),
        |r| count(r, "versions", "v1") == 10,
    );
    assert_eq!(
        count(&first, "versions", "v1"),
        10,
        "DNS: the sidecar connects to the address the record names (one): {first}\n{}",
        mesh.log("client-proxy")
    );
    assert!(dns.queries() > 0, "the sidecar asked the lab DNS server");

    // DNS_ROUND_ROBIN (LOGICAL_DNS): only the first address of the answer is used.
    let (logical_report, _) = eventually(
        Duration::from_secs(10),
        || get(logical),
        |r| count(r, "status", "200") == 10,
    );
    assert_eq!(
        count(&logical_report, "versions", "v1"),
        10,
        "DNS_ROUND_ROBIN uses the first address of the answer: {logical_report}"
    );

    // The record moves: after re-resolution (TTL 1 s) traffic goes to two.
    dns.set(strict, &[two.ip], 1);
    let (moved, took) = eventually(
        Duration::from_secs(15),
        || get(strict),
        |r| count(r, "versions", "v2") == 10,
    );
    assert_eq!(
        count(&moved, "versions", "v2"),
        10,
        "after the record changed, traffic follows it (waited {took:?}): {moved}"
    );

    // Both addresses: STRICT_DNS balances over every address of the answer.
    dns.set(strict, &[one.ip, two.ip], 1);
    let (both, _) = eventually(
        Duration::from_secs(15),
        || get(strict),
        |r| count(r, "versions", "v1") > 0 && count(r, "versions", "v2") > 0,
    );
    assert!(
        count(&both, "versions", "v1") > 0 && count(&both, "versions", "v2") > 0,
        "DNS balances over all addresses: {both}"
    );

    // The name stops resolving (NXDOMAIN): the last good addresses stay in use.
    dns.set(strict, &[], 1);
    let queries = dns.queries();
    assert!(
        weft_lab::mesh::wait_until(Duration::from_secs(10), || dns.queries() > queries + 1),
        "the sidecar keeps re-resolving"
    );
    let kept = get(strict);
    assert_eq!(
        count(&kept, "status", "200"),
        10,
        "failed resolutions keep the last good addresses: {kept}"
    );
}
