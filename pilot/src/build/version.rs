//! The JSON of a built config and its content version, written from the proxy's own parts
//! and its scope's cached JSON, without assembling the config or serialising the shared side
//! again; the version combines the scope's section digests (hashed once per scope) with the
//! proxy's own (see `weft_proxy_config::ContentHashes` for the rule).

use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use serde::Serialize;
use weft_proxy_config::{
    Cluster, Digest, GatewayListener, InboundConfig, MODEL_VERSION, Node, OutboundListener,
    OutboundTrafficPolicy, SectionDigests,
};

use super::shared::ScopeConfig;
use crate::cache::Cached;

/// The parts of one proxy's config: its own (node, inbound) and its scope's.
pub(super) struct ConfigParts<'a> {
    /// The proxy's node.
    pub node: &'a Node,
    /// The proxy's inbound side.
    pub inbound: &'a InboundConfig,
    /// The scope's shared side.
    pub scope: &'a ScopeConfig,
}

/// The section digests of a scope's shared side (`weft_proxy_config::SectionDigests` of its
/// `outbound_traffic_policy`, `outbound`, `clusters` and `gateways`), computed once per scope.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScopeDigests {
    /// Of the outbound traffic policy.
    pub outbound_traffic_policy: Digest,
    /// Of the outbound listeners.
    pub outbound: Digest,
    /// Of the clusters.
    pub clusters: Digest,
    /// Of the gateway listeners.
    pub gateways: Digest,
}

/// The digests of a scope's shared side: each entry's from its bytes in `tail` (the scope's
/// [`tail_json`], whose `spans` say where each entry lies), or serialised again when there
/// are no bytes for it (`tail` empty: serialisation failed, which it cannot for this model).
///
/// Returns `None` when serialisation fails (it cannot for this model).
pub(super) fn scope_digests(
    policy: OutboundTrafficPolicy,
    outbound: &[OutboundListener],
    clusters: &[Arc<Cached<Cluster>>],
    gateways: &[GatewayListener],
    tail: &[u8],
    spans: &TailSpans,
) -> Option<ScopeDigests> {
    fn section<'e, T: Serialize + 'e>(
        entries: impl ExactSizeIterator<Item = &'e T>,
        tail: &[u8],
        spans: &[Range<usize>],
    ) -> Option<Digest> {
        let from_bytes = entries.len() == spans.len();
        let digests: Option<Vec<Digest>> = entries
            .zip(spans.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(entry, span)| {
                match span
                    .filter(|_| from_bytes)
                    .and_then(|span| tail.get(span.clone()))
                {
                    Some(json) => Some(Digest::of_json_bytes(json)),
                    None => Digest::of_json(entry).ok(),
                }
            })
            .collect();
        Some(Digest::of_list(&digests?))
    }
    Some(ScopeDigests {
        outbound_traffic_policy: Digest::of_json(&policy).ok()?,
        outbound: section(outbound.iter(), tail, &spans.outbound)?,
        clusters: section(clusters.iter().map(|c| &c.value), tail, &spans.clusters)?,
        gateways: section(gateways.iter(), tail, &spans.gateways)?,
    })
}

/// [`weft_proxy_config::ProxyConfig::content_hash`] of the config made of `parts`: the
/// proxy's own sections (`model_version`, `node`, `inbound`) hashed now, the scope's taken
/// from its digests, combined by `weft_proxy_config::SectionDigests::content_hash`. The golden
/// and scope tests check the result against `content_hash` of the assembled config.
///
/// Returns `None` when serialisation fails, which it cannot for this model (every map has
/// string keys).
pub(super) fn content_version(parts: &ConfigParts<'_>) -> Option<String> {
    let scope = parts.scope.digests.as_ref()?;
    let sections = SectionDigests {
        model_version: Digest::of_json(MODEL_VERSION).ok()?,
        node: Digest::of_json(parts.node).ok()?,
        outbound_traffic_policy: scope.outbound_traffic_policy,
        inbound: Digest::of_json(parts.inbound).ok()?,
        outbound: scope.outbound,
        clusters: scope.clusters,
        gateways: scope.gateways,
    };
    Some(sections.content_hash())
}

