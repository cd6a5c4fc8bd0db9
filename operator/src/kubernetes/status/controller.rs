//! The thin loop that writes [`super::desired_status`] to the status subresource of every
//! mesh object. Leader work: only the leader runs it.
//!
//! Triggered by every new view the view builder hands the discovery server
//! ([`StatusFeed::publish`]) and, while some object's `Reconciled` condition is pending, by a
//! poll of the proxies' acknowledgements ([`PENDING_POLL`], slowing to [`SLOW_POLL`] after
//! [`FAST_POLL_FOR`]; otherwise a resync every [`RESYNC`]). An object is patched only when its
//! desired status differs from the current one, with server-side apply on the `status`
//! subresource under the field manager [`FIELD_MANAGER`]. Failures are retried per object with
//! exponential back-off ([`RETRY_MIN`] to [`RETRY_MAX`]); an object deleted meanwhile
//! (`404`) is dropped.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use weft_crds::MeshObject;
use weft_crds::mesh::MeshSpec;
use weft_crds::networking::{
    DestinationRule, Gateway, ServiceEntry, Sidecar, VirtualService, WorkloadEntry,
};
use weft_crds::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use weft_crds::status::IstioStatus;

use super::facts::{ViewFacts, mesh_metas};
use super::metrics::{StatusMetrics, WriteResult};
use super::tracker::FirstSeen;
use super::{Desired, Facts, ObjectKey, Rollout, StatusEvent, desired_status, is_pending};
use crate::kubernetes::stores::Stores;
use crate::snapshot::Snapshot;

/// The field manager of the status server-side apply.
pub const FIELD_MANAGER: &str = "weft-operator-status";

/// The reporting controller of the Events (`reportingController`).
pub const REPORTING_CONTROLLER: &str = "weft-operator";

/// How often the acknowledgements are polled while an object's `Reconciled` is pending.
pub const PENDING_POLL: Duration = Duration::from_millis(500);

/// How long the poll stays at [`PENDING_POLL`] before slowing to [`SLOW_POLL`] (a proxy that
/// never acknowledges, e.g. one that rejects the config, must not keep the loop busy).
pub const FAST_POLL_FOR: Duration = Duration::from_secs(60);

/// The poll interval after [`FAST_POLL_FOR`] of continuous pending.
pub const SLOW_POLL: Duration = Duration::from_secs(5);

/// How often every object is re-evaluated when nothing else happens (as controllers'
/// periodic resync): proxies that connected since the last view count for `Reconciled`.
pub const RESYNC: Duration = Duration::from_secs(30);

/// The first retry delay after a failed write; doubled on each further failure.
pub const RETRY_MIN: Duration = Duration::from_secs(1);

/// The longest retry delay.
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// Why writing one object's status failed (retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The server-side apply of `status` on the object's status subresource failed.
    #[error(
        "applying status (conditions, validationMessages) to the status subresource of {object}: {source}"
    )]
    Patch {
        /// The object.
        object: ObjectKey,
        /// The API error.
        source: kube::Error,
    },
    /// Creating or updating a Warning Event on the object failed (needs `create`/`patch` on
    /// `events.k8s.io` events).
    #[error("publishing the {reason} Warning Event on {object}: {source}")]
    Event {
        /// The object.
        object: ObjectKey,
        /// The event's reason.
        reason: String,
        /// The API error.
        source: kube::Error,
    },
}

impl StatusError {
    /// Whether the object no longer exists (`404 NotFound`): nothing to retry.
    fn is_gone(&self) -> bool {
        let source = match self {
            StatusError::Patch { source, .. } | StatusError::Event { source, .. } => source,
        };
        matches!(source, kube::Error::Api(status) if status.code == 404)
    }
}

/// One view handed to the discovery server: its builder sequence number, the snapshot and the
/// `Mesh` spec it was built with.
#[derive(Debug, Clone)]
pub struct Published {
    /// `DiscoveryServer::update`'s return value for `snapshot`.
    pub seq: u64,
    /// The snapshot (its view is what the proxies' configs are built from).
    pub snapshot: Arc<Snapshot>,
    /// The `Mesh` spec in force (root namespace for the analyzers).
    pub mesh: MeshSpec,
}

/// Where the view builder publishes every view it installs, on every replica, and where the
/// status loop reads them: the newest view, and for each object the first builder that held
/// its generation ([`FirstSeen`]).
#[derive(Debug)]
pub struct StatusFeed {
    first_seen: Mutex<FirstSeen>,
    latest: watch::Sender<Option<Published>>,
}

