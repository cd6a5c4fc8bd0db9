//! Every Kubernetes API permission `weft-operator` uses, in one table ([`PERMISSIONS`]), and
//! its renderings: the ClusterRole and Role of `config/rbac/role.yaml` ([`role_yaml`]) and the
//! ClusterServiceVersion's `clusterPermissions`/`permissions` ([`policy_rules`]).
//!
//! Least privilege: each row names the code that needs it. Kubernetes RBAC cannot restrict by
//! label, and a `list`/`watch` can be restricted by `resourceNames` only when the client sends
//! a `metadata.name` field selector (the operator watches its two webhook configurations that
//! way). Secrets must be readable cluster-wide because the Citadel's controller owns the
//! workload certificate Secrets of every mesh namespace (it watches them with a label
//! selector, which RBAC cannot express).

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::webhooks::{INJECTOR_CONFIG_NAME, VALIDATOR_CONFIG_NAME};
use crate::{NAMESPACE, OPERATOR_NAME};

/// Where a [`Permission`] applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace and cluster-scoped objects: a rule of the ClusterRole.
    Cluster,
    /// Only the operator's namespace ([`NAMESPACE`]): a rule of the Role.
    OperatorNamespace,
}

/// One RBAC rule and why the operator needs it (Kubernetes' `rbac.authorization.k8s.io/v1`
/// `PolicyRule`: `apiGroups`, `resources`, `verbs`, `resourceNames`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Permission {
    /// ClusterRole or Role.
    pub scope: Scope,
    /// API groups (`""` is the core group).
    pub api_groups: &'static [&'static str],
    /// Resources, with subresources as `resource/subresource`.
    pub resources: &'static [&'static str],
    /// Verbs.
    pub verbs: &'static [&'static str],
    /// Object names the rule is restricted to; empty for all.
    pub resource_names: &'static [&'static str],
    /// The code that needs it.
    pub why: &'static str,
}

/// The nine Istio kinds Weft serves, as `(group, plural)`; [`crate::check`]'s tests compare
/// them with the CRDs of `weft_crds::crd::all`.
pub const ISTIO_RESOURCES: [(&str, &str); 9] = [
    ("networking.istio.io", "virtualservices"),
    ("networking.istio.io", "destinationrules"),
    ("networking.istio.io", "gateways"),
    ("networking.istio.io", "serviceentries"),
    ("networking.istio.io", "sidecars"),
    ("networking.istio.io", "workloadentries"),
    ("security.istio.io", "peerauthentications"),
    ("security.istio.io", "authorizationpolicies"),
    ("security.istio.io", "requestauthentications"),
];

/// The leader-election Lease in the operator's namespace (the operator's `--leader-elect`).
pub const LEASE_NAME: &str = "weft-operator-leader";

const NETWORKING: &[&str] = &["networking.istio.io"];
const SECURITY: &[&str] = &["security.istio.io"];
const MESH: &[&str] = &["mesh.weft.dev"];
const READ: &[&str] = &["get", "list", "watch"];

