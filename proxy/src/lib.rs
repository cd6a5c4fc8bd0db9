//! `weft-proxy`: the Weft sidecar and gateway data plane.
//!
//! Traffic capture (`init`), the inbound and outbound listeners, HTTP routing with Istio's
//! VirtualService/DestinationRule semantics, mutual TLS between sidecars, and telemetry.
#![warn(missing_docs)]

pub mod capture;
pub mod telemetry;
pub mod tls;
