use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use super::*;

fn endpoint(last: u8, weight: u32) -> Endpoint {
    Endpoint {
        address: IpAddr::from([10, 0, 0, last]),
        port: 80,
        labels: Default::default(),
        locality: Default::default(),
        weight,
        has_sidecar: false,
        identity: None,
    }
}

fn last_octet(picked: &PickedEndpoint) -> u8 {
    match picked.endpoint().address.ip() {
        IpAddr::V4(v4) => v4.octets()[3],
        IpAddr::V6(_) => 0,
    }
}

#[test]
fn round_robin_follows_weights_exactly() {
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 3)],
        LbPolicy::RoundRobin,
        None,
        None,
    );
    let picks: Vec<u8> = (0..8)
        .map(|_| last_octet(&endpoints.pick(None).unwrap()))
        .collect();
    assert_eq!(picks, [1, 2, 2, 2, 1, 2, 2, 2]);
}

#[test]
fn empty_cluster_has_no_pick() {
    let endpoints = Endpoints::new(&[], LbPolicy::RoundRobin, None, None);
    assert!(endpoints.pick(None).is_none());
}

#[test]
fn exclude_moves_to_another_endpoint() {
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 1)],
        LbPolicy::Random,
        None,
        None,
    );
    let first = SocketAddr::from(([10, 0, 0, 1], 80));
    for _ in 0..50 {
        assert_eq!(last_octet(&endpoints.pick(Some(first)).unwrap()), 2);
    }
}

#[test]
fn least_request_avoids_the_busy_endpoint() {
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 1)],
        LbPolicy::LeastRequest,
        None,
        None,
    );
    // Hold many requests on whichever endpoint comes first.
    let held: Vec<PickedEndpoint> = (0..1).map(|_| endpoints.pick(None).unwrap()).collect();
    let busy = last_octet(&held[0]);
    let mut counts: HashMap<u8, usize> = HashMap::new();
    for _ in 0..200 {
        let picked = endpoints.pick(None).unwrap();
        *counts.entry(last_octet(&picked)).or_default() += 1;
    }
    // With P2C the idle endpoint wins whenever both are sampled (about half the time) and
    // ties go to the first sample, so the busy endpoint gets clearly less than half.
    let busy_count = counts.get(&busy).copied().unwrap_or(0);
    assert!(
        busy_count < 80,
        "busy endpoint picked {busy_count}/200 times"
    );
    drop(held);
    assert!(endpoints.list().iter().all(|e| e.active_requests() == 0));
}

fn outlier(max_ejection_percent: f64) -> OutlierDetection {
    OutlierDetection {
        consecutive_5xx_errors: Some(2),
        consecutive_gateway_errors: None,
        split_external_local_origin_errors: false,
        consecutive_local_origin_failures: None,
        interval_ms: 10_000,
        base_ejection_time_ms: 60_000,
        max_ejection_percent,
        min_health_percent: 0.0,
    }
}

#[test]
fn ejected_endpoint_is_skipped() {
    let policy = outlier(50.0);
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 1)],
        LbPolicy::RoundRobin,
        Some(&policy),
        None,
    );
    let bad = endpoints.pick(None).unwrap();
    assert_eq!(last_octet(&bad), 1);
    bad.report(TryResult::from_status(503));
    bad.report(TryResult::from_status(503));
    drop(bad);
    for _ in 0..10 {
        assert_eq!(last_octet(&endpoints.pick(None).unwrap()), 2);
    }
}

#[test]
fn ejections_respect_the_ceiling_but_allow_one() {
    let policy = outlier(10.0);
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 1), endpoint(3, 1)],
        LbPolicy::RoundRobin,
        Some(&policy),
        None,
    );
    for index in 0..3 {
        for _ in 0..2 {
            endpoints.report(index, TryResult::LOCAL_ERROR);
        }
    }
    let now = endpoints.now_ms();
    let ejected: Vec<bool> = endpoints
        .list()
        .iter()
        .map(|endpoint| endpoint.outlier.is_ejected(now))
        .collect();
    assert_eq!(ejected, [true, false, false]);
}

