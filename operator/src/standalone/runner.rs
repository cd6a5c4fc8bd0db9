//! The standalone control plane: config directory → Citadel (files) → Pilot snapshot →
//! discovery server, re-run whenever the directory changes or a certificate reaches its
//! rotation point.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use weft_crds::MeshObject;
use weft_crds::mesh::MeshSpec;
use weft_identity::{Identity, RotationPolicy, SystemClock};
use weft_pilot::{ClusterObjects, ClusterView};
use weft_proxy::tls::{CertPaths, CertStore};

use super::citadel::FileCitadel;
use super::config_dir::ConfigDir;
use crate::discovery::{DebounceSettings, DiscoveryServer, metrics::DiscoveryMetrics};
use crate::jwks::{JwksResolver, JwksSettings};
use crate::monitoring::{self, Monitoring};
use crate::snapshot::Snapshot;

/// The operator's own service account and namespace (its SPIFFE identity).
pub const OPERATOR_SERVICE_ACCOUNT: &str = "weft-operator";

/// Settings of the standalone mode.
#[derive(Debug, Clone)]
pub struct StandaloneSettings {
    /// The directory of mesh YAML.
    pub config_dir: PathBuf,
    /// Where the CA, workload certificates and the operator's own certificate are kept.
    pub state_dir: PathBuf,
    /// Discovery (mTLS) listen address, Istio's 15012.
    pub discovery_addr: SocketAddr,
    /// Monitoring listen address, Istio's 15014.
    pub monitoring_addr: SocketAddr,
    /// Owner (uid, gid) of workload certificate files, e.g. the proxies' 1337.
    pub cert_owner: Option<(u32, u32)>,
    /// How often the config directory is polled.
    pub poll_interval: Duration,
}

fn mesh_spec(objects: &[MeshObject]) -> MeshSpec {
    objects
        .iter()
        .find_map(|o| match o {
            MeshObject::Mesh(m) => Some(m.spec.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The workload identities the objects call for: one per WorkloadEntry service account
/// (`default` when unset), as Citadel issues one per ServiceAccount. A WorkloadEntry whose
/// namespace or service account cannot form a SPIFFE ID is reported and gets no certificate.
fn identities(objects: &[MeshObject], trust_domain: &str) -> BTreeSet<Identity> {
    objects
        .iter()
        .filter_map(|o| match o {
            MeshObject::WorkloadEntry(we) => {
                let ns = we.metadata.namespace.as_deref().unwrap_or("default");
                let sa = we
                    .spec
                    .service_account
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("default");
                match Identity::spiffe(trust_domain, ns, sa) {
                    Ok(identity) => Some(identity),
                    Err(error) => {
                        tracing::error!(namespace = ns, service_account = sa, %error, "cannot issue a certificate for this workload");
                        None
                    }
                }
            }
            _ => None,
        })
        .collect()
}

/// Runs the standalone control plane until `shutdown`. Errors when the CA cannot be opened or a
/// listener cannot be bound; bad config files are reported and do not stop it.
pub async fn run(settings: StandaloneSettings, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut dir = ConfigDir::new(&settings.config_dir);
    let first = dir.scan();
    for problem in &first.problems {
        tracing::error!(%problem, "config rejected; the last good version stays in force");
    }
    let objects = dir.objects();
    let spec = mesh_spec(&objects);
    let trust_domain = spec.trust_domain().to_string();
    let policy = RotationPolicy::new(spec.workload_cert_ttl(), spec.rotate_at_fraction());
    let citadel = FileCitadel::open(
        &settings.state_dir,
        &trust_domain,
        spec.root_cert_ttl(),
        policy,
        Arc::new(SystemClock),
        settings.cert_owner,
    )
    .context("opening the certificate authority")?;

    let operator_identity = Identity::spiffe(
        &trust_domain,
        spec.root_namespace(),
        OPERATOR_SERVICE_ACCOUNT,
    )
    .context("operator identity")?;
    let operator_dir = settings.state_dir.join("operator");
    citadel
        .issue_into(&operator_identity, &operator_dir)
        .context("issuing the operator's certificate")?;
    let store = CertStore::load(CertPaths::istio(&operator_dir))
        .context("loading the operator's certificate")?;
    let _reload = store.watch(Duration::from_secs(1));
    let tls = weft_proxy::tls::server_config(&store, &[b"h2"]).context("discovery TLS config")?;

    let mut registry = Registry::default();
    let metrics = DiscoveryMetrics::new(&mut registry);
    let debounce = DebounceSettings {
        after: spec.debounce_after(),
        max: spec.debounce_max(),
    };
    // Secrets are the gateways' credentials (`credentialName`).
    let view = ClusterView::from_documents(objects.clone(), ClusterObjects::default())
        .with_secrets(dir.secrets());
    // Key sets of RequestAuthentication `jwksUri`s, fetched and refreshed in the background.
    let jwks = Arc::new(JwksResolver::new(JwksSettings::from_env(|name| {
        std::env::var(name).ok()
    })?)?);
    let mut jwks_changes = jwks.subscribe();
    tokio::spawn({
        let (jwks, shutdown) = (jwks.clone(), shutdown.clone());
        async move { jwks.run(shutdown).await }
    });
    let sets = jwks.want(weft_pilot::jwks_fetches(view.objects()));
    let view = view.with_jwks(sets);
    let server = DiscoveryServer::new(Arc::new(Snapshot::new(view)), debounce, metrics);
    let ready = Arc::new(AtomicBool::new(true));

    server
        .start(settings.discovery_addr, Arc::new(tls), shutdown.clone())
        .await?;
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

    let mut next_cert_check = ensure_certificates(&citadel, &objects, &trust_domain);
    ready.store(true, Ordering::Relaxed);
    loop {
        let mut jwks_changed = false;
        tokio::select! {
            _ = tokio::time::sleep(settings.poll_interval) => {}
            _ = jwks_changes.changed() => jwks_changed = true,
            _ = shutdown.cancelled() => return Ok(()),
        }
        let outcome = dir.scan();
        for problem in &outcome.problems {
            tracing::error!(%problem, "config rejected; the last good version stays in force");
        }
        let due = SystemTime::now() >= next_cert_check;
        if outcome.changed || due || jwks_changed {
            let objects = dir.objects();
            next_cert_check = ensure_certificates(&citadel, &objects, &trust_domain);
            if outcome.changed || jwks_changed {
                let view = ClusterView::from_documents(objects, ClusterObjects::default())
                    .with_secrets(dir.secrets());
                let sets = jwks.want(weft_pilot::jwks_fetches(view.objects()));
                let view = view.with_jwks(sets);
                server.update(Arc::new(Snapshot::new(view)));
                tracing::info!("configuration changed; pushing to affected proxies");
            }
        }
    }
}

/// Ensures every identity's certificate and returns the earliest next check.
fn ensure_certificates(
    citadel: &FileCitadel,
    objects: &[MeshObject],
    trust_domain: &str,
) -> SystemTime {
    let mut next = SystemTime::now() + Duration::from_secs(3600);
    for identity in identities(objects, trust_domain) {
        match citadel.ensure_workload(&identity) {
            Ok(outcome) => next = next.min(outcome.next_check),
            Err(e) => tracing::error!(%identity, error = %e, "certificate issuance failed"),
        }
    }
    next
}
