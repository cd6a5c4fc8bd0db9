//! The cluster view: an immutable snapshot of every object config generation reads, indexed
//! once at construction.

mod documents;
mod index;
mod jwks;
mod secrets;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::core::ObjectMeta;
use weft_crds::MeshObject;
use weft_crds::mesh::{MeshSpec, OutboundTrafficPolicyMode};
use weft_crds::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use weft_crds::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_proxy_config::OutboundTrafficPolicy;

pub use documents::{DocumentError, yaml_documents};
pub use jwks::{OPENID_DISCOVERY_PATH, jwks_fetches};

use crate::cache::BuildCache;
use crate::registry::Registry;
pub(crate) use index::MeshIndex;
use jwks::JwksSets;
pub(crate) use secrets::{
    CA_KEYS, CA_SECRET_SUFFIX, Credential, SecretData, Secrets, names_credential,
};

/// The Kubernetes cluster domain Istio assumes (`cluster.local`), the suffix of every Service
/// host name `<name>.<namespace>.svc.<domain>`.
pub const DEFAULT_CLUSTER_DOMAIN: &str = "cluster.local";

/// The mesh-wide settings config generation needs (Istio `MeshConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeshSettings {
    /// The SPIFFE trust domain (Istio `trustDomain`, default `cluster.local`).
    pub trust_domain: String,
    /// Where mesh-wide policies live (Istio `rootNamespace`, default `istio-system`).
    pub root_namespace: String,
    /// What proxies do with traffic to unknown destinations (Istio
    /// `outboundTrafficPolicy.mode`, default `ALLOW_ANY`).
    pub outbound_traffic_policy: OutboundTrafficPolicy,
    /// The Kubernetes cluster domain (default `cluster.local`).
    pub cluster_domain: String,
}

impl Default for MeshSettings {
    fn default() -> Self {
        Self::from_spec(&MeshSpec::default())
    }
}

impl MeshSettings {
    /// The settings of a Weft `Mesh` object's spec, with Istio's defaults for unset fields (the
    /// spec's accessors apply them). The cluster domain is always `cluster.local`: the `Mesh`
    /// kind has no field for it.
    pub fn from_spec(spec: &MeshSpec) -> Self {
        Self {
            trust_domain: spec.trust_domain().to_owned(),
            root_namespace: spec.root_namespace().to_owned(),
            outbound_traffic_policy: match spec.outbound_traffic_mode() {
                OutboundTrafficPolicyMode::AllowAny => OutboundTrafficPolicy::AllowAny,
                OutboundTrafficPolicyMode::RegistryOnly => OutboundTrafficPolicy::RegistryOnly,
            },
            cluster_domain: DEFAULT_CLUSTER_DOMAIN.to_owned(),
        }
    }

    /// The SPIFFE ID of service account `service_account` in `namespace`:
    /// `spiffe://<trust_domain>/ns/<namespace>/sa/<service_account>` (Istio's workload identity).
    pub fn spiffe_id(&self, namespace: &str, service_account: &str) -> String {
        format!(
            "spiffe://{}/ns/{namespace}/sa/{service_account}",
            self.trust_domain
        )
    }
}

/// Every object a view is built from, as lists. Order does not matter: the view sorts them by
/// namespace and name.
#[derive(Debug, Clone, Default)]
pub struct ClusterObjects {
    /// Kubernetes Services.
    pub services: Vec<Service>,
    /// Kubernetes EndpointSlices (`discovery.k8s.io/v1`).
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Kubernetes Pods.
    pub pods: Vec<Pod>,
    /// Kubernetes Namespaces.
    pub namespaces: Vec<Namespace>,
    /// Kubernetes ServiceAccounts.
    pub service_accounts: Vec<ServiceAccount>,
    /// Istio VirtualServices.
    pub virtual_services: Vec<VirtualService>,
    /// Istio DestinationRules.
    pub destination_rules: Vec<DestinationRule>,
    /// Istio Gateways.
    pub gateways: Vec<Gateway>,
    /// Istio ServiceEntries.
    pub service_entries: Vec<ServiceEntry>,
    /// Istio Sidecars.
    pub sidecars: Vec<Sidecar>,
    /// Istio WorkloadEntries.
    pub workload_entries: Vec<WorkloadEntry>,
    /// Istio PeerAuthentications.
    pub peer_authentications: Vec<PeerAuthentication>,
    /// Istio AuthorizationPolicies.
    pub authorization_policies: Vec<AuthorizationPolicy>,
    /// Istio RequestAuthentications.
    pub request_authentications: Vec<RequestAuthentication>,
    /// Kubernetes Nodes; only `metadata.name` and `metadata.labels` are read (the topology
    /// labels that give pods their locality, as Istio reads them).
    pub nodes: Vec<Node>,
}

