use std::collections::BTreeMap;
use std::net::IpAddr;

use weft_proxy_config::{LocalityDistribute, LocalityFailover};

use super::*;

fn at(region: &str, zone: &str, sub_zone: &str) -> Locality {
    Locality {
        region: region.into(),
        zone: zone.into(),
        sub_zone: sub_zone.into(),
    }
}

fn endpoint(last: u8, locality: Locality, labels: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        address: IpAddr::from([10, 0, 0, last]),
        port: 80,
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        locality,
        weight: 1,
        has_sidecar: false,
        identity: None,
    }
}

fn priorities(placements: &[Option<Placement>]) -> Vec<Option<u32>> {
    placements
        .iter()
        .map(|placement| placement.as_ref().map(|p| p.priority))
        .collect()
}

fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[test]
fn default_failover_orders_by_sub_zone_zone_region_and_renumbers() {
    let own = at("r1", "z1", "s1");
    let labels = no_labels();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let endpoints = [
        endpoint(1, at("r1", "z1", "s1"), &[]),
        endpoint(2, at("r1", "z1", "s2"), &[]),
        endpoint(3, at("r2", "z9", ""), &[]),
        endpoint(4, at("r1", "z2", "s1"), &[]),
    ];
    assert_eq!(
        priorities(&plan(origin, None, &endpoints, true)),
        [Some(0), Some(1), Some(3), Some(2)]
    );
    // Without the sub-zone level, the levels close up: region r2 becomes 2.
    let endpoints = [
        endpoint(1, at("r1", "z1", "s1"), &[]),
        endpoint(3, at("r2", "z9", ""), &[]),
        endpoint(4, at("r1", "z2", ""), &[]),
    ];
    assert_eq!(
        priorities(&plan(origin, None, &endpoints, true)),
        [Some(0), Some(2), Some(1)]
    );
}

#[test]
fn failover_needs_outlier_detection_a_known_region_and_enabled() {
    let own = at("r1", "z1", "");
    let labels = no_labels();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let endpoints = [
        endpoint(1, at("r1", "z1", ""), &[]),
        endpoint(2, at("r2", "z1", ""), &[]),
    ];
    assert_eq!(
        priorities(&plan(origin, None, &endpoints, false)),
        [Some(0), Some(0)]
    );
    let disabled = LocalityLbSetting {
        enabled: false,
        ..Default::default()
    };
    assert_eq!(
        priorities(&plan(origin, Some(&disabled), &endpoints, true)),
        [Some(0), Some(0)]
    );
    let nowhere = Locality::default();
    let unknown = Origin {
        locality: &nowhere,
        labels: &labels,
    };
    assert_eq!(
        priorities(&plan(unknown, None, &endpoints, true)),
        [Some(0), Some(0)]
    );
}

#[test]
fn failover_rule_puts_its_target_region_before_other_regions() {
    let own = at("us-east", "z1", "");
    let labels = no_labels();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let setting = LocalityLbSetting {
        failover: vec![LocalityFailover {
            from: "us-east".into(),
            to: "eu-west".into(),
        }],
        ..Default::default()
    };
    let endpoints = [
        endpoint(1, at("ap-south", "z1", ""), &[]),
        endpoint(2, at("eu-west", "z1", ""), &[]),
        endpoint(3, at("us-east", "z2", ""), &[]),
    ];
    assert_eq!(
        priorities(&plan(origin, Some(&setting), &endpoints, true)),
        [Some(2), Some(1), Some(0)]
    );
    // A rule for another source region changes nothing for this proxy.
    let other = LocalityLbSetting {
        failover: vec![LocalityFailover {
            from: "ap-south".into(),
            to: "eu-west".into(),
        }],
        ..Default::default()
    };
    assert_eq!(
        priorities(&plan(origin, Some(&other), &endpoints, true)),
        [Some(1), Some(1), Some(0)]
    );
}

