//! Analysis messages: Istio's message types (`pkg/config/analysis/msg/messages.yaml`: code,
//! name, level) and Weft's own for checks Istio has no code for, plus the resource a message
//! is about.

use std::fmt;

use serde::Serialize;

/// How serious a message is (Istio `diag.Level`). Ordered: `Info < Warning < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Legal, but probably not what was meant.
    Warning,
    /// The configuration will not behave as written.
    Error,
}

impl fmt::Display for Level {
    /// Writes `Info`, `Warning` or `Error`, as istioctl prints levels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Error => "Error",
        })
    }
}

/// A kind of message: its stable code, its name and its level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageType {
    /// The stable code, e.g. `IST0101` (Istio's) or `WEFT0001` (Weft's own).
    pub code: &'static str,
    /// The name, e.g. `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// The level every message of this type has.
    pub level: Level,
}

/// Istio `IST0101`: a resource refers to another that does not exist (a host, a gateway, a
/// subset, a workload selector).
pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType = MessageType {
    code: "IST0101",
    name: "ReferencedResourceNotFound",
    level: Level::Error,
};

/// Istio `IST0102`: a namespace has neither `istio-injection` nor `istio.io/rev` label.
pub const NAMESPACE_NOT_INJECTED: MessageType = MessageType {
    code: "IST0102",
    name: "NamespaceNotInjected",
    level: Level::Info,
};

/// Istio `IST0103`: a pod in an injected namespace has no `istio-proxy` container.
pub const POD_MISSING_PROXY: MessageType = MessageType {
    code: "IST0103",
    name: "PodMissingProxy",
    level: Level::Warning,
};

/// Istio `IST0106`: the resource breaks a validation rule (the validating webhook would
/// refuse it) or does not parse.
pub const SCHEMA_VALIDATION_ERROR: MessageType = MessageType {
    code: "IST0106",
    name: "SchemaValidationError",
    level: Level::Error,
};

/// Istio `IST0109`: several VirtualServices bound to the `mesh` gateway define the same host.
pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = MessageType {
    code: "IST0109",
    name: "ConflictingMeshGatewayVirtualServiceHosts",
    level: Level::Error,
};

/// Istio `IST0110`: several Sidecars with workload selectors select the same pod.
pub const CONFLICTING_SIDECAR_WORKLOAD_SELECTORS: MessageType = MessageType {
    code: "IST0110",
    name: "ConflictingSidecarWorkloadSelectors",
    level: Level::Error,
};

/// Istio `IST0111`: more than one Sidecar of a namespace has no workload selector.
pub const MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS: MessageType = MessageType {
    code: "IST0111",
    name: "MultipleSidecarsWithoutWorkloadSelectors",
    level: Level::Error,
};

/// Istio `IST0112`: a route without `port` to a service with more than one port.
pub const VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED: MessageType = MessageType {
    code: "IST0112",
    name: "VirtualServiceDestinationPortSelectorRequired",
    level: Level::Error,
};

/// Istio `IST0113`: a DestinationRule disables TLS toward workloads whose PeerAuthentication
/// is `STRICT`.
pub const MTLS_POLICY_CONFLICT: MessageType = MessageType {
    code: "IST0113",
    name: "MTLSPolicyConflict",
    level: Level::Error,
};

/// Istio `IST0127`: a policy's workload selector matches no workload.
pub const NO_MATCHING_WORKLOADS_FOUND: MessageType = MessageType {
    code: "IST0127",
    name: "NoMatchingWorkloadsFound",
    level: Level::Warning,
};

/// Istio `IST0133`: a validation warning (the webhook accepts the resource with a warning).
pub const SCHEMA_WARNING: MessageType = MessageType {
    code: "IST0133",
    name: "SchemaWarning",
    level: Level::Warning,
};

/// Weft `WEFT0001`: a DestinationRule's host is no Service and no ServiceEntry host, so its
/// policies apply to nothing. Istio has no analyzer for this.
pub const DESTINATION_RULE_HOST_NOT_FOUND: MessageType = MessageType {
    code: "WEFT0001",
    name: "DestinationRuleHostNotFound",
    level: Level::Warning,
};

/// Weft `WEFT0002`: the input holds no Kubernetes object (Service, Pod, Namespace, workload),
/// so the checks that need them were skipped. Istio has no code for this: istioctl always
/// reads the cluster's objects.
pub const KUBERNETES_OBJECTS_MISSING: MessageType = MessageType {
    code: "WEFT0002",
    name: "KubernetesObjectsMissing",
    level: Level::Info,
};

