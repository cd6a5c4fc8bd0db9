//! Keeping the two webhook configurations pointed at this operator: the `caBundle` of every
//! webhook in MutatingWebhookConfiguration `weft-sidecar-injector` and
//! ValidatingWebhookConfiguration `weft-validator` is the mesh CA's trust bundle (Istio's
//! istiod patches its webhooks' caBundle the same way), and with `--webhook-url` (the operator
//! running outside the cluster, operator-sdk's `make run`) each webhook's `clientConfig` becomes
//! `url: <base><path>` instead of `service:`.
//!
//! [`ca_bundle_patch`] is the pure decision; [`ensure_webhook_configurations`] the API calls
//! (GET, then a strategic-merge PATCH keyed by webhook name, only when something differs).
//! Under OLM (`--manage-webhook-ca-bundle=false`) none of this runs: OLM owns both.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

use crate::citadel::FIELD_MANAGER;

/// The injector's MutatingWebhookConfiguration (install contract).
pub const MUTATING_WEBHOOK_CONFIGURATION: &str = "weft-sidecar-injector";

/// The validator's ValidatingWebhookConfiguration (install contract).
pub const VALIDATING_WEBHOOK_CONFIGURATION: &str = "weft-validator";

/// Errors of [`ensure_webhook_configurations`].
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    /// A GET or PATCH of a webhook configuration failed.
    #[error("{verb} {kind} {name}: {source}")]
    Kube {
        /// `get` or `patch`.
        verb: &'static str,
        /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
        kind: &'static str,
        /// The configuration's name.
        name: &'static str,
        /// kube's error.
        #[source]
        source: kube::Error,
    },
}

/// The request path of a webhook's client config: the `service.path`, or the path of its
/// `url`, or `/` (the API server's default).
fn client_path(config: &WebhookClientConfig) -> String {
    if let Some(path) = config.service.as_ref().and_then(|s| s.path.clone()) {
        return path;
    }
    config
        .url
        .as_deref()
        .and_then(|url| url.split_once("://"))
        .and_then(|(_, rest)| rest.find('/').map(|i| rest[i..].to_string()))
        .unwrap_or_else(|| "/".to_string())
}

/// The strategic-merge patch (webhooks merged by `name`, their patch merge key) that makes
/// every webhook's `clientConfig.caBundle` equal `ca_bundle` (PEM bytes) and, when `url_base`
/// is given (`https://host:9443`), its `clientConfig.url` equal `url_base` + the webhook's
/// request path with `service` removed (a client config holds exactly one of the two).
///
/// Takes the webhooks as (name, client config) pairs. Returns `None` when every webhook is
/// already current, so that nothing is written; webhooks without a name are skipped (the API
/// server requires one).
pub fn ca_bundle_patch(
    webhooks: &[(String, WebhookClientConfig)],
    ca_bundle: &[u8],
    url_base: Option<&str>,
) -> Option<Value> {
    let mut changes = Vec::new();
    for (name, config) in webhooks {
        if name.is_empty() {
            continue;
        }
        let mut client = serde_json::Map::new();
        if config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca_bundle) {
            client.insert(
                "caBundle".into(),
                serde_json::to_value(ByteString(ca_bundle.to_vec())).unwrap_or(Value::Null),
            );
        }
        if let Some(base) = url_base {
            let url = format!("{}{}", base.trim_end_matches('/'), client_path(config));
            if config.url.as_deref() != Some(url.as_str()) || config.service.is_some() {
                client.insert("url".into(), Value::String(url));
                client.insert("service".into(), Value::Null);
            }
        }
        if !client.is_empty() {
            changes.push(json!({"name": name, "clientConfig": client}));
        }
    }
    (!changes.is_empty()).then(|| json!({"webhooks": changes}))
}

/// The (name, client config) of every webhook of a mutating configuration.
pub(crate) fn mutating_webhooks(
    config: &MutatingWebhookConfiguration,
) -> Vec<(String, WebhookClientConfig)> {
    config
        .webhooks
        .iter()
        .flatten()
        .map(|w| (w.name.clone(), w.client_config.clone()))
        .collect()
}

/// The (name, client config) of every webhook of a validating configuration.
pub(crate) fn validating_webhooks(
    config: &ValidatingWebhookConfiguration,
) -> Vec<(String, WebhookClientConfig)> {
    config
        .webhooks
        .iter()
        .flatten()
        .map(|w| (w.name.clone(), w.client_config.clone()))
        .collect()
}