#[test]
fn failover_priority_ranks_by_leading_matching_labels() {
    let own = at("r1", "z1", "");
    let labels: BTreeMap<String, String> = [("network", "n1"), ("tier", "gold")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let setting = LocalityLbSetting {
        failover_priority: vec!["network".into(), "topology.kubernetes.io/zone".into()],
        ..Default::default()
    };
    let endpoints = [
        endpoint(1, at("r1", "z1", ""), &[("network", "n1")]),
        endpoint(2, at("r1", "z2", ""), &[("network", "n1")]),
        endpoint(3, at("r1", "z1", ""), &[("network", "n2")]),
        // An explicit topology label wins over the locality.
        endpoint(
            4,
            at("r9", "z9", ""),
            &[("network", "n1"), ("topology.kubernetes.io/zone", "z1")],
        ),
    ];
    assert_eq!(
        priorities(&plan(origin, Some(&setting), &endpoints, true)),
        [Some(0), Some(1), Some(2), Some(0)]
    );
    // `key=value` compares with the value instead of the proxy's label.
    let overridden = LocalityLbSetting {
        failover_priority: vec!["network=n2".into()],
        ..Default::default()
    };
    assert_eq!(
        priorities(&plan(origin, Some(&overridden), &endpoints, true)),
        [Some(1), Some(1), Some(0), Some(1)]
    );
}

#[test]
fn failover_priority_with_failover_orders_by_labels_then_locality() {
    let own = at("r1", "z1", "");
    let labels: BTreeMap<String, String> = [("network".to_string(), "n1".to_string())].into();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let setting = LocalityLbSetting {
        failover_priority: vec!["network".into()],
        failover: vec![LocalityFailover {
            from: "r1".into(),
            to: "r2".into(),
        }],
        ..Default::default()
    };
    let endpoints = [
        endpoint(1, at("r2", "z1", ""), &[("network", "n1")]),
        endpoint(2, at("r1", "z1", ""), &[("network", "n1")]),
        endpoint(3, at("r1", "z1", ""), &[("network", "n2")]),
        endpoint(4, at("r3", "z1", ""), &[("network", "n1")]),
    ];
    // Raw priorities 3, 0, 5, 4 renumbered.
    assert_eq!(
        priorities(&plan(origin, Some(&setting), &endpoints, true)),
        [Some(1), Some(0), Some(3), Some(2)]
    );
}

#[test]
fn distribute_weights_named_localities_and_removes_the_rest() {
    let own = at("r1", "z1", "");
    let labels = no_labels();
    let origin = Origin {
        locality: &own,
        labels: &labels,
    };
    let setting = LocalityLbSetting {
        distribute: vec![LocalityDistribute {
            from: "r1/z1/*".into(),
            to: [("r1/z1/*".to_string(), 80), ("r1/z2/*".to_string(), 20)].into(),
        }],
        ..Default::default()
    };
    let endpoints = [
        endpoint(1, at("r1", "z1", ""), &[]),
        endpoint(2, at("r1", "z1", ""), &[]),
        endpoint(3, at("r1", "z2", ""), &[]),
        endpoint(4, at("r2", "z1", ""), &[]),
    ];
    let placements = plan(origin, Some(&setting), &endpoints, false);
    let weights: Vec<Option<u64>> = placements
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| p.locality_weight.as_ref().map(|w| w.1))
        })
        .collect();
    assert_eq!(weights, [Some(80), Some(80), Some(20), None]);
    assert!(placements[3].is_none(), "r2 is not named: no traffic");
    // A wildcard spreads its weight over the localities it matches by their own weight.
    let spread = LocalityLbSetting {
        distribute: vec![LocalityDistribute {
            from: "r1".into(),
            to: [("r1/*".to_string(), 100)].into(),
        }],
        ..Default::default()
    };
    let weights: Vec<Option<u64>> = plan(origin, Some(&spread), &endpoints, false)
        .iter()
        .map(|p| {
            p.as_ref()
                .and_then(|p| p.locality_weight.as_ref().map(|w| w.1))
        })
        .collect();
    // z1 has own weight 2, z2 1: ceil(2 × 100 / 3) = 67, ceil(1 × 100 / 3) = 34.
    assert_eq!(weights, [Some(67), Some(67), Some(34), None]);
    // No rule for the proxy's locality: unchanged, no locality weights.
    let elsewhere = at("r2", "z1", "");
    let from_r2 = Origin {
        locality: &elsewhere,
        labels: &labels,
    };
    let placements = plan(from_r2, Some(&setting), &endpoints, false);
    assert!(
        placements
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.locality_weight.is_none()))
    );
}

#[test]
fn priority_loads_follow_envoys_overprovisioning() {
    // All healthy: everything to the first level.
    assert_eq!(priority_loads(&[(2, 2), (2, 2)]), [100.0, 0.0]);
    // Half healthy: 1.4 × 50 = 70 % stays, 30 % spills over.
    let loads = priority_loads(&[(1, 2), (2, 2)]);
    assert!((loads[0] - 70.0).abs() < 1e-9 && (loads[1] - 30.0).abs() < 1e-9);
    // Nothing healthy in the first level: all to the next.
    assert_eq!(priority_loads(&[(0, 1), (1, 1)]), [0.0, 100.0]);
    // 3 of 4 healthy is above 1/1.4: still all local.
    assert_eq!(priority_loads(&[(3, 4), (1, 1)]), [100.0, 0.0]);
    // Too little health overall: scaled up to 100 (Envoy's normalized total health).
    let loads = priority_loads(&[(1, 10), (1, 10)]);
    assert!((loads[0] - 50.0).abs() < 1e-9 && (loads[1] - 50.0).abs() < 1e-9);
    // Nothing healthy anywhere: the first level.
    assert_eq!(priority_loads(&[(0, 1), (0, 1)]), [100.0, 0.0]);
}

#[test]
fn availability_is_capped_at_one() {
    assert_eq!(availability(0, 3), 0.0);
    assert!((availability(1, 2) - 0.7).abs() < 1e-9);
    assert_eq!(availability(3, 4), 1.0);
    assert_eq!(availability(0, 0), 0.0);
}
