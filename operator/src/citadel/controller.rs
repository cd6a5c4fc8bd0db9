//! The kube-runtime controllers of the Kubernetes Citadel: a thin async shell that reads the
//! cluster, calls [`super::plan`] and writes its result with server-side apply.
//!
//! - ServiceAccounts (owning their workload certificate Secrets, and re-triggered when a
//!   namespace becomes labelled `istio-injection=enabled`): [`reconcile_service_account`].
//! - Namespaces labelled `istio-injection=enabled` (re-triggered by changes to their
//!   `istio-ca-root-cert` ConfigMap): [`reconcile_namespace`].

use crate::controller_metrics::ControllerMetrics;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use weft_crds::mesh::MeshSpec;
use weft_identity::{CertificateAuthority, Clock, RotationPolicy, SystemClock};

use super::plan::{SecretAction, load_or_create_ca, plan_root_configmap, plan_workload_secret};
use super::{
    CA_SECRET_NAME, COMPONENT_LABEL, CitadelError, CitadelSettings, FIELD_MANAGER,
    INJECTION_ENABLED, INJECTION_LABEL, MANAGED_BY_LABEL, PLUGIN_CA_SECRET_NAME,
    ROOT_CERT_CONFIGMAP, WORKLOAD_CERT_COMPONENT,
};

/// First retry delay after a transient error.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);

/// Longest retry delay after repeated transient errors (5 minutes).
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// The delay before retry number `failures` (1 for the first failure): [`BACKOFF_BASE`]
/// doubled per consecutive failure, capped at [`BACKOFF_MAX`].
pub fn backoff_delay(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << exponent)
        .min(BACKOFF_MAX)
}

