//! Data path: what a sidecar may reach. `outboundTrafficPolicy: REGISTRY_ONLY` answers 502
//! with response flag `NR` for destinations outside the registry, while a `MESH_EXTERNAL`
//! ServiceEntry with `STATIC` endpoints makes a host outside the mesh reachable; a Sidecar's
//! `egress` hosts limit the services a proxy knows, and its config holds only those.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;
use std::time::Duration;

use weft_e2e::gateway::config_dump;
use weft_e2e::{
    NS, apply, count, eventually, host, mesh_or_skip, outside_server, service, service_entry,
    sidecar_yaml,
};
use weft_lab::mesh::LocalMesh;

/// `count` of `istio_requests_total` lines in `workload`'s metrics with `code` and `flags`.
fn reported(mesh: &LocalMesh, workload: &str, code: &str, flags: &str) -> bool {
    mesh.proxy_metrics(workload).unwrap().lines().any(|l| {
        l.starts_with("istio_requests_total")
            && l.contains(&format!("response_code=\"{code}\""))
            && l.contains(&format!("response_flags=\"{flags}\""))
    })
}

#[test]
fn registry_only_answers_502_nr_and_mesh_external_service_entries_pass() {
    let mut mesh = mesh_or_skip!();
    let known = outside_server(&mut mesh, "known", None);
    let unknown = outside_server(&mut mesh, "unknown", None);
    let vip = mesh.lab().vip(6);
    let external = "api.external.test";
    mesh.write_config(
        "se-external.yaml",
        &format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: external, namespace: {NS}}}\nspec:\n  hosts: [{external}]\n  addresses: [{vip}]\n  ports: [{{number: 9080, name: http, protocol: HTTP}}]\n  location: MESH_EXTERNAL\n  resolution: STATIC\n  endpoints: [{{address: {}}}]\n",
            known.ip
        ),
    )
    .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let via_entry = format!("http://{external}:9080/external/1");
    let stray = format!("http://{}:9080/stray/1", unknown.ip);
    let get = |url: &str, resolve: &[(&str, Ipv4Addr)]| {
        mesh.load("client", url, resolve, &[], 5, 1).unwrap()
    };

    // ALLOW_ANY (the default): both pass, the unknown one through PassthroughCluster.
    let (entry, _) = eventually(
        Duration::from_secs(10),
        || get(&via_entry, &[(external, vip)]),
        |r| count(r, "status", "200") == 5,
    );
    assert_eq!(count(&entry, "status", "200"), 5, "{entry}");
    let passthrough = get(&stray, &[]);
    assert_eq!(
        count(&passthrough, "status", "200"),
        5,
        "ALLOW_ANY forwards to unknown destinations: {passthrough}"
    );

    apply(
        &mesh,
        "sidecar.yaml",
        &sidecar_yaml("  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n"),
    );
    let refused = get(&stray, &[]);
    assert_eq!(
        count(&refused, "status", "502"),
        5,
        "REGISTRY_ONLY refuses destinations outside the registry: {refused}"
    );
    assert!(
        reported(&mesh, "client", "502", "NR"),
        "the refusal must be reported as 502 NR:\n{}",
        mesh.proxy_metrics("client").unwrap()
    );
    let entry = get(&via_entry, &[(external, vip)]);
    assert_eq!(
        count(&entry, "status", "200"),
        5,
        "a MESH_EXTERNAL STATIC ServiceEntry stays reachable under REGISTRY_ONLY: {entry}\n{}",
        mesh.log("client-proxy")
    );
    assert_eq!(
        count(&entry, "versions", "v1"),
        5,
        "answered by the external host: {entry}"
    );
}

#[test]
fn sidecar_egress_limits_what_the_proxy_reaches() {
    let mut mesh = mesh_or_skip!();
    let (reviews_vip, ratings_vip) = (mesh.lab().vip(3), mesh.lab().vip(4));
    mesh.write_config("svc-reviews.yaml", &service_entry("reviews", reviews_vip))
        .unwrap();
    mesh.write_config("svc-ratings.yaml", &service_entry("ratings", ratings_vip))
        .unwrap();
    mesh.add_workload(service("reviews1", "reviews", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(service("ratings1", "ratings", "v1", &[], &[]))
        .unwrap();
    mesh.add_workload(weft_e2e::client("client", "client"))
        .unwrap();
    let (reviews, ratings) = (host("reviews"), host("ratings"));
    let get = |name: &str, vip: Ipv4Addr| {
        let url = format!("http://{name}:9080/{name}/0");
        mesh.load("client", &url, &[(name, vip)], &[], 5, 1)
            .unwrap()
    };
    let (both, _) = eventually(
        Duration::from_secs(10),
        || (get(&reviews, reviews_vip), get(&ratings, ratings_vip)),
        |(a, b)| count(a, "status", "200") == 5 && count(b, "status", "200") == 5,
    );
    assert_eq!(
        count(&both.1, "status", "200"),
        5,
        "ratings before: {:?}",
        both
    );

    apply(
        &mesh,
        "sidecar.yaml",
        &sidecar_yaml(&format!(
            "  egress:\n  - hosts: [\"./{reviews}\"]\n  outboundTrafficPolicy: {{mode: REGISTRY_ONLY}}\n"
        )),
    );
    let allowed = get(&reviews, reviews_vip);
    assert_eq!(
        count(&allowed, "status", "200"),
        5,
        "the egress host stays reachable: {allowed}"
    );
    let hidden = get(&ratings, ratings_vip);
    assert_eq!(
        count(&hidden, "status", "502"),
        5,
        "a service outside the Sidecar's egress hosts is unknown to the proxy: {hidden}"
    );
    let dump = config_dump(&mesh, "client");
    assert!(
        dump.contains(&format!("|{reviews}")) && !dump.contains(&format!("|{ratings}")),
        "the client's config must hold reviews' clusters and not ratings':\n{dump}"
    );
}
