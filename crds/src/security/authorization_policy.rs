//! `AuthorizationPolicy` (security.istio.io): access control on workloads.
//!
//! Field for field as Istio's reference documents `security.v1.AuthorizationPolicy`
//! (<https://istio.io/latest/docs/reference/config/security/authorization-policy/>).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::selector::{PolicyTargetReference, WorkloadSelector};
use crate::status::IstioStatus;

/// AuthorizationPolicy enables access control on workloads.
///
/// CUSTOM policies are evaluated first, then DENY, then ALLOW: a request is denied when a CUSTOM
/// extension denies it or a DENY policy matches it; otherwise it is allowed when no ALLOW policy
/// applies to the workload or one of them matches. AUDIT policies never change the decision.
// kube's `printcolumn(...)` repeats keys such as `type_ = "string"` by design.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    derive = "PartialEq",
    group = "security.istio.io",
    version = "v1",
    kind = "AuthorizationPolicy",
    plural = "authorizationpolicies",
    namespaced,
    status = "IstioStatus",
    shortname = "ap",
    category = "istio-io",
    category = "security-istio-io",
    doc = "AuthorizationPolicy enables access control on workloads.",
    printcolumn(
        name = "Action",
        type_ = "string",
        json_path = ".spec.action",
        description = "The operation to take."
    ),
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
pub struct AuthorizationPolicySpec {
    /// Optional. The selector decides where to apply the authorization policy. The selector will
    /// match with workloads in the same namespace as the authorization policy. If the policy is
    /// in the root namespace, the selector will additionally match with workloads in all
    /// namespaces. If not set, the selector will match all workloads. At most one of `selector`
    /// and `targetRef`/`targetRefs` can be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<WorkloadSelector>,
    /// Optional. The resource (a Gateway, a Service or a ServiceEntry in the policy's namespace)
    /// the policy applies to. Deprecated in Istio in favour of `targetRefs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_ref: Option<PolicyTargetReference>,
    /// Optional. The resources the policy applies to: Gateways, Services or ServiceEntries in
    /// the policy's namespace. At most one of `selector` and `targetRefs` can be set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_refs: Vec<PolicyTargetReference>,
    /// Optional. A list of rules to match the request. A match occurs when at least one rule
    /// matches the request. If not set, the match will never occur: with action ALLOW this
    /// denies every request to the selected workloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
    /// Optional. The action to take if the request is matched with the rules. Default is ALLOW
    /// if not specified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// Specifies detailed configuration of the CUSTOM action. Must be used only with CUSTOM
    /// action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ExtensionProvider>,
}

impl AuthorizationPolicySpec {
    /// The effective action: `action` when set, ALLOW otherwise (Istio's default).
    pub fn effective_action(&self) -> Action {
        self.action.unwrap_or_default()
    }
}

/// What to do with a request that matches the rules (Istio `AuthorizationPolicy.Action`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Allow a request only if it matches the rules. This is the default type.
    #[default]
    Allow,
    /// Deny a request if it matches any of the rules.
    Deny,
    /// Audit a request if it matches any of the rules.
    Audit,
    /// Delegate the decision to the extension named by `provider` when the rules match.
    Custom,
}

/// The extension provider used by a CUSTOM action (Istio
/// `AuthorizationPolicy.ExtensionProvider`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtensionProvider {
    /// Specifies the name of the extension provider. The list of available providers is
    /// defined in the mesh configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Matches requests from a list of sources that perform a list of operations subject to a list
/// of conditions (Istio `Rule`). A match occurs when at least one source, one operation and all
/// conditions match the request. An empty rule is always matched.
///
/// Every string in a rule supports exact (`abc`), prefix (`abc*`), suffix (`*abc`) and presence
/// (`*`) matching.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rule {
    /// Optional. `from` specifies the source of a request. If not set, any source is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from: Vec<RuleFrom>,
    /// Optional. `to` specifies the operation of a request. If not set, any operation is
    /// allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<RuleTo>,
    /// Optional. `when` specifies a list of additional conditions of a request. If not set, any
    /// condition is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub when: Vec<Condition>,
}

/// One entry of `from` (Istio `Rule.From`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleFrom {
    /// Source specifies the source of a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
}

/// One entry of `to` (Istio `Rule.To`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleTo {
    /// Operation specifies the operation of a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// The source identities of a request (Istio `Source`). Fields are ANDed together; each unset
