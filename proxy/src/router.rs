//! HTTP route tables compiled from the model: virtual-host selection by authority and
//! first-match-wins route matching (Envoy's route matching with Istio's `HTTPMatchRequest`
//! semantics). Regexes are compiled once per config snapshot; matching allocates nothing.

use http::HeaderMap;
use http::header::HeaderName;
use regex::{Regex, RegexBuilder};
use weft_proxy_config::{HeaderMatch, Node, RouteConfiguration, RouteMatch, StringMatch};

/// Errors compiling a route table (regexes and header names the validator already checked, so
/// these only appear for configs that skipped validation).
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// A regex did not compile.
    #[error("{field}: regex {pattern:?}: {source}")]
    Regex {
        /// Where the regex is.
        field: String,
        /// The pattern.
        pattern: String,
        /// The compiler's error.
        source: regex::Error,
    },
    /// A header name is not valid.
    #[error("{field}: header name {name:?} is invalid")]
    HeaderName {
        /// Where the name is.
        field: String,
        /// The name.
        name: String,
    },
}

/// A compiled string matcher.
#[derive(Debug)]
pub enum Matcher {
    /// Equal.
    Exact(String),
    /// Starts with.
    Prefix(String),
    /// Equal, ASCII case-insensitive (Istio `ignoreUriCase`).
    ExactIgnoreCase(String),
    /// Starts with, ASCII case-insensitive.
    PrefixIgnoreCase(String),
    /// The whole value matches.
    Regex(Regex),
}

impl Matcher {
    /// Compiles `matcher`; `ignore_case` applies to all three kinds. Regexes are anchored at
    /// both ends (Envoy `safe_regex` matches the whole value).
    ///
    /// Errors: [`RouterError::Regex`] naming `field`.
    pub fn compile(
        field: &str,
        matcher: &StringMatch,
        ignore_case: bool,
    ) -> Result<Self, RouterError> {
        Ok(match (matcher, ignore_case) {
            (StringMatch::Exact(value), false) => Self::Exact(value.clone()),
            (StringMatch::Prefix(value), false) => Self::Prefix(value.clone()),
            (StringMatch::Exact(value), true) => Self::ExactIgnoreCase(value.clone()),
            (StringMatch::Prefix(value), true) => Self::PrefixIgnoreCase(value.clone()),
            (StringMatch::Regex(pattern), _) => {
                Self::Regex(compile_regex(field, pattern, ignore_case)?)
            }
        })
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(expected) => value == expected,
            Self::Prefix(prefix) => value.starts_with(prefix.as_str()),
            Self::ExactIgnoreCase(expected) => value.eq_ignore_ascii_case(expected),
            Self::PrefixIgnoreCase(prefix) => value
                .get(..prefix.len())
                .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
            Self::Regex(regex) => regex.is_match(value),
        }
    }
}

fn compile_regex(field: &str, pattern: &str, ignore_case: bool) -> Result<Regex, RouterError> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .case_insensitive(ignore_case)
        .build()
        .map_err(|source| RouterError::Regex {
            field: field.to_owned(),
            pattern: pattern.to_owned(),
            source,
        })
}

/// A compiled header matcher.
#[derive(Debug)]
enum HeaderMatcher {
    Value(Matcher),
    Present(bool),
}

impl HeaderMatcher {
    fn matches(&self, headers: &HeaderMap, name: &HeaderName) -> bool {
        match self {
            Self::Present(present) => headers.contains_key(name) == *present,
            Self::Value(matcher) => headers
                .get_all(name)
                .iter()
                .any(|value| value.to_str().is_ok_and(|value| matcher.matches(value))),
        }
    }
}

/// What a request looks like to the matcher.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The path without the query.
    pub path: &'a str,
    /// The query string without `?`, if any.
    pub query: Option<&'a str>,
    /// The method.
    pub method: &'a str,
    /// The authority (`host[:port]`).
    pub authority: &'a str,
    /// `http` or `https`.
    pub scheme: &'a str,
    /// The destination port the client used.
    pub port: u16,
    /// The request headers.
    pub headers: &'a HeaderMap,
}

/// One compiled `HTTPMatchRequest`.
#[derive(Debug)]
pub struct CompiledMatch {
    uri: Option<Matcher>,
    scheme: Option<Matcher>,
    method: Option<Matcher>,
    authority: Option<Matcher>,
    headers: Vec<(HeaderName, HeaderMatcher)>,
    without_headers: Vec<(HeaderName, HeaderMatcher)>,
    query_params: Vec<(String, Matcher)>,
    port: Option<u16>,
    /// The `prefix` uri of this match, used by `rewrite.uri` (Istio replaces the matched prefix).
    pub uri_prefix: Option<String>,
}

