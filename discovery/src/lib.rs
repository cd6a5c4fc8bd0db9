//! The discovery protocol between `weft-operator` (server) and `weft-proxy` (client).
//!
//! Istio's proxies speak xDS (gRPC) to istiod; Weft keeps xDS's *semantics* — one long-lived
//! stream per proxy, state of the world or incremental pushes, a version and nonce per push,
//! ACK or NACK with a reason, the last good config kept on NACK — with a smaller wire format:
//!
//! - the proxy opens one HTTP/2 request `POST /weft.discovery.v1/stream` over mutual TLS with its
//!   workload certificate; the request body and the response body are both open-ended streams
//!   of frames;
//! - a frame is one compact JSON document followed by `\n` (JSON never contains a raw newline),
//!   at most [`MAX_FRAME_BYTES`];
//! - the proxy's first frame is [`ClientMessage::Hello`]; every later frame is an
//!   [`ClientMessage::Ack`] or [`ClientMessage::Nack`] of a pushed version;
//! - the server sends a push each time the proxy's computed config changes (and only then):
//!   a [`ServerMessage::Config`] (the full [`ProxyConfig`], xDS's state of the world) or, to a
//!   proxy whose Hello set `incremental`, a [`ServerMessage::Delta`] (Envoy's incremental
//!   xDS, see below).
//!
//! The server checks that the peer certificate's SPIFFE ID may have the config the Hello asks
//! for: a proxy gets only its own workload's config.
//!
//! # Versions
//!
//! A push's `version` is the content hash of the WHOLE config it gives
//! ([`ProxyConfig::content_hash`]), for a delta as for a full config: a proxy's version
//! changes if and only if its config changes, and the server pushes only then. The proxy ACKs
//! `(version, nonce)` once it applied the config, or NACKs it with a reason and keeps its
//! previous config.
//!
//! The content hash is a hash of hashes (the rule is `weft_proxy_config::ContentHashes`'):
//! a SHA-256 over the digests of the config's sections in field order, `version` left out,
//! where `model_version`, `node`, `outbound_traffic_policy` and `inbound` are each the SHA-256
//! of their compact JSON and `outbound`, `clusters` and `gateways` the digest of the list of
//! their entries' SHA-256s. So the server hashes what a scope's proxies share once per scope,
//! and a client that keeps its config's entry digests checks a delta by hashing only the
//! entries the delta carries ([`client::AppliedConfig`]).
//!
//! Until November 2026 the version was the SHA-256 of the whole compact JSON. A proxy built
//! with that rule still works with a newer server, only without deltas: it computes another
//! hash for a delta's result and NACKs it ([`DeltaError::VersionMismatch`]), and the server
//! answers with the full config, whose version such a proxy takes as given. Nothing on the
//! wire changed, so neither [`STREAM_PATH`] nor the model version was bumped.
//!
//! # Incremental pushes
//!
//! A [`ServerMessage::Delta`] `{type: delta, version, base_version, nonce, delta}` carries a
//! [`ConfigDelta`]: only what changed between the config with `base_version` — the last one
//! the proxy acknowledged on this stream — and the new one. Its named sections (`outbound`
//! listeners with their routes, `clusters` with their endpoints, `gateways`) are
//! [`SectionDelta`]s: `changed` with `resources` (entries added or replaced, by name) and
//! `removed_resources` (names), every entry not named being kept, as Envoy's
//! `DeltaDiscoveryResponse`; or `replaced` with the whole section, for a section not sorted by
//! name. The small sections (`node`, `inbound` with its authorization policies and JWT rules,
//! `outbound_traffic_policy`) travel whole when they changed; an absent field is unchanged.
//!
//! The rules (the client side is [`client::AppliedConfig`]):
//! - the first push on a stream is a full `Config` (also after a reconnect: the server has no
//!   config to diff from whatever `current_version` the Hello names), and so is every push to
//!   a proxy that did not set `incremental` in its Hello, or that has not acknowledged any
//!   config on this stream;
//! - a proxy whose current version is not the delta's `base_version` NACKs it with a reason
//!   naming both versions ([`DeltaError::BaseMismatch`]); so does one whose result does not
//!   hash to `version` ([`DeltaError::VersionMismatch`]);
//! - the server answers a NACK of a delta with a full `Config` of the same version and a new
//!   nonce, so no update is lost and no proxy runs a config the server did not build; a NACK
//!   of a full `Config` is final for that version, as before.
//!
//! Example frames (abridged):
//!
//! ```text
//! {"type":"config","version":"9f2c…","nonce":1,"config":{"model_version":…,"outbound":[…],…}}
//! {"type":"ack","version":"9f2c…","nonce":1}
//! {"type":"delta","version":"41ab…","base_version":"9f2c…","nonce":2,
//!  "delta":{"outbound":{"changed":{"resources":[{"name":"reviews.demo.svc.cluster.local:9080",…}],
//!  "removed_resources":[]}}}}
//! {"type":"ack","version":"41ab…","nonce":2}
//! ```
#![warn(missing_docs)]

pub mod client;
mod delta;
mod frame;
mod message;

pub use delta::{ConfigDelta, DeltaError, Named, SectionDelta};
pub use frame::{FrameDecoder, FrameError, MAX_FRAME_BYTES, encode_frame};
pub use message::{ClientMessage, Hello, ServerMessage};

/// The HTTP path of the discovery stream.
pub const STREAM_PATH: &str = "/weft.discovery.v1/stream";
/// The discovery port, as istiod's mTLS xDS port.
pub const DEFAULT_PORT: u16 = 15012;

pub use weft_proxy_config::{ProxyConfig, ProxyType};
