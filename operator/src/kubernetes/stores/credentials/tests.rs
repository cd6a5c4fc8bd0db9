use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use weft_pilot::ClusterView;

use super::*;

/// Objects of a YAML stream (Pods, WorkloadEntries, Gateways).
fn objects(yaml: &str) -> ClusterObjects {
    ClusterView::from_yaml(yaml).unwrap().objects().clone()
}

const INGRESS_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: ingress-1, namespace: istio-system, labels: {istio: ingressgateway}}
spec: {serviceAccountName: ingress, containers: [{name: proxy, image: weft-proxy}]}
"#;

fn gateway(selector: &str, tls: &str, protocol: &str) -> String {
    format!(
        r#"
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: shop, namespace: shop}}
spec:
  selector: {selector}
  servers:
  - port: {{number: 443, name: https, protocol: {protocol}}}
    hosts: [shop.example.com]
    tls: {tls}
"#
    )
}

fn refs(items: &[(&str, &str)]) -> BTreeSet<SecretRef> {
    items
        .iter()
        .map(|(namespace, name)| SecretRef::new(*namespace, *name))
        .collect()
}

#[test]
fn a_simple_server_references_its_credential_in_the_gateway_workloads_namespace() {
    let yaml = format!(
        "{INGRESS_POD}{}",
        gateway(
            "{istio: ingressgateway}",
            "{mode: SIMPLE, credentialName: shop-cert}",
            "HTTPS"
        )
    );
    // The Gateway lives in `shop`, its workload in `istio-system`: Istio reads the Secret in
    // the workload's namespace.
    assert_eq!(
        referenced_secrets(&objects(&yaml)),
        refs(&[("istio-system", "shop-cert")])
    );
}

#[test]
fn mutual_modes_add_the_cacert_secret_or_the_named_ca_credential() {
    for mode in ["MUTUAL", "OPTIONAL_MUTUAL"] {
        let yaml = format!(
            "{INGRESS_POD}{}",
            gateway(
                "{istio: ingressgateway}",
                &format!("{{mode: {mode}, credentialName: shop-cert}}"),
                "https"
            )
        );
        assert_eq!(
            referenced_secrets(&objects(&yaml)),
            refs(&[
                ("istio-system", "shop-cert"),
                ("istio-system", "shop-cert-cacert")
            ]),
            "{mode}"
        );
    }
    let yaml = format!(
        "{INGRESS_POD}{}",
        gateway(
            "{istio: ingressgateway}",
            "{mode: MUTUAL, credentialNames: [a, b], caCertCredentialName: client-ca}",
            "TLS"
        )
    );
    assert_eq!(
        referenced_secrets(&objects(&yaml)),
        refs(&[("istio-system", "a"), ("istio-system", "client-ca")]),
        "the first credentialNames entry, and the named CA instead of <name>-cacert"
    );
}

#[test]
fn servers_that_read_no_credential_reference_nothing() {
    for (tls, protocol) in [
        ("{credentialName: shop-cert}", "HTTPS"), // PASSTHROUGH is the default mode
        ("{mode: ISTIO_MUTUAL, credentialName: shop-cert}", "HTTPS"),
        ("{mode: AUTO_PASSTHROUGH, credentialName: shop-cert}", "TLS"),
        ("{mode: SIMPLE, credentialName: shop-cert}", "HTTP"),
        (
            "{mode: SIMPLE, serverCertificate: /c.pem, privateKey: /k.pem}",
            "HTTPS",
        ),
    ] {
        let yaml = format!(
            "{INGRESS_POD}{}",
            gateway("{istio: ingressgateway}", tls, protocol)
        );
        assert!(
            referenced_secrets(&objects(&yaml)).is_empty(),
            "{tls} {protocol}"
        );
    }
}

#[test]
fn every_selected_workload_namespace_and_only_those() {
    let yaml = format!(
        r#"{INGRESS_POD}
---
apiVersion: v1
kind: Pod
metadata: {{name: ingress-2, namespace: edge, labels: {{istio: ingressgateway}}}}
spec: {{containers: [{{name: proxy, image: weft-proxy}}]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: demo, labels: {{app: web}}}}
spec: {{containers: [{{name: web, image: nginx}}]}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: vm-gw, namespace: vms}}
spec: {{address: 198.18.0.9, labels: {{istio: ingressgateway}}}}
{}"#,
        gateway(
            "{istio: ingressgateway}",
            "{mode: SIMPLE, credentialName: shop-cert}",
            "HTTPS"
        )
    );
    assert_eq!(
        referenced_secrets(&objects(&yaml)),
        refs(&[
            ("edge", "shop-cert"),
            ("istio-system", "shop-cert"),
            ("vms", "shop-cert")
        ])
    );
    let unmatched = format!(
        "{INGRESS_POD}{}",
        gateway(
            "{istio: egressgateway}",
            "{mode: SIMPLE, credentialName: shop-cert}",
            "HTTPS"
        )
    );
    assert!(referenced_secrets(&objects(&unmatched)).is_empty());
}

