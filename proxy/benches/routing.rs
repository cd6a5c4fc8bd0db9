//! Route selection cost per request: original-destination lookup, virtual-host selection and
//! first-match route matching over a 50-route table with header, prefix and regex matches.
//! Target: under 2 µs for this worst case (every route tried, a third of them regexes).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use http::HeaderMap;
use weft_proxy::router::RequestView;
use weft_proxy::snapshot::Snapshot;
use weft_proxy_config::{
    Cluster, ForwardAction, HeaderMatch, OutboundListener, Protocol, ProxyConfig, Route,
    RouteAction, RouteConfiguration, RouteMatch, StringMatch, VirtualHost, WeightedCluster,
};

fn config() -> ProxyConfig {
    let mut config = ProxyConfig::from_yaml("node: {id: bench, namespace: default}\n").unwrap();
    config.clusters.push(Cluster {
        name: "c".into(),
        lb_policy: Default::default(),
        consistent_hash: None,
        locality_lb: None,
        warmup: None,
        transport: Default::default(),
        protocol: Protocol::Http,
        h2_upgrade: Default::default(),
        connection_pool: Default::default(),
        outlier_detection: None,
        endpoints: Vec::new(),
        dns: None,
    });
    let forward = || {
        RouteAction::Route(Box::new(ForwardAction {
            clusters: vec![WeightedCluster {
                cluster: "c".into(),
                weight: 1,
            }],
            ..ForwardAction::default()
        }))
    };
    let mut routes = Vec::new();
    for index in 0..49 {
        let route_match = match index % 3 {
            0 => RouteMatch {
                uri: Some(StringMatch::Prefix(format!("/api/v{index}/"))),
                ..RouteMatch::default()
            },
            1 => RouteMatch {
                headers: BTreeMap::from([(
                    "x-tenant".to_owned(),
                    HeaderMatch::Exact(format!("tenant-{index}")),
                )]),
                ..RouteMatch::default()
            },
            _ => RouteMatch {
                uri: Some(StringMatch::Regex(format!("/items/{index}/[0-9]+"))),
                ..RouteMatch::default()
            },
        };
        routes.push(Route {
            name: format!("r{index}"),
            matches: vec![route_match],
            action: forward(),
        });
    }
    routes.push(Route {
        name: "default".into(),
        matches: Vec::new(),
        action: forward(),
    });
    for service in 0..200u32 {
        let octets = service.to_be_bytes();
        config.outbound.push(OutboundListener {
            name: format!("svc{service}:80"),
            hostname: format!("svc{service}.default.svc.cluster.local"),
            addresses: vec![std::net::IpAddr::from([10, 96, octets[2], octets[3]])],
            port: 80,
            protocol: Protocol::Http,
            http: Some(RouteConfiguration {
                virtual_hosts: vec![VirtualHost {
                    name: format!("svc{service}"),
                    domains: vec![
                        format!("svc{service}.default.svc.cluster.local"),
                        format!("svc{service}"),
                    ],
                    routes: routes.clone(),
                }],
            }),
            tcp: Vec::new(),
        });
    }
    config
}

fn bench_routing(c: &mut Criterion) {
    let snapshot = Snapshot::build(config(), None, None).unwrap();
    let destination: SocketAddr = "10.96.0.150:80".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("x-tenant", "tenant-nobody".parse().unwrap());
    c.bench_function("route_selection_50_routes_falls_through", |b| {
        b.iter(|| {
            let service = snapshot.outbound_for(black_box(destination)).unwrap();
            let table = service.http.as_ref().unwrap();
            let vhost = &table.virtual_hosts[table.domains.find(black_box("svc150")).unwrap()];
            let view = RequestView {
                path: black_box("/items/x/1"),
                query: None,
                method: "GET",
                authority: "svc150",
                scheme: "http",
                port: 80,
                headers: &headers,
            };
            let found = vhost.routes.iter().position(|route| {
                route.matches.is_empty() || route.matches.iter().any(|m| m.matches(&view))
            });
            black_box(found)
        });
    });
}

criterion_group!(benches, bench_routing);
criterion_main!(benches);
