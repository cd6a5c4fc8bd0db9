//! The discovery service: one long-lived HTTP/2 stream per proxy over mutual TLS, a full config
//! per push, pushes only when a proxy's computed config changes, debounced, with ACK/NACK
//! bookkeeping and Istio-named metrics.

pub mod debounce;
pub mod metrics;
mod outbox;
pub mod server;
pub mod sessions;

pub use debounce::DebounceSettings;
pub use server::{BuildError, ConfigBuilder, DiscoveryServer};
pub use sessions::{ProxyKey, SyncStatus};
