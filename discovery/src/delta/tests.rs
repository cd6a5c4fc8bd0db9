use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::json;
use weft_proxy_config::{
    Cluster, ContentHashes, GatewayListener, MODEL_VERSION, OutboundListener, ProxyConfig,
};

use super::*;

/// Names drawn from a small set, so that two random configs share many entries.
const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

fn cluster(name: &str, variant: u8) -> Cluster {
    let endpoints: Vec<_> = (0..variant % 3)
        .map(|i| json!({"address": format!("198.18.0.{}", i + 1), "port": 8080}))
        .collect();
    let lb = ["ROUND_ROBIN", "RANDOM", "LEAST_REQUEST"][usize::from(variant % 3)];
    serde_json::from_value(json!({"name": name, "lb_policy": lb, "endpoints": endpoints})).unwrap()
}

fn listener(name: &str, variant: u8) -> OutboundListener {
    serde_json::from_value(json!({
        "name": name,
        "hostname": format!("{name}.demo.svc.cluster.local"),
        "port": 8000 + u16::from(variant % 4),
        "protocol": "TCP",
        "tcp": [{"clusters": [{"cluster": format!("outbound|8080||{name}"), "weight": variant}]}],
    }))
    .unwrap()
}

fn gateway(name: &str, variant: u8) -> GatewayListener {
    serde_json::from_value(json!({
        "name": name,
        "port": 8000 + u16::from(variant),
        "servers": [{
            "name": format!("demo/gw/{variant}"),
            "protocol": "TCP",
            "hosts": ["*"],
            "tcp_routes": [{"clusters": [{"cluster": "outbound|9000||db"}]}],
        }],
    }))
    .unwrap()
}

fn config(
    outbound: Vec<OutboundListener>,
    clusters: Vec<Cluster>,
    gateways: Vec<GatewayListener>,
) -> ProxyConfig {
    ProxyConfig {
        model_version: MODEL_VERSION.to_owned(),
        version: String::new(),
        node: serde_json::from_value(json!({"id": "sidecar~198.18.0.1~web.demo~demo.svc.cluster.local", "namespace": "demo"})).unwrap(),
        outbound_traffic_policy: Default::default(),
        inbound: Default::default(),
        outbound,
        clusters,
        gateways,
    }
}

