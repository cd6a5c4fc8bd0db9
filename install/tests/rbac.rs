//! The permissions table covers what the operator does. The Kubernetes Citadel's requests are
//! listed here with their namespaces and names (from `operator/src/citadel/controller.rs`),
//! and that file is scanned so that a new kind or API call there fails this test until the
//! table (install/src/rbac.rs) and this list are updated.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::BTreeSet;

use weft_install::NAMESPACE;
use weft_install::rbac::{ISTIO_RESOURCES, operator_allowed};

/// A workload namespace (any namespace labelled `istio-injection=enabled`).
const WORKLOAD_NS: &str = "bookinfo";

/// `(verb, resource, namespace, name)` for every request the Citadel makes (core group).
fn citadel_requests() -> Vec<(
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<String>,
)> {
    let cert = weft_webhook::inject::workload_cert_secret_name("reviews");
    let root_cm = weft_webhook::inject::CA_ROOT_CERT_CONFIGMAP.to_string();
    vec![
        // The controllers' watches: ServiceAccounts, their Secrets (by label), Namespaces
        // (by label), the trust-bundle ConfigMaps (by name), all cluster-wide.
        ("list", "serviceaccounts", None, None),
        ("watch", "serviceaccounts", None, None),
        ("list", "secrets", None, None),
        ("watch", "secrets", None, None),
        ("list", "namespaces", None, None),
        ("watch", "namespaces", None, None),
        ("list", "configmaps", None, None),
        ("watch", "configmaps", None, None),
        // reconcile_service_account: GET the Namespace, GET and apply the Secret (a
        // server-side apply is a PATCH, authorized as create too when it creates the object).
        ("get", "namespaces", None, Some(WORKLOAD_NS.to_string())),
        ("get", "secrets", Some(WORKLOAD_NS), Some(cert.clone())),
        ("patch", "secrets", Some(WORKLOAD_NS), Some(cert.clone())),
        ("create", "secrets", Some(WORKLOAD_NS), Some(cert)),
        // reconcile_namespace: GET and apply istio-ca-root-cert.
        (
            "get",
            "configmaps",
            Some(WORKLOAD_NS),
            Some(root_cm.clone()),
        ),
        (
            "patch",
            "configmaps",
            Some(WORKLOAD_NS),
            Some(root_cm.clone()),
        ),
        ("create", "configmaps", Some(WORKLOAD_NS), Some(root_cm)),
        // load_ca: GET cacerts and weft-ca-secret, create weft-ca-secret, in the operator's
        // namespace.
        ("get", "secrets", Some(NAMESPACE), Some("cacerts".into())),
        (
            "get",
            "secrets",
            Some(NAMESPACE),
            Some("weft-ca-secret".into()),
        ),
        ("create", "secrets", Some(NAMESPACE), None),
    ]
}

#[test]
fn the_table_covers_every_citadel_request() {
    for (verb, resource, namespace, name) in citadel_requests() {
        assert!(
            operator_allowed("", resource, verb, namespace, name.as_deref()),
            "{verb} {resource} {namespace:?}/{name:?} is not allowed by install/src/rbac.rs"
        );
    }
}

fn source(path: &str) -> String {
    std::fs::read_to_string(support::root().join(path)).unwrap()
}

