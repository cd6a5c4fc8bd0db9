//! The cluster view kept by reflectors: one kube-runtime [`Store`] per kind Pilot reads
//! (Services, EndpointSlices, Pods, Namespaces, ServiceAccounts, the nine Istio kinds) and one
//! for Weft's `Mesh`, turned into a [`ClusterView`] by the pure [`objects_from_stores`] and
//! [`select_mesh`]. The gateways' credential Secrets are watched by name apart from the other
//! kinds: see [`credentials`].
//!
//! Nodes are watched metadata-only (`Api<PartialObjectMeta<Node>>`: `PartialObjectMetadata`
//! list and watch requests): Pilot reads only their topology labels (a pod's locality, as Istio reads it), while
//! a full Node carries its status (images, conditions, addresses, capacity: often 10-20 KiB
//! each) and changes with every status update. The reflector drops `managedFields` as for
//! every kind, and the view gets Nodes with name and labels only, so a status or heartbeat
//! update is no change that reaches proxies.

pub mod credentials;

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ObjectMeta, PartialObjectMeta};
use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use weft_crds::mesh::{DEFAULT_NAME, Mesh, MeshSpec};
use weft_crds::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use weft_crds::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_pilot::{ClusterObjects, ClusterView, MeshSettings};

/// The read side of every reflector: cheap to clone, shared by the view builder, the
/// webhooks (Namespace labels) and the Mesh watcher.
#[derive(Clone)]
pub struct Stores {
    /// Kubernetes Services.
    pub services: Store<Service>,
    /// `discovery.k8s.io/v1` EndpointSlices.
    pub endpoint_slices: Store<EndpointSlice>,
    /// Pods.
    pub pods: Store<Pod>,
    /// Namespaces (also the injector's namespace-label lookup).
    pub namespaces: Store<Namespace>,
    /// ServiceAccounts.
    pub service_accounts: Store<ServiceAccount>,
    /// Istio VirtualServices.
    pub virtual_services: Store<VirtualService>,
    /// Istio DestinationRules.
    pub destination_rules: Store<DestinationRule>,
    /// Istio Gateways.
    pub gateways: Store<Gateway>,
    /// Istio ServiceEntries.
    pub service_entries: Store<ServiceEntry>,
    /// Istio Sidecars.
    pub sidecars: Store<Sidecar>,
    /// Istio WorkloadEntries.
    pub workload_entries: Store<WorkloadEntry>,
    /// Istio PeerAuthentications.
    pub peer_authentications: Store<PeerAuthentication>,
    /// Istio AuthorizationPolicies.
    pub authorization_policies: Store<AuthorizationPolicy>,
    /// Istio RequestAuthentications.
    pub request_authentications: Store<RequestAuthentication>,
    /// Weft `Mesh` objects (cluster-scoped; the one named `default` is used).
    pub meshes: Store<Mesh>,
    /// Nodes, metadata only (name and labels; see the module documentation).
    pub nodes: Store<PartialObjectMeta<Node>>,
}

/// The write side matching [`Stores`]: each writer is consumed by one reflector (or, in tests,
/// fed events directly with `Writer::apply_watcher_event`).
pub struct Writers {
    /// Services.
    pub services: Writer<Service>,
    /// EndpointSlices.
    pub endpoint_slices: Writer<EndpointSlice>,
    /// Pods.
    pub pods: Writer<Pod>,
    /// Namespaces.
    pub namespaces: Writer<Namespace>,
    /// ServiceAccounts.
    pub service_accounts: Writer<ServiceAccount>,
    /// VirtualServices.
    pub virtual_services: Writer<VirtualService>,
    /// DestinationRules.
    pub destination_rules: Writer<DestinationRule>,
    /// Gateways.
    pub gateways: Writer<Gateway>,
    /// ServiceEntries.
    pub service_entries: Writer<ServiceEntry>,
    /// Sidecars.
    pub sidecars: Writer<Sidecar>,
    /// WorkloadEntries.
    pub workload_entries: Writer<WorkloadEntry>,
    /// PeerAuthentications.
    pub peer_authentications: Writer<PeerAuthentication>,
    /// AuthorizationPolicies.
    pub authorization_policies: Writer<AuthorizationPolicy>,
    /// RequestAuthentications.
    pub request_authentications: Writer<RequestAuthentication>,
    /// Meshes.
    pub meshes: Writer<Mesh>,
    /// Nodes (metadata only).
    pub nodes: Writer<PartialObjectMeta<Node>>,
}

