//! The `Mesh` reconciler (issue 7): reports whether the mesh is at its spec and, when the
//! `Mesh` is deleted, removes what the operator created.
//!
//! Bringing the mesh to its spec is done by the leader's other loops (Citadel creates the CA
//! and publishes the trust bundle, the webhook patcher keeps the `caBundle` current, every
//! replica serves discovery); this controller observes their results and writes them on the
//! `Mesh`:
//!
//! - conditions `CertificateAuthorityReady`, `WebhooksReady`, `DiscoveryReady` and the summary
//!   `Ready`, each with reason, message and `observedGeneration` ([`status::desired_status`],
//!   pure);
//! - counts: connected proxies, injected pods, nearest workload certificate expiry;
//! - Kubernetes Events through kube-runtime's [`Recorder`] when a condition changes;
//! - the finalizer [`FINALIZER`] (`mesh.weft.dev/cleanup`), added on the first reconcile of the
//!   Mesh named `default` with [`kube::runtime::finalizer`]; on deletion the plan of
//!   [`cleanup::cleanup_plan`] is executed, then the finalizer is removed.
//!
//! Status is written with a JSON merge patch on the status subresource only, and only when it
//! differs from the current one ignoring timestamps ([`status::status_changed`]). Transient
//! errors retry with [`crate::citadel::controller::backoff_delay`]; permanent ones (400, 422)
//! wait for a change. [`run`] is meant to run in the leader's work only: only the leader
//! writes.

pub mod cert_expiry;
pub mod cleanup;
pub mod status;

use crate::controller_metrics::ControllerMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use weft_crds::mesh::{DEFAULT_NAME, Mesh};
use weft_identity::{Clock, SystemClock};
use weft_webhook::names::{SIDECAR_STATUS, TLS_MODE_LABEL};

use self::cleanup::{DeletionKind, Owned, cleanup_plan};
use self::status::{CaFact, CaSource, Facts, MeshEvent, WebhookFact, WebhookState};
use super::webhook_config::{
    MUTATING_WEBHOOK_CONFIGURATION, VALIDATING_WEBHOOK_CONFIGURATION, mutating_webhooks,
    validating_webhooks,
};
use crate::citadel::controller::backoff_delay;
use crate::citadel::plan::load_or_create_ca;
use crate::citadel::{
    CA_SECRET_NAME, COMPONENT_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL, PLUGIN_CA_SECRET_NAME,
    ROOT_CERT_CONFIGMAP, WORKLOAD_CERT_COMPONENT, tls_keys,
};
use crate::discovery::DiscoveryServer;

/// The finalizer the operator puts on the Mesh named `default`.
pub const FINALIZER: &str = "mesh.weft.dev/cleanup";

/// How often the counts (proxies, pods, certificate expiry) are refreshed when nothing
/// triggers a reconcile (seconds: 30).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The `reportingController` of the Events this controller publishes.
pub const REPORTING_CONTROLLER: &str = "weft-operator";

/// What the controller asks of the discovery server: whether it listens and how many proxies
/// are connected. A trait so that tests pass a fixed answer.
pub trait DiscoveryProbe: Send + Sync {
    /// Whether the discovery service accepts streams.
    fn serving(&self) -> bool;
    /// How many proxies hold a stream to this replica.
    fn connected_proxies(&self) -> usize;
}

/// A started [`DiscoveryServer`] is serving (its `start` bound the listener before the
/// leader's work begins); its connected proxies are its sessions.
impl DiscoveryProbe for DiscoveryServer {
    fn serving(&self) -> bool {
        true
    }

    fn connected_proxies(&self) -> usize {
        self.statuses().len()
    }
}

/// Settings of the Mesh reconciler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshControllerSettings {
    /// The operator's namespace: where `cacerts` and `weft-ca-secret` are.
    pub namespace: String,
    /// Whether the operator manages the webhooks' `caBundle` (false under OLM).
    pub manage_webhook_ca_bundle: bool,
    /// This replica's name (the pod name), the Events' `reportingInstance`.
    pub identity: String,
}

/// The Mesh reconciler's part of the Kubernetes mode's settings: the namespace, whether the
/// `caBundle` is managed (`--manage-webhook-ca-bundle`) and the replica's identity.
impl From<&super::KubernetesSettings> for MeshControllerSettings {
    fn from(settings: &super::KubernetesSettings) -> Self {
        MeshControllerSettings {
            namespace: settings.namespace.clone(),
            manage_webhook_ca_bundle: settings.manage_webhook_ca_bundle,
            identity: settings.identity.clone(),
        }
    }
}