impl CompiledMatch {
    /// Compiles `route_match` for the proxy `node`. Returns `Ok(None)` when the match can never
    /// apply to this proxy (`source_labels`/`source_namespace` do not select it), so the
    /// per-request check is free.
    ///
    /// Errors: [`RouterError`] naming `field`.
    pub fn compile(
        field: &str,
        route_match: &RouteMatch,
        node: &Node,
    ) -> Result<Option<Self>, RouterError> {
        let selects_node = route_match
            .source_labels
            .iter()
            .all(|(key, value)| node.labels.get(key) == Some(value))
            && route_match
                .source_namespace
                .as_ref()
                .is_none_or(|namespace| *namespace == node.namespace);
        if !selects_node {
            return Ok(None);
        }
        let string = |name: &str, matcher: &Option<StringMatch>, ignore_case: bool| {
            matcher
                .as_ref()
                .map(|matcher| Matcher::compile(&format!("{field}.{name}"), matcher, ignore_case))
                .transpose()
        };
        let headers = |name: &str, headers: &std::collections::BTreeMap<String, HeaderMatch>| {
            headers
                .iter()
                .map(|(header, matcher)| {
                    let header_field = format!("{field}.{name}[{header}]");
                    let parsed = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                        RouterError::HeaderName {
                            field: header_field.clone(),
                            name: header.clone(),
                        }
                    })?;
                    let compiled = match matcher {
                        HeaderMatch::Present(present) => HeaderMatcher::Present(*present),
                        HeaderMatch::Exact(value) => {
                            HeaderMatcher::Value(Matcher::Exact(value.clone()))
                        }
                        HeaderMatch::Prefix(value) => {
                            HeaderMatcher::Value(Matcher::Prefix(value.clone()))
                        }
                        HeaderMatch::Regex(pattern) => HeaderMatcher::Value(Matcher::Regex(
                            compile_regex(&header_field, pattern, false)?,
                        )),
                    };
                    Ok((parsed, compiled))
                })
                .collect::<Result<Vec<_>, RouterError>>()
        };
        let query_params = route_match
            .query_params
            .iter()
            .map(|(name, matcher)| {
                Matcher::compile(&format!("{field}.query_params[{name}]"), matcher, false)
                    .map(|compiled| (name.clone(), compiled))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self {
            uri: string("uri", &route_match.uri, route_match.ignore_uri_case)?,
            scheme: string("scheme", &route_match.scheme, false)?,
            method: string("method", &route_match.method, false)?,
            authority: string("authority", &route_match.authority, false)?,
            headers: headers("headers", &route_match.headers)?,
            without_headers: headers("without_headers", &route_match.without_headers)?,
            query_params,
            port: route_match.port,
            uri_prefix: match &route_match.uri {
                Some(StringMatch::Prefix(prefix)) => Some(prefix.clone()),
                _ => None,
            },
        }))
    }

    /// Whether the request matches every condition.
    pub fn matches(&self, request: &RequestView<'_>) -> bool {
        let field = |matcher: &Option<Matcher>, value: &str| {
            matcher
                .as_ref()
                .is_none_or(|matcher| matcher.matches(value))
        };
        field(&self.uri, request.path)
            && field(&self.scheme, request.scheme)
            && field(&self.method, request.method)
            && field(&self.authority, request.authority)
            && self.port.is_none_or(|port| port == request.port)
            && self
                .headers
                .iter()
                .all(|(name, matcher)| matcher.matches(request.headers, name))
            && !self
                .without_headers
                .iter()
                .any(|(name, matcher)| matcher.matches(request.headers, name))
            && self.query_params.iter().all(|(name, matcher)| {
                query_param(request.query, name).is_some_and(|value| matcher.matches(value))
            })
    }
}

/// The first value of query parameter `name` (not percent-decoded, as Envoy).
fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

/// Virtual-host selection for one route table (Envoy's domain matching order: exact, then the
/// longest `*.suffix`, then the longest `prefix.*`, then `*`).
#[derive(Debug, Default)]
pub struct DomainIndex {
    exact: crate::FastMap<String, usize>,
    suffix: Vec<(String, usize)>,
    prefix: Vec<(String, usize)>,
    any: Option<usize>,
}

impl DomainIndex {
    /// Indexes the domains of `config`'s virtual hosts (lowercased); the first virtual host to
    /// claim a domain keeps it.
    pub fn new(config: &RouteConfiguration) -> Self {
        let mut index = Self::default();
        for (position, vhost) in config.virtual_hosts.iter().enumerate() {
            for domain in &vhost.domains {
                let domain = domain.to_ascii_lowercase();
                if domain == "*" {
                    index.any.get_or_insert(position);
                } else if let Some(suffix) = domain.strip_prefix('*') {
                    index.suffix.push((suffix.to_owned(), position));
                } else if let Some(prefix) = domain.strip_suffix('*') {
                    index.prefix.push((prefix.to_owned(), position));
                } else {
                    index.exact.entry(domain).or_insert(position);
                }
            }
        }
        index
            .suffix
            .sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        index
            .prefix
            .sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        index
    }

    /// The virtual host for `authority` (compared case-insensitively), if any.
    pub fn find(&self, authority: &str) -> Option<usize> {
        if let Some(position) = self.exact.get(authority) {
            return Some(*position);
        }
        if authority.bytes().any(|byte| byte.is_ascii_uppercase()) {
            let lower = authority.to_ascii_lowercase();
            if let Some(position) = self.exact.get(&lower) {
                return Some(*position);
            }
        }
        let ends = |value: &str, suffix: &str| {
            value.len() > suffix.len()
                && value
                    .get(value.len() - suffix.len()..)
                    .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
        };
        let starts = |value: &str, prefix: &str| {
            value.len() > prefix.len()
                && value
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
        };
        self.suffix
            .iter()
            .find(|(suffix, _)| ends(authority, suffix))
            .or_else(|| {
                self.prefix
                    .iter()
                    .find(|(prefix, _)| starts(authority, prefix))
            })
            .map(|(_, position)| *position)
            .or(self.any)
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
