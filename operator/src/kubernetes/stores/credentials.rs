//! Gateway credentials in Kubernetes mode: the Secrets Istio's `ServerTLSSettings.credentialName`
//! names, read as istiod's credential controller reads them — only in the namespace of the
//! gateway workload that serves the Gateway ("the secret must be in the same namespace as the
//! gateway deployment"), and only those referenced.
//!
//! - [`referenced_secrets`] is the pure core: from the view's Gateways and the gateway
//!   workloads (pods, WorkloadEntries) their `selector` matches, the set of Secrets Pilot reads
//!   (`credentialName` or the first `credentialNames`, then for `MUTUAL`/`OPTIONAL_MUTUAL`
//!   `caCertCredentialName` or Istio's `<credentialName>-cacert`), and those DestinationRules
//!   name for `MUTUAL` origination (`ClientTLSSettings.credentialName`) in the namespaces of
//!   the proxies that read them.
//! - [`watch_credentials`] keeps one kube-runtime watcher per referenced Secret, each with the
//!   field selector `metadata.name=<name>` in the Secret's namespace, started and stopped as the
//!   set changes, so the API server never sends an unreferenced Secret (Service account tokens,
//!   Helm releases and other applications' Secrets are neither transferred nor held). One watch
//!   per name costs a watch request each; a namespace-wide watcher filtered by name would need
//!   one per namespace but would receive every Secret of it. Gateways reference a handful of
//!   credentials, so the per-name watch keeps both memory and what is read minimal. RBAC:
//!   `get/list/watch` on `secrets` (already granted cluster-wide for Citadel).
//! - [`CredentialStore`] holds the watched Secrets trimmed to name, namespace, type and data
//!   (no annotations: `kubectl.kubernetes.io/last-applied-configuration` repeats the data).
//!   The view holds them (`ClusterView::with_secrets`); a change of Secrets reaches the gateway
//!   proxies through Pilot's view comparison (`ViewChange`).
//!
//! Secret data never reaches a log: [`CredentialStore`]'s `Debug` prints names and keys only.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ObjectMeta};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use weft_crds::networking::{
    ClientTlsMode, DestinationRule, Gateway, ServerTlsMode, ServerTlsSettings,
};
use weft_pilot::ClusterObjects;

/// The suffix of the Secret holding a `MUTUAL` server's client CA when the credential itself
/// has none (Istio's SDS convention `<credentialName>-cacert`).
pub const CA_SECRET_SUFFIX: &str = "-cacert";

/// A Secret by namespace and name (what `credentialName` resolves to).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretRef {
    /// The gateway workload's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
}

impl SecretRef {
    /// `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}/{}", self.namespace, self.name)
    }
}

/// The namespace of `meta`, `default` when unset (as Pilot reads objects).
fn namespace_of(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or("default")
}

/// Whether `labels` carry every key/value of `selector` (Istio `Gateway.selector`; an empty
/// selector selects every workload, as Pilot matches it).
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// The Secret names one server's TLS settings make Pilot read, as `pilot`'s gateway TLS
/// translation looks them up: none unless the port protocol is `HTTPS` or `TLS`
/// (case-insensitive) and the mode is `SIMPLE`, `MUTUAL` or `OPTIONAL_MUTUAL` (the default mode
/// is `PASSTHROUGH`); then `credentialName`, else the first of `credentialNames`; for the mutual
/// modes also `caCertCredentialName`, else `<credentialName>-cacert`.
fn server_secret_names(protocol: &str, tls: &ServerTlsSettings) -> Vec<String> {
    let is_tls = protocol.eq_ignore_ascii_case("HTTPS") || protocol.eq_ignore_ascii_case("TLS");
    let mode = tls.mode.unwrap_or_default();
    let mutual = matches!(mode, ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual);
    if !is_tls || !(mutual || mode == ServerTlsMode::Simple) {
        return Vec::new();
    }
    let Some(name) = tls
        .credential_name
        .as_deref()
        .or(tls.credential_names.first().map(String::as_str))
        .filter(|name| !name.is_empty())
    else {
        return Vec::new();
    };
    let mut names = vec![name.to_owned()];
    if mutual {
        names.push(match &tls.ca_cert_credential_name {
            Some(ca) => ca.clone(),
            None => format!("{name}{CA_SECRET_SUFFIX}"),
        });
    }
    names
}