/// A section: a random subset of [`NAMES`], each entry in one of four variants, sorted by
/// name, or (one time in four) shuffled.
fn section<T: Named + Clone + std::fmt::Debug + 'static>(
    make: fn(&str, u8) -> T,
) -> impl Strategy<Value = Vec<T>> {
    (
        proptest::collection::btree_map(
            proptest::sample::select(&NAMES[..]),
            0u8..4,
            0..NAMES.len(),
        ),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_flat_map(move |(entries, maybe_shuffle, shuffle)| {
            let sorted: Vec<T> = entries
                .iter()
                .map(|(name, variant)| make(name, *variant))
                .collect();
            if maybe_shuffle && shuffle {
                Just(sorted).prop_shuffle().boxed()
            } else {
                Just(sorted).boxed()
            }
        })
}

fn any_config() -> impl Strategy<Value = ProxyConfig> {
    (
        section(listener),
        section(cluster),
        section(gateway),
        0u8..3,
        0u8..3,
        any::<bool>(),
    )
        .prop_map(
            |(outbound, clusters, gateways, labels, ports, registry_only)| {
                let mut config = config(outbound, clusters, gateways);
                for label in 0..labels {
                    config
                        .node
                        .labels
                        .insert(format!("l{label}"), "v".to_owned());
                }
                config.inbound.ports = (0..ports)
                    .map(|i| serde_json::from_value(json!({"port": 9000 + u16::from(i)})).unwrap())
                    .collect();
                if registry_only {
                    config.outbound_traffic_policy = OutboundTrafficPolicy::RegistryOnly;
                }
                config.with_content_version().unwrap()
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The property the protocol rests on: the delta between two configs, sent as JSON and
    /// applied to the old one, gives exactly the new one (and so its content hash).
    #[test]
    fn applying_the_delta_to_the_old_config_gives_the_new_one(
        old in any_config(),
        new in any_config(),
    ) {
        let delta = ConfigDelta::between(&old, &new).unwrap();
        let wire: ConfigDelta =
            serde_json::from_slice(&serde_json::to_vec(&delta).unwrap()).unwrap();
        prop_assert_eq!(&wire, &delta);
        let mut applied = wire.apply(&old).unwrap();
        applied.version.clone_from(&new.version);
        prop_assert_eq!(&applied, &new);
        prop_assert_eq!(applied.content_hash().unwrap(), new.version);
    }

    /// The client's incremental hashing: the digests `apply_hashed` derives from the old
    /// config's (rehashing only the delta's entries) are those of the new config hashed from
    /// scratch, so its content hash is the new version.
    #[test]
    fn incremental_digests_after_a_delta_are_the_from_scratch_digests(
        old in any_config(),
        new in any_config(),
    ) {
        let delta = ConfigDelta::between(&old, &new).unwrap();
        let old_hashes = ContentHashes::of(&old).unwrap();
        let (applied, hashes) = delta.apply_hashed(&old, &old_hashes).unwrap();
        prop_assert_eq!(&hashes, &ContentHashes::of(&applied).unwrap());
        prop_assert_eq!(&hashes, &ContentHashes::of(&new).unwrap());
        prop_assert_eq!(hashes.content_hash(), new.version);
    }

    /// Two configs have the same version exactly when their content is the same: changing,
    /// adding, removing or reordering any entry, or changing a small section, changes it.
    #[test]
    fn versions_are_equal_exactly_when_contents_are(one in any_config(), two in any_config()) {
        let same_content = ProxyConfig { version: String::new(), ..one.clone() }
            == ProxyConfig { version: String::new(), ..two.clone() };
        prop_assert_eq!(one.version == two.version, same_content);
    }

    /// Changing one entry of a named section (its variant) changes the version.
    #[test]
    fn changing_any_entry_changes_the_version(
        config in any_config(),
        pick in any::<proptest::sample::Index>(),
        section in 0usize..3,
    ) {
        let mut changed = config.clone();
        let rename = |name: &str| format!("{name}-changed");
        match section {
            0 if !changed.outbound.is_empty() => {
                let entry = &mut changed.outbound[pick.index(config.outbound.len())];
                entry.hostname = rename(&entry.hostname);
            }
            1 if !changed.clusters.is_empty() => {
                let entry = &mut changed.clusters[pick.index(config.clusters.len())];
                entry.endpoints.push(serde_json::from_value(
                    json!({"address": "198.18.9.9", "port": 1}),
                ).unwrap());
            }
            2 if !changed.gateways.is_empty() => {
                let entry = &mut changed.gateways[pick.index(config.gateways.len())];
                entry.port = entry.port.wrapping_add(1000);
            }
            _ => changed.node.namespace = rename(&changed.node.namespace),
        }
        prop_assert_ne!(changed.content_hash().unwrap(), config.version);
    }

    /// Only what changed travels: every upserted entry differs from the old entry of its name,
    /// every removed name is gone from the new config, and equal configs give an empty delta.
    #[test]
    fn the_delta_names_only_changed_entries(old in any_config(), new in any_config()) {
        let delta = ConfigDelta::between(&old, &new).unwrap();
        if let Some(SectionDelta::Changed { resources, removed_resources }) = &delta.clusters {
            for entry in resources {
                prop_assert!(old.clusters.iter().all(|c| c != entry));
            }
            for name in removed_resources {
                prop_assert!(new.clusters.iter().all(|c| &c.name != name));
                prop_assert!(old.clusters.iter().any(|c| &c.name == name));
            }
        }
        prop_assert_eq!(delta.node.is_some(), old.node != new.node);
        prop_assert!(ConfigDelta::between(&new, &new).unwrap().is_empty());
    }
}

#[test]
fn sorted_sections_travel_by_name_and_unsorted_ones_whole() {
    let old = config(
        vec![listener("a", 0), listener("b", 0)],
        vec![cluster("a", 0), cluster("b", 0), cluster("c", 0)],
        vec![gateway("z", 0), gateway("y", 0)],
    );
    let new = config(
        vec![listener("a", 0), listener("b", 1)],
        vec![cluster("a", 0), cluster("bb", 1), cluster("c", 2)],
        vec![gateway("z", 0), gateway("y", 1)],
    );
    let delta = ConfigDelta::between(&old, &new).unwrap();
    assert_eq!(
        delta,
        ConfigDelta {
            outbound: Some(SectionDelta::Changed {
                resources: vec![listener("b", 1)],
                removed_resources: vec![],
            }),
            clusters: Some(SectionDelta::Changed {
                resources: vec![cluster("bb", 1), cluster("c", 2)],
                removed_resources: vec!["b".into()],
            }),
            gateways: Some(SectionDelta::Replaced(new.gateways.clone())),
            ..ConfigDelta::default()
        }
    );
    let json = serde_json::to_value(&delta).unwrap();
    assert_eq!(
        json["clusters"]["changed"]["removed_resources"],
        json!(["b"]),
        "Envoy's field names"
    );
    assert!(json["gateways"]["replaced"].is_array());
    assert!(
        json.get("node").is_none(),
        "unchanged sections are left out"
    );
    assert_eq!(delta.apply(&old).unwrap(), new);
}

#[test]
fn no_delta_between_model_versions() {
    let old = config(vec![], vec![cluster("a", 0)], vec![]);
    let mut new = old.clone();
    new.model_version = "weft.proxy-config/v2".into();
    assert_eq!(ConfigDelta::between(&old, &new), None);
}

#[test]
fn a_delta_that_does_not_fit_the_config_is_an_error_naming_the_section() {
    let base = config(vec![], vec![cluster("a", 0), cluster("c", 0)], vec![]);
    let remove = |names: &[&str]| ConfigDelta {
        clusters: Some(SectionDelta::Changed {
            resources: vec![],
            removed_resources: names.iter().map(|name| (*name).to_owned()).collect(),
        }),
        ..ConfigDelta::default()
    };
    assert_eq!(
        remove(&["b"]).apply(&base).unwrap_err(),
        DeltaError::MissingRemoved {
            section: "clusters",
            name: "b".into()
        }
    );
    assert_eq!(
        remove(&["d"]).apply(&base).unwrap_err(),
        DeltaError::MissingRemoved {
            section: "clusters",
            name: "d".into()
        },
        "a name after every entry"
    );
    assert_eq!(
        remove(&["c", "a"]).apply(&base).unwrap_err(),
        DeltaError::UnsortedDelta {
            section: "clusters"
        }
    );
    let both = ConfigDelta {
        clusters: Some(SectionDelta::Changed {
            resources: vec![cluster("a", 1)],
            removed_resources: vec!["a".into()],
        }),
        ..ConfigDelta::default()
    };
    assert_eq!(
        both.apply(&base).unwrap_err(),
        DeltaError::UnsortedDelta {
            section: "clusters"
        }
    );
    let unsorted = config(vec![], vec![cluster("c", 0), cluster("a", 0)], vec![]);
    assert_eq!(
        remove(&["a"]).apply(&unsorted).unwrap_err(),
        DeltaError::UnsortedBase {
            section: "clusters"
        }
    );
    assert_eq!(
        remove(&["a", "c"]).apply(&base).unwrap().clusters,
        vec![],
        "both removed"
    );
}

#[test]
fn small_sections_travel_whole_when_they_change() {
    let old = config(vec![], vec![], vec![]);
    let mut new = old.clone();
    new.node.labels.insert("version".into(), "v2".into());
    new.outbound_traffic_policy = OutboundTrafficPolicy::RegistryOnly;
    let delta = ConfigDelta::between(&old, &new).unwrap();
    assert_eq!(delta.node.as_ref(), Some(&new.node));
    assert_eq!(
        delta.outbound_traffic_policy,
        Some(OutboundTrafficPolicy::RegistryOnly)
    );
    assert_eq!(delta.inbound, None);
    assert_eq!(delta.outbound, None);
    assert_eq!(delta.apply(&old).unwrap(), new);
}
