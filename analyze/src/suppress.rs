//! Suppressions, as istioctl's `--suppress "CODE=Kind name"`: messages of one code about
//! matching resources are dropped.

use std::str::FromStr;

use crate::message::{ALL, Message};

/// Why a suppression could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SuppressionError {
    /// Not of the form `CODE=Kind name`.
    #[error(
        "suppression {0:?}: expected CODE=Kind name (e.g. \"IST0102=Namespace frod\" or \
         \"IST0101=VirtualService default/*\")"
    )]
    Format(String),
    /// The code is not one the analyzers report.
    #[error("suppression {given:?}: unknown code {code:?} (known: {known})")]
    UnknownCode {
        /// The whole suppression.
        given: String,
        /// Its code.
        code: String,
        /// The known codes.
        known: String,
    },
}

/// One suppression: a code, a kind and a resource-name pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    code: String,
    kind: String,
    pattern: String,
}

impl FromStr for Suppression {
    type Err = SuppressionError;

    /// Reads `CODE=Kind name`, where name is `namespace/name` or istioctl's `name.namespace`,
    /// `name` for cluster-scoped kinds, and `*` matches any run of characters (`Pod *.shop`).
    /// Errors: [`SuppressionError::Format`] when `=` or the space is missing,
    /// [`SuppressionError::UnknownCode`] when the code is not in [`crate::message::ALL`].
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let format = || SuppressionError::Format(text.to_owned());
        let (code, resource) = text.split_once('=').ok_or_else(format)?;
        let (kind, pattern) = resource.trim().split_once(' ').ok_or_else(format)?;
        let code = code.trim();
        if !ALL.iter().any(|t| t.code == code) {
            return Err(SuppressionError::UnknownCode {
                given: text.to_owned(),
                code: code.to_owned(),
                known: ALL.iter().map(|t| t.code).collect::<Vec<_>>().join(", "),
            });
        }
        if kind.is_empty() || pattern.trim().is_empty() {
            return Err(format());
        }
        Ok(Self {
            code: code.to_owned(),
            kind: kind.to_owned(),
            pattern: pattern.trim().to_owned(),
        })
    }
}

impl Suppression {
    /// Whether `message` is suppressed: same code, same kind, and the resource's
    /// `namespace/name` (or `name.namespace`) matches the pattern.
    pub fn matches(&self, message: &Message) -> bool {
        let Some(resource) = &message.resource else {
            return false;
        };
        if message.code != self.code || resource.kind != self.kind {
            return false;
        }
        let dotted = match &resource.namespace {
            Some(namespace) => format!("{}.{namespace}", resource.name),
            None => resource.name.clone(),
        };
        glob(&self.pattern, &resource.full_name()) || glob(&self.pattern, &dotted)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(tail) = text.strip_prefix(prefix) else {
                return false;
            };
            (0..=tail.len())
                .filter(|i| tail.is_char_boundary(*i))
                .any(|i| glob(rest, &tail[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{NAMESPACE_NOT_INJECTED, ResourceRef};

    fn message(kind: &str, namespace: Option<&str>, name: &str) -> Message {
        let resource = ResourceRef {
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
            origin: None,
        };
        Message::new(NAMESPACE_NOT_INJECTED, Some(&resource), "", "x")
    }

    #[test]
    fn suppressions_match_code_kind_and_name_patterns() {
        let s: Suppression = "IST0102=Namespace frod".parse().unwrap();
        assert!(s.matches(&message("Namespace", None, "frod")));
        assert!(!s.matches(&message("Namespace", None, "other")));
        let s: Suppression = "IST0102=Pod *.baz".parse().unwrap();
        assert!(s.matches(&message("Pod", Some("baz"), "web-1")));
        assert!(!s.matches(&message("Pod", Some("qux"), "web-1")));
        let s: Suppression = "IST0102=Pod baz/*".parse().unwrap();
        assert!(s.matches(&message("Pod", Some("baz"), "web-1")));
    }

    #[test]
    fn malformed_or_unknown_suppressions_are_refused() {
        assert!(matches!(
            "IST0102".parse::<Suppression>(),
            Err(SuppressionError::Format(_))
        ));
        assert!(matches!(
            "IST9999=Pod a".parse::<Suppression>(),
            Err(SuppressionError::UnknownCode { .. })
        ));
    }
}