#[test]
fn successes_reset_the_count() {
    let policy = outlier(100.0);
    let endpoints = Endpoints::new(
        &[endpoint(1, 1), endpoint(2, 1)],
        LbPolicy::RoundRobin,
        Some(&policy),
        None,
    );
    endpoints.report(0, TryResult::from_status(500));
    endpoints.report(0, TryResult::Success);
    endpoints.report(0, TryResult::from_status(500));
    assert!(!endpoints.list()[0].outlier.is_ejected(endpoints.now_ms()));
}

fn located(last: u8, region: &str, zone: &str) -> Endpoint {
    Endpoint {
        locality: Locality {
            region: region.into(),
            zone: zone.into(),
            sub_zone: String::new(),
        },
        ..endpoint(last, 1)
    }
}

#[test]
fn locality_failover_prefers_the_closest_healthy_level() {
    let own = Locality {
        region: "r1".into(),
        zone: "z1".into(),
        sub_zone: String::new(),
    };
    let policy = outlier(100.0);
    let endpoints = Endpoints::new(
        &[
            located(3, "r2", "z9"),
            located(2, "r1", "z2"),
            located(1, "r1", "z1"),
        ],
        LbPolicy::RoundRobin,
        Some(&policy),
        Some(&own),
    );
    let picks = |endpoints: &Arc<Endpoints>| -> Vec<u8> {
        (0..4)
            .map(|_| last_octet(&endpoints.pick(None).unwrap()))
            .collect()
    };
    assert_eq!(picks(&endpoints), [1, 1, 1, 1]);
    // Endpoint order in the list is by priority: same zone, same region, elsewhere.
    endpoints.report(0, TryResult::LOCAL_ERROR);
    endpoints.report(0, TryResult::LOCAL_ERROR);
    assert_eq!(picks(&endpoints), [2, 2, 2, 2]);
    endpoints.report(1, TryResult::LOCAL_ERROR);
    endpoints.report(1, TryResult::LOCAL_ERROR);
    assert_eq!(picks(&endpoints), [3, 3, 3, 3]);
}

#[test]
fn without_locality_all_endpoints_share_one_level() {
    let endpoints = Endpoints::new(
        &[located(1, "r1", "z1"), located(2, "r2", "z2")],
        LbPolicy::RoundRobin,
        None,
        None,
    );
    let picks: Vec<u8> = (0..4)
        .map(|_| last_octet(&endpoints.pick(None).unwrap()))
        .collect();
    assert_eq!(picks, [1, 2, 1, 2]);
}

fn hashed(outlier: Option<&OutlierDetection>) -> Arc<Endpoints> {
    let policy = ConsistentHashPolicy {
        key: HashKey::Header(http::HeaderName::from_static("x-user")),
        algorithm: consistent_hash::HashAlgorithm::default(),
    };
    Endpoints::new_hashed(
        &[endpoint(1, 1), endpoint(2, 1), endpoint(3, 1)],
        LbPolicy::RoundRobin,
        outlier,
        None,
        Some(&policy),
    )
}

#[test]
fn consistent_hash_sticks_to_one_endpoint_per_key_and_spreads_keys() {
    let endpoints = hashed(None);
    let mut owners = std::collections::BTreeSet::new();
    for user in 0..30 {
        let parts = http::Request::get("/")
            .header("x-user", format!("user-{user}"))
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let hash = endpoints.request_hash(&parts, None);
        assert!(hash.is_some());
        let first = last_octet(&endpoints.pick_hashed(None, hash).unwrap());
        for _ in 0..5 {
            assert_eq!(
                last_octet(&endpoints.pick_hashed(None, hash).unwrap()),
                first
            );
        }
        owners.insert(first);
    }
    assert_eq!(owners.len(), 3, "30 keys should reach all 3 endpoints");
    // Without a key the cluster's own policy (round robin here) applies.
    let picks: Vec<u8> = (0..3)
        .map(|_| last_octet(&endpoints.pick_hashed(None, None).unwrap()))
        .collect();
    assert_eq!(picks, [1, 2, 3]);
}

