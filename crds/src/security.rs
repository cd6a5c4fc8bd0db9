//! `security.istio.io`: PeerAuthentication, AuthorizationPolicy, RequestAuthentication.
//!
//! Served as `v1beta1` and `v1` with one schema; `v1` is the storage version.

mod authorization_policy;
mod peer_authentication;
mod request_authentication;

pub use authorization_policy::*;
pub use peer_authentication::*;
pub use request_authentication::*;

/// The API group of the security kinds.
pub const GROUP: &str = "security.istio.io";
/// The versions served for every security kind, storage version last.
pub const SERVED_VERSIONS: &[&str] = &["v1beta1", "v1"];
