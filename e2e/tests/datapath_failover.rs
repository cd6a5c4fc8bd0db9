//! Data path: locality failover (DestinationRule
//! `trafficPolicy.loadBalancer.localityLbSetting`), as Istio's "Locality failover" task
//! describes it. Outlier detection is on (failover needs it). Most scenarios place the client
//! in `r1/z1`, reviews v1 in `r1/z1`, v2 in `r2/z1` and v3 in `r3/z1` (WorkloadEntry
//! `locality`):
//!
//! - all traffic stays in the client's region; when its endpoint is ejected, traffic fails
//!   over to the other regions (both at the same priority without a rule);
//! - `failover: [{from: r1, to: r3}]` makes r3 the next priority and r2 the last;
//! - `failoverPriority` ranks endpoints by labels instead of locality: the zone label compared
//!   with the client's own, or `version=v2`, a label with an explicit value;
//! - `enabled: false` turns locality load balancing off: every endpoint shares the traffic.
//!
//! One scenario uses sub-zones (client and v1 in `r1/z1/s1`, v2 in `r1/z1/s2`, v3 in
//! `r1/z2/s1`): failover goes to the other sub-zone of the client's zone, then to the other
//! zone.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use weft_e2e::{
    NS, apply, apply_watching, count, mesh_or_skip, reviews_mesh, reviews_requests, service,
    subsets_with_policy,
};
use weft_lab::mesh::LocalMesh;

/// Outlier detection ejecting an endpoint after 2 consecutive 5xx for 30 s (YAML mapping lines
/// indented by 4, inside `trafficPolicy`).
const OUTLIER_DETECTION: &str = "    outlierDetection:\n      consecutive5xxErrors: 2\n      interval: 1s\n      baseEjectionTime: 30s\n      maxEjectionPercent: 100\n";

/// Rewrites `workload`'s WorkloadEntry (as the lab registered it) with `locality`
/// (`region/zone[/subZone]`), the way Istio reads a VM's or pod's topology; returns the file name and
/// the YAML.
fn place(mesh: &LocalMesh, workload: &str, locality: &str) -> (String, String) {
    let running = mesh.workload(workload).unwrap();
    let labels: String = running
        .spec
        .labels
        .iter()
        .map(|(k, v)| format!("{k}: {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let entry = format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  address: {ip}\n  serviceAccount: {sa}\n  labels: {{{labels}}}\n  locality: {locality}\n",
        name = workload,
        ip = running.host.ip,
        sa = running.spec.service_account,
    );
    (format!("workload-{workload}.yaml"), entry)
}

/// `reviews` with v1 in the client's region (r1/z1), v2 in r2/z1 and v3 in r3/z1; returns
/// the VIP.
fn regional_mesh(mesh: &mut LocalMesh) -> Ipv4Addr {
    placed_mesh(mesh, ["r1/z1", "r2/z1", "r3/z1", "r1/z1"])
}

/// `reviews` v1, v2 and v3 and the client at `localities` (in that order); returns the VIP.
fn placed_mesh(mesh: &mut LocalMesh, localities: [&str; 4]) -> Ipv4Addr {
    let vip = reviews_mesh(mesh);
    mesh.add_workload(service("reviews3", "reviews", "v3", &[], &[]))
        .unwrap();
    for (workload, locality) in ["reviews1", "reviews2", "reviews3", "client"]
        .into_iter()
        .zip(localities)
    {
        let (file, entry) = place(mesh, workload, locality);
        apply_watching(mesh, &["client"], &file, &entry);
    }
    vip
}

/// Sends `n` requests one at a time from the client with `headers`; the load report.
fn load(mesh: &LocalMesh, vip: Ipv4Addr, headers: &[(&str, &str)], n: usize) -> serde_json::Value {
    reviews_requests(mesh, vip, "/reviews/0", headers, n, 1)
}

/// Applies the DestinationRule of `reviews` with outlier detection and the
/// `localityLbSetting` body `locality` (lines indented by 6; none when empty).
fn apply_locality(mesh: &LocalMesh, locality: &str) {
    let setting = if locality.is_empty() {
        String::new()
    } else {
        format!("      localityLbSetting:\n{locality}")
    };
    apply(
        mesh,
        "dr-reviews.yaml",
        &subsets_with_policy(
            "reviews",
            &format!("    loadBalancer:\n      simple: ROUND_ROBIN\n{setting}{OUTLIER_DETECTION}"),
        ),
    );
}

/// Makes `version` answer 500 until outlier detection ejects it (2 consecutive errors);
/// asserts it was ejected after 2 or 3 errors and returns the report.
fn eject(mesh: &LocalMesh, vip: Ipv4Addr, version: &str) -> serde_json::Value {
    let failing = load(mesh, vip, &[("x-weft-fail-version", version)], 12);
    let errors = count(&failing, "status", "500");
    assert!(
        (2..=3).contains(&errors),
        "{version} must be ejected after 2 errors: {failing}\n{}",
        mesh.log("client-proxy")
    );
    failing
}

#[test]
fn failover_goes_to_the_named_region_first_and_to_every_other_region_without_a_rule() {
    let mut mesh = mesh_or_skip!();
    let vip = regional_mesh(&mut mesh);

    // No rule: the local region serves everything; once it is ejected, the other regions
    // share one priority (Istio: priority 3, "another region").
    apply_locality(&mesh, "");
    let local = load(&mesh, vip, &[], 20);
    assert_eq!(count(&local, "versions", "v1"), 20, "{local}");
    eject(&mesh, vip, "v1");
    let other_regions = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&other_regions, "status", "200"),
        20,
        "{other_regions}"
    );
    assert!(
        count(&other_regions, "versions", "v2") >= 5
            && count(&other_regions, "versions", "v3") >= 5,
        "without a failover rule r2 and r3 share the traffic: {other_regions}"
    );

    // `failover: r1 -> r3`: r3 is the next priority, r2 the last (Istio: priority 3 for the
    // rule's target, 4 for a region no rule names).
    apply_locality(&mesh, "        failover:\n        - {from: r1, to: r3}\n");
    let local = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&local, "versions", "v1"),
        20,
        "the local region still comes first: {local}"
    );
    let failing = eject(&mesh, vip, "v1");
    assert_eq!(count(&failing, "versions", "v2"), 0, "{failing}");
    let failed_over = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&failed_over, "versions", "v3"),
        20,
        "r1 fails over to r3 only: {failed_over}"
    );

    // r3 ejected too: then r2, the last priority.
    eject(&mesh, vip, "v3");
    let last = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&last, "versions", "v2"),
        20,
        "with r1 and r3 ejected, r2 serves: {last}"
    );
}

