//! The pure half of the Mesh reconciler: from the `Mesh` and the [`Facts`] read from the
//! cluster to the desired [`MeshStatus`] and the Events to publish. No client, no clock: the
//! caller passes `now`.

use std::time::SystemTime;

use weft_crds::mesh::{
    CONDITION_CERTIFICATE_AUTHORITY_READY, CONDITION_DISCOVERY_READY, CONDITION_READY,
    CONDITION_WEBHOOKS_READY, DEFAULT_NAME, Mesh, MeshStatus,
};
use weft_crds::status::Condition;

use crate::citadel::{CA_SECRET_NAME, PLUGIN_CA_SECRET_NAME};

/// `Condition.status` values (Kubernetes `metav1.ConditionStatus`).
const TRUE: &str = "True";
/// See [`TRUE`].
const FALSE: &str = "False";

/// Condition reasons (CamelCase, Kubernetes convention), one constant per cause.
pub mod reason {
    /// `Ready=True`: every component condition is `True`.
    pub const MESH_READY: &str = "MeshReady";
    /// `Ready=False`: the spec breaks a rule of [`weft_crds::mesh::MeshSpec::validate`].
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// `Ready=False`: a component condition is not `True`; the message names it.
    pub const COMPONENTS_NOT_READY: &str = "ComponentsNotReady";
    /// `Ready=False`: this Mesh is not the one the operator reads (`default`).
    pub const NOT_THE_MESH: &str = "NotTheDefaultMesh";
    /// `CertificateAuthorityReady=True`: Istio's plug-in CA Secret `cacerts` signs.
    pub const PLUGGED_IN_CA: &str = "PluggedInCA";
    /// `CertificateAuthorityReady=True`: Weft's self-signed root `weft-ca-secret` signs.
    pub const SELF_SIGNED_CA: &str = "SelfSignedCA";
    /// `CertificateAuthorityReady=False`: neither CA Secret exists yet.
    pub const CA_MISSING: &str = "CertificateAuthorityMissing";
    /// `CertificateAuthorityReady=False`: a CA Secret does not load.
    pub const CA_INVALID: &str = "CertificateAuthorityInvalid";
    /// `CertificateAuthorityReady=False`: the CA certificate's `notAfter` has passed.
    pub const CA_EXPIRED: &str = "CertificateAuthorityExpired";
    /// `WebhooksReady=True`: every webhook's `caBundle` is the mesh CA's trust bundle.
    pub const CA_BUNDLE_CURRENT: &str = "CABundleCurrent";
    /// `WebhooksReady=True`: the configurations exist and OLM owns their certificates.
    pub const MANAGED_EXTERNALLY: &str = "ManagedExternally";
    /// `WebhooksReady=False`: a webhook configuration does not exist.
    pub const WEBHOOK_CONFIGURATION_MISSING: &str = "WebhookConfigurationMissing";
    /// `WebhooksReady=False`: some webhooks do not trust the mesh CA yet.
    pub const CA_BUNDLE_STALE: &str = "CABundleStale";
    /// `WebhooksReady=False`: without a CA there is no bundle to compare with.
    pub const CA_NOT_READY: &str = "CertificateAuthorityNotReady";
    /// `DiscoveryReady=True`: the discovery service accepts proxy streams.
    pub const SERVING: &str = "Serving";
    /// `DiscoveryReady=False`: the discovery service is not listening.
    pub const NOT_SERVING: &str = "NotServing";
}

/// Which Secret holds the mesh CA, as [`crate::citadel::controller::load_ca`] chooses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaSource {
    /// Istio's plug-in CA, Secret `cacerts`.
    PluggedIn,
    /// Weft's self-signed root, Secret `weft-ca-secret`.
    SelfSigned,
}