/// The table. Rendered in this order; the ClusterRole gets the [`Scope::Cluster`] rows, the
/// Role the [`Scope::OperatorNamespace`] rows.
pub const PERMISSIONS: &[Permission] = &[
    Permission {
        scope: Scope::Cluster,
        api_groups: &[""],
        resources: &["services", "pods", "namespaces", "serviceaccounts"],
        verbs: READ,
        resource_names: &[],
        why: "the cluster view (Pilot), the injector's namespace labels, the Citadel's ServiceAccount and Namespace controllers",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &["discovery.k8s.io"],
        resources: &["endpointslices"],
        verbs: READ,
        resource_names: &[],
        why: "service endpoints for the cluster view (Pilot)",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &[""],
        resources: &["nodes"],
        verbs: READ,
        resource_names: &[],
        why: "a pod's locality from its Node's topology labels (topology.kubernetes.io/region, topology.kubernetes.io/zone, topology.istio.io/subzone), as Istio reads it; watched metadata-only",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: NETWORKING,
        resources: &[
            "virtualservices",
            "destinationrules",
            "gateways",
            "serviceentries",
            "sidecars",
            "workloadentries",
        ],
        verbs: READ,
        resource_names: &[],
        why: "the mesh configuration (Galley, Pilot)",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: SECURITY,
        resources: &[
            "peerauthentications",
            "authorizationpolicies",
            "requestauthentications",
        ],
        verbs: READ,
        resource_names: &[],
        why: "the mesh security policies (Galley, Pilot)",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: NETWORKING,
        resources: &[
            "virtualservices/status",
            "destinationrules/status",
            "gateways/status",
            "serviceentries/status",
            "sidecars/status",
            "workloadentries/status",
        ],
        verbs: &["get", "patch", "update"],
        resource_names: &[],
        why: "status conditions Accepted, Resolved, Reconciled and validationMessages",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: SECURITY,
        resources: &[
            "peerauthentications/status",
            "authorizationpolicies/status",
            "requestauthentications/status",
        ],
        verbs: &["get", "patch", "update"],
        resource_names: &[],
        why: "status conditions Accepted, Resolved, Reconciled and validationMessages",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: MESH,
        resources: &["meshes"],
        verbs: &["get", "list", "watch", "patch", "update"],
        resource_names: &[],
        why: "the Mesh settings; patch/update add and remove the Mesh controller's finalizer",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: MESH,
        resources: &["meshes/status"],
        verbs: &["get", "patch", "update"],
        resource_names: &[],
        why: "the Mesh conditions Ready, CertificateAuthorityReady, WebhooksReady, DiscoveryReady",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: MESH,
        resources: &["meshes/finalizers"],
        verbs: &["update"],
        resource_names: &[],
        why: "owner references with blockOwnerDeletion on what the Mesh creates (OwnerReferencesPermissionEnforcement)",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &[""],
        resources: &["secrets"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
        why: "Citadel: workload certificate Secrets weft-workload-cert-<sa> in every mesh namespace (server-side apply: patch, and create when the apply creates the object), owned and watched by label; the CA Secrets cacerts (read) and weft-ca-secret (created once) in the operator namespace; deleted (only those labelled as Weft's, never cacerts) by the Mesh finalizer's cleanup; gateway credentialName Secrets (and <name>-cacert), read and watched by name in the gateway workloads' namespaces; DestinationRule MUTUAL credentialName Secrets (and <name>-cacert), likewise in the namespaces of the proxies using them",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &[""],
        resources: &["configmaps"],
        verbs: &["get", "list", "watch", "create", "patch", "delete"],
        resource_names: &[],
        why: "Citadel: the trust bundle ConfigMap istio-ca-root-cert in every mesh namespace (server-side apply), watched by name; deleted (only those labelled as Weft's) by the Mesh finalizer's cleanup",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &["admissionregistration.k8s.io"],
        resources: &["mutatingwebhookconfigurations"],
        verbs: &["get", "list", "watch", "patch"],
        resource_names: &[INJECTOR_CONFIG_NAME],
        why: "patch the injector's caBundle (outside OLM); list/watch with a metadata.name field selector",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &["admissionregistration.k8s.io"],
        resources: &["validatingwebhookconfigurations"],
        verbs: &["get", "list", "watch", "patch"],
        resource_names: &[VALIDATOR_CONFIG_NAME],
        why: "patch the validator's caBundle (outside OLM); list/watch with a metadata.name field selector",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &[""],
        resources: &["events"],
        verbs: &["create", "patch"],
        resource_names: &[],
        why: "Kubernetes Events on mesh objects (kube-runtime's recorder, core API)",
    },
    Permission {
        scope: Scope::Cluster,
        api_groups: &["events.k8s.io"],
        resources: &["events"],
        verbs: &["create", "patch"],
        resource_names: &[],
        why: "Kubernetes Events on mesh objects (kube-runtime's recorder, events.k8s.io/v1)",
    },
    Permission {
        scope: Scope::OperatorNamespace,
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["create"],
        resource_names: &[],
        why: "leader election: the first replica creates the Lease (create cannot be restricted by name)",
    },
    Permission {
        scope: Scope::OperatorNamespace,
        api_groups: &["coordination.k8s.io"],
        resources: &["leases"],
        verbs: &["get", "patch"],
        resource_names: &[LEASE_NAME],
        why: "leader election (kube-lease-manager: read, then strategic-merge or server-side apply patches to acquire, renew and release); only the leader writes status, Secrets and webhook configurations",
    },
    Permission {
        scope: Scope::OperatorNamespace,
        api_groups: &[""],
        resources: &["secrets"],
        verbs: &["get", "list", "watch"],
        resource_names: &["cacerts", "weft-ca-secret"],
        why: "Citadel: the mesh CA (Istio's plug-in cacerts, or Weft's self-signed root), read and watched by name; kept here so that the CA stays readable if the cluster-wide Secret rule is ever narrowed",
    },
];

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

/// The `PolicyRule`s of `scope`, in table order, `resourceNames` omitted when empty.
pub fn policy_rules(scope: Scope) -> Vec<PolicyRule> {
    PERMISSIONS
        .iter()
        .filter(|p| p.scope == scope)
        .map(|p| PolicyRule {
            api_groups: Some(strings(p.api_groups)),
            resources: Some(strings(p.resources)),
            verbs: strings(p.verbs),
            resource_names: (!p.resource_names.is_empty()).then(|| strings(p.resource_names)),
            non_resource_urls: None,
        })
        .collect()
}

/// Whether `rules` allow `verb` on `group`/`resource` (`resource/subresource` for a
/// subresource) for the object `name` (`None` for a list, watch or create), with Kubernetes'
/// RBAC matching: `*` matches any group, resource or verb, and a rule with `resourceNames`
/// matches only requests that name one of them.
pub fn allows(
    rules: &[PolicyRule],
    group: &str,
    resource: &str,
    verb: &str,
    name: Option<&str>,
) -> bool {
    let has = |list: &[String], item: &str| list.iter().any(|s| s == item || s == "*");
    rules.iter().any(|r| {
        has(r.api_groups.as_deref().unwrap_or_default(), group)
            && has(r.resources.as_deref().unwrap_or_default(), resource)
            && has(&r.verbs, verb)
            && match r.resource_names.as_deref() {
                None | Some([]) => true,
                Some(names) => name.is_some_and(|n| names.iter().any(|s| s == n)),
            }
    })
}

/// Whether the operator may do `verb` on `group`/`resource` named `name` in `namespace`
/// (`None` for cluster-scoped objects): the ClusterRole's rules apply everywhere, the Role's
/// only in [`NAMESPACE`].
pub fn operator_allowed(
    group: &str,
    resource: &str,
    verb: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    allows(&policy_rules(Scope::Cluster), group, resource, verb, name)
        || (namespace == Some(NAMESPACE)
            && allows(
                &policy_rules(Scope::OperatorNamespace),
                group,
                resource,
                verb,
                name,
            ))
}

fn meta(namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(OPERATOR_NAME.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(crate::bundle::common_labels()),
        ..ObjectMeta::default()
    }
}

/// The ClusterRole `weft-operator` ([`Scope::Cluster`] rows).
pub fn cluster_role() -> ClusterRole {
    ClusterRole {
        metadata: meta(None),
        rules: Some(policy_rules(Scope::Cluster)),
        aggregation_rule: None,
    }
}

/// The Role `weft-operator` in [`NAMESPACE`] ([`Scope::OperatorNamespace`] rows).
pub fn role() -> Role {
    Role {
        metadata: meta(Some(NAMESPACE)),
        rules: Some(policy_rules(Scope::OperatorNamespace)),
    }
}

/// `config/rbac/role.yaml`: the generated header, the ClusterRole and the Role. Errors only
/// if serialization fails.
pub fn role_yaml() -> Result<String, serde_yaml::Error> {
    Ok(format!(
        "{}\n{}---\n{}",
        crate::generate::HEADER,
        serde_yaml::to_string(&cluster_role())?,
        serde_yaml::to_string(&role())?
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_rules_apply_everywhere_and_role_rules_only_in_the_operator_namespace() {
        assert!(operator_allowed(
            "",
            "secrets",
            "patch",
            Some("bookinfo"),
            None
        ));
        let lease = |verb, namespace, name| {
            operator_allowed("coordination.k8s.io", "leases", verb, Some(namespace), name)
        };
        assert!(lease("patch", NAMESPACE, Some(LEASE_NAME)));
        assert!(lease("create", NAMESPACE, None));
        assert!(!lease("patch", NAMESPACE, Some("another-lease")));
        assert!(!lease("patch", "bookinfo", Some(LEASE_NAME)));
        assert!(!lease("create", "bookinfo", None));
    }

    #[test]
    fn nodes_are_read_cluster_wide_and_never_written() {
        for verb in ["get", "list", "watch"] {
            assert!(operator_allowed("", "nodes", verb, None, None), "{verb}");
        }
        for verb in ["create", "patch", "update", "delete"] {
            assert!(
                !operator_allowed("", "nodes", verb, None, Some("n1")),
                "{verb}"
            );
        }
    }

    #[test]
    fn resource_names_restrict_the_webhook_configurations() {
        let g = "admissionregistration.k8s.io";
        let r = "mutatingwebhookconfigurations";
        assert!(operator_allowed(
            g,
            r,
            "patch",
            None,
            Some(INJECTOR_CONFIG_NAME)
        ));
        assert!(!operator_allowed(
            g,
            r,
            "patch",
            None,
            Some("istio-sidecar-injector")
        ));
        assert!(
            !operator_allowed(g, r, "list", None, None),
            "an unrestricted list"
        );
        assert!(!operator_allowed(
            g,
            r,
            "delete",
            None,
            Some(INJECTOR_CONFIG_NAME)
        ));
    }

    #[test]
    fn delete_only_what_the_mesh_cleanup_removes_and_no_wildcards() {
        for p in PERMISSIONS {
            for list in [p.api_groups, p.resources, p.verbs] {
                assert!(!list.contains(&"*"), "{p:?}");
            }
            assert!(!p.verbs.contains(&"deletecollection"), "{p:?}");
            if p.verbs.contains(&"delete") {
                assert_eq!(p.api_groups, &[""], "{p:?}");
                assert!(
                    p.resources == ["secrets"] || p.resources == ["configmaps"],
                    "only the Mesh finalizer's Secrets and ConfigMaps are deleted: {p:?}"
                );
            }
        }
        assert!(operator_allowed(
            "",
            "secrets",
            "delete",
            Some("demo"),
            None
        ));
        assert!(operator_allowed(
            "",
            "configmaps",
            "delete",
            Some("demo"),
            None
        ));
        for (group, plural) in ISTIO_RESOURCES {
            assert!(
                !operator_allowed(group, plural, "delete", Some("a"), None),
                "{plural}"
            );
        }
    }

    #[test]
    fn every_istio_kind_is_read_and_its_status_written() {
        for (group, plural) in ISTIO_RESOURCES {
            for verb in ["get", "list", "watch"] {
                assert!(
                    operator_allowed(group, plural, verb, Some("a"), None),
                    "{verb} {plural}"
                );
            }
            let status = format!("{plural}/status");
            assert!(operator_allowed(
                group,
                &status,
                "patch",
                Some("a"),
                Some("x")
            ));
            assert!(
                !operator_allowed(group, plural, "patch", Some("a"), Some("x")),
                "{plural}: spec is never written"
            );
        }
    }
}
