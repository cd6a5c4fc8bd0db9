//! `AuthorizationPolicy` evaluation: CUSTOM, then DENY, then ALLOW, with AUDIT alongside
//! (Istio `security.istio.io/v1` `AuthorizationPolicy`, "Authorization Policy" reference).

mod condition;
mod rule;

use weft_proxy_config::{AuthorizationAction, AuthorizationPolicy};

use crate::attributes::RequestAttributes;

/// Why [`authorize`] decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecisionReason {
    /// A CUSTOM policy matched. Weft has no extension-provider (ext_authz) client and the
    /// model carries no provider, so every CUSTOM policy is one whose provider cannot be
    /// used, and istiod (since 1.20, istio/istio#46968) turns its rules into DENY rules
    /// (`...-deny-due-to-bad-CUSTOM-action`): the requests they match are denied, others
    /// go on to the DENY and ALLOW policies.
    CustomUnsupported,
    /// A DENY policy matched.
    DeniedByPolicy,
    /// ALLOW policies apply to the workload and one of them matched.
    AllowedByPolicy,
    /// No CUSTOM or DENY policy matched and no ALLOW policy applies to the workload.
    NoAllowPolicies,
    /// ALLOW policies apply to the workload and none matched (this includes an ALLOW policy
    /// with no rules, Istio's "deny all").
    NoAllowPolicyMatched,
}

/// The answer of [`authorize`] for one request or connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision<'p> {
    /// Whether the request may proceed. A denied HTTP request is answered with
    /// [`crate::HTTP_DENIED_STATUS`] and [`crate::HTTP_DENIED_BODY`]; a denied TCP connection
    /// is closed.
    pub allowed: bool,
    /// The `<namespace>/<name>` of the policy that decided: the matching CUSTOM, DENY or ALLOW
    /// policy; `None` when no policy matched (allowed for lack of ALLOW policies, or denied
    /// because none of them matched).
    pub policy: Option<&'p str>,
    /// Why.
    pub reason: DecisionReason,
    /// The first AUDIT policy that matched, if any: the request should be marked for audit
    /// (Envoy's `access_log_hint`). AUDIT never changes [`Self::allowed`].
    pub audit: Option<&'p str>,
}

/// Decides whether a request (or a TCP connection) with `attributes` may reach the workload
/// that `policies` (every AuthorizationPolicy selecting it) protect.
///
/// Istio's order: CUSTOM first (a matching CUSTOM policy denies, see
/// [`DecisionReason::CustomUnsupported`]); then a matching DENY policy denies; else, if there
/// is no ALLOW policy the request is allowed; else it is allowed only if some ALLOW policy
/// matches. AUDIT policies are
/// evaluated on their own and only reported in [`Decision::audit`].
///
/// A policy matches if any of its rules does (so a policy with no rules matches nothing,
/// and an ALLOW policy with no rules denies everything; `rules: [{}]` matches everything).
/// A rule matches if any `from` source matches (within a source every set field must
/// match), any `to` operation matches (same), and every `when` condition holds; within a
/// field a request must match one of the values and none of the `not` values.
///
/// HTTP-only fields (hosts, methods, paths, request principals, `request.headers`,
/// `request.auth.*`) on a TCP connection, and values istiod cannot translate (an IP condition
/// that is not an IP or CIDR, a port that is not a number, a malformed `[name]`), follow
/// istiod's `checkError`: in an ALLOW rule they make the whole rule unusable (it matches
/// nothing, so an ALLOW policy made only of such rules denies every TCP connection); in a
/// DENY or AUDIT rule the offending values are dropped, so the rule matches more
/// (a DENY rule with only `methods: [GET]` denies every TCP connection). A `when` key
/// istiod does not know (including `experimental.envoy.filters.*`, which Weft cannot
/// evaluate) makes the rule match nothing, for every action (istiod skips such a rule).
///
/// Pure and allocation-free; cost grows with the number of rules.
pub fn authorize<'p>(
    policies: &'p [AuthorizationPolicy],
    attributes: &RequestAttributes<'_>,
) -> Decision<'p> {
    let audit = first_match(policies, AuthorizationAction::Audit, attributes);
    let decide = |allowed, policy, reason| Decision {
        allowed,
        policy,
        reason,
        audit,
    };
    if let Some(name) = first_match(policies, AuthorizationAction::Custom, attributes) {
        return decide(false, Some(name), DecisionReason::CustomUnsupported);
    }
    if let Some(name) = first_match(policies, AuthorizationAction::Deny, attributes) {
        return decide(false, Some(name), DecisionReason::DeniedByPolicy);
    }
    if !policies
        .iter()
        .any(|policy| policy.action == AuthorizationAction::Allow)
    {
        return decide(true, None, DecisionReason::NoAllowPolicies);
    }
    match first_match(policies, AuthorizationAction::Allow, attributes) {
        Some(name) => decide(true, Some(name), DecisionReason::AllowedByPolicy),
        None => decide(false, None, DecisionReason::NoAllowPolicyMatched),
    }
}

/// The name of the first policy with `action` that matches, if any.
fn first_match<'p>(
    policies: &'p [AuthorizationPolicy],
    action: AuthorizationAction,
    attributes: &RequestAttributes<'_>,
) -> Option<&'p str> {
    policies
        .iter()
        .filter(|policy| policy.action == action)
        .find(|policy| {
            policy
                .rules
                .iter()
                .any(|rule| rule::rule_matches(rule, action, attributes))
        })
        .map(|policy| policy.name.as_str())
}

#[cfg(test)]
mod tests;
