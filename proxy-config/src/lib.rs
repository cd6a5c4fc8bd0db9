//! The proxy-configuration model: what the control plane computes for each proxy and the proxy applies
#![warn(missing_docs)]