/// What the reconcilers share: the client, the CA, the rotation policy, the clock and the
/// consecutive-failure counts behind the back-off.
pub struct Context {
    client: Client,
    ca: CertificateAuthority,
    policy: RotationPolicy,
    trust_domain: String,
    clock: Arc<dyn Clock>,
    failures: Mutex<HashMap<String, u32>>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("trust_domain", &self.trust_domain)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// A context signing with `ca` for the trust domain, workload certificate lifetime and
    /// rotation fraction of `mesh`, reading time from `clock` (the same clock as the CA's, so
    /// that tests control both).
    pub fn new(
        client: Client,
        ca: CertificateAuthority,
        mesh: &MeshSpec,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Context {
            client,
            ca,
            policy: RotationPolicy::new(mesh.workload_cert_ttl(), mesh.rotate_at_fraction()),
            trust_domain: mesh.trust_domain().to_string(),
            clock,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The CA signing workload certificates.
    pub fn ca(&self) -> &CertificateAuthority {
        &self.ca
    }

    /// The rotation policy in effect.
    pub fn policy(&self) -> &RotationPolicy {
        &self.policy
    }

    fn succeeded(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    fn failed(&self, key: String) -> u32 {
        let mut failures = self.failures.lock();
        let count = failures.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }
}

fn kube_error(
    verb: &'static str,
    kind: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> CitadelError {
    let (namespace, name) = (namespace.to_string(), name.to_string());
    move |source| CitadelError::Kube {
        verb,
        kind,
        namespace,
        name,
        source,
    }
}

async fn apply<K>(
    api: &Api<K>,
    kind: &'static str,
    namespace: &str,
    name: &str,
    object: &K,
) -> Result<(), CitadelError>
where
    K: Resource + Clone + Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.patch(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map(drop)
    .map_err(kube_error("apply", kind, namespace, name))
}

fn injection_enabled(namespace: &Namespace) -> bool {
    namespace
        .labels()
        .get(INJECTION_LABEL)
        .is_some_and(|v| v == INJECTION_ENABLED)
}

fn failure_key(kind: &str, namespace: Option<&str>, name: &str) -> String {
    format!("{kind}/{}/{name}", namespace.unwrap_or_default())
}

/// Reconciles one ServiceAccount: when its namespace is labelled `istio-injection=enabled`,
/// reads its workload certificate Secret, plans it ([`plan_workload_secret`]) and applies a
/// created or replaced Secret (server-side apply, field manager `weft-operator`, forced).
///
/// Returns `Action::requeue` at the certificate's rotation point, or `Action::await_change`
/// when the namespace is not in the mesh. Requests: GET the Namespace, GET the Secret, and a
/// PATCH of the Secret when it must be written. Errors: [`CitadelError::Kube`] for a failed
/// call, [`CitadelError::Plan`] when the plan refuses the ServiceAccount.
pub async fn reconcile_service_account(
    sa: Arc<ServiceAccount>,
    ctx: Arc<Context>,
) -> Result<Action, CitadelError> {
    let name = sa.name_any();
    let namespace = sa.namespace().unwrap_or_default();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let in_mesh = namespaces
        .get_opt(&namespace)
        .await
        .map_err(kube_error("get", "Namespace", "", &namespace))?
        .is_some_and(|ns| injection_enabled(&ns));
    let key = failure_key("ServiceAccount", Some(&namespace), &name);
    if !in_mesh {
        ctx.succeeded(&key);
        tracing::debug!(%namespace, service_account = %name, "namespace not in the mesh");
        return Ok(Action::await_change());
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret_name = weft_webhook::inject::workload_cert_secret_name(&name);
    let existing = secrets.get_opt(&secret_name).await.map_err(kube_error(
        "get",
        "Secret",
        &namespace,
        &secret_name,
    ))?;
    let plan = plan_workload_secret(
        &sa,
        existing.as_ref(),
        &ctx.ca,
        &ctx.policy,
        &ctx.trust_domain,
        ctx.clock.now(),
    )?;
    match &plan.action {
        SecretAction::Keep => {}
        SecretAction::Create(secret) | SecretAction::Replace(secret) => {
            apply(&secrets, "Secret", &namespace, &secret_name, secret).await?;
            tracing::info!(
                %namespace,
                service_account = %name,
                secret = %secret_name,
                reason = %plan.reason,
                "wrote workload certificate Secret"
            );
        }
    }
    ctx.succeeded(&key);
    Ok(Action::requeue(plan.requeue_after))
}

/// Reconciles one Namespace labelled `istio-injection=enabled`: applies the
/// `istio-ca-root-cert` ConfigMap when it is missing or stale ([`plan_root_configmap`]).
///
/// Returns `Action::await_change()` (the trust bundle is fixed for the life of the process;
/// edits to the ConfigMap re-trigger this). Requests: GET the ConfigMap, and a PATCH when it
/// must be written. Errors: [`CitadelError::Kube`].
pub async fn reconcile_namespace(
    namespace: Arc<Namespace>,
    ctx: Arc<Context>,
) -> Result<Action, CitadelError> {
    let name = namespace.name_any();
    let key = failure_key("Namespace", None, &name);
    if !injection_enabled(&namespace) {
        ctx.succeeded(&key);
        return Ok(Action::await_change());
    }
    let configmaps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let existing = configmaps
        .get_opt(ROOT_CERT_CONFIGMAP)
        .await
        .map_err(kube_error("get", "ConfigMap", &name, ROOT_CERT_CONFIGMAP))?;
    if let Some(configmap) =
        plan_root_configmap(&name, existing.as_ref(), &ctx.ca.trust_bundle_pem())
    {
        apply(
            &configmaps,
            "ConfigMap",
            &name,
            ROOT_CERT_CONFIGMAP,
            &configmap,
        )
        .await?;
        tracing::info!(namespace = %name, "published the trust bundle ConfigMap");
    }
    ctx.succeeded(&key);
    Ok(Action::await_change())
}

fn error_action(key: String, error: &CitadelError, ctx: &Context) -> Action {
    if error.is_transient() {
        let failures = ctx.failed(key);
        let delay = backoff_delay(failures);
        tracing::warn!(%error, failures, retry_in_ms = delay.as_millis() as u64, "citadel reconcile failed");
        Action::requeue(delay)
    } else {
        tracing::error!(%error, "citadel reconcile refused; waiting for a change");
        Action::await_change()
    }
}

/// The error policy of [`reconcile_service_account`]: transient errors retry after
/// [`backoff_delay`] of the consecutive failure count; permanent ones wait for a change of the
/// ServiceAccount or its Secret.
pub fn error_policy_service_account(
    sa: Arc<ServiceAccount>,
    error: &CitadelError,
    ctx: Arc<Context>,
) -> Action {
    let key = failure_key("ServiceAccount", sa.namespace().as_deref(), &sa.name_any());
    error_action(key, error, &ctx)
}

/// The error policy of [`reconcile_namespace`], with the rules of
/// [`error_policy_service_account`].
pub fn error_policy_namespace(
    namespace: Arc<Namespace>,
    error: &CitadelError,
    ctx: Arc<Context>,
) -> Action {
    let key = failure_key("Namespace", None, &namespace.name_any());
    error_action(key, error, &ctx)
}

/// Loads the mesh CA ([`load_or_create_ca`]) from the Secrets `cacerts` and `weft-ca-secret`
/// in `settings.namespace`, creating the latter with a new self-signed root when neither
/// exists. If another operator replica creates it first (409 Conflict), its root is used.
///
/// Errors: [`CitadelError::Kube`] for a failed GET or create, [`CitadelError::Plan`] when the
/// stored CA does not load.
pub async fn load_ca(
    client: &Client,
    settings: &CitadelSettings,
    clock: Arc<dyn Clock>,
) -> Result<CertificateAuthority, CitadelError> {
    let namespace = settings.namespace.as_str();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let get = |name: &'static str| {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt(name)
                .await
                .map_err(kube_error("get", "Secret", namespace, name))
        }
    };
    let cacerts = get(PLUGIN_CA_SECRET_NAME).await?;
    let own = match cacerts {
        Some(_) => None,
        None => get(CA_SECRET_NAME).await?,
    };
    let (ca, to_create) = load_or_create_ca(
        cacerts.as_ref(),
        own.as_ref(),
        namespace,
        &settings.mesh,
        clock.clone(),
    )?;
    let Some(secret) = to_create else {
        let source = if cacerts.is_some() {
            PLUGIN_CA_SECRET_NAME
        } else {
            CA_SECRET_NAME
        };
        tracing::info!(%namespace, secret = source, "loaded the mesh CA");
        return Ok(ca);
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    match secrets.create(&params, &secret).await {
        Ok(_) => {
            tracing::info!(%namespace, secret = CA_SECRET_NAME, "created a self-signed mesh root CA");
            Ok(ca)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let own = get(CA_SECRET_NAME).await?;
            let (ca, _) = load_or_create_ca(None, own.as_ref(), namespace, &settings.mesh, clock)?;
            tracing::info!(%namespace, secret = CA_SECRET_NAME, "loaded the mesh CA another replica created");
            Ok(ca)
        }
        Err(source) => Err(kube_error("create", "Secret", namespace, CA_SECRET_NAME)(
            source,
        )),
    }
}

/// Runs the Kubernetes Citadel until `shutdown` is cancelled: loads or creates the CA
/// ([`load_ca`]), then runs the ServiceAccount controller (owning the workload certificate
/// Secrets labelled `app.kubernetes.io/component=workload-certificate`, re-triggered by
/// namespaces labelled `istio-injection=enabled`) and the Namespace controller (publishing
/// `istio-ca-root-cert`) side by side, each shutting down gracefully.
///
/// Needs RBAC: get/list/watch on ServiceAccounts, Namespaces, Secrets and ConfigMaps
/// cluster-wide; patch on Secrets and ConfigMaps; create on Secrets in `settings.namespace`.
/// Errors: those of [`load_ca`]; reconcile errors are logged and retried, never returned.
/// Each reconcile counts in `metrics` as controller `serviceaccount` or `namespace`.
pub async fn run(
    client: Client,
    settings: CitadelSettings,
    metrics: ControllerMetrics,
    shutdown: CancellationToken,
) -> Result<(), CitadelError> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ca = load_ca(&client, &settings, clock.clone()).await?;
    let ctx = Arc::new(Context::new(client.clone(), ca, &settings.mesh, clock));
    let injection = format!("{INJECTION_LABEL}={INJECTION_ENABLED}");
    let workload_secrets =
        format!("{MANAGED_BY_LABEL}={FIELD_MANAGER},{COMPONENT_LABEL}={WORKLOAD_CERT_COMPONENT}");

    let accounts = Controller::new(
        Api::<ServiceAccount>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = accounts.store();
    let accounts = accounts
        .owns(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default().labels(&workload_secrets),
        )
        .watches(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default().labels(&injection),
            move |ns: Namespace| {
                let name = ns.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|sa| sa.namespace().as_deref() == Some(name.as_str()))
                    .map(|sa| ObjectRef::from_obj(&*sa))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(shutdown.clone().cancelled_owned())
        .run(
            {
                let metrics = metrics.clone();
                move |account, ctx| {
                    metrics
                        .clone()
                        .time("serviceaccount", reconcile_service_account(account, ctx))
                }
            },
            error_policy_service_account,
            ctx.clone(),
        )
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "ServiceAccount controller");
            }
        });

    let namespaces = Controller::new(
        Api::<Namespace>::all(client.clone()),
        watcher::Config::default().labels(&injection),
    )
    .watches(
        Api::<ConfigMap>::all(client),
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CERT_CONFIGMAP}")),
        |cm: ConfigMap| cm.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns)),
    )
    .graceful_shutdown_on(shutdown.cancelled_owned())
    .run(
        move |namespace, ctx| {
            metrics
                .clone()
                .time("namespace", reconcile_namespace(namespace, ctx))
        },
        error_policy_namespace,
        ctx,
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "Namespace controller");
        }
    });

    futures::join!(accounts, namespaces);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_and_caps_at_five_minutes() {
        let delays: Vec<u64> = [1, 2, 3, 4, 9, 10, 50, u32::MAX]
            .into_iter()
            .map(|n| backoff_delay(n).as_secs())
            .collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 256, 300, 300, 300]);
        assert_eq!(
            backoff_delay(0),
            BACKOFF_BASE,
            "a zero count is the first retry"
        );
    }

    fn api_error(code: u16) -> CitadelError {
        CitadelError::Kube {
            verb: "apply",
            kind: "Secret",
            namespace: "demo".into(),
            name: "weft-workload-cert-reviews".into(),
            source: kube::Error::Api(
                kube::core::Status::failure("refused", "Reason")
                    .with_code(code)
                    .boxed(),
            ),
        }
    }

    #[test]
    fn bad_requests_and_plan_errors_are_permanent_the_rest_transient() {
        let rows = [
            (400, false),
            (422, false),
            (403, true),
            (409, true),
            (429, true),
            (500, true),
            (503, true),
        ];
        for (code, transient) in rows {
            assert_eq!(api_error(code).is_transient(), transient, "HTTP {code}");
        }
        let plan = CitadelError::Plan(crate::citadel::PlanError::MissingField {
            field: "metadata.uid",
        });
        assert!(!plan.is_transient());
        let message = api_error(422).to_string();
        assert!(
            message.starts_with("apply Secret demo/weft-workload-cert-reviews"),
            "{message}"
        );
    }
}
