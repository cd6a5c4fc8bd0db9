//! Host names: Istio's short-name resolution, wildcard matching and `exportTo` visibility.

use std::collections::BTreeSet;

/// Resolves a host written in an object of namespace `namespace` to a fully qualified name,
/// as Istio's `ResolveShortnameToFQDN` does: a name without a dot (`reviews`) becomes
/// `reviews.<namespace>.svc.<cluster_domain>`; names with a dot and wildcards are kept as
/// written. Returns the resolved name.
pub(crate) fn resolve_host(host: &str, namespace: &str, cluster_domain: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{cluster_domain}")
    }
}

/// Whether the host pattern `pattern` (Istio `hosts` entry, already resolved: `*`,
/// `*.example.com` or an exact name) covers the service host name `host`. A wildcard covers
/// every name under its suffix at any depth (`*.example.com` covers `a.b.example.com`), as in
/// Istio's `host.Name.Matches`; a wildcard `host` is covered by a wider or equal wildcard.
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" || pattern == host {
        return true;
    }
    match pattern.strip_prefix('*') {
        Some(suffix) => host.ends_with(suffix) && host.len() > suffix.len(),
        None => false,
    }
}

/// How specific a host pattern is, larger is more specific: an exact name beats any wildcard,
/// a longer wildcard beats a shorter one (Istio picks the most specific matching host).
pub(crate) fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// Istio's `exportTo`: the namespaces an object is visible to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportTo {
    /// `*` (and the default when the list is empty): every namespace.
    All,
    /// The listed namespaces (`.` already replaced by the object's own namespace); `~` alone
    /// gives an empty set: visible to no namespace.
    Namespaces(BTreeSet<String>),
}

impl ExportTo {
    /// Parses an `exportTo` list written in an object of namespace `own_namespace`: empty or
    /// containing `*` → [`ExportTo::All`]; `.` → the object's namespace; `~` → nothing; any
    /// other entry is a namespace name. Never fails: Istio's validation rejects bad lists
    /// before they reach here.
    pub fn parse(entries: &[String], own_namespace: &str) -> Self {
        if entries.is_empty() || entries.iter().any(|entry| entry == "*") {
            return Self::All;
        }
        let namespaces = entries
            .iter()
            .filter(|entry| entry.as_str() != "~")
            .map(|entry| {
                if entry == "." {
                    own_namespace.to_owned()
                } else {
                    entry.clone()
                }
            })
            .collect();
        Self::Namespaces(namespaces)
    }

    /// Whether a proxy in `namespace` may see the object.
    pub fn visible_to(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Namespaces(namespaces) => namespaces.contains(namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_objects_namespace() {
        assert_eq!(
            resolve_host("reviews", "bookinfo", "cluster.local"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(
            resolve_host("api.example.com", "bookinfo", "cluster.local"),
            "api.example.com"
        );
        assert_eq!(resolve_host("*", "bookinfo", "cluster.local"), "*");
    }

    #[test]
    fn wildcards_cover_any_depth_but_not_the_bare_suffix() {
        assert!(host_matches("*.example.com", "a.example.com"));
        assert!(host_matches("*.example.com", "a.b.example.com"));
        assert!(!host_matches("*.example.com", "example.com"));
        assert!(host_matches("*", "reviews.default.svc.cluster.local"));
        assert!(!host_matches(
            "ratings.default.svc.cluster.local",
            "reviews.default.svc.cluster.local"
        ));
        assert!(specificity("a.example.com") > specificity("*.example.com"));
        assert!(specificity("*.b.example.com") > specificity("*.example.com"));
    }

    #[test]
    fn export_to_dot_tilde_and_star() {
        let own = ExportTo::parse(&[".".to_owned()], "bookinfo");
        assert!(own.visible_to("bookinfo"));
        assert!(!own.visible_to("other"));
        assert!(ExportTo::parse(&[], "x").visible_to("any"));
        assert!(!ExportTo::parse(&["~".to_owned()], "x").visible_to("x"));
        let listed = ExportTo::parse(&["a".to_owned(), "b".to_owned()], "x");
        assert!(listed.visible_to("b") && !listed.visible_to("x"));
    }
}
