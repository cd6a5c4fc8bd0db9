//! The facts of one cluster view that the conditions read: every mesh object, the analyzer
//! messages about each, and Pilot's unsupported-field warnings about each.

use std::collections::HashMap;

use weft_analyze::input::Entry;
use weft_analyze::{Input, Message, ResourceRef};
use weft_crds::MeshObject;
use weft_crds::mesh::{DEFAULT_NAME, Mesh, MeshSpec};
use weft_pilot::{ClusterObjects, ClusterView, ProxyTarget, Unsupported, build_proxy_config};
use weft_webhook::Validation;

use super::ObjectKey;

/// Every mesh object of `objects` (the nine Istio kinds, not `Mesh`), in the view's order
/// (kind, then namespace and name once the view sorted them).
pub fn mesh_objects(objects: &ClusterObjects) -> Vec<MeshObject> {
    let ClusterObjects {
        virtual_services,
        destination_rules,
        gateways,
        service_entries,
        sidecars,
        workload_entries,
        peer_authentications,
        authorization_policies,
        request_authentications,
        ..
    } = objects;
    let mut all = Vec::new();
    all.extend(
        virtual_services
            .iter()
            .cloned()
            .map(MeshObject::VirtualService),
    );
    all.extend(
        destination_rules
            .iter()
            .cloned()
            .map(MeshObject::DestinationRule),
    );
    all.extend(gateways.iter().cloned().map(MeshObject::Gateway));
    all.extend(
        service_entries
            .iter()
            .cloned()
            .map(MeshObject::ServiceEntry),
    );
    all.extend(sidecars.iter().cloned().map(MeshObject::Sidecar));
    all.extend(
        workload_entries
            .iter()
            .cloned()
            .map(MeshObject::WorkloadEntry),
    );
    all.extend(
        peer_authentications
            .iter()
            .cloned()
            .map(MeshObject::PeerAuthentication),
    );
    all.extend(
        authorization_policies
            .iter()
            .cloned()
            .map(MeshObject::AuthorizationPolicy),
    );
    all.extend(
        request_authentications
            .iter()
            .cloned()
            .map(MeshObject::RequestAuthentication),
    );
    all
}

/// The kind and metadata of every mesh object of `objects` (the nine Istio kinds), without
/// cloning them: what [`super::tracker::FirstSeen::record`] reads after every rebuild.
pub fn mesh_metas(
    objects: &ClusterObjects,
) -> impl Iterator<Item = (&'static str, &kube::core::ObjectMeta)> {
    fn of<'a, K: kube::Resource>(
        kind: &'static str,
        list: &'a [K],
    ) -> impl Iterator<Item = (&'static str, &'a kube::core::ObjectMeta)> {
        list.iter().map(move |o| (kind, o.meta()))
    }
    of("VirtualService", &objects.virtual_services)
        .chain(of("DestinationRule", &objects.destination_rules))
        .chain(of("Gateway", &objects.gateways))
        .chain(of("ServiceEntry", &objects.service_entries))
        .chain(of("Sidecar", &objects.sidecars))
        .chain(of("WorkloadEntry", &objects.workload_entries))
        .chain(of("PeerAuthentication", &objects.peer_authentications))
        .chain(of("AuthorizationPolicy", &objects.authorization_policies))
        .chain(of(
            "RequestAuthentication",
            &objects.request_authentications,
        ))
}

fn resource(kind: &str, meta: &kube::core::ObjectMeta) -> ResourceRef {
    ResourceRef {
        kind: kind.to_owned(),
        namespace: Some(meta.namespace.clone().unwrap_or_default()),
        name: meta.name.clone().unwrap_or_default(),
        origin: None,
    }
}

/// The analyzers' input for a cluster: `mesh_objects`, the view's Services, Pods and
/// Namespaces, and the `Mesh` (named `default`) with `mesh` (its root namespace).
pub fn analysis_input(view: &ClusterView, mesh: &MeshSpec, mesh_objects: &[MeshObject]) -> Input {
    let objects = view.objects();
    let mut input = Input::for_cluster();
    input.mesh_objects = mesh_objects
        .iter()
        .map(|object| Entry {
            resource: resource(object.kind(), object.meta()),
            object: object.clone(),
        })
        .collect();
    input.mesh_objects.push(Entry {
        resource: ResourceRef {
            kind: "Mesh".to_owned(),
            namespace: None,
            name: DEFAULT_NAME.to_owned(),
            origin: None,
        },
        object: MeshObject::Mesh(Mesh::new(DEFAULT_NAME, mesh.clone())),
    });
    input.services = objects
        .services
        .iter()
        .map(|s| Entry {
            resource: resource("Service", &s.metadata),
            object: s.clone(),
        })
        .collect();
    input.pods = objects
        .pods
        .iter()
        .map(|p| Entry {
            resource: resource("Pod", &p.metadata),
            object: p.clone(),
        })
        .collect();
    input.namespaces = objects
        .namespaces
        .iter()
        .map(|n| Entry {
            resource: ResourceRef {
                namespace: None,
                ..resource("Namespace", &n.metadata)
            },
            object: n.clone(),
        })
        .collect();
    input
}

