//! Kubernetes Secrets holding gateway credentials (Istio `credentialName`), kept apart from the
//! other objects so that their data never reaches a log: `Debug` names them without their data.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use weft_crds::networking::DestinationRule;

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

/// Secret keys of a certificate chain, in Istio's SDS lookup order (`kubernetes.io/tls`, then
/// generic).
pub(crate) const CERT_KEYS: [&str; 2] = ["tls.crt", "cert"];
/// Secret keys of a private key, in Istio's lookup order.
pub(crate) const KEY_KEYS: [&str; 2] = ["tls.key", "key"];
/// Secret keys of a CA bundle, in Istio's lookup order.
pub(crate) const CA_KEYS: [&str; 2] = ["ca.crt", "cacert"];
/// The suffix of the Secret Istio reads a credential's CA from when the credential lacks it
/// (`<credentialName>-cacert`).
pub(crate) const CA_SECRET_SUFFIX: &str = "-cacert";

/// A credential as Istio's SDS resolves `credentialName` from Secrets: the certificate chain
/// and key of Secret `<name>`, and the CA of that Secret or else of Secret `<name>-cacert`.
/// Each part is `None` when not found. `Debug` names the parts found, never their values.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Credential {
    /// Whether Secret `<name>` exists.
    pub found: bool,
    /// The PEM certificate chain ([`CERT_KEYS`]).
    pub certificate_chain: Option<String>,
    /// The PEM private key ([`KEY_KEYS`]).
    pub private_key: Option<String>,
    /// The PEM CA bundle ([`CA_KEYS`] of Secret `<name>`, else of `<name>-cacert`).
    pub ca_certificates: Option<String>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Credential")
            .field("found", &self.found)
            .field("certificate_chain", &self.certificate_chain.is_some())
            .field("private_key", &self.private_key.is_some())
            .field("ca_certificates", &self.ca_certificates.is_some())
            .finish()
    }
}

/// Whether any `tls` of `rule` (top level, port level, subsets) names a `credentialName`.
pub(crate) fn names_credential(rule: &DestinationRule) -> bool {
    rule.spec.client_tls_settings().any(|tls| {
        tls.credential_name
            .as_deref()
            .is_some_and(|name| !name.is_empty())
    })
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

    /// The credential `name` in `namespace` as Istio's SDS reads it (see [`Credential`]):
    /// takes the namespace of the proxy using it and the `credentialName`.
    pub fn credential(&self, namespace: &str, name: &str) -> Credential {
        let secret = self.get(namespace, name);
        let ca_certificates = secret.and_then(|s| s.text(&CA_KEYS)).or_else(|| {
            self.get(namespace, &format!("{name}{CA_SECRET_SUFFIX}"))
                .and_then(|s| s.text(&CA_KEYS))
        });
        Credential {
            found: secret.is_some(),
            certificate_chain: secret.and_then(|s| s.text(&CERT_KEYS)),
            private_key: secret.and_then(|s| s.text(&KEY_KEYS)),
            ca_certificates,
        }
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

    fn secret(namespace: &str, name: &str, data: &[(&str, &str)]) -> Secret {
        let mut secret = Secret::default();
        secret.metadata.name = Some(name.to_owned());
        secret.metadata.namespace = Some(namespace.to_owned());
        secret.data = Some(
            data.iter()
                .map(|(key, value)| ((*key).to_owned(), ByteString(value.as_bytes().to_vec())))
                .collect(),
        );
        secret
    }

    #[test]
    fn credential_reads_tls_or_generic_keys_and_the_cacert_secret() {
        let secrets = Secrets::new([
            secret(
                "demo",
                "tls-type",
                &[("tls.crt", "C1"), ("tls.key", "K1"), ("ca.crt", "CA1")],
            ),
            secret("demo", "generic", &[("cert", "C2"), ("key", "K2")]),
            secret("demo", "generic-cacert", &[("cacert", "CA2")]),
            secret("demo", "no-key", &[("cert", "C3")]),
        ]);
        let full = secrets.credential("demo", "tls-type");
        assert!(full.found);
        assert_eq!(full.certificate_chain.as_deref(), Some("C1"));
        assert_eq!(full.private_key.as_deref(), Some("K1"));
        assert_eq!(full.ca_certificates.as_deref(), Some("CA1"));
        let generic = secrets.credential("demo", "generic");
        assert_eq!(generic.certificate_chain.as_deref(), Some("C2"));
        assert_eq!(generic.private_key.as_deref(), Some("K2"));
        assert_eq!(generic.ca_certificates.as_deref(), Some("CA2"));
        let partial = secrets.credential("demo", "no-key");
        assert!(partial.found && partial.private_key.is_none());
        assert_eq!(
            secrets.credential("other", "tls-type"),
            Credential::default()
        );
        let debug = format!("{full:?}");
        assert!(!debug.contains("K1") && !debug.contains("C1"), "{debug}");
    }
}
