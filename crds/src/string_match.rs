//! Istio's `StringMatch`: a `oneOf` of `exact`, `prefix` and `regex`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a string (URI, header value, authority, query parameter) is matched.
///
/// Mirrors Istio's `networking.v1.StringMatch`, a `oneOf` written as exactly one of the keys
/// `exact`, `prefix` or `regex` (RE2 syntax). On the wire: `{"prefix": "/api"}`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum StringMatch {
    /// Exact string match.
    Exact(String),
    /// Prefix-based match.
    Prefix(String),
    /// RE2 style regex-based match (<https://github.com/google/re2/wiki/Syntax>).
    Regex(String),
}

impl StringMatch {
    /// The matched text or pattern, whichever variant this is.
    pub fn pattern(&self) -> &str {
        match self {
            StringMatch::Exact(s) | StringMatch::Prefix(s) | StringMatch::Regex(s) => s,
        }
    }
}
