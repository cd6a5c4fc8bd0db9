//! PeerAuthentication rules (Istio `ValidatePeerAuthentication`).

use weft_crds::security::PeerAuthenticationSpec;

use super::{Report, fields};

/// Checks a PeerAuthentication spec: selector labels valid; `portLevelMtls` only with a
/// non-empty selector (ports are a workload's, not a namespace's) and ports 1 to 65535.
pub(super) fn check(spec: &PeerAuthenticationSpec, report: &mut Report) {
    if let Some(selector) = &spec.selector {
        fields::labels(report, "spec.selector.matchLabels", &selector.match_labels);
    }
    if spec.port_level_mtls.is_empty() {
        return;
    }
    let has_selector = spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty());
    if !has_selector {
        report.error(
            "spec.portLevelMtls",
            "portLevelMtls requires a workload selector with at least one label",
        );
    }
    for port in spec.port_level_mtls.keys() {
        fields::port(report, &format!("spec.portLevelMtls.{port}"), *port);
    }
}