/// Errors of one reconcile. Messages name the object and the call.
#[derive(Debug, thiserror::Error)]
pub enum MeshControllerError {
    /// A call to the Kubernetes API failed.
    #[error("{verb} {kind} {name}: {source}")]
    Kube {
        /// `get`, `list`, `patch status`, `delete`.
        verb: &'static str,
        /// The kind of the object(s).
        kind: &'static str,
        /// `namespace/name`, or what was listed.
        name: String,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
    /// Adding or removing the finalizer `mesh.weft.dev/cleanup` failed, or the apply or
    /// cleanup it wraps did.
    #[error("finalizer {FINALIZER}: {0}")]
    Finalizer(#[source] Box<finalizer::Error<MeshControllerError>>),
}

impl MeshControllerError {
    /// Whether retrying with back-off may succeed: API errors other than 400 and 422 are
    /// transient (connection, 403 until RBAC is fixed, 409 from a concurrent finalizer edit,
    /// 429, 5xx); a Mesh without a name or a malformed finalizer is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            MeshControllerError::Kube {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 422),
            MeshControllerError::Kube { .. } => true,
            MeshControllerError::Finalizer(inner) => match inner.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => {
                    e.is_transient()
                }
                finalizer::Error::AddFinalizer(_) | finalizer::Error::RemoveFinalizer(_) => true,
                finalizer::Error::UnnamedObject | finalizer::Error::InvalidFinalizer => false,
            },
        }
    }
}

fn kube_error(
    verb: &'static str,
    kind: &'static str,
    name: impl Into<String>,
) -> impl FnOnce(kube::Error) -> MeshControllerError {
    let name = name.into();
    move |source| MeshControllerError::Kube {
        verb,
        kind,
        name,
        source,
    }
}