/// The Secrets the Gateways of `objects` reference, each in the namespace of every gateway
/// workload the Gateway's `selector` matches: pods by `metadata.labels`, WorkloadEntries by
/// `spec.labels`, in any namespace (Pilot's gateway selection). A Gateway that selects no
/// workload references nothing. Also the Secrets DestinationRules name for `MUTUAL`
/// origination (`credentialName` and `<credentialName>-cacert`, Istio `ClientTLSSettings`), in
/// the namespace of the proxies that read them: for a rule with a `workloadSelector`, its own
/// namespace when the selector matches a workload there (sidecars or gateways); for a rule
/// without, the namespaces of the gateway workloads (Istio: sidecars read `credentialName`
/// only through a rule with a `workloadSelector`). Pure; the result is sorted.
pub fn referenced_secrets(objects: &ClusterObjects) -> BTreeSet<SecretRef> {
    let unlabelled = BTreeMap::new();
    let workloads: Vec<(&str, &BTreeMap<String, String>)> = objects
        .pods
        .iter()
        .map(|pod| {
            let labels = pod.metadata.labels.as_ref().unwrap_or(&unlabelled);
            (namespace_of(&pod.metadata), labels)
        })
        .chain(
            objects
                .workload_entries
                .iter()
                .map(|entry| (namespace_of(&entry.metadata), &entry.spec.labels)),
        )
        .collect();
    let mut referenced = BTreeSet::new();
    // The namespaces of gateway workloads: those some Gateway selects.
    let mut gateway_namespaces = BTreeSet::new();
    for gateway in &objects.gateways {
        let names = gateway_secret_names(gateway);
        let namespaces: BTreeSet<&str> = workloads
            .iter()
            .filter(|(_, labels)| selects(&gateway.spec.selector, labels))
            .map(|(namespace, _)| *namespace)
            .collect();
        for namespace in &namespaces {
            for name in &names {
                referenced.insert(SecretRef::new(*namespace, name.clone()));
            }
        }
        gateway_namespaces.extend(namespaces);
    }
    for rule in &objects.destination_rules {
        let names = rule_secret_names(rule);
        if names.is_empty() {
            continue;
        }
        let rule_namespace = namespace_of(&rule.metadata);
        let selector = rule
            .spec
            .workload_selector
            .as_ref()
            .map(|selector| &selector.match_labels)
            .filter(|labels| !labels.is_empty());
        let namespaces: BTreeSet<&str> = match selector {
            // Sidecars and gateways alike, only in the rule's namespace, only if selected.
            Some(selector) => workloads
                .iter()
                .filter(|(namespace, labels)| {
                    *namespace == rule_namespace && selects(selector, labels)
                })
                .map(|(namespace, _)| *namespace)
                .collect(),
            // Gateways only (Istio: sidecars use credentialName only through a selector).
            None => gateway_namespaces.clone(),
        };
        for namespace in namespaces {
            for name in &names {
                referenced.insert(SecretRef::new(namespace, name.clone()));
            }
        }
    }
    referenced
}

/// The Secret names a DestinationRule's `tls` settings (top level, port level, subsets) make
/// Pilot read: for mode `MUTUAL` with `credentialName`, the credential and Istio's
/// `<credentialName>-cacert` (Weft reads `credentialName` for `MUTUAL` only).
fn rule_secret_names(rule: &DestinationRule) -> BTreeSet<String> {
    rule.spec
        .client_tls_settings()
        .filter(|tls| tls.mode == Some(ClientTlsMode::Mutual))
        .filter_map(|tls| {
            tls.credential_name
                .as_deref()
                .filter(|name| !name.is_empty())
        })
        .flat_map(|name| [name.to_owned(), format!("{name}{CA_SECRET_SUFFIX}")])
        .collect()
}

fn gateway_secret_names(gateway: &Gateway) -> BTreeSet<String> {
    gateway
        .spec
        .servers
        .iter()
        .filter_map(|server| Some((server.port.protocol.as_str(), server.tls.as_ref()?)))
        .flat_map(|(protocol, tls)| server_secret_names(protocol, tls))
        .collect()
}

/// The part of a Secret the view reads: name, namespace, `type`, `data`, `stringData`.
fn trimmed(secret: Secret) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: secret.metadata.name,
            namespace: secret.metadata.namespace,
            ..ObjectMeta::default()
        },
        type_: secret.type_,
        data: secret.data,
        string_data: secret.string_data,
        ..Secret::default()
    }
}

/// The watched credential Secrets by [`SecretRef`], shared by the watchers (writers) and the
/// view builder (reader). Cheap to clone. `Debug` prints names and keys, never values.
#[derive(Clone, Default)]
pub struct CredentialStore {
    secrets: Arc<Mutex<BTreeMap<SecretRef, Secret>>>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secrets = self.secrets.lock();
        formatter
            .debug_map()
            .entries(secrets.iter().map(|(reference, secret)| {
                let keys: Vec<&String> = secret.data.iter().flat_map(|d| d.keys()).collect();
                (reference.to_string(), keys)
            }))
            .finish()
    }
}

