//! AuthorizationPolicy rules (Istio `ValidateAuthorizationPolicy`): target one-of, the
//! action/provider combinations, non-empty sources and operations, supported `when` keys
//! and the format of principals, namespaces, IP blocks, ports, methods and paths.

use weft_crds::security::{Action, AuthorizationPolicySpec, Condition, Operation, Source};

use super::{Report, fields};

/// `when` keys Istio supports (exact); `request.headers[...]` and `request.auth.claims[...]`
/// take a bracketed name; `experimental.envoy.filters.` is a prefix.
const WHEN_KEYS: &[&str] = &[
    "source.ip",
    "remote.ip",
    "source.namespace",
    "source.principal",
    "source.serviceAccount",
    "request.auth.principal",
    "request.auth.audiences",
    "request.auth.presenter",
    "destination.ip",
    "destination.port",
    "connection.sni",
];

/// Checks an AuthorizationPolicy spec.
pub(super) fn check(spec: &AuthorizationPolicySpec, namespace: Option<&str>, report: &mut Report) {
    fields::policy_target(
        report,
        namespace,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    let action = spec.effective_action();
    let provider = spec.provider.as_ref();
    match (action, provider) {
        (Action::Custom, None) => {
            report.error("spec.provider", "the CUSTOM action requires a provider")
        }
        (Action::Custom, Some(p)) if p.name.as_deref().unwrap_or_default().is_empty() => report
            .error(
                "spec.provider.name",
                "the CUSTOM action requires a provider name",
            ),
        (Action::Custom, Some(_)) | (_, None) => {}
        (_, Some(_)) => report.error(
            "spec.provider",
            format!("provider is only allowed with the CUSTOM action, not {action:?}"),
        ),
    }
    if action == Action::Deny && spec.rules.is_empty() {
        report.error(
            "spec.rules",
            "a DENY policy without rules matches nothing: add rules (use {} to deny everything)",
        );
    }
    let custom = action == Action::Custom;
    for (i, rule) in spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        for (j, from) in rule.from.iter().enumerate() {
            let at = format!("{path}.from[{j}].source");
            match &from.source {
                None => report.error(at, "from.source must be set"),
                Some(source) => check_source(report, &at, source, custom),
            }
        }
        for (j, to) in rule.to.iter().enumerate() {
            let at = format!("{path}.to[{j}].operation");
            match &to.operation {
                None => report.error(at, "to.operation must be set"),
                Some(operation) => check_operation(report, &at, operation),
            }
        }
        for (j, condition) in rule.when.iter().enumerate() {
            check_condition(report, &format!("{path}.when[{j}]"), condition, custom);
        }
    }
}

/// Values may use `*` only as a whole value, a prefix or a suffix; none may be empty.
fn values(report: &mut Report, path: &str, name: &str, list: &[String]) {
    for (i, v) in list.iter().enumerate() {
        let at = format!("{path}.{name}[{i}]");
        if v.is_empty() {
            report.error(at, "value must not be empty");
        } else if interior(v).contains('*') || v.matches('*').count() > 1 {
            report.error(
                at,
                format!("{v:?}: only a prefix or suffix wildcard (*) is supported"),
            );
        }
    }
}

/// `value` without its first and last characters (empty for one character). Works on
/// characters, not bytes, so any UTF-8 input is safe.
fn interior(value: &str) -> &str {
    let mut chars = value.chars();
    chars.next();
    chars.next_back();
    chars.as_str()
}

fn ip_blocks(report: &mut Report, path: &str, name: &str, list: &[String]) {
    for (i, v) in list.iter().enumerate() {
        if !fields::is_ip_or_cidr(v) {
            report.error(
                format!("{path}.{name}[{i}]"),
                format!("{v:?} must be an IP address or a CIDR block"),
            );
        }
    }
}