/// What the reconciles share.
pub struct Context {
    client: Client,
    settings: MeshControllerSettings,
    discovery: Arc<dyn DiscoveryProbe>,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context for `settings`, asking `discovery` for the proxy count and reading time from
    /// `clock` (tests pass a [`weft_identity::TestClock`]).
    pub fn new(
        client: Client,
        settings: MeshControllerSettings,
        discovery: Arc<dyn DiscoveryProbe>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let reporter = Reporter {
            controller: REPORTING_CONTROLLER.to_string(),
            instance: Some(settings.identity.clone()),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            settings,
            discovery,
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Reads the CA Secrets and loads the CA the way Citadel does (`cacerts` first).
async fn ca_fact(ctx: &Context) -> Result<CaFact, MeshControllerError> {
    let namespace = ctx.settings.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let get = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets.get_opt(name).await.map_err(kube_error(
                "get",
                "Secret",
                format!("{namespace}/{name}"),
            ))
        }
    };
    let (secret, source, name) = match get(PLUGIN_CA_SECRET_NAME).await? {
        Some(cacerts) => (cacerts, CaSource::PluggedIn, PLUGIN_CA_SECRET_NAME),
        None => match get(CA_SECRET_NAME).await? {
            Some(own) => (own, CaSource::SelfSigned, CA_SECRET_NAME),
            None => return Ok(CaFact::Missing),
        },
    };
    let (cacerts, own) = match source {
        CaSource::PluggedIn => (Some(&secret), None),
        CaSource::SelfSigned => (None, Some(&secret)),
    };
    // With one of the two Secrets given, this loads and never creates.
    let mesh = weft_crds::mesh::MeshSpec::default();
    Ok(
        match load_or_create_ca(cacerts, own, namespace, &mesh, ctx.clock.clone()) {
            Ok((ca, _)) => CaFact::Loaded {
                source,
                not_after: ca.not_after(),
                trust_bundle_pem: ca.trust_bundle_pem(),
            },
            Err(error) => CaFact::Invalid {
                secret: name,
                message: error.to_string(),
            },
        },
    )
}

/// The (name, `caBundle`) of each webhook, from `webhook_config`'s (name, client config).
fn ca_bundles(configs: Vec<(String, WebhookClientConfig)>) -> Vec<(String, Option<Vec<u8>>)> {
    configs
        .into_iter()
        .map(|(name, config)| (name, config.ca_bundle.map(|b| b.0)))
        .collect()
}

/// Reads both webhook configurations and compares their `caBundle` with the CA's bundle.
async fn webhook_facts(
    ctx: &Context,
    ca: &CaFact,
) -> Result<Vec<WebhookFact>, MeshControllerError> {
    let mutating = Api::<MutatingWebhookConfiguration>::all(ctx.client.clone())
        .get_opt(MUTATING_WEBHOOK_CONFIGURATION)
        .await
        .map_err(kube_error(
            "get",
            "MutatingWebhookConfiguration",
            MUTATING_WEBHOOK_CONFIGURATION,
        ))?
        .map(|c| ca_bundles(mutating_webhooks(&c)));
    let validating = Api::<ValidatingWebhookConfiguration>::all(ctx.client.clone())
        .get_opt(VALIDATING_WEBHOOK_CONFIGURATION)
        .await
        .map_err(kube_error(
            "get",
            "ValidatingWebhookConfiguration",
            VALIDATING_WEBHOOK_CONFIGURATION,
        ))?
        .map(|c| ca_bundles(validating_webhooks(&c)));
    let state = |webhooks: Option<Vec<(String, Option<Vec<u8>>)>>| match (webhooks, ca) {
        (None, _) => WebhookState::Missing,
        (Some(_), _) if !ctx.settings.manage_webhook_ca_bundle => WebhookState::Current,
        (
            Some(webhooks),
            CaFact::Loaded {
                trust_bundle_pem, ..
            },
        ) => status::webhook_state(&webhooks, trust_bundle_pem),
        (Some(_), _) => WebhookState::Unknown,
    };
    Ok(vec![
        WebhookFact {
            kind: "MutatingWebhookConfiguration",
            name: MUTATING_WEBHOOK_CONFIGURATION,
            state: state(mutating),
        },
        WebhookFact {
            kind: "ValidatingWebhookConfiguration",
            name: VALIDATING_WEBHOOK_CONFIGURATION,
            state: state(validating),
        },
    ])
}

/// The label selector of the workload certificate Secrets Citadel writes.
fn workload_secret_selector() -> String {
    format!("{MANAGED_BY_LABEL}={FIELD_MANAGER},{COMPONENT_LABEL}={WORKLOAD_CERT_COMPONENT}")
}

async fn workload_secrets(ctx: &Context) -> Result<Vec<Secret>, MeshControllerError> {
    let selector = workload_secret_selector();
    Api::<Secret>::all(ctx.client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map(|list| list.items)
        .map_err(kube_error("list", "Secret", selector))
}

/// Pods the injector mutated: those labelled `security.istio.io/tlsMode` (selected by the API
/// server) that carry the `sidecar.istio.io/status` annotation.
async fn injected_pods(ctx: &Context) -> Result<usize, MeshControllerError> {
    let pods = Api::<Pod>::all(ctx.client.clone())
        .list_metadata(&ListParams::default().labels(TLS_MODE_LABEL))
        .await
        .map_err(kube_error("list", "Pod", TLS_MODE_LABEL))?;
    Ok(pods
        .items
        .iter()
        .filter(|p| p.annotations().contains_key(SIDECAR_STATUS))
        .count())
}

/// Gathers the [`Facts`]: the CA Secrets, both webhook configurations, the discovery probe,
/// the injected pods and the workload certificate Secrets.
///
/// Errors: [`MeshControllerError::Kube`] for a failed GET or LIST.
pub async fn gather_facts(ctx: &Context) -> Result<Facts, MeshControllerError> {
    let ca = ca_fact(ctx).await?;
    let webhooks = webhook_facts(ctx, &ca).await?;
    let injected = injected_pods(ctx).await?;
    let nearest = workload_secrets(ctx)
        .await?
        .iter()
        .filter_map(|s| s.data.as_ref()?.get(tls_keys::CERT))
        .filter_map(|crt| cert_expiry::leaf_not_after(std::str::from_utf8(&crt.0).ok()?))
        .min();
    Ok(Facts {
        ca,
        manage_webhook_ca_bundle: ctx.settings.manage_webhook_ca_bundle,
        webhooks,
        discovery_serving: ctx.discovery.serving(),
        connected_proxies: count(ctx.discovery.connected_proxies()),
        injected_pods: count(injected),
        nearest_certificate_expiry: nearest,
    })
}

async fn publish(ctx: &Context, mesh: &Mesh, event: &MeshEvent) {
    let kube_event = KubeEvent {
        type_: if event.warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason.clone(),
        note: Some(event.note.clone()),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&kube_event, &mesh.object_ref(&()))
        .await
    {
        tracing::warn!(%error, reason = %event.reason, "publishing a Mesh Event failed");
    }
}

/// Writes the desired status of `mesh` (merge patch on the status subresource, only when
/// it changed) and publishes the Events for changed conditions.
async fn write_status(
    mesh: &Mesh,
    facts: &Facts,
    ctx: &Context,
) -> Result<(), MeshControllerError> {
    let name = mesh.name_any();
    let (desired, events) = status::desired_status(mesh, facts, ctx.clock.now());
    if status::status_changed(mesh.status.as_ref(), &desired) {
        let api: Api<Mesh> = Api::all(ctx.client.clone());
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PatchParams::default()
        };
        api.patch_status(&name, &params, &Patch::Merge(json!({ "status": desired })))
            .await
            .map_err(kube_error("patch status", "Mesh", name.clone()))?;
        tracing::info!(mesh = %name, "updated the Mesh status");
    }
    for event in &events {
        publish(ctx, mesh, event).await;
    }
    Ok(())
}

async fn apply(mesh: Arc<Mesh>, ctx: Arc<Context>) -> Result<Action, MeshControllerError> {
    let facts = gather_facts(&ctx).await?;
    write_status(&mesh, &facts, &ctx).await?;
    Ok(Action::requeue(REFRESH_INTERVAL))
}

/// Deletes what the operator created ([`cleanup_plan`]); an object already gone counts as
/// deleted.
async fn cleanup(mesh: Arc<Mesh>, ctx: Arc<Context>) -> Result<Action, MeshControllerError> {
    let namespace = ctx.settings.namespace.as_str();
    let ca_secret = Api::<Secret>::namespaced(ctx.client.clone(), namespace)
        .get_opt(CA_SECRET_NAME)
        .await
        .map_err(kube_error(
            "get",
            "Secret",
            format!("{namespace}/{CA_SECRET_NAME}"),
        ))?;
    let workload = workload_secrets(&ctx).await?;
    let by_name = format!("metadata.name={ROOT_CERT_CONFIGMAP}");
    let configmaps = Api::<ConfigMap>::all(ctx.client.clone())
        .list(&ListParams::default().fields(&by_name))
        .await
        .map_err(kube_error("list", "ConfigMap", by_name.clone()))?
        .items;
    let plan = cleanup_plan(&Owned {
        namespace,
        ca_secret: ca_secret.as_ref(),
        workload_secrets: &workload,
        root_configmaps: &configmaps,
    });
    for deletion in &plan {
        let (ns, name) = (deletion.namespace.as_str(), deletion.name.as_str());
        let result = match deletion.kind {
            DeletionKind::Secret => Api::<Secret>::namespaced(ctx.client.clone(), ns)
                .delete(name, &DeleteParams::default())
                .await
                .map(drop),
            DeletionKind::ConfigMap => Api::<ConfigMap>::namespaced(ctx.client.clone(), ns)
                .delete(name, &DeleteParams::default())
                .await
                .map(drop),
        };
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                let kind = match deletion.kind {
                    DeletionKind::Secret => "Secret",
                    DeletionKind::ConfigMap => "ConfigMap",
                };
                return Err(kube_error("delete", kind, format!("{ns}/{name}"))(source));
            }
        }
    }
    tracing::info!(
        deleted = plan.len(),
        "Mesh deleted: removed what the operator created"
    );
    publish(
        &ctx,
        &mesh,
        &MeshEvent {
            warning: false,
            reason: "CleanedUp".to_string(),
            note: format!(
                "deleted {} objects the operator created (CA Secret, workload certificate Secrets, trust-bundle ConfigMaps)",
                plan.len()
            ),
        },
    )
    .await;
    Ok(Action::await_change())
}

