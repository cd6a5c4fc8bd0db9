//! Field rules shared by several kinds: host names, ports, durations, regular expressions,
//! percentages, labels, `exportTo`, addresses and the policy target one-of.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use weft_crds::selector::{PolicyTargetReference, WorkloadSelector};
use weft_crds::{Duration, StringMatch};

use super::Report;
use super::path::Path;

/// Checks a DNS name that may start with a `*` wildcard label (`*`, `*.example.com`,
/// `reviews`, `reviews.bookinfo.svc.cluster.local`); Istio's `ValidateWildcardDomain`.
/// Returns the rule broken.
pub(super) fn wildcard_domain(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("host must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("host {host:?} is longer than 255 characters"));
    }
    if host == "*" {
        return Ok(());
    }
    let rest = match host.strip_prefix("*.") {
        Some(rest) => rest,
        None if host.starts_with('*') => {
            return Err(format!(
                "host {host:?}: a wildcard must be the whole first label (\"*\" or \"*.example.com\")"
            ));
        }
        None => host,
    };
    dns_name(rest).map_err(|e| format!("host {host:?}: {e}"))
}

/// Checks a DNS name without wildcards (Istio's `ValidateFQDN`: dot-separated RFC 1123
/// labels, a trailing dot allowed).
pub(super) fn dns_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err("a domain name must not be empty".into());
    }
    if name.len() > 253 {
        return Err("a domain name must be at most 253 characters".into());
    }
    for label in name.split('.') {
        if !dns_label(label, true) {
            return Err(format!(
                "{label:?} is not a DNS label (1-63 letters, digits or '-', starting and ending with a letter or digit; a wildcard only as the whole first label)"
            ));
        }
    }
    Ok(())
}

/// RFC 1123 label: 1-63 characters of letters, digits and `-`, alphanumeric at both ends;
/// uppercase letters only when `allow_upper` (Istio's host labels allow them, Kubernetes
/// names do not).
pub(super) fn dns_label(label: &str, allow_upper: bool) -> bool {
    let ok_char = |c: char| {
        c.is_ascii_digit()
            || c.is_ascii_lowercase()
            || (allow_upper && c.is_ascii_uppercase())
            || c == '-'
    };
    !label.is_empty()
        && label.len() <= 63
        && label.chars().all(ok_char)
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// RFC 1123 subdomain (Kubernetes object names): lowercase labels joined by dots, at most 253.
pub(super) fn dns_subdomain(name: &str) -> bool {
    !name.is_empty() && name.len() <= 253 && name.split('.').all(|l| dns_label(l, false))
}

/// Checks a port number: 1 to 65535.
pub(super) fn port<'p>(report: &mut Report, path: impl Into<Path<'p>>, number: u32) {
    let path = path.into();
    if !(1..=65535).contains(&number) {
        report.error(
            path,
            format!("port number {number} must be between 1 and 65535"),
        );
    }
}

/// Checks a duration: at least 1 ms, in whole milliseconds (Istio's `ValidateDuration`).
pub(super) fn duration<'p>(report: &mut Report, path: impl Into<Path<'p>>, value: &Duration) {
    let path = path.into();
    let d = value.as_std();
    if d < std::time::Duration::from_millis(1) {
        report.error(path, format!("duration {value} must be at least 1ms"));
    } else if !d.subsec_nanos().is_multiple_of(1_000_000) {
        report.error(
            path,
            format!("duration {value}: only durations to millisecond precision are supported"),
        );
    }
}

/// Checks a percentage: 0 to 100.
pub(super) fn percentage<'p>(report: &mut Report, path: impl Into<Path<'p>>, value: f64) {
    let path = path.into();
    if !(0.0..=100.0).contains(&value) {
        report.error(
            path,
            format!("percentage {value} must be between 0 and 100"),
        );
    }
}

