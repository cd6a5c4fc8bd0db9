//! The JSON of what changed between two scopes' shared sides, for incremental pushes: the
//! scope's fields of weft-discovery's `ConfigDelta`, written from the scopes' cached JSON
//! (entries are compared and copied as bytes, never serialised again), byte for byte what
//! serde writes for the `ConfigDelta` that `ConfigDelta::between` gives for two configs with
//! these sides.
//!
//! A named section sorted by name without duplicates in both scopes (Pilot sorts `outbound`
//! and `clusters`) is written as `{"changed":{"resources":[..],"removed_resources":[..]}}`;
//! any other section that changed as `{"replaced":[..]}` (Envoy's incremental xDS: resources
//! by name, the client keeps the rest).

use std::io::Write;
use std::ops::Range;

use super::ScopeConfig;

/// One named section of a scope as the delta sees it: each entry's name and JSON.
struct Section<'a> {
    names: Vec<&'a str>,
    json: &'a [u8],
    spans: &'a [Range<usize>],
}

impl<'a> Section<'a> {
    fn entry(&self, index: usize) -> &'a [u8] {
        self.spans
            .get(index)
            .and_then(|span| self.json.get(span.clone()))
            .unwrap_or_default()
    }

    fn sorted(&self) -> bool {
        self.names.windows(2).all(|pair| pair[0] < pair[1])
    }

    fn same_as(&self, other: &Section<'_>) -> bool {
        self.names.len() == other.names.len()
            && (0..self.names.len()).all(|index| self.entry(index) == other.entry(index))
    }
}

/// The three named sections of `scope`, with names and JSON, in the config's field order.
fn sections(scope: &ScopeConfig) -> [(&'static str, Section<'_>); 3] {
    let json = &*scope.tail_json;
    [
        (
            "outbound",
            Section {
                names: scope.outbound.iter().map(|l| l.name.as_str()).collect(),
                json,
                spans: &scope.spans.outbound,
            },
        ),
        (
            "clusters",
            Section {
                names: scope
                    .clusters
                    .iter()
                    .map(|c| c.value.name.as_str())
                    .collect(),
                json,
                spans: &scope.spans.clusters,
            },
        ),
        (
            "gateways",
            Section {
                names: scope.gateways.iter().map(|g| g.name.as_str()).collect(),
                json,
                spans: &scope.spans.gateways,
            },
        ),
    ]
}

/// Whether the cached JSON of `scope` has a span for every entry (it has unless
/// serialisation failed, which it cannot for this model).
fn complete(scope: &ScopeConfig) -> bool {
    !scope.tail_json.is_empty()
        && sections(scope)
            .iter()
            .all(|(_, section)| section.names.len() == section.spans.len())
}

/// The scope's fields of the delta from `base` to `new`, comma-separated, then `}` (see
/// [`ScopeConfig::delta_since`]). `None` when either scope lacks its cached JSON.
pub(super) fn scope_delta_json(base: &ScopeConfig, new: &ScopeConfig) -> Option<Vec<u8>> {
    if !complete(base) || !complete(new) {
        return None;
    }
    let mut out = Vec::new();
    if base.outbound_traffic_policy != new.outbound_traffic_policy {
        out.extend_from_slice(br#""outbound_traffic_policy":"#);
        serde_json::to_writer(&mut out, &new.outbound_traffic_policy).ok()?;
    }
    for ((name, old), (_, new)) in sections(base).into_iter().zip(sections(new)) {
        write_section(&mut out, name, &old, &new)?;
    }
    out.push(b'}');
    Some(out)
}

/// Appends `"<name>":<section delta>` (after a comma when `out` has a field already) when the
/// section changed. `None` only when writing a name fails (it cannot).
fn write_section(
    out: &mut Vec<u8>,
    name: &str,
    old: &Section<'_>,
    new: &Section<'_>,
) -> Option<()> {
    if old.same_as(new) {
        return Some(());
    }
    let field = |out: &mut Vec<u8>| {
        if !out.is_empty() {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    if !(old.sorted() && new.sorted()) {
        field(out);
        out.extend_from_slice(br#"{"replaced":["#);
        for index in 0..new.names.len() {
            if index > 0 {
                out.push(b',');
            }
            out.extend_from_slice(new.entry(index));
        }
        out.extend_from_slice(b"]}");
        return Some(());
    }
    let (mut upserted, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.names.len() || j < new.names.len() {
        match (old.names.get(i), new.names.get(j)) {
            (Some(before), Some(after)) if before == after => {
                if old.entry(i) != new.entry(j) {
                    upserted.push(j);
                }
                i += 1;
                j += 1;
            }
            (Some(before), Some(after)) if before > after => {
                upserted.push(j);
                j += 1;
            }
            (Some(before), _) => {
                removed.push(*before);
                i += 1;
            }
            (None, _) => {
                upserted.push(j);
                j += 1;
            }
        }
    }
    field(out);
    out.extend_from_slice(br#"{"changed":{"resources":["#);
    for (count, index) in upserted.into_iter().enumerate() {
        if count > 0 {
            out.push(b',');
        }
        out.extend_from_slice(new.entry(index));
    }
    out.extend_from_slice(br#"],"removed_resources":"#);
    serde_json::to_writer(&mut *out, &removed).ok()?;
    out.write_all(b"}}").ok()
}
