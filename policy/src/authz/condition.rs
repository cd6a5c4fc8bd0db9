//! `Rule.when` conditions: the keys of Istio's "Authorization Policy Conditions" reference.

use serde_json::Value;
use weft_proxy_config::AuthzCondition;

use super::rule::{Evaluation, constraint, request_principal_matches};
use crate::matching::{header_matches, ip_in, parse_ip_block, string_matches};

/// A parsed `when` key. Bracketed names borrow from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ConditionKey<'k> {
    /// `request.headers[<name>]` (HTTP only); the text after the prefix, brackets included.
    RequestHeader(&'k str),
    /// `source.ip`.
    SourceIp,
    /// `remote.ip`.
    RemoteIp,
    /// `source.namespace`.
    SourceNamespace,
    /// `source.principal`.
    SourcePrincipal,
    /// `request.auth.principal` (HTTP only).
    RequestPrincipal,
    /// `request.auth.audiences` (HTTP only).
    RequestAudiences,
    /// `request.auth.presenter` (HTTP only).
    RequestPresenter,
    /// `request.auth.claims[<name>]...` (HTTP only); the text after the prefix.
    RequestClaims(&'k str),
    /// `destination.ip`.
    DestinationIp,
    /// `destination.port`.
    DestinationPort,
    /// `connection.sni`.
    ConnectionSni,
}

impl<'k> ConditionKey<'k> {
    /// The key, or `None` if istiod would not know it (it then skips the whole rule).
    /// `experimental.envoy.filters.*` keys are Envoy-metadata matchers Weft cannot evaluate
    /// and are treated as unknown.
    pub(super) fn parse(key: &'k str) -> Option<Self> {
        Some(match key {
            "source.ip" => Self::SourceIp,
            "remote.ip" => Self::RemoteIp,
            "source.namespace" => Self::SourceNamespace,
            "source.principal" => Self::SourcePrincipal,
            "request.auth.principal" => Self::RequestPrincipal,
            "request.auth.audiences" => Self::RequestAudiences,
            "request.auth.presenter" => Self::RequestPresenter,
            "destination.ip" => Self::DestinationIp,
            "destination.port" => Self::DestinationPort,
            "connection.sni" => Self::ConnectionSni,
            _ => {
                if let Some(rest) = key.strip_prefix("request.headers") {
                    Self::RequestHeader(rest)
                } else if let Some(rest) = key.strip_prefix("request.auth.claims") {
                    Self::RequestClaims(rest)
                } else {
                    return None;
                }
            }
        })
    }

    /// Whether the key needs an HTTP request (the conditions reference's "HTTP only").
    fn http_only(self) -> bool {
        matches!(
            self,
            Self::RequestHeader(_)
                | Self::RequestPrincipal
                | Self::RequestAudiences
                | Self::RequestPresenter
                | Self::RequestClaims(_)
        )
    }
}

/// The header name inside `[name]`, or `None` when the brackets are malformed or empty.
fn bracketed_name(text: &str) -> Option<&str> {
    text.strip_prefix('[')?
        .strip_suffix(']')
        .filter(|name| !name.is_empty() && !name.contains(['[', ']']))
}

/// The claim path inside `[a][b]...`, as its names; `None` when malformed.
fn claim_path(text: &str) -> Option<impl Iterator<Item = &str> + Clone> {
    let inner = text.strip_prefix('[')?.strip_suffix(']')?;
    let names = inner.split("][");
    names
        .clone()
        .all(|name| !name.is_empty() && !name.contains(['[', ']']))
        .then_some(names)
}

/// Whether a value of `key` can be translated (IPs and ports must parse).
fn value_usable(key: ConditionKey<'_>, value: &str) -> bool {
    match key {
        ConditionKey::SourceIp | ConditionKey::RemoteIp | ConditionKey::DestinationIp => {
            parse_ip_block(value).is_some()
        }
        ConditionKey::DestinationPort => value.parse::<u16>().is_ok(),
        _ => true,
    }
}

/// Whether the key itself can be translated (bracketed names well formed).
fn key_usable(key: ConditionKey<'_>) -> bool {
    match key {
        ConditionKey::RequestHeader(rest) => bracketed_name(rest).is_some(),
        ConditionKey::RequestClaims(rest) => claim_path(rest).is_some(),
        _ => true,
    }
}

/// istiod's verdict on a condition in an ALLOW rule: false when the condition needs HTTP on
/// a TCP connection, or its key or any of its values cannot be translated.
pub(super) fn usable(condition: &AuthzCondition, tcp: bool) -> bool {
    let Some(key) = ConditionKey::parse(&condition.key) else {
        return false;
    };
    if tcp && key.http_only() {
        return false;
    }
    key_usable(key)
        && condition
            .values
            .iter()
            .chain(&condition.not_values)
            .all(|value| value_usable(key, value))
}

/// Whether the request satisfies `condition`. Untranslatable values are dropped, and a
/// condition that needs HTTP holds on TCP (the DENY/AUDIT widening; ALLOW rules with
/// such conditions were already set aside by [`usable`]).
pub(super) fn condition_holds(condition: &AuthzCondition, evaluation: Evaluation<'_, '_>) -> bool {
    let Some(key) = ConditionKey::parse(&condition.key) else {
        return false;
    };
    if (evaluation.tcp && key.http_only()) || !key_usable(key) {
        return true;
    }
    constraint(&condition.values, &condition.not_values, |value| {
        value_matches(key, value, evaluation)
    })
}

/// Whether one condition value matches; `None` when the value cannot be translated.
fn value_matches(
    key: ConditionKey<'_>,
    value: &str,
    evaluation: Evaluation<'_, '_>,
) -> Option<bool> {
    let attributes = evaluation.attributes;
    let jwt = attributes.jwt;
    Some(match key {
        ConditionKey::RequestHeader(rest) => {
            let name = bracketed_name(rest)?;
            attributes
                .headers
                .iter()
                .filter(|(header, _)| header.eq_ignore_ascii_case(name))
                .any(|(_, actual)| header_matches(value, Some(actual)))
        }
        ConditionKey::SourceIp => ip_in(&parse_ip_block(value)?, attributes.source_ip),
        ConditionKey::RemoteIp => ip_in(&parse_ip_block(value)?, attributes.effective_remote_ip()),
        ConditionKey::DestinationIp => ip_in(&parse_ip_block(value)?, attributes.destination_ip),
        ConditionKey::DestinationPort => value.parse::<u16>().ok()? == attributes.destination_port,
        ConditionKey::SourceNamespace => string_matches(value, attributes.source_namespace()),
        ConditionKey::SourcePrincipal => string_matches(value, attributes.source_principal),
        ConditionKey::ConnectionSni => string_matches(value, attributes.sni),
        ConditionKey::RequestPrincipal => request_principal_matches(value, jwt),
        ConditionKey::RequestAudiences => jwt.is_some_and(|jwt| {
            jwt.audiences
                .iter()
                .any(|audience| string_matches(value, Some(audience)))
        }),
        ConditionKey::RequestPresenter => {
            string_matches(value, jwt.and_then(|jwt| jwt.presenter.as_deref()))
        }
        ConditionKey::RequestClaims(rest) => {
            let mut claim = jwt.map(|jwt| &jwt.claims);
            for name in claim_path(rest)? {
                claim = claim.and_then(|object| object.get(name));
            }
            claim.is_some_and(|claim| claim_matches(value, claim))
        }
    })
}

/// Istio's claim matcher: a string claim matches the pattern, a list claim matches when one
/// of its string elements does; other JSON types never match (Envoy compares strings only).
fn claim_matches(pattern: &str, claim: &Value) -> bool {
    match claim {
        Value::String(text) => string_matches(pattern, Some(text)),
        Value::Array(items) => items.iter().any(|item| {
            item.as_str()
                .is_some_and(|text| string_matches(pattern, Some(text)))
        }),
        _ => false,
    }
}