/// What the operator's namespace says about the mesh CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaFact {
    /// Neither `cacerts` nor `weft-ca-secret` exists (the leader's Citadel creates the latter).
    Missing,
    /// The Secret named `secret` does not load; `message` is the loader's error.
    Invalid {
        /// `cacerts` or `weft-ca-secret`.
        secret: &'static str,
        /// Why it does not load (never key material).
        message: String,
    },
    /// The CA loads.
    Loaded {
        /// The Secret it came from.
        source: CaSource,
        /// `notAfter` of the signing certificate.
        not_after: SystemTime,
        /// The trust bundle (`root-cert.pem`), PEM: what the webhooks' `caBundle` must be.
        trust_bundle_pem: String,
    },
}

/// The state of one webhook configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookState {
    /// The configuration does not exist.
    Missing,
    /// Every webhook trusts the mesh CA (or, when the operator does not manage the
    /// `caBundle`, the configuration simply exists).
    Current,
    /// These webhooks' `caBundle` is not the mesh CA's trust bundle.
    Stale(Vec<String>),
    /// Not compared: there is no CA to compare with.
    Unknown,
}

/// One webhook configuration and its [`WebhookState`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookFact {
    /// `MutatingWebhookConfiguration` or `ValidatingWebhookConfiguration`.
    pub kind: &'static str,
    /// Its name (`weft-sidecar-injector`, `weft-validator`).
    pub name: &'static str,
    /// What was found.
    pub state: WebhookState,
}

/// Everything the Mesh's status is computed from, read from the cluster and the operator's own
/// discovery server by the reconciler's shell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// The mesh CA.
    pub ca: CaFact,
    /// Whether the operator patches the webhooks' `caBundle` (false under OLM, which owns it).
    pub manage_webhook_ca_bundle: bool,
    /// Both webhook configurations.
    pub webhooks: Vec<WebhookFact>,
    /// Whether the discovery service is listening.
    pub discovery_serving: bool,
    /// Proxies holding a discovery stream to this replica.
    pub connected_proxies: u32,
    /// Pods annotated `sidecar.istio.io/status`.
    pub injected_pods: u32,
    /// The earliest `notAfter` among the operator's workload certificate Secrets.
    pub nearest_certificate_expiry: Option<SystemTime>,
}

/// The Event to publish about the Mesh (kube-runtime's recorder).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshEvent {
    /// `true` for a `Warning`, `false` for a `Normal` Event.
    pub warning: bool,
    /// The condition's reason.
    pub reason: String,
    /// The condition's message.
    pub note: String,
}

/// A condition before its timestamps are filled in.
struct Desired {
    type_: &'static str,
    status: &'static str,
    reason: &'static str,
    message: String,
}

impl Desired {
    fn new(type_: &'static str, ok: bool, reason: &'static str, message: String) -> Self {
        let status = if ok { TRUE } else { FALSE };
        Desired {
            type_,
            status,
            reason,
            message,
        }
    }
}