#[test]
fn consistent_hash_moves_off_excluded_and_ejected_endpoints() {
    let policy = outlier(100.0);
    let endpoints = hashed(Some(&policy));
    let hash = Some(7);
    let owner = endpoints.pick_hashed(None, hash).unwrap();
    let (owner_octet, owner_address) = (last_octet(&owner), owner.endpoint().address);
    drop(owner);
    let retry = endpoints.pick_hashed(Some(owner_address), hash).unwrap();
    assert_ne!(last_octet(&retry), owner_octet);
    let index = endpoints
        .list()
        .iter()
        .position(|e| e.address == owner_address)
        .unwrap();
    endpoints.report(index, TryResult::from_status(500));
    endpoints.report(index, TryResult::from_status(500));
    let moved = last_octet(&endpoints.pick_hashed(None, hash).unwrap());
    assert_ne!(moved, owner_octet, "an ejected endpoint loses its keys");
    assert_eq!(
        last_octet(&endpoints.pick_hashed(None, hash).unwrap()),
        moved
    );
}

#[test]
fn source_hash_applies_only_to_use_source_ip() {
    let by_header = hashed(None);
    let source: IpAddr = "198.18.0.9".parse().unwrap();
    assert_eq!(by_header.source_hash(source), None);
    let by_source = Endpoints::new_hashed(
        &[endpoint(1, 1), endpoint(2, 1)],
        LbPolicy::RoundRobin,
        None,
        None,
        Some(&ConsistentHashPolicy {
            key: HashKey::SourceIp,
            algorithm: consistent_hash::HashAlgorithm::Maglev {
                table_size: consistent_hash::DEFAULT_MAGLEV_TABLE_SIZE,
            },
        }),
    );
    let hash = by_source.source_hash(source);
    assert!(hash.is_some());
    let first = last_octet(&by_source.pick_hashed(None, hash).unwrap());
    assert_eq!(
        last_octet(&by_source.pick_hashed(None, hash).unwrap()),
        first
    );
}

#[test]
fn picked_endpoint_counts_as_active_until_dropped() {
    let endpoints = Endpoints::new(&[endpoint(1, 1)], LbPolicy::RoundRobin, None, None);
    let picked = endpoints.pick(None).unwrap();
    assert_eq!(endpoints.list()[0].active_requests(), 1);
    drop(picked);
    assert_eq!(endpoints.list()[0].active_requests(), 0);
}

fn zoned(last: u8, zone: &str) -> Endpoint {
    located(last, "r1", zone)
}

fn share(counts: &HashMap<u8, usize>, octets: &[u8], picks: usize) -> f64 {
    octets
        .iter()
        .map(|octet| counts.get(octet).copied().unwrap_or(0))
        .sum::<usize>() as f64
        / picks as f64
}

fn pick_counts(endpoints: &Arc<Endpoints>, picks: usize) -> HashMap<u8, usize> {
    let mut counts: HashMap<u8, usize> = HashMap::new();
    for _ in 0..picks {
        *counts
            .entry(last_octet(&endpoints.pick(None).unwrap()))
            .or_default() += 1;
    }
    counts
}

#[test]
fn partial_ejection_spills_over_by_envoys_priority_load() {
    // Level 0 holds two endpoints; with one ejected its health is 1.4 × 50 % = 70 %, so 30 %
    // of the picks go to level 1 (Envoy's overprovisioning factor), not all or nothing.
    let own = Locality {
        region: "r1".into(),
        zone: "z1".into(),
        sub_zone: String::new(),
    };
    let policy = outlier(100.0);
    let endpoints = Endpoints::new(
        &[zoned(1, "z1"), zoned(2, "z1"), zoned(3, "z2")],
        LbPolicy::RoundRobin,
        Some(&policy),
        Some(&own),
    );
    assert_eq!(share(&pick_counts(&endpoints, 200), &[1, 2], 200), 1.0);
    endpoints.report(0, TryResult::LOCAL_ERROR);
    endpoints.report(0, TryResult::LOCAL_ERROR);
    let counts = pick_counts(&endpoints, 4000);
    assert_eq!(counts.get(&1), None, "the ejected endpoint gets nothing");
    let spilled = share(&counts, &[3], 4000);
    assert!(
        (0.25..0.35).contains(&spilled),
        "about 30 % should spill to the next level, got {spilled}"
    );
}

