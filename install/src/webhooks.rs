//! The admission webhook configurations `weft-operator` serves (`config/webhook/manifests.yaml`)
//! and their OLM `webhookdefinitions`.
//!
//! The injector follows the layout of Istio's `istio-sidecar-injector`: one webhook selector
//! cannot express "namespace labelled OR pod labelled", so Istio registers four entries —
//! `rev.namespace.`, `rev.object.`, `namespace.` and `object.sidecar-injector.istio.io` — whose
//! selectors are disjoint and together send exactly the pods Istio may inject. Weft uses the
//! same four under `sidecar-injector.weft.dev`, with revision `default`, and also excludes
//! `kube-system`, `kube-public` and `weft-system` by the `kubernetes.io/metadata.name` label.
//! The webhook itself still decides with `weft_webhook::inject::should_inject`, which folds the
//! same rules, so a broader selector (OLM's) never injects more.

use std::collections::BTreeMap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ServiceReference,
    ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use serde_json::{Value, json};
use weft_webhook::inject::IGNORED_NAMESPACES;
use weft_webhook::names::{NAMESPACE_INJECTION_LABEL, REVISION_LABEL, SIDECAR_INJECT};

use crate::{NAMESPACE, OPERATOR_NAME, WEBHOOK_PORT};

/// The MutatingWebhookConfiguration's name (Istio: `istio-sidecar-injector`).
pub const INJECTOR_CONFIG_NAME: &str = "weft-sidecar-injector";
/// The ValidatingWebhookConfiguration's name (Istio: `istio-validator-istio-system`).
pub const VALIDATOR_CONFIG_NAME: &str = "weft-validator";
/// The injector's webhook name; the four entries prefix it as Istio does.
pub const INJECTOR_WEBHOOK: &str = "sidecar-injector.weft.dev";
/// The validator's webhook name (Istio: `rev.validation.istio.io`).
pub const VALIDATOR_WEBHOOK: &str = "validation.weft.dev";
/// The injector's path on the webhook server.
pub const INJECT_PATH: &str = "/inject";
/// The validator's path on the webhook server.
pub const VALIDATE_PATH: &str = "/validate";
/// The control-plane revision the `rev.` entries match (`InjectionConfig::revision`'s default).
pub const REVISION: &str = "default";
/// The API server's wait for an answer, seconds (Kubernetes' default and maximum is 10 and 30;
/// the webhook server answers within 8 s).
pub const TIMEOUT_SECONDS: i32 = 10;
/// The Kubernetes label every namespace carries with its own name (since Kubernetes 1.22).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn requirement(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
    LabelSelectorRequirement {
        key: key.to_string(),
        operator: operator.to_string(),
        values: (!values.is_empty()).then(|| values.iter().map(|v| (*v).to_string()).collect()),
    }
}

fn selector(requirements: Vec<LabelSelectorRequirement>) -> LabelSelector {
    LabelSelector {
        match_expressions: Some(requirements),
        match_labels: None,
    }
}

fn client_config(path: &str) -> WebhookClientConfig {
    WebhookClientConfig {
        service: Some(ServiceReference {
            name: OPERATOR_NAME.to_string(),
            namespace: NAMESPACE.to_string(),
            path: Some(path.to_string()),
            port: Some(443),
        }),
        ca_bundle: None,
        url: None,
    }
}

fn pod_create_rule() -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![String::new()]),
        api_versions: Some(vec!["v1".to_string()]),
        operations: Some(vec!["CREATE".to_string()]),
        resources: Some(vec!["pods".to_string()]),
        scope: None,
    }
}

/// The namespaces no webhook entry of the injector selects: Istio's ignored namespaces and the
/// operator's own.
pub fn excluded_namespaces() -> Vec<&'static str> {
    let mut out = IGNORED_NAMESPACES.to_vec();
    out.push(NAMESPACE);
    out
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        labels: Some(crate::bundle::common_labels()),
        ..ObjectMeta::default()
    }
}