fn check_source(report: &mut Report, path: &str, s: &Source, custom: bool) {
    let lists = [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        report.error(path, "from.source must not be empty");
    }
    for (name, list) in &lists[..8] {
        values(report, path, name, list);
    }
    for (name, list) in &lists[8..] {
        ip_blocks(report, path, name, list);
    }
    let principals = !s.principals.is_empty() || !s.not_principals.is_empty();
    let accounts = !s.service_accounts.is_empty() || !s.not_service_accounts.is_empty();
    if principals && accounts {
        report.error(
            path,
            "cannot set serviceAccounts and principals at the same time",
        );
    }
    for (name, list) in [
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
    ] {
        for (i, account) in list.iter().enumerate() {
            let ok = account
                .split_once('/')
                .is_some_and(|(ns, sa)| fields::dns_label(ns, false) && fields::dns_subdomain(sa));
            if !ok {
                report.error(
                    format!("{path}.{name}[{i}]"),
                    format!("{account:?} must be <namespace>/<service account>"),
                );
            }
        }
    }
    if custom && (!s.request_principals.is_empty() || !s.not_request_principals.is_empty()) {
        report.error(
            path,
            "the CUSTOM action does not support requestPrincipals (the JWT is checked after ext-authz)",
        );
    }
}

fn check_operation(report: &mut Report, path: &str, o: &Operation) {
    let lists = [
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("ports", &o.ports),
        ("notPorts", &o.not_ports),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        report.error(path, "to.operation must not be empty");
    }
    for (name, list) in [lists[0], lists[1], lists[4], lists[5], lists[6], lists[7]] {
        values(report, path, name, list);
    }
    for (name, list) in [("ports", &o.ports), ("notPorts", &o.not_ports)] {
        ports(report, &format!("{path}.{name}"), list);
    }
}

fn ports(report: &mut Report, path: &str, list: &[String]) {
    for (i, p) in list.iter().enumerate() {
        if !p.parse::<u16>().is_ok_and(|n| n != 0) {
            report.error(
                format!("{path}[{i}]"),
                format!("port {p:?} must be a number from 1 to 65535"),
            );
        }
    }
}

fn bracketed(key: &str, prefix: &str) -> bool {
    key.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('['))
        .and_then(|rest| rest.strip_suffix(']'))
        .is_some_and(|name| !name.is_empty())
}

fn check_condition(report: &mut Report, path: &str, c: &Condition, custom: bool) {
    let key = c.key.as_str();
    let supported = WHEN_KEYS.contains(&key)
        || bracketed(key, "request.headers")
        || bracketed(key, "request.auth.claims")
        || key.starts_with("experimental.envoy.filters.");
    if !supported {
        report.error(
            format!("{path}.key"),
            format!("unknown attribute {key:?}: supported are {}, request.headers[<name>], request.auth.claims[<name>] and experimental.envoy.filters.*", WHEN_KEYS.join(", ")),
        );
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        report.error(
            path,
            format!("at least one of values or notValues must be set for key {key:?}"),
        );
    }
    if custom && key.starts_with("request.auth.") {
        report.error(
            format!("{path}.key"),
            format!("the CUSTOM action does not support {key:?}"),
        );
    }
    for (name, list) in [("values", &c.values), ("notValues", &c.not_values)] {
        match key {
            "source.ip" | "remote.ip" | "destination.ip" => ip_blocks(report, path, name, list),
            "destination.port" => ports(report, &format!("{path}.{name}"), list),
            _ => values(report, path, name, list),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_check_handles_multibyte_values_and_flags_interior_stars() {
        let mut report = Report::default();
        let list = vec![
            "\u{202e}x*".to_string(),
            "*é".to_string(),
            "a*b".to_string(),
            "é*é".to_string(),
        ];
        values(&mut report, "spec.rules[0].to[0].operation", "paths", &list);
        let paths: Vec<&str> = report.0.errors.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "spec.rules[0].to[0].operation.paths[2]",
                "spec.rules[0].to[0].operation.paths[3]"
            ]
        );
    }
}
