//! Injection of a three-container pod through the whole admission path: body bytes in,
//! AdmissionReview with a JSON patch out (`handle_inject_body`). Target: p99 < 100 µs.
//!
//! Run: `cargo bench -p weft-webhook --bench inject`. Besides criterion's estimates it prints
//! the latency distribution (p50/p99/max) of single calls, in wall time and in thread CPU time
//! (the latter is what the code costs; the former adds whatever the machine's scheduler adds).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::collections::BTreeMap;
use std::hint::black_box;

/// The allocator `weft-operator` runs with (see `operator/src/main.rs`), so that this bench
/// measures the handler as the server runs it.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "support/latency.rs"]
mod latency;

use criterion::{Criterion, criterion_group};
use k8s_openapi::api::core::v1::Pod;
use kube::core::admission::AdmissionReview;
use weft_webhook::InjectionConfig;
use weft_webhook::admission::handle_inject_body;

/// The golden case with a Deployment's three-container pod, as JSON request bytes.
fn request_body() -> Vec<u8> {
    let yaml = include_str!("../testdata/inject/deployment-multi-container.yaml");
    let value: serde_json::Value = serde_yaml::from_str(yaml).unwrap();
    serde_json::to_vec(&value).unwrap()
}

fn labels(_: &str) -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::from([(
        "istio-injection".to_string(),
        "enabled".to_string(),
    )]))
}

fn bench(c: &mut Criterion) {
    let body = request_body();
    let config = InjectionConfig::default();
    let (status, reply) = handle_inject_body(&body, &labels, &config);
    assert_eq!(status, 200);
    assert!(
        String::from_utf8_lossy(&reply).contains("\"patch\""),
        "the pod must be injected"
    );

    c.bench_function("handle_inject_body/3-containers", |b| {
        b.iter(|| handle_inject_body(black_box(&body), &labels, &config))
    });

    let review: AdmissionReview<Pod> = serde_json::from_slice(&body).unwrap();
    let mut pod = review.request.unwrap().object.unwrap();
    pod.metadata.namespace = Some("shop".into());
    c.bench_function("inject/3-containers", |b| {
        b.iter(|| weft_webhook::inject(black_box(&pod), &config).unwrap())
    });
}

/// Times `calls` single calls of the admission path; prints the wall-time and thread-CPU-time
/// distributions.
fn latency_distribution(calls: usize) {
    let body = request_body();
    let config = InjectionConfig::default();
    latency::print_distribution("handle_inject_body/3-containers", calls, || {
        handle_inject_body(black_box(&body), &labels, &config)
    });
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    latency_distribution(20_000);
}
