//! Validation of a 20-route VirtualService through the whole admission path: body bytes in,
//! AdmissionReview allowed out (`handle_validate_body`). Target: p99 < 100 µs.
//!
//! Run: `cargo bench -p weft-webhook --bench validate`. Besides criterion's estimates it
//! prints the latency distribution (p50/p99/max) of single calls, in wall time and in thread
//! CPU time (the latter is what the code costs; the former adds the machine's scheduler).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::hint::black_box;

/// The allocator `weft-operator` runs with (see `operator/src/main.rs`), so that this bench
/// measures the handler as the server runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/latency.rs"]
mod latency;

use criterion::{Criterion, criterion_group};
use serde_json::{Value, json};
use weft_webhook::admission::handle_validate_body;

/// One HTTP route per version `i`: a regex and a header match, a 90/10 split, retries, a
/// timeout, a fault and header manipulation, so that every rule family runs.
fn route(i: usize) -> Value {
    json!({
        "name": format!("route-{i}"),
        "match": [{
            "uri": {"regex": format!("^/api/v{i}/[a-z]+/[0-9]+$")},
            "headers": {"x-tenant": {"exact": format!("tenant-{i}")}}
        }],
        "route": [
            {"destination": {"host": "reviews.bookinfo.svc.cluster.local", "subset": format!("v{i}"), "port": {"number": 9080}}, "weight": 90},
            {"destination": {"host": "reviews.bookinfo.svc.cluster.local", "subset": "canary"}, "weight": 10}
        ],
        "timeout": "2s",
        "retries": {"attempts": 3, "perTryTimeout": "500ms", "retryOn": "5xx,connect-failure,reset"},
        "fault": {"delay": {"fixedDelay": "5ms", "percentage": {"value": 0.5}}},
        "headers": {"request": {"set": {"x-route": format!("r{i}")}}}
    })
}

/// The request body: an AdmissionReview CREATE of a 20-route VirtualService, as JSON bytes.
fn request_body() -> Vec<u8> {
    let routes: Vec<Value> = (0..20).map(route).collect();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "networking.istio.io", "version": "v1", "kind": "VirtualService"},
            "resource": {"group": "networking.istio.io", "version": "v1", "resource": "virtualservices"},
            "namespace": "bookinfo",
            "operation": "CREATE",
            "userInfo": {"username": "bench"},
            "object": {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualService",
                "metadata": {"name": "reviews", "namespace": "bookinfo"},
                "spec": {
                    "hosts": ["reviews.bookinfo.svc.cluster.local"],
                    "gateways": ["mesh", "istio-system/ingress"],
                    "http": routes
                }
            }
        }
    });
    serde_json::to_vec(&review).unwrap()
}

fn bench(c: &mut Criterion) {
    let body = request_body();
    let (status, reply) = handle_validate_body(&body);
    assert_eq!(status, 200);
    let reply: Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["response"]["allowed"], true, "{reply}");
    c.bench_function("handle_validate_body/20-routes", |b| {
        b.iter(|| handle_validate_body(black_box(&body)))
    });
}

/// Times `calls` single calls of the admission path; prints the wall-time and thread-CPU-time
/// distributions.
fn latency_distribution(calls: usize) {
    let body = request_body();
    latency::print_distribution("handle_validate_body/20-routes", calls, || {
        handle_validate_body(black_box(&body))
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency_distribution(20_000);
}
