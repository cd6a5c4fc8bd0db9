//! Config generation throughput: one proxy config over a synthetic mesh of 500 services (10
//! namespaces, 2 pods each: 1,000 proxies, a VirtualService and a DestinationRule with two
//! subsets for every fifth service). Reports the time per proxy config: with the view's cache
//! warm (every proxy after the first of a view) and cold (the first).
//!
//! Run: `cargo bench -p weft-pilot --bench build`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // benchmark harness

use std::fmt::Write;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};

const SERVICES: usize = 500;
const NAMESPACES: usize = 10;

fn synthetic_mesh() -> String {
    let mut text = String::new();
    for index in 0..SERVICES {
        let ns = format!("ns{}", index % NAMESPACES);
        let name = format!("svc{index}");
        let vip = format!("10.96.{}.{}", index / 250, index % 250 + 1);
        writeln!(
            text,
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\n\
             spec:\n  clusterIP: {vip}\n  selector: {{app: {name}}}\n  ports:\n  \
             - {{name: http, port: 8080, targetPort: 8080}}"
        )
        .unwrap();
        let mut endpoints = String::new();
        for pod in 0..2 {
            let pod_name = format!("{name}-{pod}");
            let ip = format!("10.{}.{}.{}", 100 + pod, index / 250, index % 250 + 1);
            writeln!(
                text,
                "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {pod_name}\n  namespace: {ns}\n  \
                 labels: {{app: {name}, version: v{pod}}}\n  annotations: {{sidecar.istio.io/status: x}}\n\
                 spec: {{serviceAccountName: {name}, containers: [{{name: app}}]}}\n\
                 status: {{podIP: {ip}}}"
            )
            .unwrap();
            write!(
                endpoints,
                "\n- addresses: [{ip}]\n  targetRef: {{kind: Pod, name: {pod_name}}}"
            )
            .unwrap();
        }
        writeln!(
            text,
            "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  \
             name: {name}-a\n  namespace: {ns}\n  labels: {{kubernetes.io/service-name: {name}}}\n\
             addressType: IPv4\nports: [{{name: http, port: 8080}}]\nendpoints:{endpoints}"
        )
        .unwrap();
        if index % 5 == 0 {
            writeln!(
                text,
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: \
                 {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{name}]\n  http:\n  \
                 - match: [{{headers: {{x-canary: {{exact: 'yes'}}}}}}]\n    route: \
                 [{{destination: {{host: {name}, subset: v1}}}}]\n  - route:\n    \
                 - {{destination: {{host: {name}, subset: v0}}, weight: 90}}\n    \
                 - {{destination: {{host: {name}, subset: v1}}, weight: 10}}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: \
                 {{name: {name}, namespace: {ns}}}\nspec:\n  host: {name}\n  subsets:\n  \
                 - {{name: v0, labels: {{version: v0}}}}\n  - {{name: v1, labels: {{version: v1}}}}"
            )
            .unwrap();
        }
    }
    text
}

fn bench_build(c: &mut Criterion) {
    let view = ClusterView::from_yaml(&synthetic_mesh()).unwrap();
    let targets = ProxyTarget::all(&view);
    assert_eq!(targets.len(), 2 * SERVICES, "one proxy per pod");
    let mut next = 0;
    c.bench_function("build_proxy_config/500_services", |b| {
        b.iter(|| {
            let target = &targets[next % targets.len()];
            next += 1;
            black_box(build_proxy_config(black_box(&view), target))
        });
    });
    // The first proxy built from a new view fills the view's cache (clusters and listeners
    // without VirtualService); a clone of the view starts with an empty cache.
    c.bench_function("build_proxy_config/500_services_cold_cache", |b| {
        b.iter_batched_ref(
            || view.clone(),
            |fresh| black_box(build_proxy_config(fresh, &targets[0])),
            BatchSize::LargeInput,
        );
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_build
}
criterion_main!(benches);
