//! `RequestAuthentication` (security.istio.io): which JSON Web Tokens a workload accepts.
//!
//! Field for field as Istio's reference documents `security.v1.RequestAuthentication` and
//! `security.v1.JWTRule`
//! (<https://istio.io/latest/docs/reference/config/security/request_authentication/>,
//! <https://istio.io/latest/docs/reference/config/security/jwt/>).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::selector::{PolicyTargetReference, WorkloadSelector};
use crate::status::IstioStatus;

/// The JWKS fetch timeout Istio uses when `JWTRule.timeout` is not set: 5 s.
pub const DEFAULT_JWKS_FETCH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// RequestAuthentication defines what request authentication methods are supported by a
/// workload.
///
/// A request carrying an invalid token is rejected; a request without a token is accepted but
/// has no authenticated identity (combine with an AuthorizationPolicy on `requestPrincipals` to
/// require one).
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "security.istio.io",
    version = "v1",
    kind = "RequestAuthentication",
    plural = "requestauthentications",
    namespaced,
    status = "IstioStatus",
    shortname = "ra",
    category = "istio-io",
    category = "security-istio-io",
    doc = "RequestAuthentication defines what request authentication methods are supported by a workload.",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#,
        description = "Whether the policy is accepted, resolved and reconciled by every affected proxy."
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
// Istio's CRD carries the same rule: a policy is bound one way only.
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1",
    "message": "only one of targetRefs, targetRef or selector can be set"
}]))]
pub struct RequestAuthenticationSpec {
    /// Optional. The selector decides where to apply the request authentication policy. It
    /// matches workloads in the policy's namespace (and, in the root namespace, in every
    /// namespace). If not set, the policy applies to all workloads. At most one of `selector`
    /// and `targetRef`/`targetRefs` can be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Optional. The resource (a Gateway, a Service or a ServiceEntry in the policy's
    /// namespace) the policy applies to. Deprecated in Istio in favour of `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Optional. The resources the policy applies to: Gateways, Services or ServiceEntries in
    /// the policy's namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Define the list of JWTs that can be validated at the selected workloads' proxy. A valid
    /// token is used to extract the authenticated identity; an invalid one rejects the
    /// request. Requests with several tokens (at different locations) are not supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_rules: Vec<JwtRule>,
}

/// How to validate one kind of JSON Web Token (RFC 7519): Istio `JWTRule`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtRule {
    /// Identifies the issuer that issued the JWT (the `iss` claim); a JWT with a different
    /// `iss` is rejected. Example: `https://foobar.auth0.com`.
    pub issuer: String,
    /// The JWT audiences (`aud` claim) allowed to access; a JWT containing any of them is
    /// accepted. When empty, the service name is accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// URL of the provider's public key set (JWKS) to validate the signature of the JWT.
    /// Optional when the key set can be found by OpenID Discovery of the issuer. Only one of
    /// `jwksUri` and `jwks` should be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The same as `jwksUri`, in the snake_case spelling Istio's CRD also accepts
    /// (`+kubebuilder:altName=jwks_uri`). `jwksUri` wins when both are set.
    #[serde(default, rename = "jwks_uri", skip_serializing_if = "Option::is_none")]
    pub jwks_uri_alt: Option<String>,
    /// JSON Web Key Set of public keys to validate the signature of the JWT, inline. Only one
    /// of `jwksUri` and `jwks` should be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    /// Header locations from which the JWT is expected, e.g. `x-jwt-assertion` with prefix
    /// `Bearer `. When no location is given, the `Authorization: Bearer` header and the
    /// `access_token` query parameter are tried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_headers: Vec<JwtHeader>,
    /// Query parameters from which the JWT is expected, e.g. `my_token` for
    /// `/path?my_token=<JWT>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_params: Vec<String>,
    /// Cookie names from which the JWT is expected, e.g. `auth-token`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_cookies: Vec<String>,
    /// The header to which a successfully verified JWT payload is written for the backend, as
    /// `base64(payload JSON)`. When not set, the payload is not emitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_payload_to_header: Option<String>,
    /// If set to true, the original token is kept for the upstream request. Default is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_original_token: Option<bool>,
    /// Claims to copy to HTTP headers on a successfully verified token; each header must be
    /// unique. Nested claims (`nested.key.group`) of type string, int or bool are supported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_claim_to_headers: Vec<ClaimToHeader>,
    /// How long to wait for the JWKS to be fetched. Default is 5s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

impl JwtRule {
    /// The JWKS URL, from `jwksUri` or, failing that, its alternate spelling `jwks_uri`
    /// (field [`JwtRule::jwks_uri_alt`]).
    pub fn jwks_uri(&self) -> Option<&str> {
        self.jwks_uri.as_deref().or(self.jwks_uri_alt.as_deref())
    }

    /// The JWKS fetch timeout: `timeout` when set, [`DEFAULT_JWKS_FETCH_TIMEOUT`] (5 s)
    /// otherwise.
    pub fn fetch_timeout(&self) -> std::time::Duration {
        self.timeout
            .as_ref()
            .map_or(DEFAULT_JWKS_FETCH_TIMEOUT, Duration::as_std)
    }
}

/// A header location to extract the JWT from (Istio `JWTHeader`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtHeader {
    /// The HTTP header name.
    pub name: String,
    /// The prefix stripped before decoding the token, e.g. `Bearer ` (with the trailing space).
    /// A header without this exact prefix is invalid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// Copies one claim of a verified token into a request header (Istio `ClaimToHeader`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimToHeader {
    /// The name of the header to be created; an existing header of that name is overridden.
    pub header: String,
    /// The name of the claim to copy; only string, int and bool claims are copied.
    pub claim: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::from_yaml;

    fn rule(body: &str) -> JwtRule {
        let ra: RequestAuthentication = from_yaml(&format!(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: a}}\nspec:\n  jwtRules:\n  - {body}\n"
        ))
        .unwrap();
        ra.spec.jwt_rules.into_iter().next().unwrap()
    }

    #[test]
    fn jwks_uri_reads_either_spelling() {
        let r = rule("{issuer: a, jwksUri: \"https://a/jwks\"}");
        assert_eq!(r.jwks_uri(), Some("https://a/jwks"));
        let r = rule("{issuer: a, jwks_uri: \"https://b/jwks\"}");
        assert_eq!(r.jwks_uri(), Some("https://b/jwks"));
        assert_eq!(rule("{issuer: a}").jwks_uri(), None);
    }

    #[test]
    fn fetch_timeout_defaults_to_five_seconds() {
        assert_eq!(
            rule("{issuer: a}").fetch_timeout(),
            std::time::Duration::from_secs(5)
        );
        assert_eq!(
            rule("{issuer: a, timeout: 1500ms}").fetch_timeout(),
            std::time::Duration::from_millis(1500)
        );
    }

    #[test]
    fn bad_timeout_names_the_path() {
        let err = from_yaml::<RequestAuthentication>(
            "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: a}\nspec:\n  jwtRules:\n  - issuer: a\n    timeout: soon\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("spec.jwtRules[0].timeout"));
    }
}