impl Default for StatusFeed {
    fn default() -> Self {
        Self {
            first_seen: Mutex::new(FirstSeen::default()),
            latest: watch::channel(None).0,
        }
    }
}

impl StatusFeed {
    /// Records `published` (call right after `DiscoveryServer::update`, with increasing
    /// `seq`) and wakes the status loop.
    pub fn publish(&self, published: Published) {
        self.first_seen.lock().record(
            mesh_metas(published.snapshot.view().objects()),
            published.seq,
        );
        self.latest.send_replace(Some(published));
    }

    /// The first builder sequence whose view held `object`'s uid and generation.
    pub fn built_in(&self, object: &MeshObject) -> Option<u64> {
        self.first_seen.lock().built_in(object)
    }

    fn subscribe(&self) -> watch::Receiver<Option<Published>> {
        self.latest.subscribe()
    }
}

/// The acknowledgement source: per connected proxy, the newest builder sequence it
/// acknowledged (`DiscoveryServer::acked_seqs` without the proxy keys).
pub type AckSource = Arc<dyn Fn() -> Vec<Option<u64>> + Send + Sync>;

/// The status loop's inputs.
#[derive(Clone)]
pub struct StatusController {
    /// The API client (writes status and Events).
    pub client: Client,
    /// The reflector stores: the objects' current status, uid and generation.
    pub stores: Stores,
    /// The views published by the view builder.
    pub feed: Arc<StatusFeed>,
    /// The proxies' acknowledgements.
    pub acks: AckSource,
    /// Who reports the Events (controller `weft-operator`, instance the pod name).
    pub reporter: Reporter,
    /// Where rounds, writes and durations are counted.
    pub metrics: StatusMetrics,
}

/// What the store holds for an object now.
struct Stored {
    uid: Option<String>,
    generation: Option<i64>,
    status: Option<IstioStatus>,
}

fn stored<K>(store: &kube::runtime::reflector::Store<K>, key: &ObjectKey) -> Option<Stored>
where
    K: Resource<DynamicType = ()> + Clone + HasStatus + 'static,
{
    let object = store.get(&ObjectRef::new(&key.name).within(&key.namespace))?;
    Some(Stored {
        uid: object.meta().uid.clone(),
        generation: object.meta().generation,
        status: object.status().cloned(),
    })
}

/// The Istio kinds' `status` field.
trait HasStatus {
    fn status(&self) -> Option<&IstioStatus>;
}

macro_rules! has_status {
    ($($kind:ty),*) => {$(
        impl HasStatus for $kind {
            fn status(&self) -> Option<&IstioStatus> {
                self.status.as_ref()
            }
        }
    )*};
}
has_status!(
    VirtualService,
    DestinationRule,
    Gateway,
    ServiceEntry,
    Sidecar,
    WorkloadEntry,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication
);

fn lookup(stores: &Stores, object: &MeshObject, key: &ObjectKey) -> Option<Stored> {
    match object {
        MeshObject::VirtualService(_) => stored(&stores.virtual_services, key),
        MeshObject::DestinationRule(_) => stored(&stores.destination_rules, key),
        MeshObject::Gateway(_) => stored(&stores.gateways, key),
        MeshObject::ServiceEntry(_) => stored(&stores.service_entries, key),
        MeshObject::Sidecar(_) => stored(&stores.sidecars, key),
        MeshObject::WorkloadEntry(_) => stored(&stores.workload_entries, key),
        MeshObject::PeerAuthentication(_) => stored(&stores.peer_authentications, key),
        MeshObject::AuthorizationPolicy(_) => stored(&stores.authorization_policies, key),
        MeshObject::RequestAuthentication(_) => stored(&stores.request_authentications, key),
        MeshObject::Mesh(_) => None,
    }
}

fn object_ref(object: &MeshObject) -> ObjectReference {
    match object {
        MeshObject::VirtualService(o) => o.object_ref(&()),
        MeshObject::DestinationRule(o) => o.object_ref(&()),
        MeshObject::Gateway(o) => o.object_ref(&()),
        MeshObject::ServiceEntry(o) => o.object_ref(&()),
        MeshObject::Sidecar(o) => o.object_ref(&()),
        MeshObject::WorkloadEntry(o) => o.object_ref(&()),
        MeshObject::PeerAuthentication(o) => o.object_ref(&()),
        MeshObject::AuthorizationPolicy(o) => o.object_ref(&()),
        MeshObject::RequestAuthentication(o) => o.object_ref(&()),
        MeshObject::Mesh(o) => o.object_ref(&()),
    }
}