/// Every unsupported-field warning Pilot gives for `view`: those of the service registry
/// (ServiceEntry fields) and those met building every proxy of the view
/// ([`ProxyTarget::all`]). Costs one build per proxy (the view's cache shares the clusters
/// between them); run it off the async executor.
pub fn unsupported(view: &ClusterView) -> Vec<Unsupported> {
    let mut all: Vec<Unsupported> = view
        .registry()
        .services()
        .iter()
        .flat_map(|service| service.unsupported.iter().cloned())
        .collect();
    for target in ProxyTarget::all(view) {
        all.extend(build_proxy_config(view, &target).warnings);
    }
    all.sort();
    all.dedup();
    all
}

/// What the conditions of every object of one view read, computed once per view.
#[derive(Debug, Default)]
pub struct ViewFacts {
    /// Every mesh object of the view (see [`mesh_objects`]).
    pub objects: Vec<MeshObject>,
    analysis: HashMap<ObjectKey, Vec<Message>>,
    unsupported: HashMap<ObjectKey, Vec<Unsupported>>,
    validation: HashMap<ObjectKey, Validation>,
}

/// The findings of an object without any.
static NO_FINDINGS: Validation = Validation {
    errors: Vec::new(),
    warnings: Vec::new(),
};

impl ViewFacts {
    /// Validates every object ([`weft_webhook::validate`], the webhook's rules), runs the
    /// analyzers ([`weft_analyze::analyze`] over [`analysis_input`]) and collects
    /// Pilot's warnings ([`unsupported`]) for `view`, whose `Mesh` spec is `mesh`. Messages
    /// and warnings about objects other than the nine mesh kinds (Pods, Namespaces,
    /// Services) are dropped: they have no status of ours.
    pub fn compute(view: &ClusterView, mesh: &MeshSpec) -> Self {
        let objects = mesh_objects(view.objects());
        let messages = weft_analyze::analyze(&analysis_input(view, mesh, &objects));
        Self::from_parts(objects, messages, unsupported(view))
    }

    /// Validates `objects` and groups `messages` and `warnings` by the object they are about,
    /// keeping only those about one of `objects`.
    pub fn from_parts(
        objects: Vec<MeshObject>,
        messages: Vec<Message>,
        warnings: Vec<Unsupported>,
    ) -> Self {
        let known: std::collections::HashSet<ObjectKey> =
            objects.iter().map(ObjectKey::of).collect();
        let mut analysis: HashMap<ObjectKey, Vec<Message>> = HashMap::new();
        for message in messages {
            let Some(resource) = &message.resource else {
                continue;
            };
            let key = ObjectKey {
                kind: resource.kind.clone(),
                namespace: resource.namespace.clone().unwrap_or_default(),
                name: resource.name.clone(),
            };
            if known.contains(&key) {
                analysis.entry(key).or_default().push(message);
            }
        }
        let mut unsupported: HashMap<ObjectKey, Vec<Unsupported>> = HashMap::new();
        for warning in warnings {
            let key = ObjectKey {
                kind: warning.kind.clone(),
                namespace: warning.namespace.clone(),
                name: warning.name.clone(),
            };
            if known.contains(&key) {
                unsupported.entry(key).or_default().push(warning);
            }
        }
        let validation = objects
            .iter()
            .map(|object| (ObjectKey::of(object), weft_webhook::validate(object)))
            .collect();
        Self {
            objects,
            analysis,
            unsupported,
            validation,
        }
    }

    /// The analyzer messages about `key` (empty when none).
    pub fn analysis(&self, key: &ObjectKey) -> &[Message] {
        self.analysis.get(key).map_or(&[], Vec::as_slice)
    }

    /// The validating webhook's findings for `key` (none when the key is unknown).
    pub fn validation(&self, key: &ObjectKey) -> &Validation {
        self.validation.get(key).unwrap_or(&NO_FINDINGS)
    }

    /// Pilot's warnings about `key` (empty when none).
    pub fn unsupported(&self, key: &ObjectKey) -> &[Unsupported] {
        self.unsupported.get(key).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIEW: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: demo}
spec: {ports: [{name: http, port: 9080}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  namespace: demo
  labels: {app: web}
  annotations: {sidecar.istio.io/status: '{}'}
spec: {serviceAccountName: web, containers: [{name: web, image: web}]}
status: {podIP: 10.0.0.9}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: demo}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviewz}}]
  - delegate: {name: other}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: demo}
spec: {selector: {matchLabels: {app: nothing}}}
"#;

    #[test]
    fn analyzer_messages_and_pilot_warnings_are_grouped_by_object() {
        let view = ClusterView::from_yaml(VIEW).unwrap();
        let facts = ViewFacts::compute(&view, &MeshSpec::default());
        assert_eq!(facts.objects.len(), 2);
        let vs = ObjectKey {
            kind: "VirtualService".into(),
            namespace: "demo".into(),
            name: "reviews".into(),
        };
        let codes: Vec<_> = facts.analysis(&vs).iter().map(|m| m.code).collect();
        assert!(codes.contains(&"IST0101"), "{codes:?}");
        let paths: Vec<_> = facts
            .unsupported(&vs)
            .iter()
            .map(|u| u.field_path.as_str())
            .collect();
        assert!(paths.contains(&"spec.http[1].delegate"), "{paths:?}");
        let policy = ObjectKey {
            kind: "AuthorizationPolicy".into(),
            namespace: "demo".into(),
            name: "nobody".into(),
        };
        let codes: Vec<_> = facts.analysis(&policy).iter().map(|m| m.code).collect();
        assert_eq!(codes, ["IST0127"]);
        assert!(facts.unsupported(&policy).is_empty());
    }
}
