//! Workload certificate issuance cost. Target (the issue): 10,000 certificates in under 10 s on a
//! 2-core machine, i.e. under 1 ms per certificate on one core.
//!
//! Run: `cargo bench -p weft-identity --bench issue -- --quick`

// A benchmark harness, not library code: a failed set-up should stop it loudly.
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use weft_identity::{
    CertificateAuthority, Clock, DEFAULT_WORKLOAD_TTL, Identity, RotationPolicy, SystemClock,
};

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn issuance(c: &mut Criterion) {
    let ca = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let identity = Identity::spiffe("cluster.local", "default", "sleep").unwrap();

    let mut group = c.benchmark_group("issue");
    group.throughput(Throughput::Elements(1));
    group.bench_function("workload_self_signed_root", |b| {
        b.iter(|| {
            ca.issue_workload(black_box(&identity), DEFAULT_WORKLOAD_TTL)
                .unwrap()
        })
    });

    // Plug-in layout: sign as an intermediate whose chain is appended to every leaf.
    let root = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let parts = root.to_pem_parts();
    let plugin = CertificateAuthority::from_plugin(
        &parts.ca_cert_pem,
        parts.ca_key_pem.expose_secret(),
        &parts.root_cert_pem,
        &parts.cert_chain_pem,
        clock(),
    )
    .unwrap();
    group.bench_function("workload_plugin_ca", |b| {
        b.iter(|| {
            plugin
                .issue_workload(black_box(&identity), DEFAULT_WORKLOAD_TTL)
                .unwrap()
        })
    });

    // The parts of one issuance, to see what dominates.
    group.bench_function("p256_key_generation_only", |b| {
        b.iter(|| rcgen::KeyPair::generate().unwrap())
    });
    group.bench_function("serving_certificate", |b| {
        b.iter(|| {
            ca.issue_serving(
                black_box(&["weft-webhook.weft-system.svc"]),
                DEFAULT_WORKLOAD_TTL,
            )
            .unwrap()
        })
    });
    group.finish();

    // The issue's target measured literally: one iteration issues 10,000 certificates on one core.
    let mut batch = c.benchmark_group("issue_batch");
    batch.sample_size(10);
    batch.throughput(Throughput::Elements(10_000));
    batch.bench_function("10k_workload_certificates", |b| {
        b.iter(|| {
            for _ in 0..10_000 {
                black_box(ca.issue_workload(&identity, DEFAULT_WORKLOAD_TTL).unwrap());
            }
        })
    });
    batch.finish();
}

fn rotation_check(c: &mut Criterion) {
    let ca = CertificateAuthority::self_signed("cluster.local", None, clock()).unwrap();
    let identity = Identity::spiffe("cluster.local", "default", "sleep").unwrap();
    let issued = ca.issue_workload(&identity, DEFAULT_WORKLOAD_TTL).unwrap();
    let policy = RotationPolicy::default();
    let now = SystemTime::now() + Duration::from_secs(60);
    c.bench_function("rotation/evaluate_valid_certificate", |b| {
        b.iter(|| {
            policy.evaluate(
                Some(black_box(&issued.cert_chain_pem)),
                Some(issued.private_key_pem.expose_secret()),
                &identity,
                &ca,
                now,
            )
        })
    });
}

criterion_group!(benches, issuance, rotation_check);
criterion_main!(benches);
