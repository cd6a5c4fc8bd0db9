//! The async shell of the Kubernetes mode: starts the reflectors, the discovery server, the
//! webhooks, monitoring, the operator's own certificates and the leader's work, and keeps
//! them current until shutdown.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use weft_crds::mesh::MeshSpec;
use weft_identity::{CertificateAuthority, Clock, RotationPolicy, SystemClock};
use weft_pilot::{ClusterObjects, ClusterView, MeshSettings};
use weft_proxy::tls::CertStore;

use super::injection::injection_config;
use super::own_certs::{
    SERVING_CERT_FILE, SERVING_KEY_FILE, write_discovery_cert, write_serving_cert,
};
use super::status::controller::{
    AckSource, Published, REPORTING_CONTROLLER, StatusController, StatusFeed,
};
use super::status::metrics::StatusMetrics;
use super::stores::credentials::{
    CredentialStore, SecretRef, referenced_secrets, watch_credentials,
};
use super::stores::{self, Stores};
use super::webhook_config::{
    MUTATING_WEBHOOK_CONFIGURATION, VALIDATING_WEBHOOK_CONFIGURATION, ensure_webhook_configurations,
};
use super::{KubernetesSettings, leader, mesh_controller, webhook_url_host};
use crate::citadel::{self, CA_SECRET_NAME, CitadelSettings, PLUGIN_CA_SECRET_NAME};
use crate::controller_metrics::ControllerMetrics;
use crate::discovery::{DebounceSettings, DiscoveryServer, metrics::DiscoveryMetrics};
use crate::monitoring::{self, Monitoring};
use crate::snapshot::Snapshot;
use crate::webhook_server::{self, ServingCert, WebhookMetrics, WebhookState};

/// How often certificate files are checked for changes by the TLS stores.
const CERT_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// Delay before retrying the CA load or a webhook-configuration patch after an error.
const RETRY_DELAY: Duration = Duration::from_secs(5);

/// The inputs Citadel and the operator's certificates depend on: the trust domain and the
/// certificate settings of the Mesh. Other Mesh fields (proxy image, debounce…) do not
/// restart Citadel.
fn citadel_key(mesh: &MeshSpec) -> (String, Option<weft_crds::mesh::CertificateSettings>) {
    (mesh.trust_domain().to_string(), mesh.certificates.clone())
}

/// A fingerprint of the CA Secrets' data (name → data), for change detection only.
fn secrets_fingerprint(secrets: &BTreeMap<String, Secret>) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for (name, secret) in secrets {
        name.hash(&mut hasher);
        for (key, value) in secret.data.iter().flatten() {
            key.hash(&mut hasher);
            value.0.hash(&mut hasher);
        }
    }
    hasher.finish()
}

/// Watches the CA Secrets (`cacerts`, `weft-ca-secret`) in `namespace` and bumps `revision`
/// whenever their data changes (a plugged-in CA, a root rotation), until `shutdown`.
async fn watch_ca_secrets(
    client: Client,
    namespace: String,
    revision: watch::Sender<u64>,
    shutdown: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let by_name = |name: &str| {
        watcher(
            api.clone(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
        )
        .default_backoff()
    };
    let mut events = std::pin::pin!(futures::stream::select(
        by_name(PLUGIN_CA_SECRET_NAME),
        by_name(CA_SECRET_NAME),
    ));
    let mut secrets = BTreeMap::new();
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = shutdown.cancelled() => return,
        };
        match event {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(%error, "watching the CA Secrets failed; retrying with back-off");
                continue;
            }
            Some(Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s))) => {
                secrets.insert(s.name_any(), s);
            }
            Some(Ok(watcher::Event::Delete(s))) => {
                secrets.remove(&s.name_any());
            }
            Some(Ok(watcher::Event::Init | watcher::Event::InitDone)) => continue,
        }
        let fingerprint = secrets_fingerprint(&secrets);
        revision.send_if_modified(|current| {
            let changed = *current != fingerprint;
            *current = fingerprint;
            changed
        });
    }
}

