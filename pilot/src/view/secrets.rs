//! Kubernetes Secrets holding gateway credentials (Istio `credentialName`), kept apart from the
//! other objects so that their data never reaches a log: `Debug` names them without their data.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;

use super::{name_of, namespace_of};

/// One Secret's type and data (its `data`, with `stringData` entries taking precedence as the
/// API server merges them), by key.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SecretData {
    /// The Secret's `type` (`kubernetes.io/tls`, `Opaque`, ...); empty when unset.
    pub type_: String,
    /// The decoded values by key.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SecretData {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("SecretData")
            .field("type_", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SecretData {
    /// The value of the first of `keys` present and not blank, as UTF-8 text (PEM); `None`
    /// when there is none or the value is not UTF-8.
    pub fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .filter_map(|key| self.data.get(*key))
            .find(|bytes| !bytes.trim_ascii().is_empty())
            .and_then(|bytes| String::from_utf8(bytes.clone()).ok())
    }
}

/// The Secrets of a view by (namespace, name). `Debug` prints names and keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Secrets(BTreeMap<(String, String), SecretData>);

impl fmt::Debug for Secrets {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_list().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// Indexes `secrets`; a later Secret with the same namespace and name replaces an earlier.
    pub fn new(secrets: impl IntoIterator<Item = Secret>) -> Self {
        let mut map = BTreeMap::new();
        for secret in secrets {
            let key = (
                namespace_of(&secret.metadata).to_owned(),
                name_of(&secret.metadata).to_owned(),
            );
            let mut data: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(key, value)| (key, value.0))
                .collect();
            for (key, value) in secret.string_data.unwrap_or_default() {
                data.insert(key, value.into_bytes());
            }
            let type_ = secret.type_.unwrap_or_default();
            map.insert(key, SecretData { type_, data });
        }
        Self(map)
    }

    /// The Secret `namespace/name`, if present.
    pub fn get(&self, namespace: &str, name: &str) -> Option<&SecretData> {
        self.0.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// How many Secrets there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    #[test]
    fn string_data_wins_and_debug_hides_values() {
        let mut secret = Secret::default();
        secret.metadata.name = Some("cert".to_owned());
        secret.metadata.namespace = Some("istio-system".to_owned());
        secret.type_ = Some("kubernetes.io/tls".to_owned());
        secret.data = Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(b"old".to_vec())),
            ("tls.key".to_owned(), ByteString(b"SECRET-KEY".to_vec())),
        ]));
        secret.string_data = Some(BTreeMap::from([("tls.crt".to_owned(), "new".to_owned())]));
        let secrets = Secrets::new([secret]);
        let data = secrets.get("istio-system", "cert").unwrap();
        assert_eq!(data.text(&["tls.crt"]).as_deref(), Some("new"));
        assert_eq!(
            data.text(&["cert", "tls.key"]).as_deref(),
            Some("SECRET-KEY")
        );
        assert_eq!(data.type_, "kubernetes.io/tls");
        let debug = format!("{secrets:?} {data:?}");
        assert!(
            !debug.contains("SECRET-KEY") && debug.contains("tls.key"),
            "{debug}"
        );
        assert!(secrets.get("default", "cert").is_none());
    }
}
