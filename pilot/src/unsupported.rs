//! Warnings for fields that reach a proxy but Weft's model cannot express yet.

use serde::{Deserialize, Serialize};

/// One field of one object that applies to the proxy being built but that Weft's
/// proxy-configuration model cannot express (yet). The operator writes it into the object's
/// status (condition `Accepted=False`, reason `Unsupported`, or a warning).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Unsupported {
    /// The object's kind, e.g. `VirtualService`, `Service`.
    pub kind: String,
    /// The object's namespace (empty for cluster-scoped objects).
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The field's path in Istio's notation, e.g. `spec.http[0].delegate`.
    pub field_path: String,
    /// Why the field cannot be applied, and what the proxy does instead.
    pub reason: String,
}

impl Unsupported {
    /// A warning for field `field_path` of object `kind` `namespace/name`, with `reason`.
    pub fn new(
        kind: &str,
        namespace: &str,
        name: &str,
        field_path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            field_path: field_path.into(),
            reason: reason.into(),
        }
    }
}

/// Collects warnings about one object: its kind, namespace and name are given once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'a> {
    pub kind: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
}

impl Origin<'_> {
    /// A warning about `field_path` of this object.
    pub fn unsupported(
        &self,
        field_path: impl Into<String>,
        reason: impl Into<String>,
    ) -> Unsupported {
        Unsupported::new(self.kind, self.namespace, self.name, field_path, reason)
    }
}
