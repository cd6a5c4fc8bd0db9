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
    /// A cookie (Istio `fromCookies`). The model's [`JwtRule`] cannot carry cookie names yet,
    /// so [`token_locations`] never yields this; callers that know cookie names add them.
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

/// The places `rule` reads a token from, in order: its `fromHeaders`, then its `fromParams`;
/// when it names neither, Istio's defaults (`Authorization: Bearer `, then `access_token`).
pub fn token_locations(rule: &JwtRule) -> impl Iterator<Item = TokenLocation<'_>> + Clone {
    let defaults = rule.from_headers.is_empty() && rule.from_params.is_empty();
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
        .find_map(|(_, value)| {
            let start = value.get(..prefix.len())?;
            start
                .eq_ignore_ascii_case(prefix)
                .then(|| value.get(prefix.len()..))
                .flatten()
                .map(str::trim)
        })
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
            (key == name).then_some(value.trim_matches('"'))
        })
}