/// What a CA was loaded as: its signing certificate, its trust bundle and the trust domain;
/// a change of any of them means re-issuing the operator's certificates.
type CaKey = (String, String, String);

fn ca_key(ca: &CertificateAuthority, mesh: &MeshSpec) -> CaKey {
    (
        ca.ca_cert_pem().to_string(),
        ca.trust_bundle_pem(),
        mesh.trust_domain().to_string(),
    )
}

/// The operator's own certificates, kept current by [`OwnCerts::refresh`].
struct OwnCerts {
    client: Client,
    settings: KubernetesSettings,
    clock: Arc<dyn Clock>,
    current: Option<CaKey>,
    rotate_at: SystemTime,
}

impl OwnCerts {
    fn discovery_dir(&self) -> std::path::PathBuf {
        self.settings.state_dir.join("discovery")
    }

    fn serving_dir(&self) -> std::path::PathBuf {
        self.settings
            .webhook_cert_dir
            .clone()
            .unwrap_or_else(|| self.settings.state_dir.join("webhook"))
    }

    /// Loads the CA for `mesh` and re-issues both certificates when the CA, its bundle or the
    /// trust domain changed or the earliest rotation point passed. Returns the CA's trust
    /// bundle.
    async fn refresh(&mut self, mesh: &MeshSpec) -> anyhow::Result<String> {
        let citadel_settings = CitadelSettings {
            namespace: self.settings.namespace.clone(),
            mesh: mesh.clone(),
        };
        let ca = citadel::controller::load_ca(&self.client, &citadel_settings, self.clock.clone())
            .await
            .context("loading the mesh CA")?;
        let key = ca_key(&ca, mesh);
        if self.current.as_ref() == Some(&key) && self.clock.now() < self.rotate_at {
            return Ok(key.1);
        }
        let policy = RotationPolicy::new(mesh.workload_cert_ttl(), mesh.rotate_at_fraction());
        let (_, discovery_rotation) = write_discovery_cert(
            &ca,
            &policy,
            mesh.trust_domain(),
            &self.settings.namespace,
            &self.discovery_dir(),
        )?;
        let mut rotate_at = discovery_rotation;
        if self.settings.webhook_cert_dir.is_none() {
            let extra = self
                .settings
                .webhook_url
                .as_deref()
                .and_then(webhook_url_host);
            let serving_rotation = write_serving_cert(
                &ca,
                &policy,
                &self.settings.namespace,
                extra,
                &self.serving_dir(),
            )?;
            rotate_at = rotate_at.min(serving_rotation);
        }
        tracing::info!(
            trust_domain = mesh.trust_domain(),
            roots = ca.trust_bundle().len(),
            "issued the operator's discovery and webhook certificates"
        );
        self.current = Some(key.clone());
        self.rotate_at = rotate_at;
        Ok(key.1)
    }

