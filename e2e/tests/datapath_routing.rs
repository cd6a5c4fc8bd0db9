//! Data path: VirtualService routing, faults, retries and timeouts, as Istio documents them,
//! with real proxies, real capture and real traffic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use weft_e2e::{NS, apply, count, eventually, mesh_or_skip, reviews_load, reviews_mesh};

const HOST: &str = "reviews.demo.svc.cluster.local";

fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: {NS}}}\nspec:\n  hosts: [{HOST}]\n  http:\n{http}"
    )
}

#[test]
fn traffic_shifting_by_weight_stays_within_statistical_bounds() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - route:\n    - destination: {{host: {HOST}, subset: v1}}\n      weight: 70\n    - destination: {{host: {HOST}, subset: v2}}\n      weight: 30\n"
        )),
    );
    // Wait until the split is in force (both versions answer).
    let (warm, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 40),
        |r| count(r, "versions", "v1") > 0 && count(r, "versions", "v2") > 0,
    );
    assert!(count(&warm, "versions", "v2") > 0, "{warm}");
    let n = 600;
    let report = reviews_load(&mesh, vip, &[], n);
    assert_eq!(count(&report, "status", "200"), n as u64, "{report}");
    let v1 = count(&report, "versions", "v1") as f64 / n as f64;
    // Binomial(600, 0.7): sd = 1.9 %; ±7 % is beyond 3.5 sd.
    assert!(
        (v1 - 0.70).abs() < 0.07,
        "v1 share {v1:.3} is not 70 % ± 7 %: {report}"
    );
    println!(
        "weighted split 70/30 over {n} requests: v1 = {:.1} %",
        v1 * 100.0
    );
}

#[test]
fn header_based_routing_sends_matching_requests_to_the_subset() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - match:\n    - headers:\n        end-user: {{exact: jason}}\n    route:\n    - destination: {{host: {HOST}, subset: v2}}\n  - route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (jason, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[("end-user", "jason")], 40),
        |r| count(r, "versions", "v2") == 40,
    );
    assert_eq!(count(&jason, "versions", "v2"), 40, "{jason}");
    let others = reviews_load(&mesh, vip, &[("end-user", "alice")], 40);
    assert_eq!(count(&others, "versions", "v1"), 40, "{others}");
}

#[test]
fn fault_injection_delays_and_aborts() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - fault:\n      delay: {{fixedDelay: 300ms, percentage: {{value: 100}}}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (delayed, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 8),
        |r| r["p50_ms"].as_f64().unwrap_or(0.0) >= 300.0,
    );
    assert!(
        delayed["p50_ms"].as_f64().unwrap() >= 300.0,
        "no delay seen: {delayed}"
    );
    assert_eq!(count(&delayed, "status", "200"), 8, "{delayed}");

    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - fault:\n      abort: {{httpStatus: 418, percentage: {{value: 100}}}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (aborted, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &[], 20),
        |r| count(r, "status", "418") == 20,
    );
    assert_eq!(count(&aborted, "status", "418"), 20, "{aborted}");
    let metrics = mesh.proxy_metrics("client").unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("istio_requests_total")
                && l.contains("response_code=\"418\"")
                && l.contains("response_flags=\"FI\"")),
        "aborts are not reported with response flag FI:\n{metrics}"
    );
}

#[test]
fn retries_hide_intermittent_503s_and_no_retries_expose_them() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    // The app fails every other request with 503.
    let flaky = [("x-weft-fail-every", "2")];
    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - retries: {{attempts: 0}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (bare, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &flaky, 40),
        |r| count(r, "status", "503") > 0,
    );
    assert!(
        count(&bare, "status", "503") >= 10,
        "without retries about half fail: {bare}"
    );

    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - retries: {{attempts: 3, retryOn: 5xx}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (retried, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &flaky, 40),
        |r| count(r, "status", "200") == 40,
    );
    assert_eq!(
        count(&retried, "status", "200"),
        40,
        "retries must hide the 503s: {retried}"
    );
}

#[test]
fn route_timeout_and_per_try_timeout_answer_504() {
    let mut mesh = mesh_or_skip!();
    let vip = reviews_mesh(&mut mesh);
    let slow = [("x-weft-delay-ms", "1500")];
    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - timeout: 200ms\n    retries: {{attempts: 0}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (timed_out, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &slow, 4),
        |r| count(r, "status", "504") == 4,
    );
    assert_eq!(count(&timed_out, "status", "504"), 4, "{timed_out}");
    assert!(
        timed_out["max_ms"].as_f64().unwrap() < 1000.0,
        "route timeout not applied: {timed_out}"
    );

    apply(
        &mesh,
        "vs-reviews.yaml",
        &vs(&format!(
            "  - retries: {{attempts: 2, perTryTimeout: 100ms, retryOn: 5xx}}\n    route:\n    - destination: {{host: {HOST}, subset: v1}}\n"
        )),
    );
    let (per_try, _) = eventually(
        Duration::from_secs(10),
        || reviews_load(&mesh, vip, &slow, 4),
        |r| count(r, "status", "504") == 4 && r["max_ms"].as_f64().unwrap_or(1e9) < 1000.0,
    );
    assert_eq!(count(&per_try, "status", "504"), 4, "{per_try}");
    assert!(
        per_try["max_ms"].as_f64().unwrap() < 1000.0,
        "per-try timeout not applied: {per_try}"
    );
}