impl ClusterObjects {
    /// Adds one mesh object to its list; returns the `Mesh` spec instead when the object is a
    /// Weft `Mesh` (the view takes its settings from it).
    pub fn push_mesh_object(&mut self, object: MeshObject) -> Option<(ObjectMeta, MeshSpec)> {
        match object {
            MeshObject::VirtualService(o) => self.virtual_services.push(o),
            MeshObject::DestinationRule(o) => self.destination_rules.push(o),
            MeshObject::Gateway(o) => self.gateways.push(o),
            MeshObject::ServiceEntry(o) => self.service_entries.push(o),
            MeshObject::Sidecar(o) => self.sidecars.push(o),
            MeshObject::WorkloadEntry(o) => self.workload_entries.push(o),
            MeshObject::PeerAuthentication(o) => self.peer_authentications.push(o),
            MeshObject::AuthorizationPolicy(o) => self.authorization_policies.push(o),
            MeshObject::RequestAuthentication(o) => self.request_authentications.push(o),
            MeshObject::Mesh(o) => return Some((o.metadata, o.spec)),
        }
        None
    }

    fn sort(&mut self) {
        fn by_key<T>(list: &mut [T], meta: impl Fn(&T) -> &ObjectMeta) {
            list.sort_by_cached_key(|a| sort_key(meta(a)));
        }
        by_key(&mut self.services, |o| &o.metadata);
        by_key(&mut self.endpoint_slices, |o| &o.metadata);
        by_key(&mut self.pods, |o| &o.metadata);
        by_key(&mut self.namespaces, |o| &o.metadata);
        by_key(&mut self.service_accounts, |o| &o.metadata);
        by_key(&mut self.virtual_services, |o| &o.metadata);
        by_key(&mut self.destination_rules, |o| &o.metadata);
        by_key(&mut self.gateways, |o| &o.metadata);
        by_key(&mut self.service_entries, |o| &o.metadata);
        by_key(&mut self.sidecars, |o| &o.metadata);
        by_key(&mut self.workload_entries, |o| &o.metadata);
        by_key(&mut self.peer_authentications, |o| &o.metadata);
        by_key(&mut self.authorization_policies, |o| &o.metadata);
        by_key(&mut self.request_authentications, |o| &o.metadata);
        by_key(&mut self.nodes, |o| &o.metadata);
    }
}

/// Istio's conflict order: the oldest object first (`creationTimestamp`), then by namespace and
/// name. Objects without a timestamp (files) sort before timestamped ones, by name.
pub(crate) fn sort_key(meta: &ObjectMeta) -> (Option<String>, String, String) {
    (
        meta.creation_timestamp
            .as_ref()
            .map(|time| format!("{:?}", time.0)),
        namespace_of(meta).to_owned(),
        name_of(meta).to_owned(),
    )
}

