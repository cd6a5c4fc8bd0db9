//! Validation of a [`MeshSpec`]: the rules the CRD schema cannot express (or that must hold
//! before the schema has been applied, e.g. for `weftctl analyze` on a file).
//!
//! A pure function from the spec to the list of problems, each naming the field path and the
//! rule, so the operator (status conditions), the webhook and `weftctl` report the same thing.

use super::MeshSpec;

/// One problem in a `Mesh` spec. [`MeshError::path`] gives the field path, e.g.
/// `spec.certificates.rotateAtFraction`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MeshError {
    /// `trustDomain` is not a SPIFFE trust domain (lowercase letters, digits, `.`, `-`, `_`;
    /// 1 to 255 characters; SPIFFE ID specification §2.1).
    #[error(
        "spec.trustDomain: {0:?} is not a SPIFFE trust domain (1-255 of a-z, 0-9, '.', '-', '_')"
    )]
    TrustDomain(String),
    /// `rootNamespace` is not a Kubernetes namespace name (an RFC 1123 DNS label).
    #[error(
        "spec.rootNamespace: {0:?} is not a namespace name (1-63 of a-z, 0-9, '-', starting and ending with a letter or digit)"
    )]
    RootNamespace(String),
    /// `certificates.rotateAtFraction` is outside `(0, 1)`: a certificate must be renewed
    /// after some, and before all, of its life.
    #[error("spec.certificates.rotateAtFraction: {0} must be greater than 0 and less than 1")]
    RotateAtFraction(f64),
    /// A certificate lifetime is zero.
    #[error("{0}: must be longer than zero")]
    ZeroTtl(&'static str),
    /// The root certificate does not outlive the workload certificates it signs.
    #[error(
        "spec.certificates.rootCertTtl: the root ({root_secs} s) must outlive workload certificates ({workload_secs} s)"
    )]
    RootShorterThanWorkload {
        /// Effective root lifetime in seconds.
        root_secs: u64,
        /// Effective workload lifetime in seconds.
        workload_secs: u64,
    },
    /// A resource quantity is not a Kubernetes quantity (`100m`, `128Mi`, `1.5`, `2e3`).
    #[error("{path}: {value:?} is not a Kubernetes quantity (e.g. \"100m\", \"128Mi\")")]
    Quantity {
        /// The field path, e.g. `spec.proxy.resources.limits.cpu`.
        path: &'static str,
        /// The text given.
        value: String,
    },
    /// A string setting is present but empty.
    #[error("{0}: must not be empty when set")]
    Empty(&'static str),
    /// `debounce.debounceAfter` is longer than `debounce.debounceMax`.
    #[error("spec.debounce.debounceAfter: {after_ms} ms must not exceed debounceMax ({max_ms} ms)")]
    DebounceOrder {
        /// Effective quiet period in milliseconds.
        after_ms: u128,
        /// Effective maximum wait in milliseconds.
        max_ms: u128,
    },
    /// `tracing.sampling` is outside 0 to 100.
    #[error("spec.tracing.sampling: {0} must be a percentage from 0 to 100")]
    Sampling(f64),
    /// `discoveryAddress` is not `host:port` with a port from 1 to 65535.
    #[error("spec.discoveryAddress: {0:?} must be host:port with a port from 1 to 65535")]
    DiscoveryAddress(String),
}

impl MeshError {
    /// The field path the problem is about, e.g. `spec.trustDomain`.
    pub fn path(&self) -> &str {
        match self {
            MeshError::TrustDomain(_) => "spec.trustDomain",
            MeshError::RootNamespace(_) => "spec.rootNamespace",
            MeshError::RotateAtFraction(_) => "spec.certificates.rotateAtFraction",
            MeshError::ZeroTtl(path) | MeshError::Empty(path) => path,
            MeshError::RootShorterThanWorkload { .. } => "spec.certificates.rootCertTtl",
            MeshError::Quantity { path, .. } => path,
            MeshError::DebounceOrder { .. } => "spec.debounce.debounceAfter",
            MeshError::Sampling(_) => "spec.tracing.sampling",
            MeshError::DiscoveryAddress(_) => "spec.discoveryAddress",
        }
    }
}

