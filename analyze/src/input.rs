//! What is analyzed: mesh objects and the Kubernetes objects the analyzers look at, each with
//! the resource it came from (kind, namespace, name, file and document).
//!
//! Documents are added one JSON value at a time ([`Input::add_value`]), from files
//! ([`Input::add_yaml`]) or from a cluster's list calls, so both go through the same code.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use weft_crds::MeshObject;
use weft_crds::mesh::Mesh;
use weft_crds::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use weft_crds::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_webhook::Finding;

use crate::message::{Origin, ResourceRef};

/// The namespace of objects that do not name one, as `kubectl apply` places them.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Istio's default root namespace (`MeshConfig.rootNamespace`), used when the input holds no
/// Weft `Mesh` object.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// The Kubernetes cluster domain Istio assumes.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// Kinds whose pod template (`spec.template.metadata.labels`) is read as a workload, so that
/// selectors can be checked against manifests before any pod exists.
const WORKLOAD_TEMPLATE_KINDS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
];

/// Why input could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A document of a file is not YAML at all (the rest of the file cannot be split).
    #[error("{file}: document {document} is not YAML: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The 0-based index of the document.
        document: usize,
        /// The YAML parser's message.
        message: String,
    },
}

/// One object with the resource it is.
#[derive(Debug, Clone)]
pub struct Entry<T> {
    /// Kind, namespace, name and origin.
    pub resource: ResourceRef,
    /// The object.
    pub object: T,
}

/// A workload a selector may pick: a pod, a pod template of a Deployment (or other workload
/// kind), or a WorkloadEntry.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The pod, workload or WorkloadEntry.
    pub resource: ResourceRef,
    /// Its namespace.
    pub namespace: String,
    /// Its labels (a template's `spec.template.metadata.labels`, a WorkloadEntry's
    /// `spec.labels`).
    pub labels: BTreeMap<String, String>,
}

/// A document that could not be read as its kind: the resource (as far as it is known) and the
/// parser's finding (field path and message).
#[derive(Debug, Clone)]
pub struct Unreadable {
    /// The resource, named from the document's `kind` and `metadata`.
    pub resource: ResourceRef,
    /// Where and why it does not parse.
    pub finding: Finding,
}

/// Everything one analysis looks at.
#[derive(Debug, Clone, Default)]
pub struct Input {
    cluster: bool,
    /// Mesh objects that parsed (any kind `weft_crds::MeshObject` reads).
    pub mesh_objects: Vec<Entry<MeshObject>>,
    /// Kubernetes Services.
    pub services: Vec<Entry<Service>>,
    /// Kubernetes Pods.
    pub pods: Vec<Entry<Pod>>,
    /// Kubernetes Namespaces.
    pub namespaces: Vec<Entry<Namespace>>,
    /// Pod templates of Deployments, StatefulSets, DaemonSets, ReplicaSets and Jobs.
    pub workload_templates: Vec<Workload>,
    /// Documents of a mesh or Kubernetes kind that do not parse.
    pub unreadable: Vec<Unreadable>,
    /// Documents of other kinds (ConfigMaps, ...), ignored.
    pub skipped: usize,
}

impl Input {
    /// An empty input for objects read from a cluster: the Kubernetes objects are then complete
    /// (every check runs, whatever the lists hold).
    pub fn for_cluster() -> Self {
        Self {
            cluster: true,
            ..Self::default()
        }
    }

    /// Whether the input was read from a cluster ([`Input::for_cluster`]).
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// Whether the Kubernetes objects are known: read from a cluster, or files holding at least
    /// one Service, Pod, Namespace or workload. When they are not, checks that would report
    /// every Kubernetes host or pod selector as missing are skipped.
    pub fn kubernetes_known(&self) -> bool {
        self.cluster
            || !self.services.is_empty()
            || !self.pods.is_empty()
            || !self.namespaces.is_empty()
            || !self.workload_templates.is_empty()
    }

