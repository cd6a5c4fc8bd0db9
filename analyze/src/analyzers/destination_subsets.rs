//! VirtualService destinations naming a subset no DestinationRule defines for that host
//! (Istio's `virtualservice.DestinationRuleAnalyzer`: `IST0101` ReferencedResourceNotFound,
//! `host+subset in destinationrule`).
//!
//! Hosts resolve in each object's namespace; a DestinationRule whose host is a wildcard covers
//! the hosts under it.

use crate::message::Message;

use super::{Context, destinations, resolve_host};

/// Reports each `destination.subset` that no DestinationRule for the host defines.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    let defined: Vec<(String, &str)> = context
        .input
        .destination_rules()
        .flat_map(|dr| {
            let namespace = dr.resource.namespace.clone().unwrap_or_default();
            let host = resolve_host(&dr.object.spec.host, &namespace);
            dr.object
                .spec
                .subsets
                .iter()
                .map(|s| (host.clone(), s.name.as_str()))
                .collect::<Vec<_>>()
        })
        .collect();
    for vs in context.input.virtual_services() {
        let namespace = vs.resource.namespace.as_deref().unwrap_or_default();
        for (path, destination) in destinations(vs.object) {
            let Some(subset) = destination.subset.as_deref() else {
                continue;
            };
            let host = resolve_host(&destination.host, namespace);
            let found = defined
                .iter()
                .any(|(dr_host, name)| *name == subset && weft_pilot::host_matches(dr_host, &host));
            if !found {
                out.push(Message::not_found(
                    &vs.resource,
                    format!("{path}.subset"),
                    "host+subset in destinationrule",
                    &format!("{}+{subset}", destination.host),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    const VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: bookinfo}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews, subset: v4}
"#;
    const DR: &str = r#"---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews.bookinfo.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v4, labels: {version: v4}}]
"#;

    #[test]
    fn an_undefined_subset_is_reported() {
        let dr = DR.replace(", {name: v4, labels: {version: v4}}", "");
        let out = run(analyze, &format!("{VS}{dr}"));
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].path, "spec.http[0].route[1].destination.subset");
        assert_eq!(
            out[0].message,
            "Referenced host+subset in destinationrule not found: \"reviews+v4\""
        );
    }

    #[test]
    fn subsets_of_the_fully_qualified_host_are_found() {
        let out = run(analyze, &format!("{VS}{DR}"));
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_destination_rule_in_another_namespace_does_not_define_the_short_host() {
        let dr = DR
            .replace("namespace: bookinfo}", "namespace: other}")
            .replace("host: reviews.bookinfo.svc.cluster.local", "host: reviews");
        let out = run(analyze, &format!("{VS}{dr}"));
        assert_eq!(out.len(), 2, "{out:?}");
    }
}