impl CredentialStore {
    /// Copies of the held Secrets that are in `referenced` (a Secret whose reference was just
    /// dropped is left out even before its watcher stops), for `ClusterView::with_secrets`.
    pub fn secrets_in(&self, referenced: &BTreeSet<SecretRef>) -> Vec<Secret> {
        self.secrets
            .lock()
            .iter()
            .filter(|(reference, _)| referenced.contains(reference))
            .map(|(_, secret)| secret.clone())
            .collect()
    }

    /// The references held now, sorted.
    pub fn references(&self) -> Vec<SecretRef> {
        self.secrets.lock().keys().cloned().collect()
    }

    /// Stores `secret` (trimmed) under `reference` unless `stopped` is cancelled (checked under
    /// the lock, so that a watcher being stopped cannot write after [`CredentialStore::remove`]).
    /// Returns whether the held value changed.
    fn apply(&self, reference: &SecretRef, secret: Secret, stopped: &CancellationToken) -> bool {
        let secret = trimmed(secret);
        let mut secrets = self.secrets.lock();
        if stopped.is_cancelled() || secrets.get(reference) == Some(&secret) {
            return false;
        }
        secrets.insert(reference.clone(), secret);
        true
    }

    /// Removes `reference`; returns whether it was held.
    fn remove(&self, reference: &SecretRef) -> bool {
        self.secrets.lock().remove(reference).is_some()
    }
}

/// Watches the one Secret `reference` (field selector `metadata.name`, in its namespace, with
/// kube-runtime's default back-off) into `store`, notifying `changed` when its value changes,
/// until `stopped`. A relist that no longer finds it removes it.
async fn watch_one(
    client: Client,
    reference: SecretRef,
    store: CredentialStore,
    changed: Arc<Notify>,
    stopped: CancellationToken,
) {
    let api: Api<Secret> = Api::namespaced(client, &reference.namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", reference.name));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    let mut listed = false;
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            _ = stopped.cancelled() => return,
        };
        let modified = match event {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(secret = %reference, %error,
                    "watching a gateway credential Secret failed; retrying with back-off");
                false
            }
            Some(Ok(watcher::Event::Init)) => {
                listed = false;
                false
            }
            Some(Ok(watcher::Event::InitApply(secret))) => {
                listed = true;
                secret.name_any() == reference.name && store.apply(&reference, secret, &stopped)
            }
            Some(Ok(watcher::Event::Apply(secret))) => {
                secret.name_any() == reference.name && store.apply(&reference, secret, &stopped)
            }
            Some(Ok(watcher::Event::InitDone)) => !listed && store.remove(&reference),
            Some(Ok(watcher::Event::Delete(_))) => store.remove(&reference),
        };
        if modified {
            tracing::debug!(secret = %reference, "gateway credential Secret changed");
            changed.notify_one();
        }
    }
}

/// Keeps `store` holding exactly the Secrets of the set `wanted` sends (see
/// [`referenced_secrets`]): one [`watch_one`] per reference, started when it enters the set
/// and stopped (its Secret dropped from `store`) when it leaves; references in both sets keep
/// their watch. Notifies `changed` after a drop. Runs until `shutdown` or `wanted` closes.
pub async fn watch_credentials(
    client: Client,
    mut wanted: watch::Receiver<BTreeSet<SecretRef>>,
    store: CredentialStore,
    changed: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut running: BTreeMap<SecretRef, CancellationToken> = BTreeMap::new();
    loop {
        let set = wanted.borrow_and_update().clone();
        running.retain(|reference, token| {
            if set.contains(reference) {
                return true;
            }
            token.cancel();
            if store.remove(reference) {
                changed.notify_one();
            }
            tracing::debug!(secret = %reference, "stopped watching a gateway credential Secret");
            false
        });
        for reference in set {
            if running.contains_key(&reference) {
                continue;
            }
            let token = shutdown.child_token();
            tracing::debug!(secret = %reference, "watching a gateway credential Secret");
            tokio::spawn(watch_one(
                client.clone(),
                reference.clone(),
                store.clone(),
                changed.clone(),
                token.clone(),
            ));
            running.insert(reference, token);
        }
        tokio::select! {
            closed = wanted.changed() => if closed.is_err() { break },
            _ = shutdown.cancelled() => break,
        }
    }
    for token in running.values() {
        token.cancel();
    }
}

#[cfg(test)]
mod tests;
