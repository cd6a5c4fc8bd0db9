//! The discovery protocol between `weft-operator` (server) and `weft-proxy` (client).
//!
//! Istio's proxies speak xDS (gRPC) to istiod; Weft keeps xDS's *semantics* — one long-lived
//! stream per proxy, full state of the world per push, a version and nonce per push, ACK or NACK
//! with a reason, the last good config kept on NACK — with a smaller wire format:
//!
//! - the proxy opens one HTTP/2 request `POST /weft.discovery.v1/stream` over mutual TLS with its
//!   workload certificate; the request body and the response body are both open-ended streams
//!   of frames;
//! - a frame is one compact JSON document followed by `\n` (JSON never contains a raw newline),
//!   at most [`MAX_FRAME_BYTES`];
//! - the proxy's first frame is [`ClientMessage::Hello`]; every later frame is an
//!   [`ClientMessage::Ack`] or [`ClientMessage::Nack`] of a pushed version;
//! - the server sends [`ServerMessage::Config`] frames: a full [`ProxyConfig`] each time the
//!   proxy's computed config changes (and only then).
//!
//! The server checks that the peer certificate's SPIFFE ID may have the config the Hello asks
//! for: a proxy gets only its own workload's config.
#![warn(missing_docs)]

pub mod client;
mod frame;
mod message;

pub use frame::{FrameDecoder, FrameError, MAX_FRAME_BYTES, encode_frame};
pub use message::{ClientMessage, Hello, ServerMessage};

/// The HTTP path of the discovery stream.
pub const STREAM_PATH: &str = "/weft.discovery.v1/stream";
/// The discovery port, as istiod's mTLS xDS port.
pub const DEFAULT_PORT: u16 = 15012;

pub use weft_proxy_config::{ProxyConfig, ProxyType};