#[test]
fn distribute_splits_by_locality_weight_without_outlier_detection() {
    let own = Locality {
        region: "r1".into(),
        zone: "z1".into(),
        sub_zone: String::new(),
    };
    let labels = BTreeMap::new();
    let setting = LocalityLbSetting {
        distribute: vec![weft_proxy_config::LocalityDistribute {
            from: "r1/z1".into(),
            to: [("r1/z1".to_string(), 75), ("r1/z2".to_string(), 25)].into(),
        }],
        ..Default::default()
    };
    // z1 has two endpoints, z2 one, r2 one (not named: no traffic).
    let endpoints = Endpoints::build(
        &[
            zoned(1, "z1"),
            zoned(2, "z1"),
            zoned(3, "z2"),
            located(4, "r2", "z1"),
        ],
        BalancerSettings {
            policy: LbPolicy::RoundRobin,
            origin: Some(locality::Origin {
                locality: &own,
                labels: &labels,
            }),
            locality_lb: Some(&setting),
            ..Default::default()
        },
    );
    assert_eq!(endpoints.list().len(), 3, "r2's endpoint is removed");
    let counts = pick_counts(&endpoints, 4000);
    let z2 = share(&counts, &[3], 4000);
    assert!(
        (0.21..0.29).contains(&z2),
        "z2 should get about 25 %, got {z2}"
    );
    // Within z1 round robin alternates the two endpoints.
    let (one, two) = (counts[&1] as f64, counts[&2] as f64);
    assert!((one / two - 1.0).abs() < 0.2, "z1 split {one}/{two}");
}

#[test]
fn warmup_gives_a_new_endpoint_its_minimum_share_then_full_weight() {
    let warmup = Warmup {
        duration_ms: 600_000,
        minimum_percent: 10.0,
        aggression: 1.0,
    };
    let settings = |previous| BalancerSettings {
        policy: LbPolicy::RoundRobin,
        warmup: Some(&warmup),
        previous,
        ..Default::default()
    };
    let old = Endpoints::build(&[endpoint(1, 1)], settings(None));
    // Pretend endpoint 1 joined long ago; endpoint 2 joins now.
    let mut aged = Endpoints::build(&[endpoint(1, 1)], settings(None));
    if let Some(state) = Arc::get_mut(&mut aged) {
        state.list[0].joined = Instant::now() - std::time::Duration::from_secs(3_600);
    }
    let endpoints = Endpoints::build(&[endpoint(1, 1), endpoint(2, 1)], settings(Some(&aged)));
    assert!(endpoints.list()[0].joined < endpoints.list()[1].joined);
    let counts = pick_counts(&endpoints, 4000);
    let new_share = share(&counts, &[2], 4000);
    // Weight 1 × 10 % against 1: 0.1 / 1.1 ≈ 9 %.
    assert!(
        (0.06..0.12).contains(&new_share),
        "a new endpoint should get about 9 %, got {new_share}"
    );
    // Endpoints that joined together warm up together: an even split.
    let together = pick_counts(
        &Endpoints::build(&[endpoint(1, 1), endpoint(2, 1)], settings(Some(&old))),
        4000,
    );
    let even = share(&together, &[2], 4000);
    assert!((0.45..0.55).contains(&even), "got {even}");
    // RANDOM does not use slow start (Istio's rule): plain weights.
    let random = Endpoints::build(
        &[endpoint(1, 1), endpoint(2, 1)],
        BalancerSettings {
            policy: LbPolicy::Random,
            warmup: Some(&warmup),
            previous: Some(&aged),
            ..Default::default()
        },
    );
    assert!(random.warmup.is_none());
}
