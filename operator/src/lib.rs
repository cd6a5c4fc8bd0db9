//! `weft-operator`: the Weft control plane (Istio's istiod: Pilot, Citadel, Galley).
//!
//! - [`discovery`]: the discovery service proxies stream their configuration from;
//! - [`standalone`]: the mode without Kubernetes, reading mesh YAML from a directory and writing
//!   certificates to files.
#![warn(missing_docs)]

pub mod discovery;
pub mod standalone;
