//! The pure decisions of the Kubernetes Citadel: from (object, what the cluster holds, the CA,
//! time) to the object to write. No client, no I/O; the controller applies what these return.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use weft_crds::mesh::MeshSpec;
use weft_identity::ca::secret_keys;
use weft_identity::{
    CaError, CertificateAuthority, Clock, Decision, Identity, IdentityError, Reason, RotationPolicy,
};

use super::{
    CA_SECRET_NAME, CA_SECRET_TYPE, COMPONENT_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL,
    PLUGIN_CA_SECRET_NAME, ROOT_CERT_CONFIGMAP, TLS_SECRET_TYPE, WORKLOAD_CERT_COMPONENT, tls_keys,
};

/// Kubernetes' limit on object names (DNS subdomain, 253 characters).
pub const MAX_NAME_LEN: usize = 253;

/// The shortest requeue after issuing a certificate (1 s): reached only when the CA's own
/// `notAfter` clamps the leaf so much that it is born past its rotation point.
pub const MIN_REISSUE_INTERVAL: Duration = Duration::from_secs(1);

/// Errors of the plan. Messages name the object and the rule, never key material.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The ServiceAccount lacks a field the plan needs (`metadata.name`, `metadata.namespace`,
    /// `metadata.uid`: set by the API server on every stored object).
    #[error("ServiceAccount lacks {field}")]
    MissingField {
        /// The field's path.
        field: &'static str,
    },
    /// The namespace or ServiceAccount name does not make a valid SPIFFE ID.
    #[error("ServiceAccount {namespace}/{name}: {source}")]
    Identity {
        /// The namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The rule broken.
        #[source]
        source: IdentityError,
    },
    /// `weft-workload-cert-<sa>` is longer than Kubernetes' 253-character name limit.
    #[error(
        "Secret name {name:?} is longer than {MAX_NAME_LEN} characters; shorten the ServiceAccount name"
    )]
    SecretNameTooLong {
        /// The name that would be used.
        name: String,
    },
    /// A Secret with the workload certificate's name exists with another type; a Secret's type
    /// is immutable, so it cannot be taken over.
    #[error(
        "Secret {namespace}/{name} has type {found:?}, not kubernetes.io/tls; delete it so the operator can recreate it"
    )]
    SecretType {
        /// The namespace.
        namespace: String,
        /// The Secret.
        name: String,
        /// Its type.
        found: String,
    },
    /// A CA Secret (`cacerts` or `weft-ca-secret`) lacks a key or holds one that is not UTF-8.
    #[error("Secret {secret}: key {key} is missing or not UTF-8 PEM")]
    CaSecretKey {
        /// The Secret.
        secret: &'static str,
        /// The key (`ca-cert.pem`, `ca-key.pem`).
        key: &'static str,
    },
    /// The CA could not be loaded or created, or could not sign.
    #[error("certificate authority ({source_name}): {source}")]
    Ca {
        /// Where the CA came from: `cacerts`, `weft-ca-secret`, `self-signed`, `issuing`.
        source_name: &'static str,
        /// The CA's error.
        #[source]
        source: CaError,
    },
}

/// What to do with a workload certificate Secret.
#[derive(Clone, PartialEq)]
pub enum SecretAction {
    /// The stored Secret is current.
    Keep,
    /// No Secret exists: create this one.
    Create(Secret),
    /// The stored Secret must be overwritten with this one.
    Replace(Secret),
}

impl fmt::Debug for SecretAction {
    // Names only: a Secret's data holds the private key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |s: &Secret| s.metadata.name.clone().unwrap_or_default();
        match self {
            SecretAction::Keep => f.write_str("Keep"),
            SecretAction::Create(s) => write!(f, "Create({})", name(s)),
            SecretAction::Replace(s) => write!(f, "Replace({})", name(s)),
        }
    }
}

/// Why a [`SecretPlan`] chose its action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretReason {
    /// The certificate is valid and the Secret's metadata and `ca.crt` are current.
    Valid,
    /// The certificate must be re-issued ([`RotationPolicy::evaluate`]'s reason).
    Reissue(Reason),
    /// The certificate is kept but `ca.crt` is not the current trust bundle.
    TrustBundleChanged,
    /// The certificate is kept but the owner reference or labels are not the expected ones.
    MetadataChanged,
}

