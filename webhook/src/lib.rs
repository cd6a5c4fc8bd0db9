//! Admission logic for Weft: sidecar injection (and, later, mesh config validation), written as
//! pure functions.
//!
//! Nothing in this crate opens a socket or talks to the API server: `weft-operator` serves the
//! webhooks (axum over rustls) and hands each request body to [`admission::handle_inject_body`],
//! which returns the HTTP status and the body to send back. The same [`inject()`] function
//! can back a `weftctl kube-inject` command, as Istio's `injectPod` serves both its webhook and
//! `istioctl kube-inject`.
//!
//! - [`config`]: the mesh settings the injector needs ([`InjectionConfig`]).
//! - [`names`]: the Istio label and annotation names the injector reads and writes.
//! - [`mod@inject`]: the injection decision ([`should_inject`]) and the pod rewrite
//!   ([`inject()`]).
//! - [`admission`]: the `AdmissionReview` round trips: the RFC 6902 patch for injection,
//!   allow/deny with warnings for validation.
//! - [`mod@validation`]: Istio's semantic rules for every mesh kind ([`validate()`]).
#![warn(missing_docs)]

pub mod admission;
pub mod config;
pub mod inject;
pub mod names;
pub mod validation;

pub use config::{InjectionConfig, ProxyResources};
pub use inject::{Decision, DecisionReason, InjectError, inject, should_inject};
pub use validation::{Finding, Validation, validate, validate_value};
