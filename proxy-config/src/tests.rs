//! Unit tests for the model: parsing, validation and hashing.

use std::net::IpAddr;

use pretty_assertions::assert_eq;

use super::*;

const SAMPLE: &str = include_str!("../testdata/bookinfo-productpage.yaml");

fn sample() -> ProxyConfig {
    ProxyConfig::from_yaml(SAMPLE).unwrap()
}

fn reviews_routes(config: &mut ProxyConfig) -> &mut Vec<Route> {
    &mut config.outbound[0].http.as_mut().unwrap().virtual_hosts[0].routes
}

fn forward(route: &mut Route) -> &mut ForwardAction {
    match &mut route.action {
        RouteAction::Route(forward) => forward,
        other => panic!("expected a forward action, got {other:?}"),
    }
}

#[test]
fn sample_loads_and_validates() {
    let config = sample();
    assert_eq!(config.model_version, MODEL_VERSION);
    assert_eq!(
        config.outbound_traffic_policy,
        OutboundTrafficPolicy::RegistryOnly
    );
    assert_eq!(config.inbound.mtls_mode(9080), MtlsMode::Strict);
    assert_eq!(config.inbound.mtls_mode(8080), MtlsMode::Permissive);
    assert_eq!(config.outbound.len(), 3);
    assert_eq!(config.clusters.len(), 5);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn sample_parses_istio_shaped_values() {
    let mut config = sample();
    let routes = reviews_routes(&mut config);
    assert_eq!(
        routes[0].matches[0].headers.get("end-user"),
        Some(&HeaderMatch::Exact("jason".to_owned()))
    );
    let split = forward(&mut routes[1]);
    assert_eq!(split.clusters[0].weight, 90);
    let retry = split.retry.as_ref().unwrap();
    assert_eq!(retry.attempts, 3);
    assert_eq!(retry.per_try_timeout_ms, Some(2000));
    assert_eq!(
        retry.retry_on,
        vec![
            RetryOn::GatewayError,
            RetryOn::ConnectFailure,
            RetryOn::RefusedStream
        ]
    );
    assert_eq!(retry.backoff_base_ms, 25);
    let cluster = config
        .cluster("outbound|9080|v1|reviews.default.svc.cluster.local")
        .unwrap();
    assert!(matches!(
        cluster.transport,
        TransportSocket::IstioMutual { .. }
    ));
    assert_eq!(cluster.lb_policy, LbPolicy::RoundRobin);
    let ratings = config
        .cluster("outbound|9080||ratings.default.svc.cluster.local")
        .unwrap();
    assert_eq!(ratings.endpoints[0].weight, 2);
    assert_eq!(ratings.endpoints[1].weight, 1);
    assert_eq!(ratings.connection_pool.tcp.connect_timeout_ms, 2000);
}

#[test]
fn json_round_trip_preserves_the_config() {
    let config = sample();
    let json = serde_json::to_string(&config).unwrap();
    assert_eq!(ProxyConfig::from_json(&json).unwrap(), config);
}

#[test]
fn yaml_round_trip_preserves_the_config() {
    let config = sample();
    let yaml = config.to_yaml().unwrap();
    assert_eq!(ProxyConfig::from_yaml(&yaml).unwrap(), config);
}

#[test]
fn unknown_fields_are_rejected() {
    let text = SAMPLE.replace("workload_name:", "workload_nmae:");
    let error = ProxyConfig::from_yaml(&text).unwrap_err();
    assert!(error.to_string().contains("workload_nmae"), "{error}");
}

#[test]
fn other_model_versions_are_rejected() {
    let text = format!("model_version: weft.proxy-config/v9\n{SAMPLE}");
    assert!(matches!(
        ProxyConfig::from_yaml(&text),
        Err(ParseError::ModelVersion { found }) if found == "weft.proxy-config/v9"
    ));
}

#[test]
fn content_hash_ignores_version_and_tracks_content() {
    let config = sample();
    let hash = config.content_hash().unwrap();
    assert_eq!(hash.len(), 64);
    let versioned = config.clone().with_content_version().unwrap();
    assert_eq!(versioned.version, hash);
    assert_eq!(versioned.content_hash().unwrap(), hash);
    let mut changed = config;
    changed
        .node
        .labels
        .insert("extra".to_owned(), "1".to_owned());
    assert_ne!(changed.content_hash().unwrap(), hash);
}

#[test]
fn unknown_cluster_is_reported_with_its_field() {
    let mut config = sample();
    forward(&mut reviews_routes(&mut config)[1]).clusters[1].cluster = "outbound|9080|v9|x".into();
    assert_eq!(
        config.validate(),
        Err(vec![ModelError::UnknownCluster {
            field: "outbound[reviews.default.svc.cluster.local:9080].http.virtual_hosts[0]\
                    .routes[1].action.route.clusters"
                .to_owned(),
            cluster: "outbound|9080|v9|x".to_owned(),
        }])
    );
}

#[test]
fn special_clusters_need_no_definition() {
    let mut config = sample();
    forward(&mut reviews_routes(&mut config)[1]).clusters[1].cluster = PASSTHROUGH_CLUSTER.into();
    config.outbound[2].tcp[0].clusters[0].cluster = BLACK_HOLE_CLUSTER.into();
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn all_zero_weights_are_rejected() {
    let mut config = sample();
    for entry in &mut forward(&mut reviews_routes(&mut config)[1]).clusters {
        entry.weight = 0;
    }
    let errors = config.validate().unwrap_err();
    assert!(
        matches!(&errors[..], [ModelError::NoWeightedCluster { .. }]),
        "{errors:?}"
    );
}

#[test]
fn bad_percentages_regexes_and_statuses_are_all_reported() {
    let mut config = sample();
    {
        let routes = reviews_routes(&mut config);
        routes[0].matches[0]
            .headers
            .insert("x-bad".into(), HeaderMatch::Regex("(".into()));
        let split = forward(&mut routes[1]);
        split.fault = Some(FaultInjection {
            delay: Some(FaultDelay {
                fixed_delay_ms: 1,
                percentage: 101.0,
            }),
            abort: Some(FaultAbort {
                http_status: 99,
                percentage: f64::NAN,
            }),
        });
        routes.push(Route {
            name: String::new(),
            matches: Vec::new(),
            action: RouteAction::Redirect(RedirectAction {
                uri: None,
                authority: None,
                port: None,
                scheme: None,
                redirect_code: 200,
            }),
        });
    }
    let errors = config.validate().unwrap_err();
    let kinds: Vec<&str> = errors
        .iter()
        .map(|error| match error {
            ModelError::Regex { .. } => "regex",
            ModelError::Percentage { .. } => "percentage",
            ModelError::Status { .. } => "status",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["regex", "percentage", "percentage", "status", "status"]
    );
}

#[test]
fn duplicate_vip_port_and_cluster_are_rejected() {
    let mut config = sample();
    let mut copy = config.outbound[1].clone();
    copy.name = "copy".into();
    config.outbound.push(copy);
    let cluster = config.clusters[0].clone();
    config.clusters.push(cluster);
    let errors = config.validate().unwrap_err();
    assert_eq!(
        errors,
        vec![
            ModelError::DuplicateCluster {
                name: "outbound|9080|v1|reviews.default.svc.cluster.local".into()
            },
            ModelError::DuplicateOutbound {
                key: "10.96.0.21:9080".into(),
                first: "ratings.default.svc.cluster.local:9080".into(),
                second: "copy".into(),
            },
        ]
    );
}

#[test]
fn http_listener_without_routes_is_rejected() {
    let mut config = sample();
    config.outbound[0].http = None;
    assert!(matches!(
        &config.validate().unwrap_err()[..],
        [ModelError::MissingHttpRoutes { .. }]
    ));
}

#[test]
fn uppercase_header_names_and_control_characters_are_rejected() {
    let mut config = sample();
    let split = forward(&mut reviews_routes(&mut config)[1]);
    split
        .request_headers
        .set
        .insert("X-Upper".into(), "v".into());
    split
        .request_headers
        .add
        .insert("x-ok".into(), "bad\nvalue".into());
    let errors = config.validate().unwrap_err();
    assert!(
        matches!(
            &errors[..],
            [
                ModelError::HeaderName { .. },
                ModelError::HeaderValue { .. }
            ]
        ),
        "{errors:?}"
    );
}

#[test]
fn endpoint_weight_zero_is_rejected() {
    let mut config = sample();
    config.clusters[3].endpoints[0].weight = 0;
    assert_eq!(
        config.validate(),
        Err(vec![ModelError::EndpointWeight {
            cluster: "outbound|9080||ratings.default.svc.cluster.local".into(),
            index: 0,
        }])
    );
}

#[test]
fn cluster_names_round_trip() {
    let name: ClusterName = "outbound|9080|v1|reviews.default.svc.cluster.local"
        .parse()
        .unwrap();
    assert_eq!(
        name,
        ClusterName::outbound(9080, "v1", "reviews.default.svc.cluster.local")
    );
    assert_eq!(
        name.to_string(),
        "outbound|9080|v1|reviews.default.svc.cluster.local"
    );
    let whole: ClusterName = "inbound|80||web".parse().unwrap();
    assert_eq!(whole.direction, TrafficDirection::Inbound);
    assert_eq!(whole.subset, "");
    for bad in [
        "outbound|x|v1|h",
        "sideways|80||h",
        "outbound|80|v1",
        "outbound|80||",
    ] {
        assert!(bad.parse::<ClusterName>().is_err(), "{bad}");
    }
}

#[test]
fn cidr_parses_and_matches() {
    let net: Cidr = "10.96.0.0/16".parse().unwrap();
    assert!(net.contains("10.96.255.1".parse().unwrap()));
    assert!(!net.contains("10.97.0.1".parse().unwrap()));
    assert!(net.contains("::ffff:10.96.0.1".parse().unwrap()));
    let host: Cidr = "fd00::1".parse().unwrap();
    assert_eq!(host.prefix_len, 128);
    assert!(host.contains("fd00::1".parse().unwrap()));
    assert!(!host.contains("fd00::2".parse().unwrap()));
    let all: Cidr = "0.0.0.0/0".parse().unwrap();
    assert!(all.contains(IpAddr::from([192, 0, 2, 1])));
    assert!(!all.contains("::1".parse().unwrap()));
    assert_eq!(
        "10.0.0.0/33".parse::<Cidr>(),
        Err(CidrError::PrefixLen("10.0.0.0/33".into()))
    );
    assert!(matches!(
        "ten/8".parse::<Cidr>(),
        Err(CidrError::Address(_))
    ));
}

#[test]
fn node_spiffe_id_follows_istio() {
    assert_eq!(
        sample().node.spiffe_id(),
        "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
    );
}

/// Every `testdata/*.yaml` config parses and validates; every `testdata/invalid/*.yaml` parses
/// and fails validation with the error its first line (`# expect: <message prefix>`) names.
#[test]
fn testdata_configs_validate_as_labelled() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut valid = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "yaml")
        {
            let config = ProxyConfig::from_yaml(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(config.validate(), Ok(()), "{}", path.display());
            valid += 1;
        }
    }
    let mut invalid = 0;
    for entry in std::fs::read_dir(dir.join("invalid")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` first line", path.display()));
        let errors = ProxyConfig::from_yaml(&text)
            .unwrap()
            .validate()
            .unwrap_err();
        let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            messages.iter().any(|message| message.starts_with(expected)),
            "{}: expected {expected:?}, got {messages:?}",
            path.display()
        );
        invalid += 1;
    }
    assert!(
        valid >= 1 && invalid >= 5,
        "found {valid} valid and {invalid} invalid configs"
    );
}

#[test]
fn content_hash_does_not_depend_on_yaml_key_order() {
    let one = ProxyConfig::from_yaml(
        "node: {id: a, namespace: n, labels: {b: '2', a: '1'}}\noutbound_traffic_policy: REGISTRY_ONLY\n",
    )
    .unwrap();
    let two = ProxyConfig::from_yaml(
        "outbound_traffic_policy: REGISTRY_ONLY\nnode: {labels: {a: '1', b: '2'}, namespace: n, id: a}\n",
    )
    .unwrap();
    assert_eq!(one.content_hash().unwrap(), two.content_hash().unwrap());
}

#[test]
fn warmup_and_distribute_rules_are_checked_per_field() {
    let mut config = sample();
    let cluster = &mut config.clusters[0];
    let name = cluster.name.clone();
    cluster.warmup = Some(Warmup {
        duration_ms: 0,
        minimum_percent: 120.0,
        aggression: 0.5,
    });
    cluster.locality_lb = Some(LocalityLbSetting {
        distribute: vec![
            LocalityDistribute {
                from: "us-west/zone1/*".into(),
                to: [
                    ("us-west/zone1/*".to_owned(), 80),
                    ("us-west/zone2/*".to_owned(), 20),
                ]
                .into(),
            },
            LocalityDistribute {
                from: "us-east/*".into(),
                to: [("us-east/*".to_owned(), 90)].into(),
            },
        ],
        ..LocalityLbSetting::default()
    });
    let fields: Vec<String> = config
        .validate()
        .unwrap_err()
        .iter()
        .map(|error| match error {
            ModelError::ClusterSetting { field, .. } => field.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            format!("clusters[{name}].warmup.duration_ms"),
            format!("clusters[{name}].warmup.aggression"),
            format!("clusters[{name}].warmup.minimum_percent"),
            format!("clusters[{name}].locality_lb.distribute[1].to"),
        ]
    );
}

#[test]
fn dns_names_need_a_name_a_port_a_weight_and_a_refresh_rate() {
    let mut config = sample();
    let cluster = &mut config.clusters[0];
    let name = cluster.name.clone();
    let good = DnsEndpoint {
        hostname: "api.example.test".into(),
        port: 443,
        labels: Default::default(),
        locality: Locality::default(),
        weight: 1,
        has_sidecar: false,
    };
    cluster.dns = Some(DnsDiscovery {
        lookup: DnsLookup::Strict,
        endpoints: vec![
            good.clone(),
            DnsEndpoint {
                hostname: String::new(),
                port: 0,
                weight: 0,
                ..good
            },
        ],
        refresh_rate_ms: 0,
        respect_dns_ttl: true,
    });
    let fields: Vec<String> = config
        .validate()
        .unwrap_err()
        .iter()
        .map(|error| match error {
            ModelError::ClusterSetting { field, .. } | ModelError::PortZero { field } => {
                field.clone()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        fields,
        [
            format!("clusters[{name}].dns.refresh_rate_ms"),
            format!("clusters[{name}].dns.endpoints[1].hostname"),
            format!("clusters[{name}].dns.endpoints[1].port"),
            format!("clusters[{name}].dns.endpoints[1].weight"),
        ]
    );
}