/// The injector: four entries with Istio's disjoint selectors (namespace labelled
/// `istio.io/rev=default`; pod labelled `istio.io/rev=default` in an unlabelled namespace;
/// namespace labelled `istio-injection=enabled`; pod labelled `sidecar.istio.io/inject=true`
/// in an unlabelled namespace), each for Pod CREATE, `failurePolicy: Fail` (Istio's: a pod
/// must not start outside the mesh's mTLS by accident), `sideEffects: None`, admission review
/// `v1`, 10 s timeout, `reinvocationPolicy: Never`, and no `caBundle` (the operator patches it).
pub fn injector() -> MutatingWebhookConfiguration {
    let excluded = excluded_namespaces();
    let not_excluded = || requirement(NAMESPACE_NAME_LABEL, "NotIn", &excluded);
    let not_opted_out = || requirement(SIDECAR_INJECT, "NotIn", &["false"]);
    let entry = |prefix: &str, namespace: Vec<LabelSelectorRequirement>, object| MutatingWebhook {
        name: format!("{prefix}.{INJECTOR_WEBHOOK}"),
        admission_review_versions: vec!["v1".to_string()],
        client_config: client_config(INJECT_PATH),
        failure_policy: Some("Fail".to_string()),
        match_policy: Some("Equivalent".to_string()),
        namespace_selector: Some(selector(namespace)),
        object_selector: Some(selector(object)),
        reinvocation_policy: Some("Never".to_string()),
        rules: Some(vec![pod_create_rule()]),
        side_effects: "None".to_string(),
        timeout_seconds: Some(TIMEOUT_SECONDS),
        match_conditions: None,
    };
    MutatingWebhookConfiguration {
        metadata: meta(INJECTOR_CONFIG_NAME),
        webhooks: Some(vec![
            entry(
                "rev.namespace",
                vec![
                    requirement(REVISION_LABEL, "In", &[REVISION]),
                    requirement(NAMESPACE_INJECTION_LABEL, "DoesNotExist", &[]),
                    not_excluded(),
                ],
                vec![not_opted_out()],
            ),
            entry(
                "rev.object",
                vec![
                    requirement(REVISION_LABEL, "DoesNotExist", &[]),
                    requirement(NAMESPACE_INJECTION_LABEL, "DoesNotExist", &[]),
                    not_excluded(),
                ],
                vec![
                    not_opted_out(),
                    requirement(REVISION_LABEL, "In", &[REVISION]),
                ],
            ),
            entry(
                "namespace",
                vec![
                    requirement(NAMESPACE_INJECTION_LABEL, "In", &["enabled"]),
                    not_excluded(),
                ],
                vec![not_opted_out()],
            ),
            entry(
                "object",
                vec![
                    requirement(NAMESPACE_INJECTION_LABEL, "DoesNotExist", &[]),
                    requirement(REVISION_LABEL, "DoesNotExist", &[]),
                    not_excluded(),
                ],
                vec![
                    requirement(SIDECAR_INJECT, "In", &["true"]),
                    requirement(REVISION_LABEL, "DoesNotExist", &[]),
                ],
            ),
        ]),
    }
}

/// The validator's rules: CREATE and UPDATE of every kind in `crds` at every served version,
/// one rule per API group (the nine Istio kinds and `Mesh`). Takes the CRDs of
/// `weft_crds::crd::all`.
pub fn validator_rules(crds: &[CustomResourceDefinition]) -> Vec<RuleWithOperations> {
    let mut by_group: BTreeMap<&str, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for crd in crds {
        let (versions, resources) = by_group.entry(crd.spec.group.as_str()).or_default();
        for v in crd.spec.versions.iter().filter(|v| v.served) {
            if !versions.contains(&v.name) {
                versions.push(v.name.clone());
            }
        }
        resources.push(crd.spec.names.plural.clone());
    }
    by_group
        .into_iter()
        .map(|(group, (versions, resources))| RuleWithOperations {
            api_groups: Some(vec![group.to_string()]),
            api_versions: Some(versions),
            operations: Some(vec!["CREATE".to_string(), "UPDATE".to_string()]),
            resources: Some(resources),
            scope: None,
        })
        .collect()
}

