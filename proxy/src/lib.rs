//! `weft-proxy`: the Weft sidecar and gateway data plane.
//!
//! Traffic capture (`init`), the inbound and outbound listeners, HTTP routing with Istio's
//! VirtualService/DestinationRule semantics, mutual TLS between sidecars, and telemetry.
//!
//! The request path, outside in: [`outbound`] / [`inbound`] accept connections
//! ([`listener`]), [`http`] serves HTTP on them and routes with [`router`] over the current
//! [`snapshot`] (held by [`config::ConfigStore`]), forwarding through [`balance`] and
//! [`upstream`]; [`tcp`] proxies opaque TCP. Every request ends as a
//! [`request_log::RequestLog`].
//!
//! `weft-proxy gateway` runs the same request path as a standalone gateway ([`gateway`]): no
//! capture, listeners from the config's gateway ports, servers picked by SNI and Host.
#![warn(missing_docs)]

pub mod admin;
pub mod app_health;
pub mod authz;
pub mod balance;
pub mod capture;
pub mod circuit;
pub mod config;
pub mod discovery_source;
pub mod dns;
pub mod gateway;
pub mod http;
pub mod inbound;
pub mod listener;
pub mod mesh_tls;
pub mod origination;
pub mod outbound;
pub mod outlier;
pub mod request_log;
pub mod router;
pub mod run;
pub mod snapshot;
pub mod tcp;
pub mod telemetry;
pub mod telemetry_observer;
pub mod tls;
pub mod upstream;

/// A hash map with foldhash's fast hasher (hashbrown's default), for the maps the request path
/// looks up per request: services by original destination, clusters, domains, pooled
/// connections, metric series. std's SipHash there was ≈ 4 % of a sidecar's instructions
/// per request (docs/benchmarks.md, "Session 8"). The keys come from the config or from the
/// proxy itself, and the hasher's seed is random per process.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