/// Fresh, empty (not yet synced) stores and their writers.
pub fn stores() -> (Stores, Writers) {
    let (services, services_w) = reflector::store();
    let (endpoint_slices, endpoint_slices_w) = reflector::store();
    let (pods, pods_w) = reflector::store();
    let (namespaces, namespaces_w) = reflector::store();
    let (service_accounts, service_accounts_w) = reflector::store();
    let (virtual_services, virtual_services_w) = reflector::store();
    let (destination_rules, destination_rules_w) = reflector::store();
    let (gateways, gateways_w) = reflector::store();
    let (service_entries, service_entries_w) = reflector::store();
    let (sidecars, sidecars_w) = reflector::store();
    let (workload_entries, workload_entries_w) = reflector::store();
    let (peer_authentications, peer_authentications_w) = reflector::store();
    let (authorization_policies, authorization_policies_w) = reflector::store();
    let (request_authentications, request_authentications_w) = reflector::store();
    let (meshes, meshes_w) = reflector::store();
    let (nodes, nodes_w) = reflector::store();
    (
        Stores {
            services,
            endpoint_slices,
            pods,
            namespaces,
            service_accounts,
            virtual_services,
            destination_rules,
            gateways,
            service_entries,
            sidecars,
            workload_entries,
            peer_authentications,
            authorization_policies,
            request_authentications,
            meshes,
            nodes,
        },
        Writers {
            services: services_w,
            endpoint_slices: endpoint_slices_w,
            pods: pods_w,
            namespaces: namespaces_w,
            service_accounts: service_accounts_w,
            virtual_services: virtual_services_w,
            destination_rules: destination_rules_w,
            gateways: gateways_w,
            service_entries: service_entries_w,
            sidecars: sidecars_w,
            workload_entries: workload_entries_w,
            peer_authentications: peer_authentications_w,
            authorization_policies: authorization_policies_w,
            request_authentications: request_authentications_w,
            meshes: meshes_w,
            nodes: nodes_w,
        },
    )
}

fn owned<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store.state().iter().map(|o| K::clone(o)).collect()
}

/// Copies of the Istio objects of `store` without what only the status writer changes:
/// `status` (cleared by `clear_status`) and `metadata.resourceVersion`. Pilot never reads
/// either, and the views compare objects whole, so a status write must not look like a
/// change that reaches proxies.
fn owned_spec<K>(store: &Store<K>, clear_status: fn(&mut K)) -> Vec<K>
where
    K: Resource + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    store
        .state()
        .iter()
        .map(|o| {
            let mut o = K::clone(o);
            o.meta_mut().resource_version = None;
            clear_status(&mut o);
            o
        })
        .collect()
}

/// Copies every Kubernetes and Istio object of `stores` into a [`ClusterObjects`] (Pilot's
/// input; [`ClusterView::new`] sorts them). The Istio objects come without `status` and
/// `resourceVersion` (see [`owned_spec`]). `Mesh` objects are not part of it: see
/// [`select_mesh`]. Pure: reads the stores' current state, whether synced or not.
pub fn objects_from_stores(stores: &Stores) -> ClusterObjects {
    ClusterObjects {
        services: owned(&stores.services),
        endpoint_slices: owned(&stores.endpoint_slices),
        pods: owned(&stores.pods),
        namespaces: owned(&stores.namespaces),
        service_accounts: owned(&stores.service_accounts),
        virtual_services: owned_spec(&stores.virtual_services, |o| o.status = None),
        destination_rules: owned_spec(&stores.destination_rules, |o| o.status = None),
        gateways: owned_spec(&stores.gateways, |o| o.status = None),
        service_entries: owned_spec(&stores.service_entries, |o| o.status = None),
        sidecars: owned_spec(&stores.sidecars, |o| o.status = None),
        workload_entries: owned_spec(&stores.workload_entries, |o| o.status = None),
        peer_authentications: owned_spec(&stores.peer_authentications, |o| o.status = None),
        authorization_policies: owned_spec(&stores.authorization_policies, |o| o.status = None),
        request_authentications: owned_spec(&stores.request_authentications, |o| o.status = None),
        nodes: stores
            .nodes
            .state()
            .iter()
            .map(|node| node_of(&node.metadata))
            .collect(),
    }
}

