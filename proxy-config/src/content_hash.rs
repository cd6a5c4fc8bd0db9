//! The content hash of a config (its `version`): a hash of per-section and per-entry hashes,
//! so that whoever holds the hashes of a config's entries can compute the hash of a config
//! that differs in a few entries by hashing only those.
//!
//! The rule (one implementation, used by [`crate::ProxyConfig::content_hash`], by Pilot, which
//! hashes the entries a scope shares once per scope, and by the discovery client, which
//! rehashes only the entries a delta push changed):
//!
//! 1. every section of the config — each `ProxyConfig` field but `version`, in declaration
//!    order — has a digest ([`SectionDigests`]):
//!    - `model_version`, `node`, `outbound_traffic_policy` and `inbound` (small or unnamed):
//!      the SHA-256 of the field's compact JSON ([`Digest::of_json`]);
//!    - the named sections `outbound`, `clusters` and `gateways`: the digest of the list of
//!      their entries' digests, in order ([`Digest::of_list`]), each entry's digest being the
//!      SHA-256 of its compact JSON (which starts with its name);
//! 2. the content hash is the lowercase hex SHA-256 of [`RULE`] followed by the seven
//!    section digests in that order ([`SectionDigests::content_hash`]).
//!
//! Compact JSON is what `serde_json::to_writer` writes: struct fields in declaration order and
//! every map a `BTreeMap`, so the hash is a function of the content alone (equal configs give
//! equal hashes, whatever the key order of the text they were read from), and SHA-256 makes
//! any change of content give another hash. Order inside a section is content: a proxy tries
//! listeners and routes in order.

use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::ProxyConfig;

/// What the content hash's input starts with: the name of this rule, so that a config hashed
/// by another rule (the SHA-256 of the whole JSON before it) never shares its versions.
pub const RULE: &[u8] = b"weft.proxy-config/content-hash/v2\n";

/// A SHA-256 digest: of an entry's or a section's compact JSON, or of a list of digests.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The SHA-256 of `json`, the compact JSON of an entry or section exactly as
    /// `serde_json::to_vec` writes it (Pilot hashes the JSON it caches with this). Equal to
    /// [`Digest::of_json`] of the value the bytes encode.
    pub fn of_json_bytes(json: &[u8]) -> Self {
        Self(Sha256::digest(json).into())
    }

    /// The SHA-256 of `value`'s compact JSON, streamed into the hash (no buffer of the JSON).
    ///
    /// Errors: the `serde_json::Error` serialisation gives, which it cannot for this model
    /// (every map has string keys).
    pub fn of_json<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        let mut out = HashWriter::new();
        serde_json::to_writer(&mut out, value)?;
        Ok(out.finish())
    }

    /// The digest of a named section: SHA-256 of the number of entries (8 bytes,
    /// little-endian) followed by each entry's digest, in order.
    pub fn of_list(entries: &[Digest]) -> Self {
        let mut state = Sha256::new();
        state.update((entries.len() as u64).to_le_bytes());
        for entry in entries {
            state.update(entry.0);
        }
        Self(state.finalize().into())
    }

    /// The digest's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// The digests of a config's sections (see the module's rule), from which its content hash is
/// combined. One field per `ProxyConfig` field but `version`, in the same order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SectionDigests {
    /// [`Digest::of_json`] of `model_version`.
    pub model_version: Digest,
    /// [`Digest::of_json`] of `node`.
    pub node: Digest,
    /// [`Digest::of_json`] of `outbound_traffic_policy`.
    pub outbound_traffic_policy: Digest,
    /// [`Digest::of_json`] of `inbound`.
    pub inbound: Digest,
    /// [`Digest::of_list`] of the outbound listeners' digests.
    pub outbound: Digest,
    /// [`Digest::of_list`] of the clusters' digests.
    pub clusters: Digest,
    /// [`Digest::of_list`] of the gateway listeners' digests (of none for a sidecar).
    pub gateways: Digest,
}

