//! Where a request carries its JWT (Istio `JWTRule.fromHeaders`, `fromParams`, `fromCookies`).

use weft_proxy_config::JwtRule;

/// The parts of an HTTP request that may carry a JWT, borrowed from the proxy's buffers.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwtRequest<'r> {
    /// The request headers as `(name, value)` pairs, one per occurrence (`Cookie` included).
    pub headers: &'r [(&'r str, &'r str)],
    /// The query string, without the `?` (e.g. `a=1&access_token=...`).
    pub query: Option<&'r str>,
}

/// One place to look for a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenLocation<'a> {
    /// A header, with the text before the token (Istio `JWTHeader{name, prefix}`; the prefix
    /// is compared without regard to ASCII case, so `Bearer ` also accepts `bearer `).
    Header {
        /// The header name (compared without regard to case).
        name: &'a str,
        /// The text in front of the token, e.g. `Bearer `; may be empty.
        prefix: &'a str,
    },
    /// A query parameter (Istio `fromParams`).
    QueryParam(&'a str),
    /// A cookie (Istio `fromCookies`; the name is compared exactly, and a value in double
    /// quotes is read without them, as Envoy parses cookies).
    Cookie(&'a str),
}

/// Istio's default when a rule names no location: `Authorization: Bearer <token>`, then the
/// `access_token` query parameter.
const DEFAULT_LOCATIONS: [TokenLocation<'static>; 2] = [
    TokenLocation::Header {
        name: "authorization",
        prefix: "Bearer ",
    },
    TokenLocation::QueryParam("access_token"),
];

/// The places `rule` reads a token from, in Envoy's order: its `fromHeaders`, then its
/// `fromParams`, then its `fromCookies`; when it names none of them, Istio's defaults
/// (`Authorization: Bearer `, then `access_token`).
pub fn token_locations(rule: &JwtRule) -> impl Iterator<Item = TokenLocation<'_>> + Clone {
    let defaults =
        rule.from_headers.is_empty() && rule.from_params.is_empty() && rule.from_cookies.is_empty();
    DEFAULT_LOCATIONS
        .iter()
        .copied()
        .filter(move |_| defaults)
        .chain(
            rule.from_headers
                .iter()
                .map(|(name, prefix)| TokenLocation::Header { name, prefix }),
        )
        .chain(
            rule.from_params
                .iter()
                .map(|name| TokenLocation::QueryParam(name)),
        )
        .chain(
            rule.from_cookies
                .iter()
                .map(|name| TokenLocation::Cookie(name)),
        )
}

/// Every token `request` carries at `rule`'s locations ([`token_locations`] order), with
/// where each was found, as Envoy's extractor lists them for one provider: every occurrence
/// of a header that has the prefix, the first value of each query parameter, the first cookie
/// of each name. Empty values are left out.
pub fn rule_tokens<'a, 'r>(
    rule: &'a JwtRule,
    request: &JwtRequest<'r>,
) -> Vec<(TokenLocation<'a>, &'r str)> {
    let mut tokens = Vec::new();
    for location in token_locations(rule) {
        match location {
            TokenLocation::Header { name, prefix } => tokens.extend(
                request
                    .headers
                    .iter()
                    .filter(|(header, _)| header.eq_ignore_ascii_case(name))
                    .filter_map(|(_, value)| strip_prefix(value, prefix))
                    .filter(|token| !token.is_empty())
                    .map(|token| (location, token)),
            ),
            TokenLocation::QueryParam(name) => {
                if let Some(token) = request.query.and_then(|query| query_param(query, name))
                    && !token.is_empty()
                {
                    tokens.push((location, token));
                }
            }
            TokenLocation::Cookie(name) => {
                if let Some(token) = cookie(request, name)
                    && !token.is_empty()
                {
                    tokens.push((location, token));
                }
            }
        }
    }
    tokens
}

/// The first token found at any of `locations` in `request`, with where it was found; `None`
/// when the request carries none (an empty value counts as none).
pub fn extract_token<'a, 'r>(
    locations: impl IntoIterator<Item = TokenLocation<'a>>,
    request: &JwtRequest<'r>,
) -> Option<(TokenLocation<'a>, &'r str)> {
    locations.into_iter().find_map(|location| {
        let token = match location {
            TokenLocation::Header { name, prefix } => header_token(request, name, prefix),
            TokenLocation::QueryParam(name) => query_param(request.query?, name),
            TokenLocation::Cookie(name) => cookie(request, name),
        }?;
        (!token.is_empty()).then_some((location, token))
    })
}

fn header_token<'r>(request: &JwtRequest<'r>, name: &str, prefix: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case(name))
        .find_map(|(_, value)| strip_prefix(value, prefix))
}

/// The token in a header value after `prefix` (compared without regard to ASCII case),
/// trimmed; `None` when the value does not start with the prefix.
fn strip_prefix<'r>(value: &'r str, prefix: &str) -> Option<&'r str> {
    let start = value.get(..prefix.len())?;
    start
        .eq_ignore_ascii_case(prefix)
        .then(|| value.get(prefix.len()..))
        .flatten()
        .map(str::trim)
}

fn query_param<'r>(query: &'r str, name: &str) -> Option<&'r str> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then_some(value)
    })
}

fn cookie<'r>(request: &JwtRequest<'r>, name: &str) -> Option<&'r str> {
    request
        .headers
        .iter()
        .filter(|(header, _)| header.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, value)| value.split(';'))
        .find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            let unquoted = value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'));
            (key == name).then_some(unquoted.unwrap_or(value))
        })
}