/// A Node holding only what Pilot reads, `metadata.name` and `metadata.labels` (so that
/// `resourceVersion` bumps of status updates are no change).
fn node_of(metadata: &ObjectMeta) -> Node {
    Node {
        metadata: ObjectMeta {
            name: metadata.name.clone(),
            labels: metadata.labels.clone(),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

/// The mesh settings in force: the spec of the `Mesh` named `default` ([`DEFAULT_NAME`], the
/// cluster's single Mesh), or the defaults ([`MeshSpec::default`]) when there is none. Other
/// Mesh objects are ignored (the install contract names `default`).
pub fn select_mesh(meshes: &[Arc<Mesh>]) -> MeshSpec {
    meshes
        .iter()
        .find(|m| m.metadata.name.as_deref() == Some(DEFAULT_NAME))
        .map(|m| m.spec.clone())
        .unwrap_or_default()
}

/// The cluster view of `stores` with the settings of [`select_mesh`].
pub fn view_from_stores(stores: &Stores) -> ClusterView {
    let mesh = select_mesh(&stores.meshes.state());
    ClusterView::new(MeshSettings::from_spec(&mesh), objects_from_stores(stores))
}

/// The labels of Namespace `name` in `stores`, `None` when the store does not hold it (the
/// injector's namespace lookup, which must decide from labels itself under OLM).
pub fn namespace_labels(
    stores: &Stores,
    name: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    stores
        .namespaces
        .get(&reflector::ObjectRef::new(name))
        .map(|ns| ns.labels().clone())
}

/// Waits until every store has received its first complete list (readiness). Errors when a
/// writer was dropped before syncing (its reflector stopped).
pub async fn wait_until_synced(stores: &Stores) -> Result<(), reflector::store::WriterDropped> {
    stores.services.wait_until_ready().await?;
    stores.endpoint_slices.wait_until_ready().await?;
    stores.pods.wait_until_ready().await?;
    stores.namespaces.wait_until_ready().await?;
    stores.service_accounts.wait_until_ready().await?;
    stores.virtual_services.wait_until_ready().await?;
    stores.destination_rules.wait_until_ready().await?;
    stores.gateways.wait_until_ready().await?;
    stores.service_entries.wait_until_ready().await?;
    stores.sidecars.wait_until_ready().await?;
    stores.workload_entries.wait_until_ready().await?;
    stores.peer_authentications.wait_until_ready().await?;
    stores.authorization_policies.wait_until_ready().await?;
    stores.request_authentications.wait_until_ready().await?;
    stores.meshes.wait_until_ready().await?;
    stores.nodes.wait_until_ready().await?;
    Ok(())
}

/// Runs one reflector: watches `api` (with kube-runtime's default back-off on errors), drops
/// `managedFields` (never read, often the larger half of an object), feeds `writer`, and
/// notifies `changed` after every event, until `shutdown`.
async fn reflect<K>(
    api: Api<K>,
    writer: Writer<K>,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|o| o.managed_fields_mut().clear());
    let mut stream = std::pin::pin!(reflector::reflector(writer, stream));
    loop {
        tokio::select! {
            event = stream.next() => match event {
                Some(Ok(_)) => changed.notify_one(),
                Some(Err(error)) => tracing::warn!(%kind, %error, "watch failed; retrying with back-off"),
                None => return,
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Spawns one reflector per kind, all cluster-wide, notifying `changed` after every event.
/// Needs RBAC list/watch on every kind of [`Stores`] (Nodes: metadata only).
pub fn spawn_reflectors(
    client: &Client,
    writers: Writers,
    changed: Arc<Notify>,
    shutdown: &CancellationToken,
) {
    macro_rules! spawn {
        ($field:ident) => {
            tokio::spawn(reflect(
                Api::all(client.clone()),
                writers.$field,
                changed.clone(),
                shutdown.clone(),
            ));
        };
    }
    spawn!(services);
    spawn!(endpoint_slices);
    spawn!(pods);
    spawn!(namespaces);
    spawn!(service_accounts);
    spawn!(virtual_services);
    spawn!(destination_rules);
    spawn!(gateways);
    spawn!(service_entries);
    spawn!(sidecars);
    spawn!(workload_entries);
    spawn!(peer_authentications);
    spawn!(authorization_policies);
    spawn!(request_authentications);
    spawn!(meshes);
    // `Api<PartialObjectMeta<Node>>`: kube sends metadata-only list and watch requests.
    spawn!(nodes);
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::watcher::Event;

    fn mesh(name: &str, trust_domain: &str) -> Mesh {
        let mut m = Mesh::new(
            name,
            MeshSpec {
                trust_domain: Some(trust_domain.into()),
                ..MeshSpec::default()
            },
        );
        m.metadata.name = Some(name.into());
        m
    }

    fn service(ns: &str, name: &str) -> Service {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"name": "http", "port": 9080}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_mesh_named_default_wins_and_absent_gives_defaults() {
        assert_eq!(select_mesh(&[]), MeshSpec::default());
        let other = Arc::new(mesh("staging", "staging.example"));
        assert_eq!(
            select_mesh(std::slice::from_ref(&other)),
            MeshSpec::default(),
            "only `default` is read"
        );
        let chosen = select_mesh(&[other, Arc::new(mesh("default", "prod.example"))]);
        assert_eq!(chosen.trust_domain(), "prod.example");
    }

    #[test]
    fn objects_follow_store_events_including_deletes() {
        let (stores, mut writers) = stores();
        writers
            .services
            .apply_watcher_event(&Event::Apply(service("demo", "reviews")));
        writers
            .services
            .apply_watcher_event(&Event::Apply(service("demo", "ratings")));
        writers
            .meshes
            .apply_watcher_event(&Event::Apply(mesh("default", "prod.example")));
        let objects = objects_from_stores(&stores);
        let mut names: Vec<_> = objects.services.iter().map(|s| s.name_any()).collect();
        names.sort();
        assert_eq!(names, ["ratings", "reviews"]);
        assert!(objects.pods.is_empty());

        writers
            .services
            .apply_watcher_event(&Event::Delete(service("demo", "ratings")));
        let view = view_from_stores(&stores);
        let names: Vec<_> = view
            .objects()
            .services
            .iter()
            .map(|s| s.name_any())
            .collect();
        assert_eq!(names, ["reviews"]);
        assert_eq!(view.mesh().trust_domain, "prod.example");
    }

    #[test]
    fn a_status_write_does_not_change_the_view() {
        use weft_crds::status::IstioStatus;
        let (stores, mut writers) = stores();
        let mut vs: VirtualService = serde_json::from_value(serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "demo", "resourceVersion": "1",
                         "generation": 1},
            "spec": {"hosts": ["reviews"]}
        }))
        .unwrap();
        writers
            .virtual_services
            .apply_watcher_event(&Event::Apply(vs.clone()));
        let before = view_from_stores(&stores);
        vs.metadata.resource_version = Some("2".into());
        vs.status = Some(IstioStatus {
            observed_generation: Some(1),
            ..IstioStatus::default()
        });
        writers
            .virtual_services
            .apply_watcher_event(&Event::Apply(vs.clone()));
        let after = view_from_stores(&stores);
        assert!(after.change_since(&before).is_empty());
        assert_eq!(after.objects().virtual_services[0].status, None);

        vs.metadata.generation = Some(2);
        vs.spec.hosts.push("ratings".into());
        writers
            .virtual_services
            .apply_watcher_event(&Event::Apply(vs));
        assert!(
            !view_from_stores(&stores).change_since(&after).is_empty(),
            "a spec edit still counts"
        );
    }

    #[test]
    fn nodes_reach_the_view_with_name_and_labels_only() {
        let (stores, mut writers) = stores();
        let mut node: PartialObjectMeta<Node> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": "n1", "resourceVersion": "1",
                         "labels": {"topology.kubernetes.io/zone": "z1"}}
        }))
        .unwrap();
        writers
            .nodes
            .apply_watcher_event(&Event::Apply(node.clone()));
        let before = view_from_stores(&stores);
        assert_eq!(
            before.node_labels("n1").unwrap()["topology.kubernetes.io/zone"],
            "z1"
        );
        // A status update bumps resourceVersion only: no change.
        node.metadata.resource_version = Some("2".into());
        writers
            .nodes
            .apply_watcher_event(&Event::Apply(node.clone()));
        let after = view_from_stores(&stores);
        assert!(after.change_since(&before).is_empty());
        node.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("topology.kubernetes.io/zone".into(), "z2".into());
        writers.nodes.apply_watcher_event(&Event::Apply(node));
        assert!(!view_from_stores(&stores).change_since(&after).is_empty());
    }

    #[test]
    fn namespace_labels_come_from_the_store() {
        let (stores, mut writers) = stores();
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "demo", "labels": {"istio-injection": "enabled"}}
        }))
        .unwrap();
        writers.namespaces.apply_watcher_event(&Event::Apply(ns));
        let labels = namespace_labels(&stores, "demo").unwrap();
        assert_eq!(labels["istio-injection"], "enabled");
        assert_eq!(namespace_labels(&stores, "other"), None);
    }

    #[tokio::test]
    async fn synced_only_once_every_store_has_listed() {
        use futures::FutureExt;
        let (stores, mut writers) = stores();
        macro_rules! init {
            ($($field:ident),*) => { $(
                writers.$field.apply_watcher_event(&Event::Init);
                writers.$field.apply_watcher_event(&Event::InitDone);
            )* };
        }
        init!(
            services,
            endpoint_slices,
            pods,
            namespaces,
            service_accounts,
            virtual_services,
            destination_rules,
            gateways,
            service_entries,
            sidecars,
            workload_entries,
            peer_authentications,
            authorization_policies,
            request_authentications
        );
        assert!(
            wait_until_synced(&stores).now_or_never().is_none(),
            "the Mesh store has not listed yet"
        );
        init!(meshes);
        assert!(
            wait_until_synced(&stores).now_or_never().is_none(),
            "the Node store has not listed yet"
        );
        init!(nodes);
        assert!(matches!(
            wait_until_synced(&stores).now_or_never(),
            Some(Ok(()))
        ));
    }
}
