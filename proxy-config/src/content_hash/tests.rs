use sha2::{Digest as _, Sha256};

use super::*;
use crate::{Cluster, OutboundListener};

const SAMPLE: &str = include_str!("../../testdata/bookinfo-productpage.yaml");

fn sample() -> ProxyConfig {
    ProxyConfig::from_yaml(SAMPLE).unwrap()
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The rule of the module's documentation, written out with `sha2` and `serde_json::to_vec`
/// alone.
fn by_the_rule(config: &ProxyConfig) -> String {
    fn whole<T: Serialize>(value: &T) -> [u8; 32] {
        sha(&serde_json::to_vec(value).unwrap())
    }
    fn list<T: Serialize>(entries: &[T]) -> [u8; 32] {
        let mut input = (entries.len() as u64).to_le_bytes().to_vec();
        for entry in entries {
            input.extend_from_slice(&whole(entry));
        }
        sha(&input)
    }
    let mut input = RULE.to_vec();
    for digest in [
        whole(&config.model_version),
        whole(&config.node),
        whole(&config.outbound_traffic_policy),
        whole(&config.inbound),
        list(&config.outbound),
        list(&config.clusters),
        list(&config.gateways),
    ] {
        input.extend_from_slice(&digest);
    }
    hex::encode(sha(&input))
}

#[test]
fn the_content_hash_follows_the_rule_and_ignores_version() {
    let mut config = sample();
    assert!(!config.outbound.is_empty() && !config.clusters.is_empty());
    let expected = by_the_rule(&config);
    assert_eq!(config.content_hash().unwrap(), expected);
    config.version = "any".into();
    assert_eq!(config.content_hash().unwrap(), expected);
    // Not the SHA-256 of the whole JSON (the rule before), so old and new versions never meet.
    config.version.clear();
    let whole = hex::encode(sha(&serde_json::to_vec(&config).unwrap()));
    assert_ne!(expected, whole);
}

#[test]
fn streamed_digests_are_the_digests_of_the_json_bytes() {
    let config = sample();
    // Values below, around and far above the writer's buffer.
    let mut big = config.clusters[0].clone();
    big.name = "x".repeat(3 * BUFFER + 7);
    let mut edge = config.clusters[0].clone();
    let small = serde_json::to_vec(&edge).unwrap().len();
    edge.name.push_str(&"y".repeat(BUFFER - small));
    assert_eq!(serde_json::to_vec(&edge).unwrap().len(), BUFFER);
    for value in [&config.clusters[0], &big, &edge] {
        let json = serde_json::to_vec(value).unwrap();
        assert_eq!(
            Digest::of_json(value).unwrap(),
            Digest::of_json_bytes(&json)
        );
        assert_eq!(Digest::of_json_bytes(&json).as_bytes(), &sha(&json));
    }
    let whole = serde_json::to_vec(&config).unwrap();
    assert!(whole.len() > BUFFER);
    assert_eq!(
        Digest::of_json(&config).unwrap(),
        Digest::of_json_bytes(&whole)
    );
}

#[test]
fn entry_hashes_give_the_content_hash() {
    let config = sample();
    let hashes = ContentHashes::of(&config).unwrap();
    assert_eq!(hashes.outbound.len(), config.outbound.len());
    assert_eq!(hashes.clusters.len(), config.clusters.len());
    assert_eq!(hashes.clusters, entry_digests(&config.clusters).unwrap());
    assert_eq!(hashes.content_hash(), config.content_hash().unwrap());
    assert_eq!(hashes.sections().content_hash(), hashes.content_hash());
}

#[test]
fn changing_reordering_adding_or_removing_an_entry_changes_the_hash() {
    let config = sample();
    let hash = config.content_hash().unwrap();
    let mut changed = config.clone();
    changed.clusters[1].connection_pool.tcp.connect_timeout_ms += 1;
    assert_ne!(changed.content_hash().unwrap(), hash, "changed cluster");
    let mut swapped = config.clone();
    swapped.clusters.swap(0, 1);
    assert_ne!(swapped.content_hash().unwrap(), hash, "reordered clusters");
    let mut dropped = config.clone();
    dropped.clusters.pop();
    assert_ne!(dropped.content_hash().unwrap(), hash, "removed cluster");
    let mut added = config.clone();
    let last: Cluster = added.clusters[0].clone();
    added.clusters.push(last);
    assert_ne!(added.content_hash().unwrap(), hash, "duplicated cluster");
    let mut moved = config.clone();
    let listener: OutboundListener = moved.outbound.remove(0);
    moved.outbound.push(listener);
    assert!(config.outbound.len() > 1);
    let back = moved;
    assert_ne!(
        back.content_hash().unwrap(),
        hash,
        "listener moved within its section"
    );
}
