//! The content version of a built config, computed without copying it and without
//! re-serialising the clusters the view's cache already holds as JSON.

use std::io::{self, Write};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use weft_proxy_config::ProxyConfig;

use weft_proxy_config::{Cluster, OutboundListener};

use crate::cache::Cached;

/// An [`io::Write`] that feeds every byte into a SHA-256 state instead of a buffer.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`ProxyConfig::content_hash`] of `config`, whose `version` must be empty and whose
/// `clusters` must be those of `clusters`, in order, and whose listeners named as one of
/// `listeners` must be that listener: the hex SHA-256 of the config's compact JSON,
/// streamed into the hash. The JSON is written field by field in `ProxyConfig`'s declaration
/// order, exactly as `serde_json::to_vec(config)` writes it, taking each cluster's bytes from
/// the cache (the clusters are most of a config: ~1 MiB for a proxy seeing 500 services). The
/// golden tests check the result against [`ProxyConfig::content_hash`].
///
/// Returns `None` when serialisation fails, which it cannot for this model (every map has
/// string keys).
pub(super) fn content_version(
    config: &ProxyConfig,
    listeners: &[Arc<Cached<OutboundListener>>],
    clusters: &[Arc<Cached<Cluster>>],
) -> Option<String> {
    debug_assert!(
        config.version.is_empty(),
        "the version is not part of the hash"
    );
    let mut out = io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    write_json(&mut out, config, listeners, clusters).ok()?;
    let HashWriter(state) = out.into_inner().ok()?;
    Some(hex::encode(state.finalize()))
}

fn write_json(
    out: &mut impl Write,
    config: &ProxyConfig,
    cached_listeners: &[Arc<Cached<OutboundListener>>],
    cached_clusters: &[Arc<Cached<Cluster>>],
) -> Result<(), serde_json::Error> {
    // Destructured so that a new field fails to compile here instead of changing the hash.
    let ProxyConfig {
        model_version,
        version,
        node,
        outbound_traffic_policy,
        inbound,
        outbound,
        clusters,
        gateways,
    } = config;
    let field = |out: &mut dyn Write, first: bool, name: &str| {
        out.write_all(if first { b"{\"" } else { b",\"" })
            .and_then(|()| out.write_all(name.as_bytes()))
            .and_then(|()| out.write_all(b"\":"))
            .map_err(serde_json::Error::io)
    };
    field(out, true, "model_version")?;
    serde_json::to_writer(&mut *out, model_version)?;
    field(out, false, "version")?;
    serde_json::to_writer(&mut *out, version)?;
    field(out, false, "node")?;
    serde_json::to_writer(&mut *out, node)?;
    field(out, false, "outbound_traffic_policy")?;
    serde_json::to_writer(&mut *out, outbound_traffic_policy)?;
    field(out, false, "inbound")?;
    serde_json::to_writer(&mut *out, inbound)?;
    field(out, false, "outbound")?;
    // Both lists are sorted by name; a listener's JSON is cached when a cached listener has
    // its name (names are unique: one listener per host and port, or a merged `0.0.0.0_<port>`).
    let mut next = cached_listeners.iter().peekable();
    let listeners = outbound.iter().map(|listener| {
        while next
            .peek()
            .is_some_and(|entry| entry.value.name < listener.name)
        {
            next.next();
        }
        let json = next
            .peek()
            .filter(|entry| entry.value.name == listener.name)
            .map(|entry| &*entry.json);
        (listener, json)
    });
    write_array(out, listeners)?;
    field(out, false, "clusters")?;
    let clusters = clusters.iter().enumerate().map(|(index, cluster)| {
        let json = cached_clusters
            .get(index)
            .filter(|entry| entry.value.name == cluster.name)
            .map(|entry| &*entry.json);
        (cluster, json)
    });
    write_array(out, clusters)?;
    // Skipped when empty, as `ProxyConfig` serialises it.
    if !gateways.is_empty() {
        field(out, false, "gateways")?;
        serde_json::to_writer(&mut *out, gateways)?;
    }
    out.write_all(b"}").map_err(serde_json::Error::io)
}

/// Writes `[a,b,...]`, each element from its cached JSON when present and non-empty, else
/// serialised.
fn write_array<'j, T: serde::Serialize + 'j>(
    out: &mut impl Write,
    items: impl Iterator<Item = (&'j T, Option<&'j [u8]>)>,
) -> Result<(), serde_json::Error> {
    let io = serde_json::Error::io;
    out.write_all(b"[").map_err(io)?;
    for (index, (item, json)) in items.enumerate() {
        if index > 0 {
            out.write_all(b",").map_err(io)?;
        }
        match json.filter(|json| !json.is_empty()) {
            Some(json) => out.write_all(json).map_err(io)?,
            None => serde_json::to_writer(&mut *out, item)?,
        }
    }
    out.write_all(b"]").map_err(io)
}