/// A DestinationRule `db` in `demo` originating TLS in `mode` with `credentialName:
/// client-cert`, with `selector` (YAML map, or empty for none).
fn rule(mode: &str, selector: &str) -> String {
    let selector = if selector.is_empty() {
        String::new()
    } else {
        format!("  workloadSelector: {{matchLabels: {selector}}}\n")
    };
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
         metadata: {{name: db, namespace: demo}}\nspec:\n  host: db.example.com\n{selector}  \
         trafficPolicy:\n    portLevelSettings:\n    - port: {{number: 443}}\n      \
         tls: {{mode: {mode}, credentialName: client-cert}}\n"
    )
}

const CLIENT_PODS: &str = r#"
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec: {containers: [{name: app, image: app}]}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: other, labels: {app: client}}
spec: {containers: [{name: app, image: app}]}
"#;

#[test]
fn a_selecting_mutual_rule_references_its_credential_in_its_own_namespace() {
    let yaml = format!("{CLIENT_PODS}{}", rule("MUTUAL", "{app: client}"));
    assert_eq!(
        referenced_secrets(&objects(&yaml)),
        refs(&[("demo", "client-cert"), ("demo", "client-cert-cacert")]),
        "only the rule's namespace: a selector applies there only"
    );
    let unmatched = format!("{CLIENT_PODS}{}", rule("MUTUAL", "{app: nobody}"));
    assert!(referenced_secrets(&objects(&unmatched)).is_empty());
    for mode in ["SIMPLE", "ISTIO_MUTUAL", "DISABLE"] {
        let yaml = format!("{CLIENT_PODS}{}", rule(mode, "{app: client}"));
        assert!(referenced_secrets(&objects(&yaml)).is_empty(), "{mode}");
    }
}

#[test]
fn a_rule_without_selector_references_its_credential_for_gateways_only() {
    let sidecars_only = format!("{CLIENT_PODS}{}", rule("MUTUAL", ""));
    assert!(
        referenced_secrets(&objects(&sidecars_only)).is_empty(),
        "sidecars read credentialName only through a workloadSelector"
    );
    let egress = format!(
        r#"{CLIENT_PODS}
---
apiVersion: v1
kind: Pod
metadata: {{name: egress-1, namespace: istio-system, labels: {{istio: egressgateway}}}}
spec: {{containers: [{{name: proxy, image: weft-proxy}}]}}
{}{}"#,
        gateway("{istio: egressgateway}", "{mode: ISTIO_MUTUAL}", "HTTPS"),
        rule("MUTUAL", "")
    );
    assert_eq!(
        referenced_secrets(&objects(&egress)),
        refs(&[
            ("istio-system", "client-cert"),
            ("istio-system", "client-cert-cacert")
        ])
    );
}

fn secret(namespace: &str, name: &str, certificate: &str) -> Secret {
    let mut secret = Secret::default();
    secret.metadata.name = Some(name.into());
    secret.metadata.namespace = Some(namespace.into());
    secret.metadata.annotations = Some(BTreeMap::from([(
        "kubectl.kubernetes.io/last-applied-configuration".to_owned(),
        "PRIVATE-KEY-COPY".to_owned(),
    )]));
    secret.type_ = Some("kubernetes.io/tls".into());
    secret.data = Some(BTreeMap::from([
        (
            "tls.crt".to_owned(),
            ByteString(certificate.as_bytes().to_vec()),
        ),
        ("tls.key".to_owned(), ByteString(b"PRIVATE-KEY".to_vec())),
    ]));
    secret
}

#[test]
fn the_store_keeps_type_and_data_only_and_never_prints_values() {
    let store = CredentialStore::default();
    let running = CancellationToken::new();
    let shop = SecretRef::new("istio-system", "shop-cert");
    assert!(store.apply(&shop, secret("istio-system", "shop-cert", "A"), &running));
    assert!(
        !store.apply(&shop, secret("istio-system", "shop-cert", "A"), &running),
        "the same value is no change"
    );
    let held = store.secrets_in(&BTreeSet::from([shop.clone()]));
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].metadata.annotations, None);
    assert_eq!(held[0].type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(held[0].data.as_ref().unwrap()["tls.crt"].0, b"A");
    let debug = format!("{store:?}");
    assert!(
        debug.contains("istio-system/shop-cert") && debug.contains("tls.key"),
        "{debug}"
    );
    assert!(!debug.contains("PRIVATE-KEY"), "{debug}");

    // Only referenced Secrets reach the view.
    assert!(store.secrets_in(&BTreeSet::new()).is_empty());

    // A stopped watcher cannot write back what was removed.
    let stopped = CancellationToken::new();
    stopped.cancel();
    assert!(store.remove(&shop));
    assert!(!store.apply(&shop, secret("istio-system", "shop-cert", "B"), &stopped));
    assert!(store.references().is_empty());
}
