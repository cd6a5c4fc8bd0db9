use super::*;

/// Namespaces `a` (no Sidecar) and `b` (default Sidecar, egress `./*`), a service with two
/// workloads in each, and a VirtualService in `a` whose v1 weight is `weight`; `extra` is
/// appended as more documents.
fn mesh(weight: u32, extra: &str) -> ClusterView {
    let mut text = String::from(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: b}\n\
         spec:\n  egress:\n  - hosts: ['./*']\n",
    );
    for ns in ["a", "b"] {
        text.push_str(&format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: web, namespace: {ns}}}\n\
             spec:\n  hosts: [web.{ns}.svc.cluster.local]\n  addresses: [240.240.0.{n}]\n  \
             location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: 80, name: http}}]\n  \
             workloadSelector: {{labels: {{app: web}}}}\n",
            n = if ns == "a" { 1 } else { 2 }
        ));
        for replica in 0..2 {
            text.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: web-{replica}, namespace: {ns}}}\n\
                 spec: {{address: 10.0.{n}.{replica}, labels: {{app: web, version: v{replica}}}}}\n",
                n = if ns == "a" { 1 } else { 2 }
            ));
        }
    }
    text.push_str(&format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: a}}\n\
         spec:\n  hosts: [web]\n  http:\n  - route:\n    - {{destination: {{host: web, subset: v0}}, weight: {}}}\n    \
         - {{destination: {{host: web, subset: v1}}, weight: {weight}}}\n",
        100 - weight
    ));
    text.push_str(extra);
    ClusterView::from_yaml(&text).unwrap()
}

/// `namespace/name` of every target of `after` that `change` may affect.
fn reached(change: &ViewChange, after: &ClusterView) -> Vec<String> {
    ProxyTarget::all(after)
        .into_iter()
        .filter(|target| change.may_affect(after, target))
        .map(|target| format!("{}/{}", target.namespace, target.instance_name))
        .collect()
}

fn names(targets: Vec<ProxyTarget>) -> Vec<String> {
    targets
        .into_iter()
        .map(|target| format!("{}/{}", target.namespace, target.instance_name))
        .collect()
}

#[test]
fn a_virtual_service_change_reaches_only_proxies_whose_scope_includes_it() {
    let (before, after) = (mesh(10, ""), mesh(20, ""));
    let change = after.change_since(&before);
    assert!(!change.is_empty());
    assert_eq!(reached(&change, &after), ["a/web-0", "a/web-1"]);
    // The exact answer (two builds per proxy) agrees.
    assert_eq!(
        names(affected_proxies(&before, &after)),
        ["a/web-0", "a/web-1"]
    );
}

#[test]
fn equal_views_reach_no_proxy() {
    let change = mesh(10, "").change_since(&mesh(10, ""));
    assert!(change.is_empty());
    assert!(reached(&change, &mesh(10, "")).is_empty());
}

#[test]
fn a_virtual_service_exported_elsewhere_or_bound_to_a_gateway_reaches_nobody_else() {
    let vs = |extra: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: other, namespace: a}}\n\
             spec:\n  hosts: ['*.example.com']\n{extra}  http:\n  - route:\n    - destination: {{host: web}}\n"
        )
    };
    // Exported to `a` only: proxies of `b` cannot see it.
    let before = mesh(10, "");
    let after = mesh(10, &vs("  exportTo: ['.']\n"));
    assert_eq!(
        reached(&after.change_since(&before), &after),
        ["a/web-0", "a/web-1"]
    );
    // Bound to a gateway only: no sidecar sees it.
    let after = mesh(10, &vs("  gateways: [istio-system/ingress]\n"));
    assert!(reached(&after.change_since(&before), &after).is_empty());
}

#[test]
fn a_sidecar_egress_naming_the_host_brings_the_change_into_scope() {
    let sidecar = "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: v1-only, namespace: b}\n\
                   spec:\n  workloadSelector: {labels: {version: v1}}\n  egress:\n  - hosts: ['a/web.a.svc.cluster.local']\n";
    let (before, after) = (mesh(10, sidecar), mesh(20, sidecar));
    let change = after.change_since(&before);
    let expected = ["a/web-0", "a/web-1", "b/web-1"];
    assert_eq!(reached(&change, &after), expected);
    assert_eq!(names(affected_proxies(&before, &after)), expected);
}

#[test]
fn any_other_change_reaches_every_proxy() {
    let before = mesh(10, "");
    let rule = "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: a}\n\
                spec:\n  host: web\n  subsets:\n  - {name: v0, labels: {version: v0}}\n";
    let after = mesh(10, rule);
    assert_eq!(reached(&after.change_since(&before), &after).len(), 4);
}

/// A Secret for `credentialName` in namespace `a`, its certificate text `cert`.
fn with_secret(view: ClusterView, cert: &str) -> ClusterView {
    let secret: k8s_openapi::api::core::v1::Secret = serde_yaml::from_str(&format!(
        "metadata: {{name: shop-cert, namespace: a}}\ntype: kubernetes.io/tls\n\
         stringData: {{tls.crt: {cert}, tls.key: key}}\n"
    ))
    .unwrap();
    view.with_secrets([secret])
}

#[test]
fn a_secret_change_reaches_every_gateway_and_no_sidecar() {
    let before = with_secret(mesh(10, ""), "old");
    let after = with_secret(mesh(10, ""), "new");
    let change = after.change_since(&before);
    assert!(!change.is_empty());
    assert!(
        reached(&change, &after).is_empty(),
        "sidecars do not read Secrets"
    );
    let mut gateway = ProxyTarget::all(&after).remove(0);
    gateway.proxy_type = ProxyType::Router;
    assert!(change.may_affect(&after, &gateway));
    let same = with_secret(mesh(10, ""), "old").change_since(&before);
    assert!(same.is_empty());
    assert!(!same.may_affect(&after, &gateway));
}

#[test]
fn a_secret_change_reaches_sidecars_of_a_namespace_with_a_selecting_credential_rule() {
    // Istio applies credentialName at sidecars only through a rule with a workloadSelector.
    let rule = |selector: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\n\
             metadata: {{name: db, namespace: a}}\nspec:\n  host: web.b.svc.cluster.local\n{selector}  \
             trafficPolicy: {{tls: {{mode: MUTUAL, credentialName: shop-cert}}}}\n"
        )
    };
    let selecting = rule("  workloadSelector: {matchLabels: {app: web}}\n");
    let before = with_secret(mesh(10, &selecting), "old");
    let after = with_secret(mesh(10, &selecting), "new");
    assert_eq!(
        reached(&after.change_since(&before), &after),
        ["a/web-0", "a/web-1"]
    );
    let plain = rule("");
    let before = with_secret(mesh(10, &plain), "old");
    let after = with_secret(mesh(10, &plain), "new");
    assert!(reached(&after.change_since(&before), &after).is_empty());
}

#[test]
fn a_jwks_change_reaches_every_proxy() {
    let before = mesh(10, "").with_jwks([("https://issuer/jwks".to_owned(), "{}".to_owned())]);
    let after = mesh(10, "").with_jwks([(
        "https://issuer/jwks".to_owned(),
        r#"{"keys":[]}"#.to_owned(),
    )]);
    assert_eq!(reached(&after.change_since(&before), &after).len(), 4);
}