impl MeshSpec {
    /// Checks the rules of every setting against the effective values (defaults applied).
    /// Returns every problem found, in field order; an empty list means the spec is valid.
    pub fn validate(&self) -> Vec<MeshError> {
        let mut errs = Vec::new();
        if let Some(td) = &self.trust_domain
            && !is_trust_domain(td)
        {
            errs.push(MeshError::TrustDomain(td.clone()));
        }
        if let Some(ns) = &self.root_namespace
            && !is_dns_label(ns)
        {
            errs.push(MeshError::RootNamespace(ns.clone()));
        }
        self.validate_certificates(&mut errs);
        self.validate_proxy(&mut errs);
        let (after, max) = (self.debounce_after(), self.debounce_max());
        if after > max {
            errs.push(MeshError::DebounceOrder {
                after_ms: after.as_millis(),
                max_ms: max.as_millis(),
            });
        }
        if self.access_log.as_ref().and_then(|a| a.file.as_deref()) == Some("") {
            errs.push(MeshError::Empty("spec.accessLog.file"));
        }
        let sampling = self.tracing_sampling();
        if !(0.0..=100.0).contains(&sampling) {
            errs.push(MeshError::Sampling(sampling));
        }
        if let Some(address) = &self.discovery_address
            && !is_host_port(address)
        {
            errs.push(MeshError::DiscoveryAddress(address.clone()));
        }
        errs
    }

    fn validate_certificates(&self, errs: &mut Vec<MeshError>) {
        let fraction = self.rotate_at_fraction();
        if !(fraction > 0.0 && fraction < 1.0) {
            errs.push(MeshError::RotateAtFraction(fraction));
        }
        let (workload, root) = (self.workload_cert_ttl(), self.root_cert_ttl());
        if workload.is_zero() {
            errs.push(MeshError::ZeroTtl("spec.certificates.workloadCertTtl"));
        }
        if root.is_zero() {
            errs.push(MeshError::ZeroTtl("spec.certificates.rootCertTtl"));
        } else if root <= workload {
            errs.push(MeshError::RootShorterThanWorkload {
                root_secs: root.as_secs(),
                workload_secs: workload.as_secs(),
            });
        }
    }

    fn validate_proxy(&self, errs: &mut Vec<MeshError>) {
        let Some(proxy) = &self.proxy else {
            return;
        };
        if proxy.image.as_deref() == Some("") {
            errs.push(MeshError::Empty("spec.proxy.image"));
        }
        let Some(resources) = &proxy.resources else {
            return;
        };
        let lists = [
            (resources.requests.as_ref(), "spec.proxy.resources.requests"),
            (resources.limits.as_ref(), "spec.proxy.resources.limits"),
        ];
        for (list, prefix) in lists {
            let Some(list) = list else { continue };
            for (value, path) in [
                (&list.cpu, quantity_path(prefix, "cpu")),
                (&list.memory, quantity_path(prefix, "memory")),
            ] {
                if let Some(value) = value
                    && !is_quantity(value)
                {
                    errs.push(MeshError::Quantity {
                        path,
                        value: value.clone(),
                    });
                }
            }
        }
    }
}

fn quantity_path(prefix: &str, resource: &str) -> &'static str {
    match (prefix.ends_with("requests"), resource) {
        (true, "cpu") => "spec.proxy.resources.requests.cpu",
        (true, _) => "spec.proxy.resources.requests.memory",
        (false, "cpu") => "spec.proxy.resources.limits.cpu",
        (false, _) => "spec.proxy.resources.limits.memory",
    }
}

/// SPIFFE trust domain name: 1–255 characters of `a-z 0-9 . - _`.
fn is_trust_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