    /// Keeps the certificates current until `shutdown`: re-issues at the rotation point, and
    /// re-checks whenever the Mesh or the CA Secrets change. While the Mesh is not in force
    /// (`in_force` false: deleted, see [`mesh_controller::mesh_in_force`]) it re-issues
    /// nothing, so that the CA Secret the Mesh's cleanup deleted is not created again; the
    /// certificates already issued keep serving.
    async fn run(
        mut self,
        mut mesh: watch::Receiver<MeshSpec>,
        mut ca_revision: watch::Receiver<u64>,
        mut in_force: watch::Receiver<bool>,
        shutdown: CancellationToken,
    ) {
        loop {
            let wait = (*in_force.borrow_and_update()).then(|| {
                self.rotate_at
                    .duration_since(self.clock.now())
                    .unwrap_or_default()
            });
            let rotation = async {
                match wait {
                    Some(wait) => tokio::time::sleep(wait).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = rotation => {}
                changed = mesh.changed() => if changed.is_err() { return },
                changed = ca_revision.changed() => if changed.is_err() { return },
                changed = in_force.changed() => if changed.is_err() { return },
                _ = shutdown.cancelled() => return,
            }
            if !*in_force.borrow_and_update() {
                continue;
            }
            let spec = mesh.borrow_and_update().clone();
            ca_revision.borrow_and_update();
            if let Err(error) = self.refresh(&spec).await {
                tracing::error!(
                    error = format!("{error:#}"),
                    "renewing the operator's certificates failed; retrying"
                );
                self.rotate_at = self.clock.now() + RETRY_DELAY;
            }
        }
    }
}

fn citadel_settings_of(settings: &KubernetesSettings, mesh: &MeshSpec) -> CitadelSettings {
    CitadelSettings {
        namespace: settings.namespace.clone(),
        mesh: mesh.clone(),
    }
}

/// The [`CaKey`] of the CA the Secrets hold now, `None` when it cannot be loaded (logged).
async fn loaded_ca_key(client: &Client, settings: &CitadelSettings) -> Option<CaKey> {
    match citadel::controller::load_ca(client, settings, Arc::new(SystemClock)).await {
        Ok(ca) => Some(ca_key(&ca, &settings.mesh)),
        Err(error) => {
            tracing::warn!(%error, "loading the mesh CA failed");
            None
        }
    }
}

/// The leader's work for one term: runs Citadel and (when managed) patches the webhook
/// configurations, restarting both when the trust domain, certificate settings or CA change.
async fn leader_work(
    client: Client,
    settings: KubernetesSettings,
    mut mesh: watch::Receiver<MeshSpec>,
    mut ca_revision: watch::Receiver<u64>,
    mut in_force: watch::Receiver<bool>,
    controllers: ControllerMetrics,
    term: CancellationToken,
) {
    loop {
        // Nothing is provisioned while the Mesh is deleted (or being deleted): the Mesh
        // reconciler's cleanup removes what Citadel made, and it must stay removed.
        tokio::select! {
            held = in_force.wait_for(|in_force| *in_force) => if held.is_err() { return },
            _ = term.cancelled() => return,
        }
        let spec = mesh.borrow_and_update().clone();
        ca_revision.borrow_and_update();
        let generation = term.child_token();
        let citadel_settings = CitadelSettings {
            namespace: settings.namespace.clone(),
            mesh: spec.clone(),
        };
        let citadel = tokio::spawn({
            let (client, token, controllers) =
                (client.clone(), generation.clone(), controllers.clone());
            async move {
                while !token.is_cancelled() {
                    match citadel::run(
                        client.clone(),
                        citadel_settings.clone(),
                        controllers.clone(),
                        token.clone(),
                    )
                    .await
                    {
                        Ok(()) => return,
                        Err(error) => {
                            tracing::error!(%error, "Citadel could not start; retrying");
                            tokio::select! {
                                _ = tokio::time::sleep(RETRY_DELAY) => {}
                                _ = token.cancelled() => return,
                            }
                        }
                    }
                }
            }
        });
        let webhooks = settings.manage_webhook_ca_bundle.then(|| {
            tokio::spawn(keep_webhooks_patched(
                client.clone(),
                settings.clone(),
                spec.clone(),
                generation.clone(),
            ))
        });
        let key = citadel_key(&spec);
        let ca_in_use = loaded_ca_key(&client, &citadel_settings_of(&settings, &spec)).await;
        loop {
            tokio::select! {
                changed = mesh.changed() => {
                    if changed.is_err() { break }
                    if citadel_key(&mesh.borrow_and_update()) == key { continue }
                    break;
                }
                changed = ca_revision.changed() => {
                    if changed.is_err() { break }
                    ca_revision.borrow_and_update();
                    // The Secrets changed; restart only if the CA they hold did (our own
                    // creation of weft-ca-secret and metadata edits do not count).
                    let now = loaded_ca_key(&client, &citadel_settings_of(&settings, &spec)).await;
                    if now.is_some() && now == ca_in_use { continue }
                    break;
                }
                changed = in_force.changed() => {
                    if changed.is_err() || !*in_force.borrow_and_update() { break }
                }
                _ = term.cancelled() => break,
            }
        }
        generation.cancel();
        let _ = citadel.await;
        // A patch of this generation still in flight must not land after the next one's.
        if let Some(webhooks) = webhooks {
            let _ = webhooks.await;
        }
        if term.is_cancelled() {
            return;
        }
        if *in_force.borrow() {
            tracing::info!("CA or mesh certificate settings changed; restarting Citadel");
        } else {
            tracing::info!("the Mesh is deleted; Citadel stops until one is created");
        }
    }
}

/// Keeps both webhook configurations patched with the CA's trust bundle (and the
/// `--webhook-url`) until `token` is cancelled: loads the CA, patches, then re-checks whenever
/// either configuration changes (re-created by an installer, caBundle reset), as istiod's
/// webhook patcher does. Errors are logged and retried after [`RETRY_DELAY`].
async fn keep_webhooks_patched(
    client: Client,
    settings: KubernetesSettings,
    mesh: MeshSpec,
    token: CancellationToken,
) {
    let citadel_settings = CitadelSettings {
        namespace: settings.namespace.clone(),
        mesh,
    };
    let retry = || async {
        tokio::select! {
            _ = tokio::time::sleep(RETRY_DELAY) => true,
            _ = token.cancelled() => false,
        }
    };
    let bundle = loop {
        match citadel::controller::load_ca(&client, &citadel_settings, Arc::new(SystemClock)).await
        {
            Ok(ca) => break ca.trust_bundle_pem(),
            Err(error) => {
                tracing::warn!(%error, "loading the CA for the webhook caBundle failed; retrying");
                if !retry().await {
                    return;
                }
            }
        }
    };
    let by_name = |name: &str| watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mutating = watcher(
        Api::<MutatingWebhookConfiguration>::all(client.clone()),
        by_name(MUTATING_WEBHOOK_CONFIGURATION),
    )
    .default_backoff()
    .map(|event| event.map(drop));
    let validating = watcher(
        Api::<ValidatingWebhookConfiguration>::all(client.clone()),
        by_name(VALIDATING_WEBHOOK_CONFIGURATION),
    )
    .default_backoff()
    .map(|event| event.map(drop));
    let mut changes = std::pin::pin!(futures::stream::select(mutating, validating));
    loop {
        let url = settings.webhook_url.as_deref();
        if let Err(error) = ensure_webhook_configurations(&client, bundle.as_bytes(), url).await {
            tracing::warn!(%error, "patching the webhook configurations failed; retrying");
            if !retry().await {
                return;
            }
            continue;
        }
        // Wait for the next change of either configuration (our own patch included: the
        // re-check then finds nothing to do).
        loop {
            tokio::select! {
                event = changes.next() => match event {
                    None => return,
                    Some(Ok(())) => break,
                    Some(Err(error)) => {
                        tracing::debug!(%error, "watching the webhook configurations");
                    }
                },
                _ = token.cancelled() => return,
            }
        }
    }
}

/// What the view builder updates after every rebuild.
struct ViewBuilder {
    stores: Stores,
    changed: Arc<Notify>,
    server: Arc<DiscoveryServer>,
    injection: Arc<ArcSwap<weft_webhook::InjectionConfig>>,
    mesh_tx: watch::Sender<MeshSpec>,
    /// Whether the Mesh is in force ([`mesh_controller::mesh_in_force`]).
    in_force_tx: watch::Sender<bool>,
    namespace: String,
    proxy_image: Option<String>,
    ready: Arc<AtomicBool>,
    status: Arc<StatusFeed>,
    /// The gateways' credential Secrets ([`watch_credentials`] writes them).
    credentials: CredentialStore,
    /// The Secrets the view's Gateways reference, for [`watch_credentials`].
    referenced_tx: watch::Sender<BTreeSet<SecretRef>>,
    /// The key sets of RequestAuthentication `jwksUri`s ([`crate::jwks`]).
    jwks: Arc<crate::jwks::JwksResolver>,
}

impl ViewBuilder {
    /// Rebuilds the cluster view on every store change once all stores have synced: a new
    /// [`Snapshot`] for the discovery server, the injection settings, and the Mesh for the
    /// certificate loops, and the view with its builder sequence for the status loop
    /// ([`StatusFeed`], on every replica so that a new leader knows which builder held which
    /// generation); marks the operator ready after the first build. The view holds the
    /// credential Secrets its Gateways reference ([`referenced_secrets`], sent on to
    /// [`watch_credentials`]); a credential change re-pushes the gateways whose config it
    /// changes (Pilot's `ViewChange` compares the views' Secrets). Changes that arrive
    /// during a build coalesce into one more build (a [`Notify`] permit).
    async fn run(self, shutdown: CancellationToken) {
        tokio::select! {
            synced = stores::wait_until_synced(&self.stores) => if synced.is_err() { return },
            _ = shutdown.cancelled() => return,
        }
        tracing::info!("every reflector has synced; building the cluster view");
        loop {
            let mesh = stores::select_mesh(&self.stores.meshes.state());
            let objects = stores::objects_from_stores(&self.stores);
            let referenced = referenced_secrets(&objects);
            let secrets = self.credentials.secrets_in(&referenced);
            self.referenced_tx.send_if_modified(|current| {
                let modified = *current != referenced;
                if modified {
                    *current = referenced;
                }
                modified
            });
            let jwks = self.jwks.want(weft_pilot::jwks_fetches(&objects));
            let view = ClusterView::new(MeshSettings::from_spec(&mesh), objects)
                .with_secrets(secrets)
                .with_jwks(jwks);
            let snapshot = Arc::new(Snapshot::new(view));
            let seq = self.server.update(snapshot.clone());
            self.status.publish(Published {
                seq,
                snapshot,
                mesh: mesh.clone(),
            });
            let config = injection_config(&mesh, &self.namespace, self.proxy_image.as_deref());
            if **self.injection.load() != config {
                self.injection.store(Arc::new(config));
            }
            self.in_force_tx.send_if_modified(|current| {
                let now = mesh_controller::mesh_in_force(&self.stores.meshes.state());
                std::mem::replace(current, now) != now
            });
            self.mesh_tx.send_if_modified(|current| {
                let modified = *current != mesh;
                if modified {
                    *current = mesh;
                }
                modified
            });
            self.ready.store(true, Ordering::Relaxed);
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }
}

/// Runs the Kubernetes mode until `shutdown` (SIGTERM): see the module documentation.
///
/// Errors: the first CA load or certificate issuance failing, a listener that cannot be
/// bound, or the election's Lease that cannot be read or created. Later failures are logged
/// and retried.
pub async fn run(
    client: Client,
    settings: KubernetesSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    if let Some(host) = settings.webhook_url.as_deref().and_then(webhook_url_host)
        && host.parse::<std::net::IpAddr>().is_ok()
    {
        tracing::warn!(
            %host,
            "--webhook-url names an IP address; the serving certificate carries DNS names only, so \
             the API server will refuse it: use a host name that resolves to this machine"
        );
    }
    let (stores, writers) = stores::stores();
    let changed = Arc::new(Notify::new());
    stores::spawn_reflectors(&client, writers, changed.clone(), &shutdown);

    // The Mesh decides the trust domain of the CA and of the operator's identity.
    stores.meshes.wait_until_ready().await?;
    let mesh = stores::select_mesh(&stores.meshes.state());
    let (mesh_tx, mesh_rx) = watch::channel(mesh.clone());
    let (in_force_tx, in_force_rx) =
        watch::channel(mesh_controller::mesh_in_force(&stores.meshes.state()));
    let (ca_tx, ca_rx) = watch::channel(0u64);
    tokio::spawn(watch_ca_secrets(
        client.clone(),
        settings.namespace.clone(),
        ca_tx,
        shutdown.clone(),
    ));

    let mut own = OwnCerts {
        client: client.clone(),
        settings: settings.clone(),
        clock: Arc::new(SystemClock),
        current: None,
        rotate_at: SystemTime::now(),
    };
    own.refresh(&mesh).await?;
    let discovery_store = CertStore::load(weft_proxy::tls::CertPaths::istio(own.discovery_dir()))
        .context("loading the discovery certificate")?;
    let _discovery_reload = discovery_store.watch(CERT_RELOAD_INTERVAL);
    let serving_dir = own.serving_dir();
    let serving = ServingCert::load(
        &serving_dir.join(SERVING_CERT_FILE),
        &serving_dir.join(SERVING_KEY_FILE),
    )
    .context("loading the webhook serving certificate")?;
    let _serving_reload = serving.watch(CERT_RELOAD_INTERVAL);
    tokio::spawn(own.run(
        mesh_rx.clone(),
        ca_rx.clone(),
        in_force_rx.clone(),
        shutdown.clone(),
    ));

    let mut registry = Registry::default();
    let metrics = DiscoveryMetrics::new(&mut registry);
    let webhook_metrics = WebhookMetrics::new(&mut registry);
    let leader_status = leader::LeaderMetrics::new(&mut registry);
    let status_metrics = StatusMetrics::new(&mut registry);
    let controllers = ControllerMetrics::new(&mut registry);
    let debounce = DebounceSettings {
        after: mesh.debounce_after(),
        max: mesh.debounce_max(),
    };
    let empty = ClusterView::new(MeshSettings::from_spec(&mesh), ClusterObjects::default());
    let server = DiscoveryServer::new(Arc::new(Snapshot::new(empty)), debounce, metrics);
    let tls = weft_proxy::tls::server_config(&discovery_store, &[b"h2"])
        .context("discovery TLS config")?;
    server
        .start(settings.discovery_addr, Arc::new(tls), shutdown.clone())
        .await?;

    let injection = Arc::new(ArcSwap::from_pointee(injection_config(
        &mesh,
        &settings.namespace,
        settings.proxy_image.as_deref(),
    )));
    let lookup_stores = stores.clone();
    let state = WebhookState {
        injection: injection.clone(),
        namespaces: Arc::new(move |name: &str| stores::namespace_labels(&lookup_stores, name)),
        metrics: webhook_metrics,
    };
    let webhook_listener = tokio::net::TcpListener::bind(settings.webhook_addr)
        .await
        .with_context(|| format!("binding webhook address {}", settings.webhook_addr))?;
    tracing::info!(address = %settings.webhook_addr, "admission webhooks listening");
    tokio::spawn(webhook_server::serve(
        webhook_listener,
        serving,
        state,
        shutdown.clone(),
    ));

    let ready = Arc::new(AtomicBool::new(false));
    let monitoring = Monitoring {
        registry: Arc::new(Mutex::new(registry)),
        discovery: server.clone(),
        ready: ready.clone(),
    };
    let monitoring_addr = settings.monitoring_addr;
    let monitoring_shutdown = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = monitoring::serve(monitoring_addr, monitoring, monitoring_shutdown).await {
            tracing::error!(address = %monitoring_addr, error = %e, "monitoring endpoint failed");
        }
    });
    let status_feed = Arc::new(StatusFeed::default());
    let acks: AckSource = {
        let server = server.clone();
        Arc::new(move || {
            server
                .acked_seqs()
                .into_iter()
                .map(|(_, seq)| seq)
                .collect()
        })
    };
    let status = StatusController {
        client: client.clone(),
        stores: stores.clone(),
        feed: status_feed.clone(),
        acks,
        reporter: kube::runtime::events::Reporter {
            controller: REPORTING_CONTROLLER.to_string(),
            instance: Some(settings.identity.clone()),
        },
        metrics: status_metrics,
    };
    let mesh_discovery: Arc<dyn mesh_controller::DiscoveryProbe> = server.clone();
    // The gateways' credentialName Secrets, watched by name as the views reference them.
    let credentials = CredentialStore::default();
    let (referenced_tx, referenced_rx) = watch::channel(BTreeSet::new());
    tokio::spawn(watch_credentials(
        client.clone(),
        referenced_rx,
        credentials.clone(),
        changed.clone(),
        shutdown.clone(),
    ));
    let changed_for_jwks = changed.clone();
    let views = ViewBuilder {
        stores,
        changed,
        server,
        injection,
        mesh_tx,
        in_force_tx,
        namespace: settings.namespace.clone(),
        proxy_image: settings.proxy_image.clone(),
        ready,
        status: status_feed,
        credentials,
        referenced_tx,
        jwks: crate::jwks::JwksResolver::spawn_from_env(changed_for_jwks, shutdown.clone())?,
    };
    tokio::spawn(views.run(shutdown.clone()));