/// The validator: one entry `validation.weft.dev` for [`validator_rules`], `failurePolicy:
/// Fail` (Istio's istiod sets its validator to Fail once it serves), `sideEffects: None`,
/// admission review `v1`, 10 s timeout, no selectors (`Mesh` is cluster-scoped).
pub fn validator(crds: &[CustomResourceDefinition]) -> ValidatingWebhookConfiguration {
    ValidatingWebhookConfiguration {
        metadata: meta(VALIDATOR_CONFIG_NAME),
        webhooks: Some(vec![ValidatingWebhook {
            name: VALIDATOR_WEBHOOK.to_string(),
            admission_review_versions: vec!["v1".to_string()],
            client_config: client_config(VALIDATE_PATH),
            failure_policy: Some("Fail".to_string()),
            match_policy: Some("Equivalent".to_string()),
            namespace_selector: None,
            object_selector: None,
            rules: Some(validator_rules(crds)),
            side_effects: "None".to_string(),
            timeout_seconds: Some(TIMEOUT_SECONDS),
            match_conditions: None,
        }]),
    }
}

/// `config/webhook/manifests.yaml`: the generated header, [`injector`] and [`validator`].
/// Errors only if serialization fails.
pub fn manifests_yaml(crds: &[CustomResourceDefinition]) -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "{}\n{}---\n{}",
        crate::generate::HEADER,
        serde_yaml::to_string(&injector())?,
        serde_yaml::to_string(&validator(crds))?
    ))
}

/// The injector's `failurePolicy` under OLM: `Ignore`, where [`injector`] says `Fail`.
///
/// Istio fails closed only for the pods its selectors pick (labelled namespaces and pods).
/// Under OLM the namespace selector is OLM's — for an AllNamespaces install, every namespace,
/// `kube-system` included — so failing closed would stop every pod creation in the cluster
/// whenever both operator replicas are down. Failing open keeps the cluster working; a pod
/// created meanwhile starts without a proxy, holds no mesh certificate, and is refused by
/// every STRICT peer, so it gains nothing it should not have.
pub const OLM_INJECTOR_FAILURE_POLICY: &str = "Ignore";

/// The fields of an admission webhook entry that OLM's `WebhookDescription` carries as is.
const OLM_COPIED_FIELDS: [&str; 7] = [
    "admissionReviewVersions",
    "failurePolicy",
    "matchPolicy",
    "reinvocationPolicy",
    "rules",
    "sideEffects",
    "timeoutSeconds",
];

/// One `WebhookDescription`: `entry` (a serialized webhook entry) reduced to
/// [`OLM_COPIED_FIELDS`], plus the OLM fields.
fn olm_definition(kind: &str, name: &str, path: &str, entry: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for field in OLM_COPIED_FIELDS {
        if let Some(v) = entry.get(field) {
            out.insert(field.to_string(), v.clone());
        }
    }
    for (k, v) in [
        ("type", json!(kind)),
        ("generateName", json!(name)),
        ("deploymentName", json!(OPERATOR_NAME)),
        ("containerPort", json!(WEBHOOK_PORT)),
        ("targetPort", json!(WEBHOOK_PORT)),
        ("webhookPath", json!(path)),
    ] {
        out.insert(k.to_string(), v);
    }
    Value::Object(out)
}

