//! Validation of [`crate::ProxyConfig::inbound`] ports; the rules are listed on
//! [`crate::ProxyConfig::validate`].

use std::collections::BTreeSet;

use super::ModelError;
use crate::inbound::InboundConfig;

/// Checks the inbound ports: each port non-zero and listed once; a `default_endpoint` is a
/// loopback (`127.0.0.1`, `::1`) or unspecified (`0.0.0.0`, `::`) address with a non-zero
/// port, the forms Istio's `Sidecar.ingress[].defaultEndpoint` allows besides `unix://`.
pub(super) fn check_inbound(inbound: &InboundConfig, errors: &mut Vec<ModelError>) {
    let mut ports = BTreeSet::new();
    for entry in &inbound.ports {
        if entry.port == 0 {
            errors.push(ModelError::PortZero {
                field: "inbound.ports[].port".to_owned(),
            });
        }
        if !ports.insert(entry.port) {
            errors.push(ModelError::DuplicateInboundPort { port: entry.port });
        }
        if let Some(endpoint) = entry.default_endpoint {
            let ip = endpoint.ip();
            if endpoint.port() == 0 || !(ip.is_loopback() || ip.is_unspecified()) {
                errors.push(ModelError::InboundDefaultEndpoint {
                    port: entry.port,
                    endpoint: endpoint.to_string(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InboundPort, MtlsMode, Protocol};

    fn errors(endpoint: &str) -> Vec<ModelError> {
        let mut port = InboundPort::new(8080, Protocol::Http, MtlsMode::Permissive);
        port.default_endpoint = Some(endpoint.parse().unwrap());
        let inbound = InboundConfig {
            ports: vec![port],
            ..InboundConfig::default()
        };
        let mut errors = Vec::new();
        check_inbound(&inbound, &mut errors);
        errors
    }

    #[test]
    fn default_endpoint_must_be_loopback_or_unspecified() {
        for ok in ["127.0.0.1:9090", "[::1]:9090", "0.0.0.0:9090", "[::]:9090"] {
            assert_eq!(errors(ok), [], "{ok}");
        }
        for bad in ["10.0.0.1:9090", "127.0.0.1:0"] {
            let found = errors(bad);
            assert!(
                matches!(
                    found.as_slice(),
                    [ModelError::InboundDefaultEndpoint { port: 8080, .. }]
                ),
                "{bad}: {found:?}"
            );
        }
    }
}