impl fmt::Display for SecretReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretReason::Valid => f.write_str("certificate is valid"),
            SecretReason::Reissue(reason) => write!(f, "re-issued: {reason}"),
            SecretReason::TrustBundleChanged => {
                f.write_str("ca.crt is not the current trust bundle")
            }
            SecretReason::MetadataChanged => f.write_str("owner reference or labels changed"),
        }
    }
}

/// The decision for one ServiceAccount's workload certificate Secret.
#[derive(Clone, Debug, PartialEq)]
pub struct SecretPlan {
    /// What to write, if anything.
    pub action: SecretAction,
    /// Why.
    pub reason: SecretReason,
    /// How long from `now` until the certificate reaches its rotation point (zero when it
    /// already has): the controller requeues after exactly this.
    pub requeue_after: Duration,
}

fn data_str<'a>(
    data: Option<&'a BTreeMap<String, ByteString>>,
    key: &str,
) -> Result<Option<&'a str>, ()> {
    match data.and_then(|d| d.get(key)) {
        None => Ok(None),
        Some(bytes) => std::str::from_utf8(&bytes.0).map(Some).map_err(|_| ()),
    }
}

/// The owner reference every workload certificate Secret carries: the ServiceAccount, as
/// controller, so that Kubernetes' garbage collector deletes the Secret with it and
/// kube-runtime's `owns` maps Secret events back to it.
pub fn owner_reference(sa_name: &str, sa_uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "v1".to_string(),
        kind: "ServiceAccount".to_string(),
        name: sa_name.to_string(),
        uid: sa_uid.to_string(),
        controller: Some(true),
        block_owner_deletion: None,
    }
}

/// The labels on every workload certificate Secret ([`MANAGED_BY_LABEL`], [`COMPONENT_LABEL`]).
pub fn workload_secret_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string()),
        (
            COMPONENT_LABEL.to_string(),
            WORKLOAD_CERT_COMPONENT.to_string(),
        ),
    ])
}

fn workload_secret(
    namespace: &str,
    name: &str,
    owner: OwnerReference,
    cert_chain_pem: &str,
    key_pem: &str,
    bundle_pem: &str,
) -> Secret {
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(workload_secret_labels()),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some(TLS_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([
            (tls_keys::CERT.to_string(), bytes(cert_chain_pem)),
            (tls_keys::KEY.to_string(), bytes(key_pem)),
            (tls_keys::CA.to_string(), bytes(bundle_pem)),
        ])),
        ..Secret::default()
    }
}

fn until(now: SystemTime, at: SystemTime) -> Duration {
    at.duration_since(now).unwrap_or_default()
}