/// Checks a regular expression with the `regex` crate (RE2-compatible syntax, as Envoy's
/// safe_regex); an error carries the parser's or compiler's message. A pattern that matches everything
/// (`.*`, `.+`, `^.*$`) is a warning: an exact or prefix match says the same thing cheaper.
pub(super) fn regex<'p>(report: &mut Report, path: impl Into<Path<'p>>, pattern: &str) {
    let path = path.into();
    if pattern.is_empty() {
        report.error(path, "regex must not be empty");
        return;
    }
    if let Some(e) = regex_error(pattern) {
        report.error(path, format!("invalid regex {pattern:?}: {e}"));
        return;
    }
    let core = pattern.trim_start_matches('^').trim_end_matches('$');
    if matches!(core, ".*" | ".+" | "(.*)" | "(.+)") {
        report.warn(
            path,
            format!("regex {pattern:?} matches every value; use a prefix match or omit the match"),
        );
    }
}

/// Patterns longer than this (bytes) are checked every time rather than remembered.
const REGEX_CACHE_MAX_PATTERN: usize = 256;
/// Patterns remembered per thread before the memory is cleared and refilled.
const REGEX_CACHE_ENTRIES: usize = 1024;

thread_local! {
    /// Patterns already checked on this thread, with their error. Objects are re-applied
    /// unchanged far more often than they change (`kubectl apply`, GitOps re-syncs), and
    /// parsing a pattern costs about a microsecond. At most
    /// `REGEX_CACHE_ENTRIES × REGEX_CACHE_MAX_PATTERN` bytes of patterns per thread.
    static REGEX_CHECKED: RefCell<HashMap<String, Option<String>>> =
        RefCell::new(HashMap::new());
}

/// The error in `pattern`, if any: the message of the regex crate's parser or, for a counted
/// repetition, of its compiler (the only construct that can exceed the compiled-size limit).
fn regex_error(pattern: &str) -> Option<String> {
    let cacheable = pattern.len() <= REGEX_CACHE_MAX_PATTERN;
    if cacheable && let Some(known) = REGEX_CHECKED.with(|c| c.borrow().get(pattern).cloned()) {
        return known;
    }
    // The regex crate's own parser gives the same syntax errors as `Regex::new` at a quarter
    // of the cost; only a counted repetition can exceed the compiled-size limit, so only
    // then is the pattern compiled.
    let checked = regex_syntax::parse(pattern)
        .map(drop)
        .map_err(|e| e.to_string());
    let checked = match checked {
        Ok(()) if pattern.contains('{') => regex::Regex::new(pattern)
            .map(drop)
            .map_err(|e| e.to_string()),
        other => other,
    };
    let error = checked.err();
    if cacheable {
        REGEX_CHECKED.with(|c| {
            let mut cache = c.borrow_mut();
            if cache.len() >= REGEX_CACHE_ENTRIES {
                cache.clear();
            }
            cache.insert(pattern.to_string(), error.clone());
        });
    }
    error
}

/// Checks a `StringMatch`: a regex must compile (see [`regex`]).
pub(super) fn string_match<'p>(
    report: &mut Report,
    path: impl Into<Path<'p>>,
    value: &StringMatch,
) {
    let path = path.into();
    if let StringMatch::Regex(pattern) = value {
        regex(report, path, pattern);
    }
}

/// True for an IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`).
pub(super) fn is_ip_or_cidr(text: &str) -> bool {
    match text.split_once('/') {
        None => text.parse::<IpAddr>().is_ok(),
        Some((ip, bits)) => {
            let Ok(ip) = ip.parse::<IpAddr>() else {
                return false;
            };
            let max = if ip.is_ipv4() { 32 } else { 128 };
            bits.parse::<u8>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
        }
    }
}

