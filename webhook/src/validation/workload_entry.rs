//! WorkloadEntry rules (Istio `validateWorkloadEntry`), also used for ServiceEntry endpoints.

use weft_crds::networking::WorkloadEntrySpec;

use super::{Report, fields};

/// Checks a workload entry at `path` (`spec` for a WorkloadEntry, `spec.endpoints[i]` for a
/// ServiceEntry endpoint): an address that is an IP, a DNS name or a `unix://` socket (required
/// unless `network` names a network reached through its gateway); named ports from 1 to 65535
/// (none for a unix socket); valid labels.
pub(super) fn check(spec: &WorkloadEntrySpec, path: &str, report: &mut Report) {
    match spec.address.as_deref() {
        None | Some("") if spec.network.as_deref().unwrap_or_default().is_empty() => {
            report.error(
                format!("{path}.address"),
                "address is required (or a network)",
            );
        }
        None | Some("") => {}
        Some(address) => {
            if let Some(socket) = address.strip_prefix("unix://") {
                if socket.is_empty() {
                    report.error(
                        format!("{path}.address"),
                        "unix socket path must not be empty",
                    );
                }
                if !spec.ports.is_empty() {
                    report.error(
                        format!("{path}.ports"),
                        "a unix socket address cannot have ports",
                    );
                }
            } else if address.parse::<std::net::IpAddr>().is_err()
                && let Err(e) = fields::dns_name(address)
            {
                report.error(
                    format!("{path}.address"),
                    format!(
                        "address {address:?} must be an IP address, a DNS name or unix://path: {e}"
                    ),
                );
            }
        }
    }
    for (name, number) in &spec.ports {
        let at = format!("{path}.ports.{name}");
        fields::port_name(report, &at, name);
        fields::port(report, &at, *number);
    }
    fields::labels(report, &format!("{path}.labels"), &spec.labels);
}