    /// Adds every document of a YAML (or JSON) stream read from `file`. Empty documents are
    /// skipped and keep their index. Errors with [`InputError::Syntax`] when a document is not
    /// YAML; the documents before it are kept.
    pub fn add_yaml(&mut self, file: &str, text: &str) -> Result<(), InputError> {
        for (document, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let value = serde_json::Value::deserialize(de).map_err(|error| InputError::Syntax {
                file: file.to_owned(),
                document,
                message: error.to_string(),
            })?;
            if value.is_null() {
                continue;
            }
            let origin = Origin {
                file: file.to_owned(),
                document,
            };
            self.add_value(value, Some(origin));
        }
        Ok(())
    }

    /// Adds one object given as JSON; a `kind: List` (as `kubectl get -o yaml` writes) adds each
    /// of its `items` with the list's origin. Dispatch by `kind`: Service, Pod and Namespace are decoded
    /// as the Kubernetes API defines them; workload kinds give their pod template's labels;
    /// mesh groups (`networking.istio.io`, `security.istio.io`, `mesh.weft.dev`) and documents
    /// without `apiVersion`/`kind` are read by `weft_crds::MeshObject::from_value`; other kinds
    /// are counted in [`Input::skipped`]. A document that does not parse is kept in
    /// [`Input::unreadable`], never dropped silently. An object of the same kind, namespace and
    /// name as one added before replaces it, as a second `kubectl apply` would.
    pub fn add_value(&mut self, mut value: serde_json::Value, origin: Option<Origin>) {
        if value["kind"] == "List" && value["items"].is_array() {
            let items = value["items"].take();
            for item in items.as_array().into_iter().flatten() {
                self.add_value(item.clone(), origin.clone());
            }
            return;
        }
        let api_version = value["apiVersion"].as_str().unwrap_or_default().to_owned();
        let kind = value["kind"].as_str().unwrap_or_default().to_owned();
        let cluster_scoped = kind == "Namespace";
        let resource = resource_of(&value, &kind, cluster_scoped, origin);
        let core = !api_version.contains('/');
        match kind.as_str() {
            "Service" if core => {
                self.decode(value, resource, |s, e| replace_or_push(&mut s.services, e))
            }
            "Pod" if core => self.decode(value, resource, |s, e| replace_or_push(&mut s.pods, e)),
            "Namespace" if core => self.decode(value, resource, |s, e| {
                replace_or_push(&mut s.namespaces, e)
            }),
            k if WORKLOAD_TEMPLATE_KINDS.contains(&k) && api_version.starts_with("apps/")
                || k == "Job" && api_version.starts_with("batch/") =>
            {
                let labels = string_map(&value["spec"]["template"]["metadata"]["labels"]);
                let namespace = resource.namespace.clone().unwrap_or_default();
                self.workload_templates.push(Workload {
                    resource,
                    namespace,
                    labels,
                });
            }
            _ if api_version.is_empty() || kind.is_empty() || is_mesh_group(&api_version) => {
                match MeshObject::from_value(value) {
                    Ok(object) => {
                        replace_or_push(&mut self.mesh_objects, Entry { resource, object })
                    }
                    Err(error) => {
                        let path = error.path().unwrap_or("(document)").to_owned();
                        let text = error.to_string();
                        let message = text
                            .strip_prefix(&format!("{path}: "))
                            .map_or(text.clone(), str::to_owned);
                        self.unreadable.push(Unreadable {
                            resource,
                            finding: Finding { path, message },
                        });
                    }
                }
            }
            _ => self.skipped += 1,
        }
    }

    fn decode<T: DeserializeOwned>(
        &mut self,
        value: serde_json::Value,
        resource: ResourceRef,
        push: impl FnOnce(&mut Self, Entry<T>),
    ) {
        match serde_json::from_value::<T>(value) {
            Ok(object) => push(self, Entry { resource, object }),
            Err(error) => self.unreadable.push(Unreadable {
                resource,
                finding: Finding {
                    path: "(document)".to_owned(),
                    message: format!("does not match the Kubernetes API: {error}"),
                },
            }),
        }
    }