/// Writes the compact JSON of the config made of `parts` with `version`, byte for byte what
/// `serde_json::to_writer` writes for the assembled `ProxyConfig`: its fields in declaration
/// order (`model_version`, `version`, `node`, `outbound_traffic_policy`, `inbound`, then the
/// scope's cached tail: `outbound`, `clusters`, `gateways` when not empty).
///
/// Errors: a `serde_json::Error` when `out` fails or serialisation fails (it cannot for this
/// model).
pub(super) fn write_config(
    out: &mut dyn Write,
    version: &str,
    parts: &ConfigParts<'_>,
) -> Result<(), serde_json::Error> {
    write_head(out, version, parts)?;
    out.write_all(&parts.scope.tail()?)
        .map_err(serde_json::Error::io)
}

/// Writes the first part of [`write_config`]'s JSON: every field before the scope's tail
/// (`model_version` to `inbound`).
///
/// Errors: as [`write_config`].
pub(super) fn write_head(
    out: &mut dyn Write,
    version: &str,
    parts: &ConfigParts<'_>,
) -> Result<(), serde_json::Error> {
    field(out, true, "model_version")?;
    serde_json::to_writer(&mut *out, MODEL_VERSION)?;
    field(out, false, "version")?;
    serde_json::to_writer(&mut *out, version)?;
    field(out, false, "node")?;
    serde_json::to_writer(&mut *out, parts.node)?;
    field(out, false, "outbound_traffic_policy")?;
    serde_json::to_writer(&mut *out, &parts.scope.outbound_traffic_policy)?;
    field(out, false, "inbound")?;
    serde_json::to_writer(&mut *out, parts.inbound)
}

/// Writes `{"name":` (first field) or `,"name":`.
fn field(out: &mut dyn Write, first: bool, name: &str) -> Result<(), serde_json::Error> {
    out.write_all(if first { b"{\"" } else { b",\"" })
        .and_then(|()| out.write_all(name.as_bytes()))
        .and_then(|()| out.write_all(b"\":"))
        .map_err(serde_json::Error::io)
}

/// Where each entry of a config's tail ([`tail_json`]) lies in its bytes: one range per
/// outbound listener, cluster and gateway listener, in order, each the entry's compact JSON.
#[derive(Debug, Default)]
pub(crate) struct TailSpans {
    /// The outbound listeners' JSON.
    pub outbound: Vec<Range<usize>>,
    /// The clusters' JSON.
    pub clusters: Vec<Range<usize>>,
    /// The gateway listeners' JSON (none when there are none).
    pub gateways: Vec<Range<usize>>,
}

/// The JSON of a config's last fields, as `ProxyConfig` serialises them:
/// `,"outbound":[..],"clusters":[..]`, then `,"gateways":[..]` when there are gateway
/// listeners (skipped when empty), then the closing `}`; with where each entry lies in it.
/// Each listener named as one of `cached_listeners` (sorted by name, as `outbound`) and each
/// cluster is copied from its cached JSON instead of being serialised again.
///
/// Errors: a `serde_json::Error` only if serialisation fails (it cannot for this model).
pub(super) fn tail_json(
    outbound: &[OutboundListener],
    cached_listeners: &[Arc<Cached<OutboundListener>>],
    clusters: &[Arc<Cached<Cluster>>],
    gateways: &[GatewayListener],
) -> Result<(Vec<u8>, TailSpans), serde_json::Error> {
    let mut out = Vec::new();
    let mut spans = TailSpans::default();
    field(&mut out, false, "outbound")?;
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
    write_array(&mut out, listeners, &mut spans.outbound)?;
    field(&mut out, false, "clusters")?;
    write_array(
        &mut out,
        clusters
            .iter()
            .map(|cluster| (&cluster.value, Some(&*cluster.json))),
        &mut spans.clusters,
    )?;
    if !gateways.is_empty() {
        field(&mut out, false, "gateways")?;
        let gateways = gateways.iter().map(|gateway| (gateway, None));
        write_array(&mut out, gateways, &mut spans.gateways)?;
    }
    out.push(b'}');
    Ok((out, spans))
}

/// Writes `[a,b,...]`, each element from its cached JSON when present and non-empty, else
/// serialised (what `serde_json::to_writer` writes for the slice), and records where each
/// element lies in `out`.
fn write_array<'j, T: serde::Serialize + 'j>(
    out: &mut Vec<u8>,
    items: impl Iterator<Item = (&'j T, Option<&'j [u8]>)>,
    spans: &mut Vec<Range<usize>>,
) -> Result<(), serde_json::Error> {
    out.push(b'[');
    for (index, (item, json)) in items.enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let start = out.len();
        match json.filter(|json| !json.is_empty()) {
            Some(json) => out.extend_from_slice(json),
            None => serde_json::to_writer(&mut *out, item)?,
        }
        spans.push(start..out.len());
    }
    out.push(b']');
    Ok(())
}
