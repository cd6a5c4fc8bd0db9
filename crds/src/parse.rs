//! Parsing mesh documents from YAML or JSON with errors that name the field path.
//!
//! Every error carries the path into the document in the same notation Istio's validation and
//! Weft's webhook use: `spec.http[0].route[1].weight`.

use serde::de::DeserializeOwned;

/// A document that could not be read into its type.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The text is not YAML/JSON at all.
    #[error("malformed document: {0}")]
    Syntax(String),
    /// A field has the wrong type, an unknown name, or a value that its type refuses.
    #[error("{path}: {message}")]
    Field {
        /// The path of the offending field, e.g. `spec.http[0].route[1].weight`.
        path: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ParseError {
    /// The field path of the error, when it concerns a field.
    pub fn path(&self) -> Option<&str> {
        match self {
            ParseError::Field { path, .. } => Some(path),
            ParseError::Syntax(_) => None,
        }
    }
}

/// Reads a `T` from an already-parsed JSON value. Errors name the field path.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ParseError> {
    serde_path_to_error::deserialize(value).map_err(path_error)
}

/// Reads a `T` from one YAML (or JSON) document. Errors name the field path.
pub fn from_yaml<T: DeserializeOwned>(text: &str) -> Result<T, ParseError> {
    let value: serde_json::Value =
        serde_yaml::from_str(text).map_err(|e| ParseError::Syntax(e.to_string()))?;
    from_value(value)
}

fn path_error(err: serde_path_to_error::Error<serde_json::Error>) -> ParseError {
    let mut path = err.path().to_string();
    // A map key that its type refuses (e.g. `http` where a port number is expected) is shown as
    // `?` by serde_path_to_error: name the map instead.
    if let Some(map) = path.strip_suffix(".?") {
        path = map.to_string();
    }
    let message = err.into_inner().to_string();
    if path == "." {
        ParseError::Field {
            path: "(document)".to_string(),
            message,
        }
    } else {
        ParseError::Field { path, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::PeerAuthentication;

    #[test]
    fn wrong_type_names_the_path() {
        let err = from_yaml::<PeerAuthentication>(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  mtls:\n    mode: SOMETIMES\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("spec.mtls.mode"));
        assert!(err.to_string().contains("SOMETIMES"), "{err}");
    }

    #[test]
    fn refused_map_key_names_the_map() {
        let err = from_yaml::<PeerAuthentication>(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec:\n  portLevelMtls:\n    http: {mode: STRICT}\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("spec.portLevelMtls"));
    }
}
