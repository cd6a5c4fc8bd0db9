//! RequestAuthentication rules (Istio `ValidateRequestAuthentication` and `validateJwtRule`).

use weft_crds::security::{JwtRule, RequestAuthenticationSpec};

use super::{Report, fields};

/// Checks a RequestAuthentication spec: the target one-of and every JWT rule.
pub(super) fn check(
    spec: &RequestAuthenticationSpec,
    namespace: Option<&str>,
    report: &mut Report,
) {
    fields::policy_target(
        report,
        namespace,
        spec.selector.as_ref(),
        spec.target_ref.as_ref(),
        &spec.target_refs,
    );
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        jwt_rule(report, &format!("spec.jwtRules[{i}]"), rule);
    }
}

/// A JWT rule: an issuer; non-empty audiences; `jwksUri` an http(s) URL with a host, not
/// together with inline `jwks`; token locations with names; claim headers valid.
fn jwt_rule(report: &mut Report, path: &str, rule: &JwtRule) {
    if rule.issuer.is_empty() {
        report.error(format!("{path}.issuer"), "issuer must be set");
    }
    for (i, audience) in rule.audiences.iter().enumerate() {
        if audience.is_empty() {
            report.error(
                format!("{path}.audiences[{i}]"),
                "audience must not be empty",
            );
        }
    }
    if let Some(uri) = rule.jwks_uri() {
        let ok = uri.parse::<http::Uri>().is_ok_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.host().is_some_and(|h| !h.is_empty())
        });
        if !ok {
            report.error(
                format!("{path}.jwksUri"),
                format!("{uri:?} must be an http:// or https:// URL with a host"),
            );
        }
        if rule.jwks.is_some() {
            report.error(path, "only one of jwks or jwksUri can be set");
        }
    }
    for (i, header) in rule.from_headers.iter().enumerate() {
        let at = format!("{path}.fromHeaders[{i}].name");
        if header.name.is_empty() {
            report.error(at, "header name must not be empty");
        } else {
            fields::header_name(report, &at, &header.name);
        }
    }
    for (name, list) in [
        ("fromParams", &rule.from_params),
        ("fromCookies", &rule.from_cookies),
    ] {
        for (i, v) in list.iter().enumerate() {
            if v.is_empty() {
                report.error(format!("{path}.{name}[{i}]"), "name must not be empty");
            }
        }
    }
    if let Some(header) = &rule.output_payload_to_header {
        fields::header_name(report, &format!("{path}.outputPayloadToHeader"), header);
    }
    for (i, c) in rule.output_claim_to_headers.iter().enumerate() {
        let at = format!("{path}.outputClaimToHeaders[{i}]");
        fields::header_name(report, &format!("{at}.header"), &c.header);
        if c.claim.is_empty() {
            report.error(format!("{at}.claim"), "claim must not be empty");
        }
    }
    if let Some(timeout) = &rule.timeout {
        fields::duration(report, &format!("{path}.timeout"), timeout);
    }
}