/// The CSV's `webhookdefinitions` (OLM's `WebhookDescription`), for the Deployment
/// `weft-operator`, container and target port 9443.
///
/// OLM owns `namespaceSelector` (from the OperatorGroup; none for AllNamespaces) and the
/// serving certificate, so the four injector entries, which differ only by namespace selector,
/// become one: every pod not labelled `sidecar.istio.io/inject=false` is sent, and the injector
/// decides by the namespace's labels in its own code (`should_inject` over the operator's
/// Namespace cache). Rules, side effects, review versions and timeout are those of [`injector`]
/// and [`validator`]; the injector's failure policy is [`OLM_INJECTOR_FAILURE_POLICY`].
/// Errors only if serialization fails.
pub fn olm_definitions(crds: &[CustomResourceDefinition]) -> Result<Vec<Value>, serde_json::Error> {
    let first = |list: Value| list.get(0).cloned().unwrap_or_default();
    let injector = first(serde_json::to_value(injector().webhooks)?);
    let validator = first(serde_json::to_value(validator(crds).webhooks)?);
    let mut mutating = olm_definition(
        "MutatingAdmissionWebhook",
        INJECTOR_WEBHOOK,
        INJECT_PATH,
        &injector,
    );
    if let Value::Object(m) = &mut mutating {
        m.insert("failurePolicy".into(), json!(OLM_INJECTOR_FAILURE_POLICY));
        m.insert(
            "objectSelector".into(),
            serde_json::to_value(selector(vec![requirement(
                SIDECAR_INJECT,
                "NotIn",
                &["false"],
            )]))?,
        );
    }
    let validating = olm_definition(
        "ValidatingAdmissionWebhook",
        VALIDATOR_WEBHOOK,
        VALIDATE_PATH,
        &validator,
    );
    Ok(vec![mutating, validating])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(selector: &LabelSelector, labels: &BTreeMap<&str, &str>) -> bool {
        selector.match_expressions.iter().flatten().all(|r| {
            let value = labels.get(r.key.as_str());
            let values = r.values.as_deref().unwrap_or_default();
            match r.operator.as_str() {
                "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
                "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                other => panic!("operator {other}"),
            }
        })
    }

    /// The entries of the injector a pod with `pod` labels in a namespace with `ns` labels is
    /// sent to.
    fn entries_hit(ns: &[(&str, &str)], pod: &[(&str, &str)]) -> Vec<String> {
        let ns: BTreeMap<_, _> = ns.iter().copied().collect();
        let pod: BTreeMap<_, _> = pod.iter().copied().collect();
        injector()
            .webhooks
            .unwrap()
            .into_iter()
            .filter(|w| {
                matches(w.namespace_selector.as_ref().unwrap(), &ns)
                    && matches(w.object_selector.as_ref().unwrap(), &pod)
            })
            .map(|w| w.name)
            .collect()
    }

    #[test]
    fn each_pod_reaches_at_most_one_entry_as_in_istio() {
        let name = |n| (NAMESPACE_NAME_LABEL, n);
        type Labels<'a> = Vec<(&'a str, &'a str)>;
        let cases: Vec<(Labels, Labels, Vec<&str>)> = vec![
            (
                vec![name("a"), ("istio-injection", "enabled")],
                vec![],
                vec!["namespace.sidecar-injector.weft.dev"],
            ),
            (
                vec![name("a"), ("istio-injection", "enabled")],
                vec![("sidecar.istio.io/inject", "false")],
                vec![],
            ),
            (
                vec![name("a")],
                vec![("sidecar.istio.io/inject", "true")],
                vec!["object.sidecar-injector.weft.dev"],
            ),
            (vec![name("a")], vec![], vec![]),
            (
                vec![name("a"), ("istio.io/rev", "default")],
                vec![],
                vec!["rev.namespace.sidecar-injector.weft.dev"],
            ),
            (vec![name("a"), ("istio.io/rev", "canary")], vec![], vec![]),
            (
                vec![name("a")],
                vec![("istio.io/rev", "default")],
                vec!["rev.object.sidecar-injector.weft.dev"],
            ),
            (
                vec![name("a"), ("istio-injection", "disabled")],
                vec![("sidecar.istio.io/inject", "true")],
                vec![],
            ),
            (
                vec![name("kube-system"), ("istio-injection", "enabled")],
                vec![],
                vec![],
            ),
            (
                vec![name(NAMESPACE)],
                vec![("sidecar.istio.io/inject", "true")],
                vec![],
            ),
        ];
        for (ns, pod, want) in cases {
            assert_eq!(
                entries_hit(&ns, &pod),
                want,
                "namespace {ns:?}, pod {pod:?}"
            );
        }
    }

    #[test]
    fn validator_covers_every_served_version_of_every_kind() {
        let crds = weft_crds::crd::all().unwrap();
        let rules = validator_rules(&crds);
        for crd in &crds {
            for v in crd.spec.versions.iter().filter(|v| v.served) {
                assert!(
                    rules.iter().any(|r| {
                        r.api_groups.as_deref() == Some(&[crd.spec.group.clone()][..])
                            && r.api_versions.iter().flatten().any(|x| *x == v.name)
                            && r.resources
                                .iter()
                                .flatten()
                                .any(|x| *x == crd.spec.names.plural)
                    }),
                    "{} {}",
                    crd.spec.names.plural,
                    v.name
                );
            }
        }
        assert_eq!(rules.len(), 3, "networking, security, mesh");
    }
}