/// Plans the workload certificate Secret of `sa` given the `existing` Secret of that name
/// (`weft-workload-cert-<sa>` in the ServiceAccount's namespace), the CA, the rotation policy,
/// the mesh's `trust_domain` and `now`.
///
/// Returns [`SecretAction::Create`] with a freshly issued certificate when there is no Secret;
/// [`SecretAction::Replace`] with a new certificate when [`RotationPolicy::evaluate`] says so
/// (missing or malformed data, key mismatch, wrong SPIFFE ID, not yet valid, expired, signed by
/// another or a retired CA, past the rotation point), or with the same certificate when only
/// `ca.crt`, the owner reference or the labels are stale; [`SecretAction::Keep`] otherwise.
/// `requeue_after` is the time left until the kept or new certificate's rotation point (at
/// least [`MIN_REISSUE_INTERVAL`] after issuing). The owner reference must be among the
/// Secret's owners and the labels among its labels; others' additions are left alone.
///
/// Errors: [`PlanError::MissingField`], [`PlanError::Identity`],
/// [`PlanError::SecretNameTooLong`], [`PlanError::SecretType`] (an existing Secret of another
/// type), [`PlanError::Ca`] when the CA cannot sign.
pub fn plan_workload_secret(
    sa: &ServiceAccount,
    existing: Option<&Secret>,
    ca: &CertificateAuthority,
    policy: &RotationPolicy,
    trust_domain: &str,
    now: SystemTime,
) -> Result<SecretPlan, PlanError> {
    let missing = |field| PlanError::MissingField { field };
    let namespace = sa
        .metadata
        .namespace
        .as_deref()
        .ok_or(missing("metadata.namespace"))?;
    let sa_name = sa
        .metadata
        .name
        .as_deref()
        .ok_or(missing("metadata.name"))?;
    let uid = sa.metadata.uid.as_deref().ok_or(missing("metadata.uid"))?;
    let identity = Identity::spiffe(trust_domain, namespace, sa_name).map_err(|source| {
        PlanError::Identity {
            namespace: namespace.to_string(),
            name: sa_name.to_string(),
            source,
        }
    })?;
    let name = weft_webhook::inject::workload_cert_secret_name(sa_name);
    if name.len() > MAX_NAME_LEN {
        return Err(PlanError::SecretNameTooLong { name });
    }
    let owner = owner_reference(sa_name, uid);
    let bundle = ca.trust_bundle_pem();
    let issue = |reason: Reason, replace: bool| -> Result<SecretPlan, PlanError> {
        let issued = ca
            .issue_workload(&identity, policy.workload_ttl)
            .map_err(|source| PlanError::Ca {
                source_name: "issuing",
                source,
            })?;
        let secret = workload_secret(
            namespace,
            &name,
            owner.clone(),
            &issued.cert_chain_pem,
            issued.private_key_pem.expose_secret(),
            &bundle,
        );
        Ok(SecretPlan {
            action: if replace {
                SecretAction::Replace(secret)
            } else {
                SecretAction::Create(secret)
            },
            reason: SecretReason::Reissue(reason),
            // A leaf clamped to a CA that is about to expire can be past its rotation point
            // as soon as it is issued: wait at least MIN_REISSUE_INTERVAL, never spin.
            requeue_after: until(
                now,
                policy.rotation_time(issued.not_before, issued.not_after),
            )
            .max(MIN_REISSUE_INTERVAL),
        })
    };
    let Some(existing) = existing else {
        return issue(Reason::Missing, false);
    };
    let found_type = existing.type_.as_deref().unwrap_or("Opaque");
    if found_type != TLS_SECRET_TYPE {
        return Err(PlanError::SecretType {
            namespace: namespace.to_string(),
            name,
            found: found_type.to_string(),
        });
    }
    let data = existing.data.as_ref();
    let (Ok(chain), Ok(key)) = (
        data_str(data, tls_keys::CERT),
        data_str(data, tls_keys::KEY),
    ) else {
        return issue(
            Reason::Malformed("tls.crt or tls.key is not UTF-8".into()),
            true,
        );
    };
    let next_check = match policy.evaluate(chain, key, &identity, ca, now) {
        Decision::Reissue(reason) => return issue(reason, true),
        Decision::Valid { next_check } => next_check,
    };
    let requeue_after = until(now, next_check);
    let (chain, key) = (chain.unwrap_or_default(), key.unwrap_or_default());
    let reason = if data_str(data, tls_keys::CA) != Ok(Some(bundle.as_str())) {
        SecretReason::TrustBundleChanged
    } else if !existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| *r == owner)
        || !workload_secret_labels()
            .iter()
            .all(|(k, v)| existing.metadata.labels.as_ref().and_then(|l| l.get(k)) == Some(v))
    {
        SecretReason::MetadataChanged
    } else {
        return Ok(SecretPlan {
            action: SecretAction::Keep,
            reason: SecretReason::Valid,
            requeue_after,
        });
    };
    Ok(SecretPlan {
        action: SecretAction::Replace(workload_secret(
            namespace, &name, owner, chain, key, &bundle,
        )),
        reason,
        requeue_after,
    })
}

/// Plans the trust-bundle ConfigMap of `namespace` (Istio's `istio-ca-root-cert`, key
/// `root-cert.pem`) given the `existing` one. Returns the ConfigMap to apply when it is missing
/// or its `root-cert.pem` differs from `bundle_pem`, `None` when it is current.
pub fn plan_root_configmap(
    namespace: &str,
    existing: Option<&ConfigMap>,
    bundle_pem: &str,
) -> Option<ConfigMap> {
    let current = existing
        .and_then(|cm| cm.data.as_ref())
        .and_then(|d| d.get(secret_keys::ROOT_CERT))
        .is_some_and(|pem| pem == bundle_pem);
    if current {
        return None;
    }
    Some(ConfigMap {
        metadata: ObjectMeta {
            name: Some(ROOT_CERT_CONFIGMAP.to_string()),
            namespace: Some(namespace.to_string()),
            // Istio labels the ConfigMap `istio.io/config: "true"`.
            labels: Some(BTreeMap::from([
                ("istio.io/config".to_string(), "true".to_string()),
                (MANAGED_BY_LABEL.to_string(), FIELD_MANAGER.to_string()),
            ])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            secret_keys::ROOT_CERT.to_string(),
            bundle_pem.to_string(),
        )])),
        ..ConfigMap::default()
    })
}

