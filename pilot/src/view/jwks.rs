//! JSON Web Key Sets fetched by the control plane for RequestAuthentication rules (istiod's JWKS
//! resolver): the view holds them by the URL the control plane fetches first — the rule's
//! `jwksUri`, or, when the rule sets neither `jwks` nor `jwksUri` and its issuer is an `http(s)`
//! URL, the issuer's OpenID discovery document (`<issuer>/.well-known/openid-configuration`,
//! whose `jwks_uri` the control plane follows; Istio `JWTRule.jwksUri`: "If not set, the OpenID
//! Discovery endpoint of the issuer will be used"). Config generation inlines the set into each
//! `JwtRule` without inline `jwks` ([`ClusterView::jwt_rule_jwks`]).
//!
//! A URL the control plane has never fetched has no entry: its rules reach the proxy without
//! `jwks`, so a request carrying a token of that issuer is rejected with 401 while requests
//! without a token are left to the AuthorizationPolicies. istiod behaves the same way: when a
//! `jwksUri` cannot be fetched it pushes a key set that matches no token, so Envoy answers 401
//! ("Jwks doesn't have key to match kid or alg from Jwt").

use std::collections::BTreeMap;
use std::time::Duration;

use weft_crds::security::JwtRule;

use super::{ClusterObjects, ClusterView};

/// The path OpenID Connect Discovery 1.0 (section 4) appends to an issuer to name its
/// provider configuration document.
pub const OPENID_DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

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

/// The URL of `issuer`'s OpenID provider configuration document (OpenID Connect Discovery 1.0
/// section 4: a terminating `/` of the issuer is removed before [`OPENID_DISCOVERY_PATH`] is
/// appended), or `None` when the issuer is not an `http://` or `https://` URL (Istio resolves
/// only URL issuers this way).
pub fn openid_discovery_url(issuer: &str) -> Option<String> {
    let rest = issuer
        .strip_prefix("https://")
        .or_else(|| issuer.strip_prefix("http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return None;
    }
    Some(format!(
        "{}{OPENID_DISCOVERY_PATH}",
        issuer.strip_suffix('/').unwrap_or(issuer)
    ))
}

/// The URL the control plane fetches for `rule`'s key set, the key of the view's sets: the
/// rule's `jwksUri` (Istio `JWTRule.jwksUri`, either spelling), else its issuer's OpenID
/// discovery document ([`openid_discovery_url`]). `None` when the rule has inline `jwks` (it
/// wins, so nothing is fetched) or neither source applies. An empty `jwksUri` counts as unset.
pub fn jwks_fetch_url(rule: &JwtRule) -> Option<String> {
    if rule.jwks.is_some() {
        return None;
    }
    match rule.jwks_uri().filter(|uri| !uri.is_empty()) {
        Some(uri) => Some(uri.to_owned()),
        None => openid_discovery_url(&rule.issuer),
    }
}

impl ClusterView {
    /// The key set the control plane fetched for `rule` (see [`jwks_fetch_url`]; given to
    /// [`ClusterView::with_jwks`]), or `None` when the rule has inline `jwks`, names nothing
    /// to fetch, or its URL has not been fetched yet. Config generation puts it in the proxy's
    /// `JwtRule.jwks`.
    pub fn jwt_rule_jwks(&self, rule: &JwtRule) -> Option<&str> {
        jwks_fetch_url(rule).and_then(|url| self.jwks.get(&url))
    }
}

/// Every URL the RequestAuthentications of `objects` need fetched ([`jwks_fetch_url`]: a
/// `jwksUri`, or an issuer's OpenID discovery document ending in [`OPENID_DISCOVERY_PATH`],
/// which the fetcher recognises by that path), with the fetch timeout to use: the rule's
/// `timeout` (Istio `JWTRule.timeout`, default 5 s), the shortest when several rules name the
/// same URL. Returns an empty map when no rule needs a fetch.
pub fn jwks_fetches(objects: &ClusterObjects) -> BTreeMap<String, Duration> {
    let mut out: BTreeMap<String, Duration> = BTreeMap::new();
    let rules = objects
        .request_authentications
        .iter()
        .flat_map(|policy| &policy.spec.jwt_rules);
    for rule in rules {
        let Some(url) = jwks_fetch_url(rule) else {
            continue;
        };
        let timeout = rule.fetch_timeout();
        out.entry(url)
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

    #[test]
    fn discovery_url_follows_openid_connect_discovery() {
        assert_eq!(
            openid_discovery_url("https://accounts.example").as_deref(),
            Some("https://accounts.example/.well-known/openid-configuration")
        );
        assert_eq!(
            openid_discovery_url("http://198.18.0.254:8080/realms/a/").as_deref(),
            Some("http://198.18.0.254:8080/realms/a/.well-known/openid-configuration")
        );
        for not_url in [
            "issuer-a",
            "",
            "https://",
            "ftp://keys.example",
            "spiffe://a/b",
        ] {
            assert_eq!(openid_discovery_url(not_url), None, "{not_url:?}");
        }
    }

    #[test]
    fn url_issuer_without_jwks_or_jwks_uri_is_fetched_by_openid_discovery() {
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication(
                "[{issuer: \"https://idp.example/\", timeout: 2s}, {issuer: plain}, \
                 {issuer: \"https://inline.example\", jwks: '{\"keys\":[]}'}, \
                 {issuer: \"https://uri.example\", jwksUri: \"https://uri.example/keys\"}, \
                 {issuer: \"https://empty.example\", jwksUri: \"\"}]"
            )
        );
        let view = ClusterView::from_yaml(&yaml).unwrap();
        assert_eq!(
            jwks_fetches(view.objects()).into_iter().collect::<Vec<_>>(),
            vec![
                (
                    "https://empty.example/.well-known/openid-configuration".to_owned(),
                    Duration::from_secs(5)
                ),
                (
                    "https://idp.example/.well-known/openid-configuration".to_owned(),
                    Duration::from_secs(2)
                ),
                (
                    "https://uri.example/keys".to_owned(),
                    Duration::from_secs(5)
                ),
            ]
        );
    }

    #[test]
    fn the_set_fetched_by_discovery_belongs_to_the_issuers_rule() {
        let yaml = format!(
            "{WORKLOAD}---\n{}",
            request_authentication(
                "[{issuer: \"https://idp.example\"}, {issuer: \"https://other.example\"}]"
            )
        );
        let view = ClusterView::from_yaml(&yaml).unwrap().with_jwks([(
            "https://idp.example/.well-known/openid-configuration".to_owned(),
            JWKS.to_owned(),
        )]);
        let rules = &view.objects().request_authentications[0].spec.jwt_rules;
        assert_eq!(view.jwt_rule_jwks(&rules[0]), Some(JWKS));
        assert_eq!(view.jwt_rule_jwks(&rules[1]), None, "never fetched");
    }
}