/// Whether the mesh is in force: the Mesh named `default` exists and is not being deleted.
///
/// Takes the Mesh objects (a reflector's state). The runtime should create the CA, run Citadel
/// and patch the webhooks only while this is `true`: otherwise what the finalizer's cleanup
/// deleted (the CA Secret, workload certificates, trust-bundle ConfigMaps) is created again.
pub fn mesh_in_force(meshes: &[Arc<Mesh>]) -> bool {
    meshes.iter().any(|m| {
        m.metadata.name.as_deref() == Some(DEFAULT_NAME) && m.metadata.deletion_timestamp.is_none()
    })
}

/// Reconciles one Mesh. The Mesh named `default` gets the finalizer [`FINALIZER`] first
/// (kube-runtime's [`finalizer`] helper), then its status on each pass, and on deletion the
/// cleanup; any other Mesh only gets `Ready=False` (`NotTheDefaultMesh`) and no finalizer, so
/// that deleting it removes nothing.
///
/// Returns `Action::requeue` after [`REFRESH_INTERVAL`] to refresh the counts. Errors:
/// [`MeshControllerError`].
pub async fn reconcile(mesh: Arc<Mesh>, ctx: Arc<Context>) -> Result<Action, MeshControllerError> {
    let name = mesh.name_any();
    let result = if name == DEFAULT_NAME {
        let api: Api<Mesh> = Api::all(ctx.client.clone());
        finalizer::finalizer(&api, FINALIZER, mesh, |event| async {
            match event {
                FinalizerEvent::Apply(mesh) => apply(mesh, ctx.clone()).await,
                FinalizerEvent::Cleanup(mesh) => cleanup(mesh, ctx.clone()).await,
            }
        })
        .await
        .map_err(|e| MeshControllerError::Finalizer(Box::new(e)))
    } else if mesh.meta().deletion_timestamp.is_some() {
        Ok(Action::await_change())
    } else {
        apply(mesh, ctx.clone()).await
    };
    if result.is_ok() {
        ctx.failures.lock().remove(&name);
    }
    result
}