fn ca_from_secret(
    secret: &Secret,
    secret_name: &'static str,
    clock: Arc<dyn Clock>,
) -> Result<CertificateAuthority, PlanError> {
    let data = secret.data.as_ref();
    let get = |key: &'static str| {
        data_str(data, key).map_err(|()| PlanError::CaSecretKey {
            secret: secret_name,
            key,
        })
    };
    let required = |key: &'static str| {
        get(key)?
            .filter(|s| !s.trim().is_empty())
            .ok_or(PlanError::CaSecretKey {
                secret: secret_name,
                key,
            })
    };
    let ca_cert = required(secret_keys::CA_CERT)?;
    let ca_key = required(secret_keys::CA_KEY)?;
    // A self-signed CA is its own root (Istio's older `istio-ca-secret` holds only the pair).
    let root = get(secret_keys::ROOT_CERT)?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or(ca_cert);
    let chain = get(secret_keys::CERT_CHAIN)?.unwrap_or_default();
    CertificateAuthority::from_plugin(ca_cert, ca_key, root, chain, clock).map_err(|source| {
        PlanError::Ca {
            source_name: secret_name,
            source,
        }
    })
}

/// Chooses the mesh CA: Istio's plug-in CA from `cacerts` (the Secret of that name in the
/// operator's `namespace`) when given; else the self-signed root stored in `own`
/// ([`CA_SECRET_NAME`]); else a new self-signed root for the mesh's trust domain, valid for its
/// `rootCertTtl`, returned with the Secret to create in `namespace` to keep it.
///
/// Returns the CA and, only when a root was created, the Secret to write. Errors:
/// [`PlanError::CaSecretKey`] when `ca-cert.pem` or `ca-key.pem` is missing, [`PlanError::Ca`]
/// when the stored material does not load ([`CertificateAuthority::from_plugin`]'s checks) or a
/// root cannot be created. A bad `cacerts` is an error, never a fallback to a self-signed root:
/// workloads would silently stop trusting each other across clusters (Istio refuses too).
pub fn load_or_create_ca(
    cacerts: Option<&Secret>,
    own: Option<&Secret>,
    namespace: &str,
    mesh: &MeshSpec,
    clock: Arc<dyn Clock>,
) -> Result<(CertificateAuthority, Option<Secret>), PlanError> {
    if let Some(cacerts) = cacerts {
        return Ok((ca_from_secret(cacerts, PLUGIN_CA_SECRET_NAME, clock)?, None));
    }
    if let Some(own) = own {
        return Ok((ca_from_secret(own, CA_SECRET_NAME, clock)?, None));
    }
    let ca =
        CertificateAuthority::self_signed(mesh.trust_domain(), Some(mesh.root_cert_ttl()), clock)
            .map_err(|source| PlanError::Ca {
            source_name: "self-signed",
            source,
        })?;
    let parts = ca.to_pem_parts();
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(CA_SECRET_NAME.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                MANAGED_BY_LABEL.to_string(),
                FIELD_MANAGER.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some(CA_SECRET_TYPE.to_string()),
        data: Some(BTreeMap::from([
            (secret_keys::CA_CERT.to_string(), bytes(&parts.ca_cert_pem)),
            (
                secret_keys::CA_KEY.to_string(),
                bytes(parts.ca_key_pem.expose_secret()),
            ),
            (
                secret_keys::ROOT_CERT.to_string(),
                bytes(&parts.root_cert_pem),
            ),
            (
                secret_keys::CERT_CHAIN.to_string(),
                bytes(&parts.cert_chain_pem),
            ),
        ])),
        ..Secret::default()
    };
    Ok((ca, Some(secret)))
}

#[cfg(test)]
mod tests;