    /// The root namespace (Istio `rootNamespace`): from the Weft `Mesh` object named `default`,
    /// else the first `Mesh` object, else `istio-system`.
    pub fn root_namespace(&self) -> &str {
        let meshes: Vec<Entry<&Mesh>> = self.meshes().collect();
        meshes
            .iter()
            .find(|e| e.resource.name == weft_crds::mesh::DEFAULT_NAME)
            .or(meshes.first())
            .map_or(DEFAULT_ROOT_NAMESPACE, |e| e.object.spec.root_namespace())
    }

    /// Every workload a selector may pick: pods, pod templates and WorkloadEntries.
    pub fn workloads(&self) -> Vec<Workload> {
        let pods = self.pods.iter().map(|e| Workload {
            resource: e.resource.clone(),
            namespace: e.resource.namespace.clone().unwrap_or_default(),
            labels: e.object.metadata.labels.clone().unwrap_or_default(),
        });
        let entries = self.workload_entries().map(|e| Workload {
            resource: e.resource.clone(),
            namespace: e.resource.namespace.clone().unwrap_or_default(),
            labels: e.object.spec.labels.clone(),
        });
        pods.chain(self.workload_templates.iter().cloned())
            .chain(entries)
            .collect()
    }
}

/// Typed views of [`Input::mesh_objects`], one per kind.
macro_rules! kind_accessor {
    ($($method:ident => $variant:ident($type:ty)),* $(,)?) => {
        impl Input {
            $(
                #[doc = concat!("The ", stringify!($variant), " objects, with their resources.")]
                pub fn $method(&self) -> impl Iterator<Item = Entry<&$type>> + '_ {
                    self.mesh_objects.iter().filter_map(|e| match &e.object {
                        MeshObject::$variant(o) => Some(Entry {
                            resource: e.resource.clone(),
                            object: o,
                        }),
                        _ => None,
                    })
                }
            )*
        }
    };
}

kind_accessor! {
    virtual_services => VirtualService(VirtualService),
    destination_rules => DestinationRule(DestinationRule),
    gateways => Gateway(Gateway),
    service_entries => ServiceEntry(ServiceEntry),
    sidecars => Sidecar(Sidecar),
    workload_entries => WorkloadEntry(WorkloadEntry),
    peer_authentications => PeerAuthentication(PeerAuthentication),
    authorization_policies => AuthorizationPolicy(AuthorizationPolicy),
    request_authentications => RequestAuthentication(RequestAuthentication),
    meshes => Mesh(Mesh),
}

/// Replaces the entry naming the same resource (kind, namespace, name), else appends.
fn replace_or_push<T>(list: &mut Vec<Entry<T>>, entry: Entry<T>) {
    let same = |e: &Entry<T>| {
        e.resource.kind == entry.resource.kind
            && e.resource.namespace == entry.resource.namespace
            && e.resource.name == entry.resource.name
    };
    match list.iter_mut().find(|e| same(e)) {
        Some(existing) => *existing = entry,
        None => list.push(entry),
    }
}

fn is_mesh_group(api_version: &str) -> bool {
    [
        "networking.istio.io/",
        "security.istio.io/",
        "mesh.weft.dev/",
    ]
    .iter()
    .any(|group| api_version.starts_with(group))
}

fn resource_of(
    value: &serde_json::Value,
    kind: &str,
    cluster_scoped: bool,
    origin: Option<Origin>,
) -> ResourceRef {
    let metadata = &value["metadata"];
    let namespace = (!cluster_scoped).then(|| {
        metadata["namespace"]
            .as_str()
            .unwrap_or(DEFAULT_NAMESPACE)
            .to_owned()
    });
    ResourceRef {
        kind: if kind.is_empty() { "?" } else { kind }.to_owned(),
        namespace,
        name: metadata["name"].as_str().unwrap_or("?").to_owned(),
        origin,
    }
}

