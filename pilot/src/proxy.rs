//! The proxy a config is built for: its workload's namespace, name, identity, labels and IPs.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use weft_crds::networking::WorkloadEntry;
use weft_proxy_config::{Locality, ProxyType};

use crate::registry::{
    locality_from_labels, parse_locality, pod_has_sidecar, pod_ips, pod_service_account,
};
use crate::view::{ClusterView, name_of, namespace_of};

/// Who the proxy serves (Istio's `Proxy` metadata), built from a Pod or a WorkloadEntry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyTarget {
    /// The workload's namespace.
    pub namespace: String,
    /// The instance's own name: the pod name, or the WorkloadEntry name.
    pub instance_name: String,
    /// The workload's name (Istio `WORKLOAD_NAME`): the Deployment behind a ReplicaSet-owned
    /// pod, the pod's owner otherwise, or the instance name.
    pub workload_name: String,
    /// The Kubernetes service account (WorkloadEntry `serviceAccount`, default `default`).
    pub service_account: String,
    /// The workload's labels.
    pub labels: BTreeMap<String, String>,
    /// The workload's IPs.
    pub ips: Vec<IpAddr>,
    /// Where the workload runs.
    pub locality: Locality,
    /// Whether the workload is a WorkloadEntry (a VM) rather than a pod.
    pub is_workload_entry: bool,
    /// A sidecar, or a gateway (Istio `router`) that serves the Gateways selecting its labels.
    /// The constructors set [`ProxyType::Sidecar`]; the proxy's Hello says which it is.
    pub proxy_type: ProxyType,
}

/// Errors from finding a proxy's workload in a view.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyTargetError {
    /// No pod `namespace/name` in the view.
    #[error("pod {namespace}/{name} is not in the cluster view")]
    PodNotFound {
        /// The namespace searched.
        namespace: String,
        /// The pod name.
        name: String,
    },
    /// No WorkloadEntry `namespace/name` in the view.
    #[error("WorkloadEntry {namespace}/{name} is not in the cluster view")]
    WorkloadEntryNotFound {
        /// The namespace searched.
        namespace: String,
        /// The WorkloadEntry name.
        name: String,
    },
}

impl ProxyTarget {
    /// The target for a pod: namespace, name, labels, `status.podIPs`, service account
    /// (`spec.serviceAccountName`, default `default`), locality from the topology labels, and
    /// the workload name from its owner (a ReplicaSet `<deployment>-<pod-template-hash>` gives
    /// the Deployment name).
    pub fn from_pod(pod: &Pod) -> Self {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        let instance_name = name_of(&pod.metadata).to_owned();
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|owner| owner.controller == Some(true))
            .or_else(|| pod.metadata.owner_references.iter().flatten().next());
        let workload_name = match owner {
            Some(owner) if owner.kind == "ReplicaSet" => labels
                .get("pod-template-hash")
                .and_then(|hash| owner.name.strip_suffix(&format!("-{hash}")))
                .unwrap_or(&owner.name)
                .to_owned(),
            Some(owner) => owner.name.clone(),
            None => instance_name.clone(),
        };
        Self {
            namespace: namespace_of(&pod.metadata).to_owned(),
            instance_name,
            workload_name,
            service_account: pod_service_account(pod),
            locality: locality_from_labels(&labels),
            labels,
            ips: pod_ips(pod),
            is_workload_entry: false,
            proxy_type: ProxyType::Sidecar,
        }
    }

    /// The target for a WorkloadEntry (a VM): its namespace, name (also the workload name),
    /// labels, `address` (when an IP), `serviceAccount` (default `default`) and `locality`
    /// (`region/zone/subzone`).
    pub fn from_workload_entry(entry: &WorkloadEntry) -> Self {
        let name = name_of(&entry.metadata).to_owned();
        Self {
            namespace: namespace_of(&entry.metadata).to_owned(),
            instance_name: name.clone(),
            workload_name: name,
            service_account: entry
                .spec
                .service_account
                .clone()
                .unwrap_or_else(|| "default".to_owned()),
            labels: entry.spec.labels.clone(),
            ips: entry
                .spec
                .address
                .as_deref()
                .and_then(|address| address.parse().ok())
                .into_iter()
                .collect(),
            locality: entry
                .spec
                .locality
                .as_deref()
                .map(parse_locality)
                .unwrap_or_default(),
            is_workload_entry: true,
            proxy_type: ProxyType::Sidecar,
        }
    }

    /// The target for pod `namespace/name` of `view`.
    ///
    /// Errors: [`ProxyTargetError::PodNotFound`].
    pub fn for_pod(
        view: &ClusterView,
        namespace: &str,
        name: &str,
    ) -> Result<Self, ProxyTargetError> {
        view.pod(namespace, name)
            .map(|pod| Self::from_pod(pod).with_pod_locality(view, pod))
            .ok_or_else(|| ProxyTargetError::PodNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }

    /// The target for WorkloadEntry `namespace/name` of `view`.
    ///
    /// Errors: [`ProxyTargetError::WorkloadEntryNotFound`].
    pub fn for_workload_entry(
        view: &ClusterView,
        namespace: &str,
        name: &str,
    ) -> Result<Self, ProxyTargetError> {
        view.workload_entry(namespace, name)
            .map(Self::from_workload_entry)
            .ok_or_else(|| ProxyTargetError::WorkloadEntryNotFound {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })
    }

    /// Every proxy of the view: each pod carrying a sidecar (annotation
    /// `sidecar.istio.io/status`), then each WorkloadEntry, sorted by namespace and name.
    pub fn all(view: &ClusterView) -> Vec<Self> {
        let objects = view.objects();
        objects
            .pods
            .iter()
            .filter(|pod| pod_has_sidecar(pod))
            .map(|pod| Self::from_pod(pod).with_pod_locality(view, pod))
            .chain(
                objects
                    .workload_entries
                    .iter()
                    .map(Self::from_workload_entry),
            )
            .collect()
    }
}