/// Checks Kubernetes labels: keys are `[prefix/]name` (prefix a DNS subdomain, name 1-63 of
/// alphanumerics, `-`, `_`, `.`, alphanumeric at both ends), values 0-63 of the same.
pub(super) fn labels<'p>(
    report: &mut Report,
    path: impl Into<Path<'p>>,
    labels: &BTreeMap<String, String>,
) {
    let path = path.into();
    for (key, value) in labels {
        if let Err(e) = label_key(key) {
            report.error(path.field(key), e);
        }
        if !label_value(value) {
            report.error(
                path.field(key),
                format!(
                    "label value {value:?} must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
                ),
            );
        }
    }
}

fn label_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !name.is_empty()
        && name.len() <= 63
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a Kubernetes label key; returns the rule broken.
pub(super) fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && !dns_subdomain(prefix)
    {
        return Err(format!(
            "label key {key:?}: prefix {prefix:?} must be a DNS subdomain"
        ));
    }
    if !label_name(name) {
        return Err(format!(
            "label key {key:?}: name must be 1-63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// True for a Kubernetes label value (empty allowed).
pub(super) fn label_value(value: &str) -> bool {
    value.is_empty() || label_name(value)
}

/// Checks `exportTo`: `.`, `*`, `~` or a namespace name; no duplicates; `*` alone.
pub(super) fn export_to<'p>(report: &mut Report, path: impl Into<Path<'p>>, entries: &[String]) {
    let path = path.into();
    let mut seen = std::collections::BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = path.index(i);
        if !matches!(entry.as_str(), "." | "*" | "~") && !dns_label(entry, false) {
            report.error(
                at,
                format!("{entry:?} must be \".\", \"*\", \"~\" or a namespace name"),
            );
        }
        if !seen.insert(entry.as_str()) {
            report.error(at, format!("duplicate entry {entry:?}"));
        }
    }
    if entries.len() > 1 && seen.contains("*") {
        report.error(
            path,
            "\"*\" exports to every namespace and must be the only entry",
        );
    }
    if entries.len() > 1 && seen.contains("~") {
        report.error(path, "\"~\" hides the object and must be the only entry");
    }
}

/// Checks an HTTP header name: an RFC 7230 token, not a `:` pseudo-header.
pub(super) fn header_name<'p>(report: &mut Report, path: impl Into<Path<'p>>, name: &str) {
    let path = path.into();
    if name.is_empty() {
        report.error(path, "header name must not be empty");
    } else if name.starts_with(':') {
        report.error(
            path,
            format!("header {name:?}: pseudo-headers cannot be used here"),
        );
    } else if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        report.error(path, format!("{name:?} is not a valid HTTP header name"));
    }
}

/// Istio protocol names (`protocol.Parse`, case-insensitive).
pub(super) fn is_protocol(name: &str) -> bool {
    const PROTOCOLS: &[&str] = &[
        "HTTP",
        "HTTPS",
        "HTTP2",
        "HTTP_PROXY",
        "GRPC",
        "GRPC-WEB",
        "TCP",
        "TLS",
        "UDP",
        "MONGO",
        "REDIS",
        "MYSQL",
        "HBONE",
    ];
    PROTOCOLS.iter().any(|p| p.eq_ignore_ascii_case(name))
}

/// True for protocols Istio treats as HTTP (routes by host/path).
pub(super) fn is_http_protocol(name: &str) -> bool {
    ["HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY"]
        .iter()
        .any(|p| p.eq_ignore_ascii_case(name))
}

/// Checks a Kubernetes port name (IANA service name style, 1-63 lowercase alphanumerics and
/// `-`), as Istio's `ValidatePortName`.
pub(super) fn port_name(report: &mut Report, path: &str, name: &str) {
    if !dns_label(name, false) {
        report.error(
            path,
            format!("port name {name:?} must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit"),
        );
    }
}