/// The object's namespace; `default` when unset (as `kubectl apply` would place it).
pub(crate) fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// The object's name; empty when unset.
pub(crate) fn name_of(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// An immutable snapshot of the cluster: Kubernetes objects, Istio objects and mesh settings,
/// with the service registry computed once at construction.
#[derive(Debug, Clone)]
pub struct ClusterView {
    mesh: MeshSettings,
    objects: ClusterObjects,
    pods_by_name: BTreeMap<(String, String), usize>,
    workload_entries_by_name: BTreeMap<(String, String), usize>,
    nodes_by_name: BTreeMap<String, usize>,
    registry: Registry,
    index: MeshIndex,
    cache: BuildCache,
    secrets: Secrets,
    jwks: JwksSets,
}

impl ClusterView {
    /// Builds a view from `objects` and `mesh`: sorts every list by namespace and name, indexes
    /// pods and WorkloadEntries by name and computes the service registry. Never fails: objects
    /// that cannot be used (a Service without a spec, an unparsable IP) are skipped or reported
    /// as [`crate::Unsupported`] when they reach a proxy.
    pub fn new(mesh: MeshSettings, mut objects: ClusterObjects) -> Self {
        objects.sort();
        let pods_by_name = objects
            .pods
            .iter()
            .enumerate()
            .map(|(index, pod)| (key(&pod.metadata), index))
            .collect();
        let workload_entries_by_name = objects
            .workload_entries
            .iter()
            .enumerate()
            .map(|(index, entry)| (key(&entry.metadata), index))
            .collect();
        let nodes_by_name = objects
            .nodes
            .iter()
            .enumerate()
            .map(|(index, node)| (name_of(&node.metadata).to_owned(), index))
            .collect();
        let registry = Registry::build(&mesh, &objects);
        let index = MeshIndex::build(&mesh, &objects);
        Self {
            mesh,
            objects,
            pods_by_name,
            workload_entries_by_name,
            nodes_by_name,
            registry,
            index,
            cache: BuildCache::default(),
            secrets: Secrets::default(),
            jwks: JwksSets::default(),
        }
    }

    /// Builds a view from parsed mesh objects plus Kubernetes objects (`kube`; its mesh lists
    /// are extended with `mesh_objects`). Mesh settings come from the `Mesh` object named
    /// `default`, else the first `Mesh` object, else Istio's defaults. Standalone mode passes
    /// only mesh objects: services then come from ServiceEntries and workloads from
    /// WorkloadEntries.
    pub fn from_documents(
        mesh_objects: impl IntoIterator<Item = MeshObject>,
        mut kube: ClusterObjects,
    ) -> Self {
        let mut meshes = Vec::new();
        for object in mesh_objects {
            if let Some(mesh) = kube.push_mesh_object(object) {
                meshes.push(mesh);
            }
        }
        meshes.sort_by(|a, b| {
            let default = |meta: &ObjectMeta| name_of(meta) != weft_crds::mesh::DEFAULT_NAME;
            (default(&a.0), sort_key(&a.0)).cmp(&(default(&b.0), sort_key(&b.0)))
        });
        let settings = meshes
            .first()
            .map_or_else(MeshSettings::default, |(_, spec)| {
                MeshSettings::from_spec(spec)
            });
        Self::new(settings, kube)
    }

    /// Builds a view from a multi-document YAML stream holding mesh objects (any kind
    /// `weft_crds::MeshObject` reads) and the Kubernetes kinds `Service`, `EndpointSlice`,
    /// `Pod`, `Namespace`, `ServiceAccount` and `Secret` (see [`ClusterView::with_secrets`]).
    ///
    /// Errors: [`DocumentError`] naming the document index for malformed YAML, an unknown kind
    /// or a field that does not parse.
    pub fn from_yaml(text: &str) -> Result<Self, DocumentError> {
        let (mesh, kube, secrets) = documents::parse(text)?;
        Ok(Self::from_documents(mesh, kube).with_secrets(secrets))
    }

    /// The view with `secrets` (Kubernetes Secrets, any type) as the source of gateway
    /// credentials: Istio's `credentialName` names a Secret in the gateway proxy's namespace.
    /// Replaces any Secrets given before. The view keeps only their type and data, and its
    /// `Debug` never prints the data.
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = Secret>) -> Self {
        self.secrets = Secrets::new(secrets);
        self
    }

    /// The Secret `namespace/name` given to [`ClusterView::with_secrets`], if any.
    pub(crate) fn secret(&self, namespace: &str, name: &str) -> Option<&SecretData> {
        self.secrets.get(namespace, name)
    }

    /// The credential `name` in `namespace` as Istio's SDS resolves `credentialName` (see
    /// [`Credential`]).
    pub(crate) fn credential(&self, namespace: &str, name: &str) -> Credential {
        self.secrets.credential(namespace, name)
    }

    /// How many Secrets the view holds (see [`ClusterView::with_secrets`]).
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// The view with `sets` (`(jwksUri, JWKS JSON text)`, as the control plane fetched them;
    /// see [`jwks_fetches`]) as the key sets of RequestAuthentication rules that name a
    /// `jwksUri` and have no inline `jwks` (istiod's JWKS resolver). Replaces any sets given
    /// before. A rule whose URI has no set reaches the proxy without `jwks`: tokens of its
    /// issuer are rejected with 401, as Istio does when the fetch failed.
    pub fn with_jwks(mut self, sets: impl IntoIterator<Item = (String, String)>) -> Self {
        self.jwks = JwksSets::new(sets);
        self
    }

    /// The key set fetched from `uri` given to [`ClusterView::with_jwks`], if any.
    pub fn jwks(&self, uri: &str) -> Option<&str> {
        self.jwks.get(uri)
    }

    /// How many `jwksUri`s have a key set (see [`ClusterView::with_jwks`]).
    pub fn jwks_count(&self) -> usize {
        self.jwks.len()
    }

    /// Whether this view and `other` hold equal Secrets ([`ClusterView::with_secrets`]).
    pub(crate) fn same_secrets(&self, other: &ClusterView) -> bool {
        self.secrets == other.secrets
    }

    /// Whether this view and `other` hold equal JWKS key sets ([`ClusterView::with_jwks`]).
    pub(crate) fn same_jwks(&self, other: &ClusterView) -> bool {
        self.jwks == other.jwks
    }

    /// The mesh-wide settings.
    pub fn mesh(&self) -> &MeshSettings {
        &self.mesh
    }

    /// Every object of the view, sorted by namespace and name.
    pub fn objects(&self) -> &ClusterObjects {
        &self.objects
    }

    /// The service registry (Kubernetes Services and ServiceEntries, with endpoints).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The VirtualService and DestinationRule host indexes.
    pub(crate) fn index(&self) -> &MeshIndex {
        &self.index
    }

    /// The cache of proxy-independent config parts built from this view.
    pub(crate) fn cache(&self) -> &BuildCache {
        &self.cache
    }

    /// The pod `namespace/name`, if present.
    pub fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods_by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|index| self.objects.pods.get(*index))
    }

    /// The labels of Node `name`, if the view holds it.
    pub fn node_labels(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        let node = self.objects.nodes.get(*self.nodes_by_name.get(name)?)?;
        node.metadata.labels.as_ref()
    }

    /// The WorkloadEntry `namespace/name`, if present.
    pub fn workload_entry(&self, namespace: &str, name: &str) -> Option<&WorkloadEntry> {
        self.workload_entries_by_name
            .get(&(namespace.to_owned(), name.to_owned()))
            .and_then(|index| self.objects.workload_entries.get(*index))
    }
}

fn key(meta: &ObjectMeta) -> (String, String) {
    (namespace_of(meta).to_owned(), name_of(meta).to_owned())
}
