//! Pilot's translation: from a snapshot of the cluster (Kubernetes Services, EndpointSlices,
//! Pods and Istio's mesh kinds) to one proxy's [`weft_proxy_config::ProxyConfig`].
//!
//! The crate is pure: no Kubernetes client, no sockets, no clocks. The operator builds a
//! [`ClusterView`] from its reflectors (Kubernetes mode) or from YAML files (standalone mode),
//! names the proxy with a [`ProxyTarget`] and calls [`build_proxy_config`]. Everything that
//! reaches the proxy but Weft's model cannot express is reported as an [`Unsupported`] warning,
//! never silently dropped.
//!
//! The semantics are Istio's, read from its reference documentation: protocol selection,
//! `exportTo`, Sidecar egress scoping, VirtualService and DestinationRule precedence,
//! PeerAuthentication precedence and auto mTLS.
//!
//! ```
//! use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};
//!
//! let view = ClusterView::from_yaml(
//!     r#"
//! apiVersion: networking.istio.io/v1
//! kind: ServiceEntry
//! metadata: {name: orders, namespace: vms}
//! spec:
//!   hosts: [orders.vms.internal]
//!   addresses: [240.240.0.1]
//!   location: MESH_INTERNAL
//!   resolution: STATIC
//!   ports: [{number: 80, name: http}]
//!   workloadSelector: {labels: {app: orders}}
//! ---
//! apiVersion: networking.istio.io/v1
//! kind: WorkloadEntry
//! metadata: {name: orders-1, namespace: vms}
//! spec: {address: 192.0.2.1, labels: {app: orders}}
//! "#,
//! )?;
//! let target = ProxyTarget::for_workload_entry(&view, "vms", "orders-1")?;
//! let output = build_proxy_config(&view, &target);
//! assert_eq!(output.config.outbound[0].name, "orders.vms.internal:80");
//! assert!(output.warnings.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod affected;
mod build;
mod cache;
mod host;
mod proxy;
mod registry;
mod selector;
mod unsupported;
mod view;

pub use affected::{ViewChange, affected_proxies};
pub use build::{BuildOutput, ProxyParts, build_proxy_config, build_proxy_parts};
pub use host::{ExportTo, host_matches};
pub use proxy::{ProxyTarget, ProxyTargetError};
pub use registry::{
    Registry, ServiceEndpoint, ServiceInstance, ServiceLocation, ServicePort, ServiceResolution,
    ServiceSource, TargetPort, protocol_from_name,
};
pub use unsupported::Unsupported;
pub use view::{
    ClusterObjects, ClusterView, DocumentError, MeshSettings, OPENID_DISCOVERY_PATH, jwks_fetches,
    yaml_documents,
};