/// The error policy: transient errors retry after [`backoff_delay`] of the consecutive
/// failure count of this Mesh; permanent ones wait for a change of the Mesh.
pub fn error_policy(mesh: Arc<Mesh>, error: &MeshControllerError, ctx: Arc<Context>) -> Action {
    if error.is_transient() {
        let failures = {
            let mut failures = ctx.failures.lock();
            let n = failures.entry(mesh.name_any()).or_insert(0);
            *n = n.saturating_add(1);
            *n
        };
        let delay = backoff_delay(failures);
        tracing::warn!(%error, failures, retry_in_ms = delay.as_millis() as u64, "Mesh reconcile failed");
        Action::requeue(delay)
    } else {
        tracing::error!(%error, "Mesh reconcile refused; waiting for a change");
        Action::await_change()
    }
}

/// Runs the Mesh reconciler until `shutdown` is cancelled (call it from the leader's work,
/// with the term's token: only the leader writes). Reconciles every Mesh, re-triggered for the
/// Mesh `default` by changes to either webhook configuration and to the CA Secrets in
/// `settings.namespace`, and every [`REFRESH_INTERVAL`].
///
/// Needs RBAC: get/list/watch/patch/update on meshes, patch on meshes/status; get/list/watch
/// on Secrets, ConfigMaps, Pods and both webhook configurations; delete on Secrets and
/// ConfigMaps (cleanup); create on events.k8s.io Events. Never returns an error: reconcile
/// errors are logged and retried. Each reconcile counts in `metrics` as controller `mesh`.
pub async fn run(
    client: Client,
    settings: MeshControllerSettings,
    discovery: Arc<dyn DiscoveryProbe>,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
) {
    let namespace = settings.namespace.clone();
    let ctx = Arc::new(Context::new(
        client.clone(),
        settings,
        discovery,
        Arc::new(SystemClock),
    ));
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let the_mesh = |_| Some(ObjectRef::<Mesh>::new(DEFAULT_NAME));
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace);
    Controller::new(Api::<Mesh>::all(client.clone()), watcher::Config::default())
        .watches(
            Api::<MutatingWebhookConfiguration>::all(client.clone()),
            by_name(MUTATING_WEBHOOK_CONFIGURATION),
            move |_: MutatingWebhookConfiguration| the_mesh(()),
        )
        .watches(
            Api::<ValidatingWebhookConfiguration>::all(client.clone()),
            by_name(VALIDATING_WEBHOOK_CONFIGURATION),
            move |_: ValidatingWebhookConfiguration| the_mesh(()),
        )
        .watches(
            secrets.clone(),
            by_name(PLUGIN_CA_SECRET_NAME),
            move |_: Secret| the_mesh(()),
        )
        .watches(secrets, by_name(CA_SECRET_NAME), move |_: Secret| {
            the_mesh(())
        })
        .graceful_shutdown_on(shutdown.cancelled_owned())
        .run(
            move |mesh, ctx| metrics.clone().time("mesh", reconcile(mesh, ctx)),
            error_policy,
            ctx,
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "Mesh controller");
            }
        })
        .await;
}

#[cfg(test)]
mod tests;