/// Every message type, in code order (for documentation and `--suppress` checks).
pub const ALL: &[MessageType] = &[
    REFERENCED_RESOURCE_NOT_FOUND,
    NAMESPACE_NOT_INJECTED,
    POD_MISSING_PROXY,
    SCHEMA_VALIDATION_ERROR,
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    MTLS_POLICY_CONFLICT,
    NO_MATCHING_WORKLOADS_FOUND,
    SCHEMA_WARNING,
    DESTINATION_RULE_HOST_NOT_FOUND,
    KUBERNETES_OBJECTS_MISSING,
];

/// Where a resource was read from: a file and the 0-based index of its YAML document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Origin {
    /// The file, as given on the command line.
    pub file: String,
    /// The 0-based position of the document in the file.
    pub document: usize,
}

/// The resource a message is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceRef {
    /// The kind, e.g. `VirtualService`.
    pub kind: String,
    /// The namespace; `None` for cluster-scoped kinds (Namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The name.
    pub name: String,
    /// The file and document it came from; `None` when read from a cluster.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl ResourceRef {
    /// `namespace/name`, or `name` for cluster-scoped resources.
    pub fn full_name(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl fmt::Display for ResourceRef {
    /// Writes `Kind namespace/name` (`Kind name` for cluster-scoped resources), as istioctl
    /// names the affected resource.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.full_name())
    }
}

/// One finding of the analysis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    /// The stable code, e.g. `IST0101`.
    pub code: &'static str,
    /// The message type's name, e.g. `ReferencedResourceNotFound`.
    pub name: &'static str,
    /// The level.
    pub level: Level,
    /// The resource concerned; `None` for messages about the input as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceRef>,
    /// The field path in the resource, e.g. `spec.http[0].route[0].destination.host`; empty
    /// when the message concerns the whole resource or input.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub path: String,
    /// What is wrong, e.g. `Referenced host not found: "reviewz"`.
    pub message: String,
    /// Istio's page for the code (`https://istio.io/latest/docs/reference/config/analysis/<code>/`);
    /// `None` for Weft's own codes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

impl Message {
    /// A message of type `kind` about `resource` at field `path`, saying `message`.
    pub fn new(
        kind: MessageType,
        resource: Option<&ResourceRef>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        let documentation_url = kind.code.starts_with("IST").then(|| {
            format!(
                "https://istio.io/latest/docs/reference/config/analysis/{}/",
                kind.code.to_lowercase()
            )
        });
        Self {
            code: kind.code,
            name: kind.name,
            level: kind.level,
            resource: resource.cloned(),
            path: path.into(),
            message: message.into(),
            documentation_url,
        }
    }

    /// Istio's `ReferencedResourceNotFound` text: `Referenced <what> not found: "<value>"`.
    pub(crate) fn not_found(
        resource: &ResourceRef,
        path: impl Into<String>,
        what: &str,
        value: &str,
    ) -> Self {
        Self::new(
            REFERENCED_RESOURCE_NOT_FOUND,
            Some(resource),
            path,
            format!("Referenced {what} not found: {value:?}"),
        )
    }
}

impl fmt::Display for Message {
    /// Writes istioctl's text form, with the field path inside the parentheses and the origin
    /// after the message: `Error [IST0101] (VirtualService default/reviews
    /// spec.http[0].route[0].destination.host) Referenced host not found: "reviewz"
    /// (vs.yaml, document 0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]", self.level, self.code)?;
        match (&self.resource, self.path.is_empty()) {
            (Some(resource), true) => write!(f, " ({resource})")?,
            (Some(resource), false) => write!(f, " ({resource} {})", self.path)?,
            (None, _) => {}
        }
        write!(f, " {}", self.message)?;
        if let Some(origin) = self.resource.as_ref().and_then(|r| r.origin.as_ref()) {
            write!(f, " ({}, document {})", origin.file, origin.document)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_is_istioctls_with_path_and_origin() {
        let resource = ResourceRef {
            kind: "VirtualService".into(),
            namespace: Some("default".into()),
            name: "reviews".into(),
            origin: Some(Origin {
                file: "vs.yaml".into(),
                document: 2,
            }),
        };
        let message = Message::not_found(
            &resource,
            "spec.http[0].route[0].destination.host",
            "host",
            "reviewz",
        );
        assert_eq!(
            message.to_string(),
            "Error [IST0101] (VirtualService default/reviews spec.http[0].route[0].destination.host) \
             Referenced host not found: \"reviewz\" (vs.yaml, document 2)"
        );
        assert_eq!(
            message.documentation_url.as_deref(),
            Some("https://istio.io/latest/docs/reference/config/analysis/ist0101/")
        );
    }

    #[test]
    fn levels_order_info_warning_error() {
        assert!(Level::Info < Level::Warning && Level::Warning < Level::Error);
        let codes: Vec<&str> = ALL.iter().map(|t| t.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes.len(), sorted.len(), "codes are unique");
    }
}