/// Brings both webhook configurations to [`ca_bundle_patch`]'s state: GET each, PATCH
/// (strategic merge, field manager `weft-operator`) when it differs. A configuration that does
/// not exist is skipped with a warning (the installer creates them; nothing to patch yet).
///
/// Returns how many configurations were patched. Needs RBAC get and patch on both
/// configurations. Errors: [`WebhookConfigError::Kube`] for a failed call.
pub async fn ensure_webhook_configurations(
    client: &Client,
    ca_bundle: &[u8],
    url_base: Option<&str>,
) -> Result<usize, WebhookConfigError> {
    let patched = ensure_one::<MutatingWebhookConfiguration>(
        client,
        "MutatingWebhookConfiguration",
        MUTATING_WEBHOOK_CONFIGURATION,
        mutating_webhooks,
        ca_bundle,
        url_base,
    )
    .await?;
    let validating = ensure_one::<ValidatingWebhookConfiguration>(
        client,
        "ValidatingWebhookConfiguration",
        VALIDATING_WEBHOOK_CONFIGURATION,
        validating_webhooks,
        ca_bundle,
        url_base,
    )
    .await?;
    Ok(usize::from(patched) + usize::from(validating))
}

/// Reads the cluster-scoped webhook configuration `name` of kind `K` and patches its client
/// configurations when [`ca_bundle_patch`] says they differ. Returns whether it patched; a
/// missing configuration is skipped with a warning.
///
/// Errors: [`WebhookConfigError::Kube`] for a failed get or patch.
async fn ensure_one<K>(
    client: &Client,
    kind: &'static str,
    name: &'static str,
    webhooks: fn(&K) -> Vec<(String, WebhookClientConfig)>,
    ca_bundle: &[u8],
    url_base: Option<&str>,
) -> Result<bool, WebhookConfigError>
where
    K: kube::Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let current = api
        .get_opt(name)
        .await
        .map_err(|source| WebhookConfigError::Kube {
            verb: "get",
            kind,
            name,
            source,
        })?;
    let Some(current) = current else {
        tracing::warn!(%kind, %name, "webhook configuration not found; not patched");
        return Ok(false);
    };
    let Some(patch) = ca_bundle_patch(&webhooks(&current), ca_bundle, url_base) else {
        return Ok(false);
    };
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PatchParams::default()
    };
    api.patch(name, &params, &Patch::Strategic(patch))
        .await
        .map_err(|source| WebhookConfigError::Kube {
            verb: "patch",
            kind,
            name,
            source,
        })?;
    tracing::info!(%kind, %name, "patched the webhook client configuration");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::admissionregistration::v1::ServiceReference;

    fn service_config(path: &str, bundle: Option<&[u8]>) -> WebhookClientConfig {
        WebhookClientConfig {
            ca_bundle: bundle.map(|b| ByteString(b.to_vec())),
            service: Some(ServiceReference {
                name: "weft-operator".into(),
                namespace: "weft-system".into(),
                path: Some(path.into()),
                port: Some(443),
            }),
            url: None,
        }
    }

    fn encoded(bytes: &[u8]) -> Value {
        serde_json::to_value(ByteString(bytes.to_vec())).unwrap()
    }

    #[test]
    fn only_webhooks_with_a_stale_bundle_are_patched() {
        let webhooks = vec![
            (
                "a.weft.dev".to_string(),
                service_config("/inject", Some(b"OLD")),
            ),
            (
                "b.weft.dev".to_string(),
                service_config("/inject", Some(b"NEW")),
            ),
            ("c.weft.dev".to_string(), service_config("/inject", None)),
        ];
        let patch = ca_bundle_patch(&webhooks, b"NEW", None).unwrap();
        assert_eq!(
            patch,
            json!({"webhooks": [
                {"name": "a.weft.dev", "clientConfig": {"caBundle": encoded(b"NEW")}},
                {"name": "c.weft.dev", "clientConfig": {"caBundle": encoded(b"NEW")}},
            ]})
        );
    }

    #[test]
    fn current_configurations_need_no_patch() {
        let webhooks = vec![(
            "a.weft.dev".to_string(),
            service_config("/inject", Some(b"B")),
        )];
        assert_eq!(ca_bundle_patch(&webhooks, b"B", None), None);
        assert_eq!(ca_bundle_patch(&[], b"B", None), None);
    }

    #[test]
    fn a_url_base_replaces_the_service_keeping_each_path() {
        let webhooks = vec![
            (
                "inject.weft.dev".to_string(),
                service_config("/inject", Some(b"B")),
            ),
            (
                "validation.weft.dev".to_string(),
                service_config("/validate", Some(b"B")),
            ),
        ];
        let patch = ca_bundle_patch(&webhooks, b"B", Some("https://dev.example:9443/")).unwrap();
        assert_eq!(
            patch,
            json!({"webhooks": [
                {"name": "inject.weft.dev",
                 "clientConfig": {"url": "https://dev.example:9443/inject", "service": null}},
                {"name": "validation.weft.dev",
                 "clientConfig": {"url": "https://dev.example:9443/validate", "service": null}},
            ]})
        );
        let done = vec![(
            "inject.weft.dev".to_string(),
            WebhookClientConfig {
                ca_bundle: Some(ByteString(b"B".to_vec())),
                service: None,
                url: Some("https://dev.example:9443/inject".into()),
            },
        )];
        assert_eq!(
            ca_bundle_patch(&done, b"B", Some("https://dev.example:9443")),
            None
        );
    }
}