/// Formats `time` as RFC 3339 in UTC with seconds (`metav1.Time`'s precision). Returns `None`
/// for a time the calendar cannot hold.
pub fn rfc3339(time: SystemTime) -> Option<String> {
    k8s_openapi::jiff::Timestamp::try_from(time)
        .ok()
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

fn ca_condition(ca: &CaFact, now: SystemTime) -> Desired {
    let type_ = CONDITION_CERTIFICATE_AUTHORITY_READY;
    match ca {
        CaFact::Missing => Desired::new(
            type_,
            false,
            reason::CA_MISSING,
            format!(
                "neither Secret {PLUGIN_CA_SECRET_NAME} nor {CA_SECRET_NAME} exists in the operator namespace; the leader creates {CA_SECRET_NAME}"
            ),
        ),
        CaFact::Invalid { secret, message } => Desired::new(
            type_,
            false,
            reason::CA_INVALID,
            format!("Secret {secret}: {message}"),
        ),
        CaFact::Loaded { not_after, .. } if *not_after <= now => Desired::new(
            type_,
            false,
            reason::CA_EXPIRED,
            format!(
                "the CA certificate expired at {}",
                rfc3339(*not_after).unwrap_or_default()
            ),
        ),
        CaFact::Loaded {
            source, not_after, ..
        } => {
            let (reason, secret) = match source {
                CaSource::PluggedIn => (reason::PLUGGED_IN_CA, PLUGIN_CA_SECRET_NAME),
                CaSource::SelfSigned => (reason::SELF_SIGNED_CA, CA_SECRET_NAME),
            };
            Desired::new(
                type_,
                true,
                reason,
                format!(
                    "the CA from Secret {secret} signs; it expires at {}",
                    rfc3339(*not_after).unwrap_or_default()
                ),
            )
        }
    }
}

fn webhooks_condition(facts: &Facts) -> Desired {
    let type_ = CONDITION_WEBHOOKS_READY;
    let missing: Vec<String> = facts
        .webhooks
        .iter()
        .filter(|w| w.state == WebhookState::Missing)
        .map(|w| format!("{} {}", w.kind, w.name))
        .collect();
    if !missing.is_empty() {
        return Desired::new(
            type_,
            false,
            reason::WEBHOOK_CONFIGURATION_MISSING,
            format!("not found: {}", missing.join(", ")),
        );
    }
    if !facts.manage_webhook_ca_bundle {
        return Desired::new(
            type_,
            true,
            reason::MANAGED_EXTERNALLY,
            "both webhook configurations exist; their caBundle is managed outside the operator (OLM)"
                .to_string(),
        );
    }
    if facts
        .webhooks
        .iter()
        .any(|w| w.state == WebhookState::Unknown)
    {
        return Desired::new(
            type_,
            false,
            reason::CA_NOT_READY,
            "the caBundle cannot be checked until the CA loads".to_string(),
        );
    }
    let stale: Vec<String> = facts
        .webhooks
        .iter()
        .filter_map(|w| match &w.state {
            WebhookState::Stale(names) => {
                Some(format!("{} {}: {}", w.kind, w.name, names.join(", ")))
            }
            _ => None,
        })
        .collect();
    if stale.is_empty() {
        Desired::new(
            type_,
            true,
            reason::CA_BUNDLE_CURRENT,
            "every webhook's caBundle is the mesh CA's trust bundle".to_string(),
        )
    } else {
        Desired::new(
            type_,
            false,
            reason::CA_BUNDLE_STALE,
            format!(
                "caBundle is not the mesh CA's trust bundle in {}",
                stale.join("; ")
            ),
        )
    }
}

fn discovery_condition(facts: &Facts) -> Desired {
    if facts.discovery_serving {
        Desired::new(
            CONDITION_DISCOVERY_READY,
            true,
            reason::SERVING,
            format!("{} proxies connected", facts.connected_proxies),
        )
    } else {
        Desired::new(
            CONDITION_DISCOVERY_READY,
            false,
            reason::NOT_SERVING,
            "the discovery service is not listening".to_string(),
        )
    }
}

/// The conditions before timestamps: the three components, then `Ready`.
fn desired_conditions(mesh: &Mesh, facts: &Facts, now: SystemTime) -> Vec<Desired> {
    if mesh.metadata.name.as_deref() != Some(DEFAULT_NAME) {
        return vec![Desired::new(
            CONDITION_READY,
            false,
            reason::NOT_THE_MESH,
            format!("the operator reads only the Mesh named {DEFAULT_NAME}; this one is ignored"),
        )];
    }
    let components = vec![
        ca_condition(&facts.ca, now),
        webhooks_condition(facts),
        discovery_condition(facts),
    ];
    let spec_errors: Vec<String> = mesh
        .spec
        .validate()
        .iter()
        .map(ToString::to_string)
        .collect();
    let not_ready: Vec<&str> = components
        .iter()
        .filter(|c| c.status != TRUE)
        .map(|c| c.type_)
        .collect();
    let ready = if !spec_errors.is_empty() {
        Desired::new(
            CONDITION_READY,
            false,
            reason::INVALID_SPEC,
            spec_errors.join("; "),
        )
    } else if !not_ready.is_empty() {
        Desired::new(
            CONDITION_READY,
            false,
            reason::COMPONENTS_NOT_READY,
            format!("not ready: {}", not_ready.join(", ")),
        )
    } else {
        Desired::new(
            CONDITION_READY,
            true,
            reason::MESH_READY,
            "the CA, the webhooks and the discovery service are ready".to_string(),
        )
    };
    let mut all = components;
    all.push(ready);
    all
}

/// The desired status of `mesh` given `facts` at `now`, and the Events to publish.
///
/// Conditions (Istio/Kubernetes shape, each with `observedGeneration` = the Mesh's
/// `metadata.generation`): `CertificateAuthorityReady`, `WebhooksReady`, `DiscoveryReady` and
/// the summary `Ready` (`False` with [`reason::INVALID_SPEC`] when
/// [`weft_crds::mesh::MeshSpec::validate`] finds errors). A Mesh not named `default` gets only
/// `Ready=False` ([`reason::NOT_THE_MESH`]) and no counts. `lastTransitionTime` is kept from
/// `mesh.status` when a condition's status did not change, else `now`. Counts: connected
/// proxies, injected pods, and the nearest workload certificate expiry as RFC 3339.
///
/// Events: one per condition whose status or reason differs from `mesh.status`'s (a `Warning`
/// when it is `False`, `Normal` when `True`); none when nothing changed.
pub fn desired_status(mesh: &Mesh, facts: &Facts, now: SystemTime) -> (MeshStatus, Vec<MeshEvent>) {
    let generation = mesh.metadata.generation;
    let current = mesh.status.as_ref();
    let now_text = rfc3339(now).unwrap_or_default();
    let mut events = Vec::new();
    let conditions = desired_conditions(mesh, facts, now)
        .into_iter()
        .map(|d| {
            let old = current.and_then(|s| s.condition(d.type_));
            let same_status = old.is_some_and(|o| o.status == d.status);
            let same_reason = old.is_some_and(|o| o.reason.as_deref() == Some(d.reason));
            if !(same_status && same_reason) {
                events.push(MeshEvent {
                    warning: d.status != TRUE,
                    reason: d.reason.to_string(),
                    note: format!("{}={}: {}", d.type_, d.status, d.message),
                });
            }
            Condition::observed(
                d.type_,
                d.status,
                d.reason.to_string(),
                d.message,
                generation,
                old,
                &now_text,
            )
        })
        .collect();
    let is_the_mesh = mesh.metadata.name.as_deref() == Some(DEFAULT_NAME);
    let status = MeshStatus {
        conditions,
        observed_generation: generation,
        connected_proxies: is_the_mesh.then_some(facts.connected_proxies),
        injected_pods: is_the_mesh.then_some(facts.injected_pods),
        nearest_certificate_expiry: facts
            .nearest_certificate_expiry
            .filter(|_| is_the_mesh)
            .and_then(rfc3339),
    };
    (status, events)
}

/// Whether writing `desired` would change `current`, comparing everything but the
/// conditions' `lastTransitionTime` and `lastProbeTime` (so that a reconcile that finds
/// nothing new writes nothing).
pub fn status_changed(current: Option<&MeshStatus>, desired: &MeshStatus) -> bool {
    let strip = |status: &MeshStatus| {
        let mut status = status.clone();
        for c in &mut status.conditions {
            c.last_transition_time = None;
            c.last_probe_time = None;
        }
        status
    };
    current.map(strip) != Some(strip(desired))
}

/// Whether the webhooks `(name, caBundle)` of one configuration trust `trust_bundle_pem`:
/// [`WebhookState::Current`] when every `caBundle` equals it, else [`WebhookState::Stale`]
/// with the names of those that differ (a missing `caBundle` differs).
pub fn webhook_state(
    webhooks: &[(String, Option<Vec<u8>>)],
    trust_bundle_pem: &str,
) -> WebhookState {
    let stale: Vec<String> = webhooks
        .iter()
        .filter(|(_, bundle)| bundle.as_deref() != Some(trust_bundle_pem.as_bytes()))
        .map(|(name, _)| name.clone())
        .collect();
    if stale.is_empty() {
        WebhookState::Current
    } else {
        WebhookState::Stale(stale)
    }
}

#[cfg(test)]
mod tests;
