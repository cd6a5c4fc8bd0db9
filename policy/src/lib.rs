//! Weft's policy engine: Istio `AuthorizationPolicy` evaluation and `RequestAuthentication` JWT
//! validation, as pure functions over the proxy-config model (`weft_proxy_config`).
//!
//! No I/O, no clocks, no sockets: the proxy builds a [`RequestAttributes`] from what a request
//! or connection offers, calls [`authenticate`] (JWT, HTTP only) and then [`authorize`], and
//! turns the result into a response ([`HTTP_DENIED_STATUS`] / [`HTTP_DENIED_BODY`], or a closed
//! TCP connection).
//!
//! Semantics follow Istio's (`security.istio.io/v1` `AuthorizationPolicy`, the "Authorization
//! Policy Conditions" reference, and how istiod turns both into Envoy RBAC filters); where
//! Weft cannot do what Istio does, the item's documentation says so.

mod attributes;
mod authz;
mod jwt;
mod matching;

pub use attributes::{RequestAttributes, TransportProtocol, remote_ip_from_forwarded_for};
pub use authz::{Decision, DecisionReason, authorize};
pub use jwt::{
    Authenticated, CLOCK_SKEW_SECONDS, HeaderEdit, JwtError, JwtIdentity, JwtRequest,
    TokenLocation, authenticate, extract_token, header_edits, rule_tokens, sanitized_headers,
    token_locations, validate_jwt,
};

/// HTTP status of a request denied by authorization (Envoy RBAC filter: 403 Forbidden).
pub const HTTP_DENIED_STATUS: u16 = 403;

/// Body of a request denied by authorization, exactly as Envoy's RBAC filter writes it (Istio
/// users grep their logs and tests for this text).
pub const HTTP_DENIED_BODY: &str = "RBAC: access denied";

/// HTTP status of a request whose JWT is present but invalid (Envoy `jwt_authn`: 401).
pub const HTTP_UNAUTHENTICATED_STATUS: u16 = 401;

/// Body of a request whose JWT failed verification (Envoy `jwt_authn`'s text for a bad token).
pub const HTTP_UNAUTHENTICATED_BODY: &str = "Jwt verification fails";
