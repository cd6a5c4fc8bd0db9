//! Cross-resource analysis of mesh configuration, like `istioctl analyze`: validation plus the
//! checks no single object can fail on its own (a route to a host or subset that does not
//! exist, VirtualServices competing for one host, a selector that selects nothing, TLS
//! settings that contradict mutual TLS).
//!
//! The crate is pure: an [`Input`] (mesh objects and the Kubernetes objects the analyzers look
//! at: Services, Pods, Namespaces and the pod templates of workloads, from files or a
//! cluster's list calls) goes in, a list of [`Message`]s comes out. `weftctl analyze` reads
//! the files or the cluster and prints the messages.
//!
//! Each message has Istio's code, name and level where Istio has an analyzer for the check
//! (`pkg/config/analysis/msg/messages.yaml`), the resource (`Kind namespace/name`, with the
//! file and document it came from), the field path and the text:
//!
//! | Code | Name | Level | Check |
//! |---|---|---|---|
//! | IST0101 | ReferencedResourceNotFound | Error | destination host (`mirror host`), `host:port`, `host+subset in destinationrule`, `gateway`, Gateway or Sidecar `selector`, AuthorizationPolicy source `namespace` not found |
//! | IST0102 | NamespaceNotInjected | Info | Namespace without `istio-injection`/`istio.io/rev` label |
//! | IST0103 | PodMissingProxy | Warning | pod of an injected namespace without `istio-proxy` |
//! | IST0106 | SchemaValidationError | Error | the validating webhook's errors (`weft_webhook::validate`), parse errors |
//! | IST0109 | ConflictingMeshGatewayVirtualServiceHosts | Error | two `mesh` VirtualServices for one host |
//! | IST0110 | ConflictingSidecarWorkloadSelectors | Error | a workload selected by several Sidecars |
//! | IST0111 | MultipleSidecarsWithoutWorkloadSelectors | Error | several selector-less Sidecars in one namespace |
//! | IST0112 | VirtualServiceDestinationPortSelectorRequired | Error | route without port to a multi-port service |
//! | IST0113 | MTLSPolicyConflict | Error | DestinationRule `tls.mode: DISABLE` toward a `STRICT` workload |
//! | IST0127 | NoMatchingWorkloadsFound | Warning | AuthorizationPolicy, PeerAuthentication, RequestAuthentication selector matches nothing; namespace-wide AuthorizationPolicy in a namespace without workloads |
//! | IST0133 | SchemaWarning | Warning | the validating webhook's warnings |
//! | WEFT0001 | DestinationRuleHostNotFound | Warning | DestinationRule host is no Service/ServiceEntry (Istio has no analyzer) |
//! | WEFT0002 | KubernetesObjectsMissing | Info | the input holds no Kubernetes object, so host and selector checks that need them were skipped |
//!
//! ```
//! use weft_analyze::{Input, analyze};
//!
//! let mut input = Input::default();
//! input.add_yaml("vs.yaml", r#"
//! apiVersion: networking.istio.io/v1
//! kind: VirtualService
//! metadata: {name: reviews, namespace: default}
//! spec:
//!   hosts: [reviews]
//!   http: [{route: [{destination: {host: reviewz}}]}]
//! ---
//! apiVersion: v1
//! kind: Service
//! metadata: {name: reviews}
//! "#)?;
//! let messages = analyze(&input);
//! assert_eq!(
//!     messages[0].to_string(),
//!     "Error [IST0101] (VirtualService default/reviews spec.http[0].route[0].destination.host) \
//!      Referenced host not found: \"reviewz\" (vs.yaml, document 0)"
//! );
//! # Ok::<(), weft_analyze::InputError>(())
//! ```
#![warn(missing_docs)]

mod analyzers;
pub mod input;
pub mod message;
pub mod suppress;

pub use input::{Input, InputError};
pub use message::{Level, Message, MessageType, Origin, ResourceRef};
pub use suppress::{Suppression, SuppressionError};

/// Analyzes `input`: runs every analyzer and returns the messages, sorted by resource (kind,
/// namespace, name), then field path and code, so the output is stable. When the Kubernetes
/// objects are not known ([`Input::kubernetes_known`]), one `WEFT0002` Info message without
/// resource says which checks were skipped.
pub fn analyze(input: &Input) -> Vec<Message> {
    let mut messages = analyzers::run_all(input);
    messages.sort_by(|a, b| {
        let key = |m: &Message| {
            m.resource
                .as_ref()
                .map(|r| (r.kind.clone(), r.namespace.clone(), r.name.clone()))
        };
        key(a)
            .cmp(&key(b))
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| a.code.cmp(b.code))
    });
    if !input.kubernetes_known() && !input.mesh_objects.is_empty() {
        messages.push(Message::new(
            message::KUBERNETES_OBJECTS_MISSING,
            None,
            "",
            "The input holds no Kubernetes object (Service, Pod, Namespace, Deployment): \
             destination and DestinationRule hosts of the form <name>.<namespace>.svc.cluster.local \
             and workload selectors were not checked. Add the workloads' manifests, or analyze \
             the cluster with -k.",
        ));
    }
    messages
}

/// Drops the messages any of `suppressions` matches; returns the rest in order.
pub fn suppress(messages: Vec<Message>, suppressions: &[Suppression]) -> Vec<Message> {
    messages
        .into_iter()
        .filter(|m| !suppressions.iter().any(|s| s.matches(m)))
        .collect()
}
