//! JSON Web Key Sets fetched by the control plane from RequestAuthentication `jwksUri`s (istiod's
//! JWKS resolver): the view holds them by URI, and config generation inlines the set into each
//! `JwtRule` that names a URI and has no inline `jwks`.
//!
//! A URI the control plane has never fetched has no entry: its rules reach the proxy without
//! `jwks`, so a request carrying a token of that issuer is rejected with 401 while requests
//! without a token are left to the AuthorizationPolicies. istiod behaves the same way: when a
//! `jwksUri` cannot be fetched it pushes a key set that matches no token, so Envoy answers 401
//! ("Jwks doesn't have key to match kid or alg from Jwt").

use std::collections::BTreeMap;
use std::time::Duration;

use super::ClusterObjects;

/// The key sets of a view, JSON text by `jwksUri`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct JwksSets(BTreeMap<String, String>);

impl JwksSets {
    /// Indexes `sets` (`(uri, JWKS JSON text)`); a later entry for the same URI replaces an
    /// earlier.
    pub fn new(sets: impl IntoIterator<Item = (String, String)>) -> Self {
        Self(sets.into_iter().collect())
    }

    /// The key set fetched from `uri`, if any.
    pub fn get(&self, uri: &str) -> Option<&str> {
        self.0.get(uri).map(String::as_str)
    }

    /// How many URIs have a key set.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Every `jwksUri` the RequestAuthentications of `objects` name in a rule without inline `jwks`
/// (Istio `JWTRule.jwksUri`; an inline `jwks` wins, so its URI is never fetched), with the fetch
/// timeout to use: the rule's `timeout` (Istio `JWTRule.timeout`, default 5 s), the shortest
/// when several rules name the same URI. Returns an empty map when no rule needs a fetch.
pub fn jwks_fetches(objects: &ClusterObjects) -> BTreeMap<String, Duration> {
    let mut out: BTreeMap<String, Duration> = BTreeMap::new();
    let rules = objects
        .request_authentications
        .iter()
        .flat_map(|policy| &policy.spec.jwt_rules)
        .filter(|rule| rule.jwks.is_none());
    for rule in rules {
        let Some(uri) = rule.jwks_uri().filter(|uri| !uri.is_empty()) else {
            continue;
        };
        let timeout = rule.fetch_timeout();
        out.entry(uri.to_owned())
            .and_modify(|current| *current = (*current).min(timeout))
            .or_insert(timeout);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClusterView, ProxyTarget, build_proxy_config};

    const WORKLOAD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: team, labels: {app: server}}
status: {podIP: 10.0.1.2}
"#;

    const JWKS: &str = r#"{"keys":[{"kty":"oct","kid":"k1","k":"c2VjcmV0"}]}"#;

    fn request_authentication(rules: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\n\
             metadata: {{name: jwt, namespace: team}}\nspec:\n  jwtRules: {rules}\n"
        )
    }

    fn jwt_rules(view: &ClusterView) -> Vec<weft_proxy_config::JwtRule> {
        let target = ProxyTarget::for_pod(view, "team", "server").unwrap();
        build_proxy_config(view, &target).config.inbound.jwt_rules
    }

    #[test]
    fn rule_with_jwks_uri_gets_the_fetched_set_inline() {
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication(
                "[{issuer: a, jwksUri: \"http://keys.example/a\", timeout: 2s}]"
            )
        );
        let view = ClusterView::from_yaml(&yaml)
            .unwrap()
            .with_jwks([("http://keys.example/a".to_owned(), JWKS.to_owned())]);
        let rules = jwt_rules(&view);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].jwks.as_deref(), Some(JWKS));
        assert_eq!(rules[0].jwks_uri.as_deref(), Some("http://keys.example/a"));
        let target = ProxyTarget::for_pod(&view, "team", "server").unwrap();
        let warnings = build_proxy_config(&view, &target).warnings;
        assert!(
            warnings.iter().all(|w| !w.field_path.contains("timeout")),
            "timeout is implemented now: {warnings:?}"
        );
    }

    #[test]
    fn a_changed_key_set_changes_the_config_version() {
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication("[{issuer: a, jwksUri: \"http://keys.example/a\"}]")
        );
        let base = ClusterView::from_yaml(&yaml).unwrap();
        let version = |set: &str| {
            let view = base
                .clone()
                .with_jwks([("http://keys.example/a".to_owned(), set.to_owned())]);
            let target = ProxyTarget::for_pod(&view, "team", "server").unwrap();
            build_proxy_config(&view, &target).config.version
        };
        assert_ne!(version(JWKS), version(r#"{"keys":[]}"#));
    }

    #[test]
    fn never_fetched_uri_leaves_the_rule_without_jwks() {
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication("[{issuer: a, jwksUri: \"http://keys.example/a\"}]")
        );
        let view = ClusterView::from_yaml(&yaml)
            .unwrap()
            .with_jwks([("http://keys.example/other".to_owned(), JWKS.to_owned())]);
        assert_eq!(jwt_rules(&view)[0].jwks, None);
    }

    #[test]
    fn inline_jwks_wins_over_the_fetched_set() {
        let inline = r#"{"keys":[]}"#;
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication(&format!(
                "[{{issuer: a, jwksUri: \"http://keys.example/a\", jwks: '{inline}'}}]"
            ))
        );
        let view = ClusterView::from_yaml(&yaml)
            .unwrap()
            .with_jwks([("http://keys.example/a".to_owned(), JWKS.to_owned())]);
        assert_eq!(jwt_rules(&view)[0].jwks.as_deref(), Some(inline));
        assert!(jwks_fetches(view.objects()).is_empty());
    }

    #[test]
    fn fetches_list_each_uri_once_with_the_shortest_timeout() {
        let yaml = format!(
            "{}---\n{}",
            request_authentication(
                "[{issuer: a, jwksUri: \"http://k/a\", timeout: 3s}, \
                 {issuer: b, jwksUri: \"http://k/a\", timeout: 1s}, {issuer: c, jwksUri: \"http://k/c\"}]"
            ),
            request_authentication("[{issuer: d}]").replace("name: jwt", "name: other")
        );
        let view = ClusterView::from_yaml(&yaml).unwrap();
        let fetches = jwks_fetches(view.objects());
        assert_eq!(
            fetches.into_iter().collect::<Vec<_>>(),
            vec![
                ("http://k/a".to_owned(), Duration::from_secs(1)),
                ("http://k/c".to_owned(), Duration::from_secs(5)),
            ]
        );
    }
}