fn string_map(value: &serde_json::Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `labels` carry every key/value of `selector` (Kubernetes `matchLabels`; an empty
/// selector selects everything).
pub(crate) fn selects(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// A selector written as Kubernetes prints one: `app=reviews,version=v1` (sorted by key).
pub(crate) fn selector_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_dispatched_by_kind_with_their_origin() {
        let mut input = Input::default();
        input
            .add_yaml(
                "a.yaml",
                "apiVersion: v1\nkind: Service\nmetadata: {name: r}\n---\n---\n\
                 apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d, namespace: n}\n\
                 spec: {template: {metadata: {labels: {app: d}}}}\n---\n\
                 apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\n\
                 apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n",
            )
            .unwrap();
        assert_eq!(input.services.len(), 1);
        assert_eq!(
            input.services[0].resource.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(input.workload_templates[0].labels["app"], "d");
        assert_eq!(
            input.workload_templates[0]
                .resource
                .origin
                .as_ref()
                .unwrap()
                .document,
            2
        );
        assert_eq!(input.skipped, 1);
        let gateway = input.gateways().next().unwrap();
        assert_eq!(gateway.resource.origin.unwrap().document, 4);
        assert!(input.kubernetes_known());
    }

    #[test]
    fn unparsable_documents_are_kept_with_their_path() {
        let mut input = Input::default();
        input
            .add_yaml(
                "b.yaml",
                "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n\
                 spec: {mtls: {mode: SOMETIMES}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: x}\n\
                 spec: {containers: 3}\n",
            )
            .unwrap();
        assert_eq!(input.unreadable.len(), 2);
        assert_eq!(input.unreadable[0].finding.path, "spec.mtls.mode");
        assert_eq!(input.unreadable[1].resource.kind, "Pod");
        assert!(!input.kubernetes_known());
        assert!(Input::default().add_yaml("c.yaml", "a: [").is_err());
    }

    #[test]
    fn kubectl_lists_add_their_items() {
        let mut input = Input::default();
        input
            .add_yaml(
                "list.yaml",
                "apiVersion: v1\nkind: List\nitems:\n\
                 - {apiVersion: v1, kind: Service, metadata: {name: a, namespace: n}}\n\
                 - {apiVersion: v1, kind: Namespace, metadata: {name: n}}\n",
            )
            .unwrap();
        assert_eq!(input.services.len(), 1);
        assert_eq!(input.namespaces.len(), 1);
        assert_eq!(
            input.namespaces[0].resource.origin.as_ref().unwrap().file,
            "list.yaml"
        );
    }

    #[test]
    fn a_later_document_replaces_the_same_resource() {
        let mut input = Input::default();
        let vs = |host: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\n\
                 metadata: {{name: r, namespace: n}}\nspec: {{hosts: [{host}]}}\n"
            )
        };
        input.add_yaml("a.yaml", &vs("a")).unwrap();
        input.add_yaml("b.yaml", &vs("b")).unwrap();
        let all: Vec<_> = input.virtual_services().collect();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].object.spec.hosts, ["b"]);
        assert_eq!(all[0].resource.origin.as_ref().unwrap().file, "b.yaml");
    }

    #[test]
    fn root_namespace_comes_from_the_mesh_object() {
        let mut input = Input::default();
        assert_eq!(input.root_namespace(), "istio-system");
        input
            .add_yaml(
                "m.yaml",
                "apiVersion: mesh.weft.dev/v1alpha1\nkind: Mesh\nmetadata: {name: default}\n\
                 spec: {rootNamespace: mesh-root}\n",
            )
            .unwrap();
        assert_eq!(input.root_namespace(), "mesh-root");
    }
}