/// RFC 1123 DNS label, as Kubernetes namespace names.
fn is_dns_label(s: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| alnum(b) || b == b'-')
        && s.bytes().next().is_some_and(alnum)
        && s.bytes().last().is_some_and(alnum)
}

/// `host:port` (host non-empty, `[v6]` allowed), port 1–65535.
fn is_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host_ok = !host.is_empty() && (!host.contains(':') || host.starts_with('['));
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// A Kubernetes `resource.Quantity`: `<sign?><number><suffix?>` where the number is digits
/// with an optional fraction and the suffix is a binary SI (`Ki`…`Ei`), decimal SI
/// (`n u m k M G T P E`) or decimal exponent (`e3`, `E-2`) suffix.
fn is_quantity(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let number_ok = number.matches('.').count() <= 1 && number.bytes().any(|b| b.is_ascii_digit());
    if !number_ok {
        return false;
    }
    match suffix {
        "" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P" | "E" => true,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => true,
        exp => {
            let Some(rest) = exp.strip_prefix(['e', 'E']) else {
                return false;
            };
            let rest = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::from_yaml;

    fn spec(body: &str) -> MeshSpec {
        let m: super::super::Mesh = from_yaml(&format!(
            "apiVersion: mesh.weft.dev/v1alpha1\nkind: Mesh\nmetadata: {{name: default}}\nspec: {body}\n"
        ))
        .unwrap();
        m.spec
    }

    fn paths(body: &str) -> Vec<String> {
        spec(body)
            .validate()
            .iter()
            .map(|e| e.path().to_string())
            .collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(spec("{}").validate(), []);
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases: &[(&str, &str)] = &[
            ("{trustDomain: Example.COM}", "spec.trustDomain"),
            ("{rootNamespace: -system}", "spec.rootNamespace"),
            (
                "{certificates: {rotateAtFraction: 1.0}}",
                "spec.certificates.rotateAtFraction",
            ),
            (
                "{certificates: {workloadCertTtl: 0s}}",
                "spec.certificates.workloadCertTtl",
            ),
            (
                "{certificates: {rootCertTtl: 1h, workloadCertTtl: 2h}}",
                "spec.certificates.rootCertTtl",
            ),
            ("{proxy: {image: ''}}", "spec.proxy.image"),
            (
                "{proxy: {resources: {limits: {memory: 1GB}}}}",
                "spec.proxy.resources.limits.memory",
            ),
            (
                "{proxy: {resources: {requests: {cpu: fast}}}}",
                "spec.proxy.resources.requests.cpu",
            ),
            (
                "{debounce: {debounceAfter: 20s}}",
                "spec.debounce.debounceAfter",
            ),
            ("{accessLog: {file: ''}}", "spec.accessLog.file"),
            ("{tracing: {sampling: 101}}", "spec.tracing.sampling"),
            (
                "{discoveryAddress: weft-operator.istio-system.svc}",
                "spec.discoveryAddress",
            ),
            ("{discoveryAddress: 'host:0'}", "spec.discoveryAddress"),
        ];
        for (body, path) in cases {
            assert_eq!(paths(body), [*path], "{body}");
        }
    }

    #[test]
    fn errors_are_all_reported_and_name_field_and_rule() {
        let errs = spec("{trustDomain: 'a b', tracing: {sampling: -1}}").validate();
        assert_eq!(errs.len(), 2);
        let text = errs[0].to_string();
        assert!(
            text.starts_with("spec.trustDomain:") && text.contains("SPIFFE"),
            "{text}"
        );
    }

    #[test]
    fn quantity_grammar() {
        for ok in ["100m", "128Mi", "1", "0.5", "2e3", "1E-2", "+1k", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "m", "1GB", "1.2.3", "1e", "1Mi2", "Mi"] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn host_port_accepts_names_and_bracketed_ipv6() {
        assert!(is_host_port("weft-operator.istio-system.svc:15012"));
        assert!(is_host_port("[fd00::1]:15012"));
        assert!(!is_host_port("fd00::1"));
        assert!(!is_host_port(":15012"));
    }
}