/// Checks the security kinds' target one-of: at most one of `selector`, `targetRef`,
/// `targetRefs`; selector labels valid; target references with a kind and a name, in the
/// policy's own `namespace` (Istio: "cross namespace referencing is not currently supported").
pub(super) fn policy_target(
    report: &mut Report,
    namespace: Option<&str>,
    selector: Option<&WorkloadSelector>,
    target_ref: Option<&PolicyTargetReference>,
    target_refs: &[PolicyTargetReference],
) {
    let set = usize::from(selector.is_some())
        + usize::from(target_ref.is_some())
        + usize::from(!target_refs.is_empty());
    if set > 1 {
        report.error(
            "spec",
            "only one of selector, targetRef or targetRefs can be set",
        );
    }
    if let Some(selector) = selector {
        labels(report, "spec.selector.matchLabels", &selector.match_labels);
    }
    let refs = target_ref
        .map(|t| ("spec.targetRef".to_string(), t))
        .into_iter()
        .chain(
            target_refs
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("spec.targetRefs[{i}]"), t)),
        );
    for (path, target) in refs {
        if target.kind.is_empty() {
            report.error(format!("{path}.kind"), "kind must not be empty");
        }
        if !dns_subdomain(&target.name) {
            report.error(
                format!("{path}.name"),
                format!("{:?} must be a Kubernetes object name", target.name),
            );
        }
        let other = target
            .namespace
            .as_deref()
            .is_some_and(|n| !n.is_empty() && Some(n) != namespace);
        if other {
            report.error(
                format!("{path}.namespace"),
                "cross namespace referencing is not supported: namespace must be empty or the policy's own",
            );
        }
    }
}

/// Checks a `bind` address: an IP address or a `unix://` socket path.
pub(super) fn bind(report: &mut Report, path: &str, bind: &str) {
    let ok = bind.parse::<IpAddr>().is_ok()
        || bind.strip_prefix("unix://").is_some_and(|p| !p.is_empty());
    if !ok {
        report.error(
            path,
            format!("bind {bind:?} must be an IP address or a unix:// socket path"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_domains() {
        for ok in [
            "*",
            "*.example.com",
            "reviews",
            "a.b.c.",
            "Reviews.Bookinfo",
        ] {
            assert!(wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "*example.com", "a.*.com", "a..b", "-a.com", "a_b.com"] {
            assert!(wildcard_domain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ip_or_cidr() {
        for ok in ["10.0.0.1", "10.0.0.0/8", "::1", "2001:db8::/32"] {
            assert!(is_ip_or_cidr(ok), "{ok}");
        }
        for bad in ["10.0.0.0/33", "10.0.0", "host", "::/129", "1.2.3.4/+8"] {
            assert!(!is_ip_or_cidr(bad), "{bad}");
        }
    }

    #[test]
    fn label_keys() {
        for ok in ["app", "app.kubernetes.io/name", "a_b.c-d"] {
            assert!(label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-app", "Bad_Prefix/x", "a/b/c", "x/"] {
            assert!(label_key(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn remembered_regex_checks_report_the_same_findings() {
        let long_bad = format!("{}(", "a".repeat(REGEX_CACHE_MAX_PATTERN));
        for pattern in [
            "^/v1/[a-z]+$",
            "(unclosed",
            "a{1001}",
            ".*",
            long_bad.as_str(),
        ] {
            let mut first = Report::default();
            regex(&mut first, "p", pattern);
            for _ in 0..2 {
                let mut again = Report::default();
                regex(&mut again, "p", pattern);
                assert_eq!(again.0, first.0, "{pattern}");
            }
        }
        let mut report = Report::default();
        regex(&mut report, "p", "(unclosed");
        assert_eq!(report.0.errors.len(), 1);
        assert!(
            report.0.errors[0]
                .message
                .starts_with("invalid regex \"(unclosed\": ")
        );
        // More patterns than the memory holds: it is cleared, and checks stay right.
        for i in 0..REGEX_CACHE_ENTRIES + 10 {
            let mut report = Report::default();
            regex(&mut report, "p", &format!("^/v{i}/(x$"));
            assert_eq!(report.0.errors.len(), 1, "{i}");
        }
        assert!(REGEX_CHECKED.with(|c| c.borrow().len()) <= REGEX_CACHE_ENTRIES);
    }
}