/// Server-side applies `status` to the status subresource of the `K` named by `key`.
async fn apply_status<K>(
    client: &Client,
    key: &ObjectKey,
    status: &IstioStatus,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &key.namespace);
    let body = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &key.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(body),
    )
    .await
    .map(drop)
}

async fn write_status(
    client: &Client,
    object: &MeshObject,
    key: &ObjectKey,
    status: &IstioStatus,
) -> Result<(), kube::Error> {
    match object {
        MeshObject::VirtualService(_) => apply_status::<VirtualService>(client, key, status).await,
        MeshObject::DestinationRule(_) => {
            apply_status::<DestinationRule>(client, key, status).await
        }
        MeshObject::Gateway(_) => apply_status::<Gateway>(client, key, status).await,
        MeshObject::ServiceEntry(_) => apply_status::<ServiceEntry>(client, key, status).await,
        MeshObject::Sidecar(_) => apply_status::<Sidecar>(client, key, status).await,
        MeshObject::WorkloadEntry(_) => apply_status::<WorkloadEntry>(client, key, status).await,
        MeshObject::PeerAuthentication(_) => {
            apply_status::<PeerAuthentication>(client, key, status).await
        }
        MeshObject::AuthorizationPolicy(_) => {
            apply_status::<AuthorizationPolicy>(client, key, status).await
        }
        MeshObject::RequestAuthentication(_) => {
            apply_status::<RequestAuthentication>(client, key, status).await
        }
        // The Mesh has its own reconciler.
        MeshObject::Mesh(_) => Ok(()),
    }
}

/// Publishes `events` (Warnings) on `object`, then applies `desired`'s status.
async fn write(
    client: &Client,
    recorder: &Recorder,
    object: &MeshObject,
    key: &ObjectKey,
    desired: &Desired,
) -> Result<(), StatusError> {
    let reference = object_ref(object);
    for StatusEvent {
        reason,
        action,
        note,
    } in &desired.events
    {
        let event = Event {
            type_: EventType::Warning,
            reason: reason.clone(),
            note: Some(note.clone()),
            action: action.clone(),
            secondary: None,
        };
        recorder
            .publish(&event, &reference)
            .await
            .map_err(|source| StatusError::Event {
                object: key.clone(),
                reason: reason.clone(),
                source,
            })?;
    }
    write_status(client, object, key, &desired.status)
        .await
        .map_err(|source| StatusError::Patch {
            object: key.clone(),
            source,
        })
}

/// A failed object's next attempt.
#[derive(Debug, Clone, Copy)]
struct Retry {
    delay: Duration,
    at: Instant,
}

/// Now as RFC 3339 with seconds (`metav1.Time`'s precision).
fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The loop's state between rounds.
#[derive(Default)]
struct State {
    /// The view the facts were computed from, and the facts.
    facts: Option<(Published, Arc<ViewFacts>)>,
    /// What this loop last wrote per object (uid, generation, status), until the next view:
    /// the store may not show it yet.
    written: HashMap<ObjectKey, (Option<String>, Option<i64>, IstioStatus)>,
    retries: HashMap<ObjectKey, Retry>,
    pending_since: Option<Instant>,
}

