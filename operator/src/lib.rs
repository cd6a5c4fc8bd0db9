//! `weft-operator`: the Weft control plane (Istio's istiod: Pilot, Citadel, Galley).
//!
//! - [`discovery`]: the discovery service proxies stream their configuration from;
//! - [`snapshot`]: a Pilot snapshot as the discovery server's config builder;
//! - [`jwks`]: the JWKS resolver fetching RequestAuthentication `jwksUri`s for Pilot;
//! - [`standalone`]: the mode without Kubernetes, reading mesh YAML from a directory and writing
//!   certificates to files;
//! - [`kubernetes`]: the Kubernetes mode: reflectors → Pilot → discovery, Citadel under leader
//!   election, the webhooks and their configurations;
//! - [`monitoring`]: `/metrics`, `/debug/syncz`, `/healthz`, `/readyz`;
//! - [`controller_metrics`]: controller-runtime's reconcile metrics for every controller;
//! - [`webhook_server`]: the admission webhooks (`/inject`, `/validate`) over HTTPS.
#![warn(missing_docs)]

pub mod citadel;
pub mod controller_metrics;
pub mod discovery;
pub mod jwks;
pub mod kubernetes;
pub mod monitoring;
pub mod snapshot;
pub mod standalone;
pub mod webhook_server;