#[test]
fn enabled_false_spreads_over_every_region_and_failover_priority_ranks_by_labels() {
    let mut mesh = mesh_or_skip!();
    let vip = regional_mesh(&mut mesh);

    // `enabled: false`: no locality priorities even with outlier detection, round robin over
    // all three regions (first, while no endpoint has been ejected).
    apply_locality(&mesh, "        enabled: false\n");
    let spread = load(&mesh, vip, &[], 30);
    assert_eq!(count(&spread, "status", "200"), 30, "{spread}");
    for version in ["v1", "v2", "v3"] {
        assert!(
            count(&spread, "versions", version) >= 5,
            "with locality load balancing off every region shares the traffic: {spread}"
        );
    }

    // `failoverPriority: [topology.kubernetes.io/zone]`: a label compared with the proxy's
    // own (Istio adds the topology labels to the proxy's and the endpoints' labels). All three
    // endpoints are in a zone named z1, like the client, so they share priority 0 although
    // two are in other regions.
    apply_locality(
        &mesh,
        "        failoverPriority: [\"topology.kubernetes.io/zone\"]\n",
    );
    let zone = load(&mesh, vip, &[], 30);
    assert_eq!(count(&zone, "status", "200"), 30, "{zone}");
    for version in ["v1", "v2", "v3"] {
        assert!(
            count(&zone, "versions", version) >= 5,
            "every endpoint matches the client's zone label: {zone}"
        );
    }

    // `failoverPriority: [version=v2]`: endpoints labelled version=v2 first, whatever their
    // locality (Istio's explicit label value); the others share the next priority.
    apply_locality(&mesh, "        failoverPriority: [\"version=v2\"]\n");
    let first = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&first, "versions", "v2"),
        20,
        "the label, not the locality, picks the first priority: {first}"
    );
    eject(&mesh, vip, "v2");
    let next = load(&mesh, vip, &[], 20);
    assert_eq!(count(&next, "status", "200"), 20, "{next}");
    assert!(
        count(&next, "versions", "v1") >= 5 && count(&next, "versions", "v3") >= 5,
        "the endpoints without the label share the next priority: {next}"
    );
}

#[test]
fn failover_goes_to_another_sub_zone_before_another_zone() {
    let mut mesh = mesh_or_skip!();
    // The client in r1/z1/s1 with v1; v2 in another sub-zone of its zone, v3 in another zone.
    let vip = placed_mesh(&mut mesh, ["r1/z1/s1", "r1/z1/s2", "r1/z2/s1", "r1/z1/s1"]);
    apply_locality(&mesh, "");
    let local = load(&mesh, vip, &[], 20);
    assert_eq!(count(&local, "versions", "v1"), 20, "{local}");
    // Istio: priority 1 for the same zone in another sub-zone, 2 for another zone.
    let failing = eject(&mesh, vip, "v1");
    assert_eq!(count(&failing, "versions", "v3"), 0, "{failing}");
    let sub_zone = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&sub_zone, "versions", "v2"),
        20,
        "the other sub-zone of the client's zone comes next: {sub_zone}"
    );
    eject(&mesh, vip, "v2");
    let zone = load(&mesh, vip, &[], 20);
    assert_eq!(
        count(&zone, "versions", "v3"),
        20,
        "then the other zone: {zone}"
    );
}
