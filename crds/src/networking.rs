//! `networking.istio.io`: VirtualService, DestinationRule, Gateway, ServiceEntry, Sidecar,
//! WorkloadEntry.
//!
//! Served as `v1alpha3`, `v1beta1` and `v1` with one schema; `v1` is the storage version.

mod common;
mod destination_rule;
mod gateway;
mod service_entry;
mod sidecar;
mod virtual_service;
mod workload_entry;

pub use common::*;
pub use destination_rule::*;
pub use gateway::*;
pub use service_entry::*;
pub use sidecar::*;
pub use virtual_service::*;
pub use workload_entry::*;

/// The API group of the networking kinds.
pub const GROUP: &str = "networking.istio.io";
/// The versions served for every networking kind, storage version last.
pub const SERVED_VERSIONS: &[&str] = &["v1alpha3", "v1beta1", "v1"];