impl SectionDigests {
    /// The content hash: lowercase hex (64 characters) SHA-256 of [`RULE`] followed by the
    /// seven digests in field order.
    pub fn content_hash(&self) -> String {
        // Destructured so that a new section fails to compile here until it is hashed.
        let Self {
            model_version,
            node,
            outbound_traffic_policy,
            inbound,
            outbound,
            clusters,
            gateways,
        } = self;
        let mut state = Sha256::new();
        state.update(RULE);
        for digest in [
            model_version,
            node,
            outbound_traffic_policy,
            inbound,
            outbound,
            clusters,
            gateways,
        ] {
            state.update(digest.0);
        }
        hex::encode(state.finalize())
    }
}

/// Every digest of one config: its small sections' and each entry's of its named sections
/// (one per entry, in the entries' order). Whoever keeps these for a config can compute the
/// content hash of a changed config by rehashing only the entries that changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentHashes {
    /// [`Digest::of_json`] of `model_version`.
    pub model_version: Digest,
    /// [`Digest::of_json`] of `node`.
    pub node: Digest,
    /// [`Digest::of_json`] of `outbound_traffic_policy`.
    pub outbound_traffic_policy: Digest,
    /// [`Digest::of_json`] of `inbound`.
    pub inbound: Digest,
    /// [`Digest::of_json`] of each outbound listener.
    pub outbound: Vec<Digest>,
    /// [`Digest::of_json`] of each cluster.
    pub clusters: Vec<Digest>,
    /// [`Digest::of_json`] of each gateway listener.
    pub gateways: Vec<Digest>,
}

impl ContentHashes {
    /// Hashes every section and entry of `config` (its `version` is not read): about one
    /// SHA-256 pass over the config's JSON.
    ///
    /// Errors: as [`Digest::of_json`].
    pub fn of(config: &ProxyConfig) -> Result<Self, serde_json::Error> {
        // Destructured so that a new `ProxyConfig` field fails to compile here until it is
        // part of the hash.
        let ProxyConfig {
            model_version,
            version: _,
            node,
            outbound_traffic_policy,
            inbound,
            outbound,
            clusters,
            gateways,
        } = config;
        Ok(Self {
            model_version: Digest::of_json(model_version)?,
            node: Digest::of_json(node)?,
            outbound_traffic_policy: Digest::of_json(outbound_traffic_policy)?,
            inbound: Digest::of_json(inbound)?,
            outbound: entry_digests(outbound)?,
            clusters: entry_digests(clusters)?,
            gateways: entry_digests(gateways)?,
        })
    }

    /// The section digests these entry digests give.
    pub fn sections(&self) -> SectionDigests {
        SectionDigests {
            model_version: self.model_version,
            node: self.node,
            outbound_traffic_policy: self.outbound_traffic_policy,
            inbound: self.inbound,
            outbound: Digest::of_list(&self.outbound),
            clusters: Digest::of_list(&self.clusters),
            gateways: Digest::of_list(&self.gateways),
        }
    }

    /// The content hash of the config these digests are of ([`SectionDigests::content_hash`]).
    pub fn content_hash(&self) -> String {
        self.sections().content_hash()
    }
}

/// [`Digest::of_json`] of each entry, in order.
///
/// Errors: as [`Digest::of_json`].
pub fn entry_digests<T: Serialize>(entries: &[T]) -> Result<Vec<Digest>, serde_json::Error> {
    entries.iter().map(Digest::of_json).collect()
}

/// Bytes gathered before they go into the hash: `serde_json` writes many short pieces.
const BUFFER: usize = 4096;

/// An [`io::Write`] that feeds every byte into a SHA-256 state, through a buffer on the stack.
struct HashWriter {
    state: Sha256,
    buffer: [u8; BUFFER],
    len: usize,
}

impl HashWriter {
    fn new() -> Self {
        Self {
            state: Sha256::new(),
            buffer: [0; BUFFER],
            len: 0,
        }
    }

    fn finish(mut self) -> Digest {
        self.state.update(&self.buffer[..self.len]);
        Digest(self.state.finalize().into())
    }
}

impl Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if bytes.len() > BUFFER - self.len {
            self.state.update(&self.buffer[..self.len]);
            self.len = 0;
            if bytes.len() >= BUFFER {
                self.state.update(bytes);
                return Ok(bytes.len());
            }
        }
        self.buffer[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
