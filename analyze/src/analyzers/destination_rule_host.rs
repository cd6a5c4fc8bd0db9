//! DestinationRules whose host is no Service and no ServiceEntry host (Weft `WEFT0001`
//! DestinationRuleHostNotFound, a Warning: Istio has no analyzer for it). Such a rule applies
//! to nothing, which is usually a typo in `spec.host`.
//!
//! The host resolves in the rule's namespace and must be visible there (`exportTo`); wildcard
//! hosts are not checked. When the input
//! holds no Kubernetes objects, `<name>.<namespace>.svc.cluster.local` hosts are not reported.

use crate::message::{DESTINATION_RULE_HOST_NOT_FOUND, Message};

use super::{Context, resolve_host};

/// Reports each DestinationRule whose host is not in the registry, at `spec.host`.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    for dr in context.input.destination_rules() {
        let written = &dr.object.spec.host;
        let namespace = dr.resource.namespace.as_deref().unwrap_or_default();
        let host = resolve_host(written, namespace);
        if host.starts_with('*')
            || context.host_exists(&host, namespace)
            || context.host_unknowable(&host)
        {
            continue;
        }
        out.push(Message::new(
            DESTINATION_RULE_HOST_NOT_FOUND,
            Some(&dr.resource),
            "spec.host",
            format!(
                "Referenced host not found: {written:?} (resolved to {host}): no Service or \
                 ServiceEntry has it, so this DestinationRule applies to no traffic"
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const DR: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: bookinfo}
spec: {host: ratingz}
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: bookinfo}
"#;

    #[test]
    fn a_host_without_service_is_a_warning() {
        let out = run(analyze, DR);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "WEFT0001");
        assert_eq!(out[0].level, crate::Level::Warning);
        assert_eq!(out[0].path, "spec.host");
        assert!(
            out[0]
                .message
                .contains("ratingz.bookinfo.svc.cluster.local")
        );
    }

    #[test]
    fn an_existing_service_or_a_wildcard_is_fine() {
        assert!(run(analyze, &DR.replace("ratingz", "ratings")).is_empty());
        assert!(run(analyze, &DR.replace("ratingz", "'*.example.com'")).is_empty());
    }
}
