//! One `Rule`: `from` sources, `to` operations and `when` conditions.

use weft_proxy_config::{AuthorizationAction, AuthorizationRule, AuthzOperation, AuthzSource};

use super::condition;
use crate::attributes::{RequestAttributes, TransportProtocol};
use crate::jwt::JwtIdentity;
use crate::matching::{header_matches, host_matches, ip_in, path_matches, string_matches};

/// How one rule is evaluated for one request: which attributes, and whether values that
/// cannot be evaluated are dropped (DENY, AUDIT) or spoil the rule (ALLOW).
#[derive(Clone, Copy)]
pub(super) struct Evaluation<'r, 'a> {
    pub(super) attributes: &'r RequestAttributes<'a>,
    pub(super) tcp: bool,
}

/// Whether `rule` of a policy with `action` matches the request (see
/// [`crate::authorize`] for the handling of HTTP-only fields on TCP and of bad values).
pub(super) fn rule_matches(
    rule: &AuthorizationRule,
    action: AuthorizationAction,
    attributes: &RequestAttributes<'_>,
) -> bool {
    let evaluation = Evaluation {
        attributes,
        tcp: attributes.protocol == TransportProtocol::Tcp,
    };
    // Operations first: paths and methods tell most rules apart, and a source test costs
    // more (the namespace is parsed from the principal). The order has no effect on the
    // answer. A `when` key istiod does not know makes the rule match nothing for every
    // action: `condition_holds` answers false for it.
    let matched = (rule.to.is_empty()
        || rule.to.iter().any(|to| operation_matches(to, evaluation)))
        && (rule.from.is_empty()
            || rule
                .from
                .iter()
                .any(|from| source_matches(from, evaluation)))
        && rule
            .when
            .iter()
            .all(|when| condition::condition_holds(when, evaluation));
    // The ALLOW-only check runs last, on matches only: an unusable rule matches nothing,
    // whatever the rest says.
    matched && (action != AuthorizationAction::Allow || usable_for_allow(rule, evaluation.tcp))
}

/// istiod's verdict on an ALLOW rule: false if any part of it cannot be generated for this
/// protocol (an HTTP-only field on TCP, or a value that does not parse).
fn usable_for_allow(rule: &AuthorizationRule, tcp: bool) -> bool {
    if tcp {
        let http_source = rule.from.iter().any(|source| {
            !source.request_principals.is_empty() || !source.not_request_principals.is_empty()
        });
        let http_operation = rule.to.iter().any(|operation| {
            !operation.hosts.is_empty()
                || !operation.not_hosts.is_empty()
                || !operation.methods.is_empty()
                || !operation.not_methods.is_empty()
                || !operation.paths.is_empty()
                || !operation.not_paths.is_empty()
        });
        if http_source || http_operation {
            return false;
        }
    }
    rule.when.iter().all(|when| condition::usable(when, tcp))
}

/// Istio's two-sided field test: when `values` yields any usable value the request must
/// match one of them; it must match none of the usable `not_values`. `test` answers `None`
/// for a value istiod would drop (see [`crate::authorize`]); a side with no usable value
/// imposes nothing.
pub(super) fn constraint<T>(
    values: &[T],
    not_values: &[T],
    mut test: impl FnMut(&T) -> Option<bool>,
) -> bool {
    let mut usable = false;
    let mut matched = false;
    for value in values {
        match test(value) {
            Some(true) => {
                matched = true;
                break;
            }
            Some(false) => usable = true,
            None => {}
        }
    }
    if usable && !matched {
        return false;
    }
    !not_values.iter().any(|value| test(value) == Some(true))
}

fn source_matches(source: &AuthzSource, evaluation: Evaluation<'_, '_>) -> bool {
    let attributes = evaluation.attributes;
    let principal = attributes.source_principal;
    let namespace = attributes.source_namespace();
    let jwt = attributes.jwt;
    constraint(&source.principals, &source.not_principals, |pattern| {
        Some(string_matches(pattern, principal))
    }) && constraint(&source.namespaces, &source.not_namespaces, |pattern| {
        Some(string_matches(pattern, namespace))
    }) && constraint(&source.ip_blocks, &source.not_ip_blocks, |block| {
        Some(ip_in(block, attributes.source_ip))
    }) && constraint(
        &source.remote_ip_blocks,
        &source.not_remote_ip_blocks,
        |block| Some(ip_in(block, attributes.effective_remote_ip())),
    ) && (evaluation.tcp
        || constraint(
            &source.request_principals,
            &source.not_request_principals,
            |pattern| Some(request_principal_matches(pattern, jwt)),
        ))
}

fn operation_matches(operation: &AuthzOperation, evaluation: Evaluation<'_, '_>) -> bool {
    let attributes = evaluation.attributes;
    let port = attributes.destination_port;
    if !constraint(&operation.ports, &operation.not_ports, |wanted| {
        Some(*wanted == port)
    }) {
        return false;
    }
    if evaluation.tcp {
        return true;
    }
    let path = attributes.url_path();
    constraint(&operation.methods, &operation.not_methods, |pattern| {
        Some(header_matches(pattern, attributes.method))
    }) && constraint(&operation.paths, &operation.not_paths, |pattern| {
        Some(path_matches(pattern, path))
    }) && constraint(&operation.hosts, &operation.not_hosts, |pattern| {
        Some(host_matches(pattern, attributes.host))
    })
}

/// Istio's request-principal pattern (`Source.requestPrincipals`, `request.auth.principal`):
/// split at the last `/` into issuer and subject, each matched on its own, `*` standing for
/// "any non-empty" on either side. An absent JWT never matches.
pub(super) fn request_principal_matches(pattern: &str, jwt: Option<&JwtIdentity>) -> bool {
    let Some(jwt) = jwt else {
        return false;
    };
    let (issuer, subject) = (jwt.issuer.as_str(), jwt.subject.as_str());
    let any = |value: &str| !value.is_empty();
    let split = pattern.rsplit_once('/');
    if pattern == "*" {
        return any(issuer) && any(subject);
    }
    if let Some(rest) = pattern.strip_prefix('*') {
        return match split {
            Some((iss, sub)) => {
                let issuer_ok = if iss == "*" {
                    any(issuer)
                } else {
                    issuer.ends_with(iss.strip_prefix('*').unwrap_or(iss))
                };
                issuer_ok && subject == sub
            }
            None => any(issuer) && subject.ends_with(rest),
        };
    }
    if let Some(rest) = pattern.strip_suffix('*') {
        return match split {
            Some((iss, sub)) => {
                let subject_ok = if sub == "*" {
                    any(subject)
                } else {
                    subject.starts_with(sub.strip_suffix('*').unwrap_or(sub))
                };
                issuer == iss && subject_ok
            }
            None => issuer.starts_with(rest) && any(subject),
        };
    }
    match split {
        Some((iss, sub)) => issuer == iss && subject == sub,
        None => issuer == pattern && subject.is_empty(),
    }
}