    let work = {
        let (client, settings) = (client.clone(), settings.clone());
        move |term: CancellationToken| {
            let work = leader_work(
                client.clone(),
                settings.clone(),
                mesh_rx.clone(),
                ca_rx.clone(),
                in_force_rx.clone(),
                controllers.clone(),
                term.clone(),
            );
            // The status of the mesh config objects is written by the leader only.
            let conditions = status.clone().run(term.clone());
            // The Mesh's conditions, counts and finalizer: leader only.
            let meshes = mesh_controller::run(
                client.clone(),
                mesh_controller::MeshControllerSettings::from(&settings),
                mesh_discovery.clone(),
                controllers.clone(),
                term,
            );
            let leader_status = leader_status.clone();
            async move {
                leader_status.set_leader(true);
                tokio::join!(work, conditions, meshes);
                leader_status.set_leader(false);
            }
        }
    };
    if settings.leader_elect {
        let (leader_rx, lease_task) =
            leader::elect(client.clone(), &settings.namespace, &settings.identity)
                .await
                .context("joining the leader election")?;
        leader::supervise(leader_rx, shutdown.clone(), work).await;
        // The receiver is gone: the lease manager releases the Lease and ends.
        match lease_task.await {
            Ok(Ok(_)) => tracing::info!(lease = leader::LEASE_NAME, "released the leader lease"),
            Ok(Err(error)) => tracing::warn!(%error, "releasing the leader lease failed"),
            Err(error) => tracing::warn!(%error, "the lease task ended abnormally"),
        }
    } else {
        let (always, leader_rx) = watch::channel(true);
        leader::supervise(leader_rx, shutdown.clone(), work).await;
        drop(always);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn secret(name: &str, data: &[u8]) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(
                "ca-cert.pem".to_string(),
                ByteString(data.to_vec()),
            )])),
            ..Secret::default()
        }
    }

    #[test]
    fn the_fingerprint_changes_with_the_data_only() {
        let one = BTreeMap::from([("cacerts".to_string(), secret("cacerts", b"A"))]);
        let mut same = one.clone();
        same.get_mut("cacerts").unwrap().metadata.resource_version = Some("7".into());
        let other = BTreeMap::from([("cacerts".to_string(), secret("cacerts", b"B"))]);
        assert_eq!(secrets_fingerprint(&one), secrets_fingerprint(&same));
        assert_ne!(secrets_fingerprint(&one), secrets_fingerprint(&other));
        assert_ne!(
            secrets_fingerprint(&one),
            secrets_fingerprint(&BTreeMap::new())
        );
    }

    #[test]
    fn only_trust_domain_and_certificate_settings_restart_citadel() {
        let base = MeshSpec::default();
        let image = MeshSpec {
            discovery_address: Some("x:1".into()),
            ..MeshSpec::default()
        };
        let domain = MeshSpec {
            trust_domain: Some("prod.example".into()),
            ..MeshSpec::default()
        };
        assert_eq!(citadel_key(&base), citadel_key(&image));
        assert_ne!(citadel_key(&base), citadel_key(&domain));
    }
}