/// The identifiers that follow `marker` in `text` (up to the next non-identifier character).
fn after(text: &str, marker: &str) -> BTreeSet<String> {
    text.match_indices(marker)
        .map(|(i, _)| {
            text[i + marker.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[test]
fn the_citadel_uses_no_kind_or_call_the_request_list_does_not_know() {
    let text = source("operator/src/citadel/controller.rs");
    let squeezed: String = text.split_whitespace().collect();
    let mut kinds = after(&squeezed, "Api<");
    kinds.extend(after(&squeezed, "Api::<"));
    kinds.remove("K"); // the generic `apply` helper, called with Secrets and ConfigMaps
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "Namespace", "Secret", "ServiceAccount"].map(String::from)),
        "the Citadel uses another kind: add its permissions to install/src/rbac.rs and to citadel_requests()"
    );
    // Calls on the Api handles (kube's Api methods are the only ones with these names here).
    let api_methods = [
        "get",
        "get_opt",
        "list",
        "watch",
        "create",
        "patch",
        "replace",
        "delete",
        "delete_collection",
        "patch_status",
        "replace_status",
        "get_status",
        "evict",
        "patch_metadata",
        "get_metadata",
    ];
    let known = ["get_opt", "create", "patch"];
    for handle in ["secrets", "configmaps", "namespaces", "api"] {
        for method in after(&squeezed, &format!("{handle}.")) {
            if api_methods.contains(&method.as_str()) {
                assert!(
                    known.contains(&method.as_str()),
                    "the Citadel now calls {handle}.{method}: add the verb to install/src/rbac.rs and citadel_requests()"
                );
            }
        }
    }
    assert!(
        squeezed.contains("Patch::Apply"),
        "patch is a server-side apply (needs create too)"
    );
    // The CA Secret names in the Role's resourceNames are the Citadel's.
    let names = source("operator/src/citadel.rs");
    assert!(names.contains("PLUGIN_CA_SECRET_NAME: &str = \"cacerts\""));
    assert!(names.contains("CA_SECRET_NAME: &str = \"weft-ca-secret\""));
}

#[test]
fn the_istio_kinds_of_the_table_are_the_served_crds() {
    let served: BTreeSet<(String, String)> = weft_crds::crd::all()
        .unwrap()
        .into_iter()
        .filter(|c| c.spec.group != weft_crds::mesh::GROUP)
        .map(|c| (c.spec.group, c.spec.names.plural))
        .collect();
    let table: BTreeSet<(String, String)> = ISTIO_RESOURCES
        .iter()
        .map(|(g, r)| (g.to_string(), r.to_string()))
        .collect();
    assert_eq!(table, served);
}

#[test]
fn the_mesh_is_read_finalized_and_reported() {
    let g = weft_crds::mesh::GROUP;
    for verb in ["get", "list", "watch", "update", "patch"] {
        assert!(
            operator_allowed(g, "meshes", verb, None, Some("default")),
            "{verb}"
        );
    }
    assert!(operator_allowed(
        g,
        "meshes/status",
        "patch",
        None,
        Some("default")
    ));
    assert!(operator_allowed(
        g,
        "meshes/finalizers",
        "update",
        None,
        Some("default")
    ));
    assert!(!operator_allowed(
        g,
        "meshes",
        "delete",
        None,
        Some("default")
    ));
    for group in ["", "events.k8s.io"] {
        assert!(operator_allowed(
            group,
            "events",
            "create",
            Some(WORKLOAD_NS),
            None
        ));
    }
    // The Mesh finalizer's cleanup deletes the workload certificate Secrets it made.
    assert!(operator_allowed(
        "",
        "secrets",
        "delete",
        Some(WORKLOAD_NS),
        Some("x")
    ));
    assert!(!operator_allowed(
        "",
        "pods",
        "delete",
        Some(WORKLOAD_NS),
        Some("x")
    ));
    assert!(!operator_allowed(
        "",
        "pods",
        "patch",
        Some(WORKLOAD_NS),
        Some("x")
    ));
}

#[test]
fn the_table_covers_the_kubernetes_mode_requests() {
    use weft_install::rbac::LEASE_NAME;
    // The reflectors of the cluster view: list and watch, cluster-wide.
    let mut watched: Vec<(&str, &str)> = vec![
        ("", "services"),
        ("discovery.k8s.io", "endpointslices"),
        ("", "pods"),
        ("", "namespaces"),
        ("", "serviceaccounts"),
        (weft_crds::mesh::GROUP, "meshes"),
        // Metadata only (a PartialObjectMetadata list and watch is authorized as the kind's).
        ("", "nodes"),
    ];
    watched.extend(ISTIO_RESOURCES);
    for (group, resource) in watched {
        for verb in ["list", "watch"] {
            assert!(
                operator_allowed(group, resource, verb, None, None),
                "{verb} {resource}"
            );
        }
    }
    // The CA Secrets, watched by name in the operator's namespace.
    for name in ["cacerts", "weft-ca-secret"] {
        for verb in ["get", "list", "watch"] {
            assert!(operator_allowed(
                "",
                "secrets",
                verb,
                Some(NAMESPACE),
                Some(name)
            ));
        }
    }
    // The webhook configurations' caBundle: GET, then a strategic-merge PATCH, by name.
    for (resource, name) in [
        ("mutatingwebhookconfigurations", "weft-sidecar-injector"),
        ("validatingwebhookconfigurations", "weft-validator"),
    ] {
        for verb in ["get", "patch"] {
            assert!(operator_allowed(
                "admissionregistration.k8s.io",
                resource,
                verb,
                None,
                Some(name)
            ));
        }
    }
    // Leader election with kube-lease-manager: get, create, patch.
    let g = "coordination.k8s.io";
    assert!(operator_allowed(
        g,
        "leases",
        "create",
        Some(NAMESPACE),
        None
    ));
    for verb in ["get", "patch"] {
        assert!(operator_allowed(
            g,
            "leases",
            verb,
            Some(NAMESPACE),
            Some(LEASE_NAME)
        ));
    }
}
