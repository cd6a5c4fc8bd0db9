//! Which DestinationRule applies to a host for this proxy (Istio's precedence).

use weft_crds::networking::DestinationRule;

use super::Context;
use crate::host::specificity;
use crate::selector::selects;
use crate::view::{namespace_of, sort_key};

/// The DestinationRule for service host `hostname` (defined in `service_namespace`) as seen by
/// the proxy, by Istio's precedence: a rule in the proxy's namespace whose `workloadSelector`
/// selects the proxy, then one without selector in the proxy's namespace, then one in the
/// service's namespace, then one in the root namespace; rules from another namespace must be
/// exported to the proxy's (`exportTo`). Within a namespace the most specific matching `host`
/// wins (exact over wildcard), then the oldest rule.
pub(crate) fn find<'a>(
    context: &Context<'a>,
    hostname: &str,
    service_namespace: &str,
) -> Option<&'a DestinationRule> {
    let view = context.view;
    let target = context.target;
    let mesh = view.mesh();
    let proxy_namespace = target.namespace.as_str();
    let index = &view.index().destination_rules;
    let rules = &view.objects().destination_rules;
    let candidates: Vec<(&DestinationRule, (bool, usize))> = index
        .matching(hostname)
        .filter(|(_, position)| {
            index
                .export_to
                .get(*position)
                .is_some_and(|export| export.visible_to(proxy_namespace))
        })
        .filter_map(|(host, position)| Some((rules.get(position)?, specificity(host))))
        .collect();
    let best = |filter: &dyn Fn(&DestinationRule) -> bool| {
        candidates
            .iter()
            .filter(|(rule, _)| filter(rule))
            .max_by(|(a, sa), (b, sb)| {
                sa.cmp(sb)
                    .then_with(|| sort_key(&b.metadata).cmp(&sort_key(&a.metadata)))
            })
            .map(|(rule, _)| *rule)
    };
    let has_selector = |rule: &DestinationRule| {
        rule.spec
            .workload_selector
            .as_ref()
            .is_some_and(|selector| !selector.match_labels.is_empty())
    };
    let in_namespace = |rule: &DestinationRule, namespace: &str| {
        namespace_of(&rule.metadata) == namespace && !has_selector(rule)
    };
    best(&|rule| {
        namespace_of(&rule.metadata) == proxy_namespace
            && rule
                .spec
                .workload_selector
                .as_ref()
                .is_some_and(|selector| {
                    !selector.match_labels.is_empty()
                        && selects(&selector.match_labels, &target.labels)
                })
    })
    .or_else(|| best(&|rule| in_namespace(rule, proxy_namespace)))
    .or_else(|| best(&|rule| in_namespace(rule, service_namespace)))
    .or_else(|| best(&|rule| in_namespace(rule, &mesh.root_namespace)))
}