/// field matches anything.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Source {
    /// Optional. Peer identities derived from the peer certificate, in the form
    /// `<TRUST_DOMAIN>/ns/<NAMESPACE>/sa/<SERVICE_ACCOUNT>`, e.g.
    /// `cluster.local/ns/default/sa/productpage`. Requires mTLS; the `source.principal`
    /// attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<String>,
    /// Optional. A list of negative match of peer identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_principals: Vec<String>,
    /// Optional. Request identities derived from the JWT, in the form `<ISS>/<SUB>`, e.g.
    /// `example.com/sub-1`. Requires request authentication; the `request.auth.principal`
    /// attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub request_principals: Vec<String>,
    /// Optional. A list of negative match of request identities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_request_principals: Vec<String>,
    /// Optional. Namespaces derived from the peer certificate. Requires mTLS; the
    /// `source.namespace` attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Optional. A list of negative match of namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_namespaces: Vec<String>,
    /// Optional. Kubernetes service accounts derived from the peer certificate, in the form
    /// `<NAMESPACE>/<SERVICE_ACCOUNT>`, e.g. `default/productpage`. Requires mTLS. Cannot be
    /// combined with `principals` or `namespaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// Optional. A list of negative match of service accounts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_service_accounts: Vec<String>,
    /// Optional. IP blocks, populated from the source address of the IP packet. Single IPs
    /// (`203.0.113.4`) and CIDRs (`203.0.113.0/24`) are supported; the `source.ip` attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_blocks: Vec<String>,
    /// Optional. A list of negative match of IP blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ip_blocks: Vec<String>,
    /// Optional. IP blocks, populated from the X-Forwarded-For header or the PROXY protocol
    /// (needs the gateway's number of trusted proxies configured); the `remote.ip` attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remote_ip_blocks: Vec<String>,
    /// Optional. A list of negative match of remote IP blocks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_remote_ip_blocks: Vec<String>,
}

/// The operation of a request (Istio `Operation`). Fields are ANDed together; each unset field
/// matches anything.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Operation {
    /// Optional. Hosts as specified in the HTTP request; the match is case-insensitive. HTTP
    /// only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Optional. A list of negative match of hosts; the match is case-insensitive.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_hosts: Vec<String>,
    /// Optional. Ports as specified in the connection, as strings (e.g. `"8080"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
    /// Optional. A list of negative match of ports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_ports: Vec<String>,
    /// Optional. Methods as specified in the HTTP request; always `POST` for gRPC. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Optional. A list of negative match of methods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_methods: Vec<String>,
    /// Optional. Paths as specified in the HTTP request, after Istio's path normalization; for
    /// gRPC the fully-qualified `/package.service/method`. HTTP only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// Optional. A list of negative match of paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_paths: Vec<String>,
}

/// An additional required attribute (Istio `Condition`). At least one of `values` and
/// `notValues` must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// The name of an Istio attribute, e.g. `request.headers[User-Agent]` or
    /// `request.auth.claims[iss]` (see Istio's "Authorization Policy Conditions").
    pub key: String,
    /// Optional. A list of allowed values for the attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Optional. A list of negative match of values for the attribute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_values: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::from_yaml;

    #[test]
    fn reads_istio_example_and_defaults_to_allow() {
        let ap: AuthorizationPolicy = from_yaml(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: httpbin, namespace: foo}\nspec:\n  rules:\n  - from:\n    - source: {principals: [\"cluster.local/ns/default/sa/sleep\"]}\n    to:\n    - operation: {methods: [GET], paths: [\"/info*\"]}\n    when:\n    - key: request.auth.claims[iss]\n      values: [\"https://accounts.google.com\"]\n",
        )
        .unwrap();
        assert_eq!(ap.spec.effective_action(), Action::Allow);
        let rule = &ap.spec.rules[0];
        let source = rule.from[0].source.as_ref().unwrap();
        assert_eq!(source.principals, ["cluster.local/ns/default/sa/sleep"]);
        assert_eq!(rule.when[0].key, "request.auth.claims[iss]");
    }

    #[test]
    fn condition_key_is_required() {
        let err = from_yaml::<AuthorizationPolicy>(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n  - when:\n    - values: [x]\n",
        )
        .unwrap_err();
        assert_eq!(err.path(), Some("spec.rules[0].when[0]"));
        assert!(err.to_string().contains("key"), "{err}");
    }
}