impl StatusController {
    /// Runs until `token` is cancelled (leadership lost, shutdown) or the feed is gone.
    pub async fn run(self, token: CancellationToken) {
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        let mut feed = self.feed.subscribe();
        let mut state = State::default();
        loop {
            let latest = feed.borrow_and_update().clone();
            if let Some(published) = latest {
                tokio::select! {
                    () = self.refresh_facts(&mut state, published) => {}
                    () = token.cancelled() => return,
                }
            }
            let wait = tokio::select! {
                wait = self.round(&recorder, &mut state) => wait,
                () = token.cancelled() => return,
            };
            let sleep = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = feed.changed() => if changed.is_err() { return },
                () = sleep => {}
                () = token.cancelled() => return,
            }
        }
    }

    /// Computes the facts of `published` off the executor, unless its view holds the same
    /// objects and settings as the one the current facts came from.
    async fn refresh_facts(&self, state: &mut State, published: Published) {
        if let Some((old, facts)) = &state.facts {
            if old.seq == published.seq {
                return;
            }
            if old.mesh == published.mesh
                && published
                    .snapshot
                    .view()
                    .change_since(old.snapshot.view())
                    .is_empty()
            {
                let facts = facts.clone();
                state.facts = Some((published, facts));
                return;
            }
        }
        let (snapshot, mesh) = (published.snapshot.clone(), published.mesh.clone());
        let started = std::time::Instant::now();
        let computed =
            tokio::task::spawn_blocking(move || ViewFacts::compute(snapshot.view(), &mesh)).await;
        self.metrics
            .facts_seconds
            .observe(started.elapsed().as_secs_f64());
        match computed {
            Ok(facts) => {
                state.facts = Some((published, Arc::new(facts)));
                state.written.clear();
            }
            Err(error) => tracing::error!(%error, "computing the status facts failed"),
        }
    }

    /// One pass over every object of the current view. Returns how long to wait before the
    /// next pass when nothing else happens: the poll interval while some object is pending,
    /// the earliest retry, or [`RESYNC`]; `None` before the first view.
    async fn round(&self, recorder: &Recorder, state: &mut State) -> Option<Duration> {
        let (_, facts) = state.facts.as_ref()?;
        let facts = facts.clone();
        let started = std::time::Instant::now();
        let mut pending_objects = 0;
        let acked = (self.acks)();
        let now = now_rfc3339();
        let mut pending = false;
        let mut keys = std::collections::HashSet::with_capacity(facts.objects.len());
        for object in &facts.objects {
            let key = ObjectKey::of(object);
            keys.insert(key.clone());
            if state
                .retries
                .get(&key)
                .is_some_and(|retry| retry.at > Instant::now())
            {
                continue;
            }
            let meta = object.meta();
            let Some(stored) = lookup(&self.stores, object, &key) else {
                continue; // Deleted since the view was built.
            };
            if stored.uid != meta.uid || stored.generation != meta.generation {
                continue; // Changed since; a newer view follows.
            }
            let current = state
                .written
                .get(&key)
                .filter(|(uid, generation, _)| *uid == meta.uid && *generation == meta.generation)
                .map(|(_, _, status)| status)
                .or(stored.status.as_ref());
            let desired = desired_status(
                object,
                current,
                &Facts {
                    validation: facts.validation(&key),
                    unsupported: facts.unsupported(&key),
                    analysis: facts.analysis(&key),
                    rollout: Rollout {
                        built_in: self.feed.built_in(object),
                        acked: &acked,
                    },
                    now: &now,
                },
            );
            if is_pending(&desired.status) {
                pending = true;
                pending_objects += 1;
            }
            if current == Some(&desired.status) {
                continue;
            }
            match write(&self.client, recorder, object, &key, &desired).await {
                Ok(()) => {
                    self.metrics.write(WriteResult::Applied);
                    tracing::debug!(object = %key, "status written");
                    state.retries.remove(&key);
                    state
                        .written
                        .insert(key, (meta.uid.clone(), meta.generation, desired.status));
                }
                Err(error) if error.is_gone() => {
                    self.metrics.write(WriteResult::Gone);
                    state.retries.remove(&key);
                }
                Err(error) => {
                    self.metrics.write(WriteResult::Failed);
                    let delay = state
                        .retries
                        .get(&key)
                        .map_or(RETRY_MIN, |retry| (retry.delay * 2).min(RETRY_MAX));
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "status write failed");
                    state.retries.insert(
                        key,
                        Retry {
                            delay,
                            at: Instant::now() + delay,
                        },
                    );
                }
            }
        }
        self.metrics.reconciles.inc();
        self.metrics
            .reconcile_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.pending.set(pending_objects);
        let now = Instant::now();
        state.retries.retain(|key, _| keys.contains(key));
        let poll = if pending {
            let since = *state.pending_since.get_or_insert(now);
            Some(if now.duration_since(since) < FAST_POLL_FOR {
                PENDING_POLL
            } else {
                SLOW_POLL
            })
        } else {
            state.pending_since = None;
            None
        };
        let retry = state
            .retries
            .values()
            .map(|retry| retry.at.saturating_duration_since(now))
            .min();
        [poll, retry].into_iter().flatten().chain([RESYNC]).min()
    }
}
