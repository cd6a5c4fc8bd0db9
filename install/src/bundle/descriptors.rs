//! The CSV's `customresourcedefinitions.owned` entries: one per CRD and served version, with
//! a display name, the CRD's own description, and spec and status descriptors (OLM's
//! `x-descriptors` URNs, read by consoles to render the fields).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::{Value, json};

/// What the CSV says about one kind.
#[derive(Clone, Copy, Debug)]
pub struct CrdDescription {
    /// The kind.
    pub kind: &'static str,
    /// Its display name.
    pub display_name: &'static str,
    /// `(path, display name, description, x-descriptors)` of its spec descriptors.
    pub spec: &'static [(
        &'static str,
        &'static str,
        &'static str,
        &'static [&'static str],
    )],
}

const TEXT: &[&str] = &["urn:alm:descriptor:com.tectonic.ui:text"];
const BOOL: &[&str] = &["urn:alm:descriptor:com.tectonic.ui:booleanSwitch"];
const ADVANCED: &[&str] = &["urn:alm:descriptor:com.tectonic.ui:advanced"];

/// The kinds' descriptions, in the order of `weft_crds::crd::all`.
pub const DESCRIPTIONS: &[CrdDescription] = &[
    CrdDescription {
        kind: "VirtualService",
        display_name: "Virtual Service",
        spec: &[
            (
                "hosts",
                "Hosts",
                "The destination hosts the routing rules apply to.",
                TEXT,
            ),
            (
                "gateways",
                "Gateways",
                "The gateways and sidecars (mesh) that apply the routes.",
                TEXT,
            ),
            (
                "http",
                "HTTP Routes",
                "Ordered HTTP routing rules; the first match wins.",
                ADVANCED,
            ),
            ("tcp", "TCP Routes", "Ordered TCP routing rules.", ADVANCED),
        ],
    },
    CrdDescription {
        kind: "DestinationRule",
        display_name: "Destination Rule",
        spec: &[
            ("host", "Host", "The service the policies apply to.", TEXT),
            (
                "trafficPolicy",
                "Traffic Policy",
                "Load balancing, connection pool, outlier detection and TLS.",
                ADVANCED,
            ),
            (
                "subsets",
                "Subsets",
                "Named versions of the service, by workload labels.",
                ADVANCED,
            ),
        ],
    },
    CrdDescription {
        kind: "Gateway",
        display_name: "Gateway",
        spec: &[(
            "servers",
            "Servers",
            "Ports, protocols and hosts the gateway exposes.",
            ADVANCED,
        )],
    },
    CrdDescription {
        kind: "ServiceEntry",
        display_name: "Service Entry",
        spec: &[
            (
                "hosts",
                "Hosts",
                "The hosts added to the mesh's service registry.",
                TEXT,
            ),
            (
                "location",
                "Location",
                "MESH_EXTERNAL or MESH_INTERNAL.",
                TEXT,
            ),
            (
                "resolution",
                "Resolution",
                "How endpoints are found: NONE, STATIC or DNS.",
                TEXT,
            ),
        ],
    },
    CrdDescription {
        kind: "Sidecar",
        display_name: "Sidecar",
        spec: &[(
            "egress",
            "Egress",
            "The hosts the selected proxies can reach.",
            ADVANCED,
        )],
    },
    CrdDescription {
        kind: "WorkloadEntry",
        display_name: "Workload Entry",
        spec: &[
            ("address", "Address", "The workload's address.", TEXT),
            (
                "serviceAccount",
                "Service Account",
                "The workload's identity.",
                TEXT,
            ),
        ],
    },
    CrdDescription {
        kind: "PeerAuthentication",
        display_name: "Peer Authentication",
        spec: &[(
            "mtls.mode",
            "mTLS Mode",
            "STRICT, PERMISSIVE, DISABLE or UNSET.",
            TEXT,
        )],
    },
    CrdDescription {
        kind: "AuthorizationPolicy",
        display_name: "Authorization Policy",
        spec: &[
            ("action", "Action", "ALLOW, DENY, AUDIT or CUSTOM.", TEXT),
            (
                "rules",
                "Rules",
                "Who may do what: sources, operations and conditions.",
                ADVANCED,
            ),
        ],
    },
    CrdDescription {
        kind: "RequestAuthentication",
        display_name: "Request Authentication",
        spec: &[(
            "jwtRules",
            "JWT Rules",
            "Accepted issuers and their keys.",
            ADVANCED,
        )],
    },
    CrdDescription {
        kind: "Mesh",
        display_name: "Mesh",
        spec: &[
            (
                "trustDomain",
                "Trust Domain",
                "The SPIFFE trust domain of workload identities.",
                TEXT,
            ),
            (
                "rootNamespace",
                "Root Namespace",
                "The namespace whose policies apply mesh-wide.",
                TEXT,
            ),
            (
                "discoveryAddress",
                "Discovery Address",
                "host:port of the discovery service the proxies connect to.",
                TEXT,
            ),
            (
                "proxy.nativeSidecars",
                "Native Sidecars",
                "Inject the proxy as a Kubernetes native sidecar.",
                BOOL,
            ),
            (
                "certificates",
                "Certificates",
                "Lifetimes and rotation of the mesh CA's certificates.",
                ADVANCED,
            ),
        ],
    },
];

/// The description of `kind` in [`DESCRIPTIONS`], if any.
pub fn describe(kind: &str) -> Option<&'static CrdDescription> {
    DESCRIPTIONS.iter().find(|d| d.kind == kind)
}

/// The status descriptors of `kind`: for `Mesh`, its conditions and counts
/// ([`weft_crds::mesh::MeshStatus`]); for the Istio kinds, the config conditions and Istio's
/// `validationMessages` ([`weft_crds::status::IstioStatus`]).
fn status_descriptors(kind: &str) -> Value {
    if kind == "Mesh" {
        return json!([
            {
                "path": "conditions",
                "displayName": "Conditions",
                "description": "Ready, CertificateAuthorityReady, WebhooksReady and DiscoveryReady, each with observedGeneration.",
                "x-descriptors": ["urn:alm:descriptor:io.kubernetes.conditions"],
            },
            {
                "path": "connectedProxies",
                "displayName": "Connected Proxies",
                "description": "Proxies holding a discovery stream to the operator.",
                "x-descriptors": ["urn:alm:descriptor:text"],
            },
            {
                "path": "injectedPods",
                "displayName": "Injected Pods",
                "description": "Pods with the Weft sidecar injected.",
                "x-descriptors": ["urn:alm:descriptor:text"],
            },
            {
                "path": "nearestCertificateExpiry",
                "displayName": "Nearest Certificate Expiry",
                "description": "When the workload certificate that expires first expires (RFC 3339).",
                "x-descriptors": ["urn:alm:descriptor:text"],
            },
        ]);
    }
    json!([
        {
            "path": "conditions",
            "displayName": "Conditions",
            "description": "Accepted, Resolved, Reconciled and Ready, each with observedGeneration.",
            "x-descriptors": ["urn:alm:descriptor:io.kubernetes.conditions"],
        },
        {
            "path": "validationMessages",
            "displayName": "Validation Messages",
            "description": "Analyzer findings with Istio's message codes.",
            "x-descriptors": ["urn:alm:descriptor:text"],
        },
    ])
}

/// The `owned` entries of `crd`: one per served version (OLM matches owned CRDs by name and
/// version), each with `name`, `version`, `kind`, `displayName` (the kind when not in
/// [`DESCRIPTIONS`]), `description` (the schema's top-level description), `specDescriptors`
/// and `statusDescriptors`.
pub fn owned_entries(crd: &CustomResourceDefinition) -> Vec<Value> {
    let kind = crd.spec.names.kind.as_str();
    let description = describe(kind);
    let text = crd
        .spec
        .versions
        .iter()
        .find_map(|v| {
            v.schema
                .as_ref()?
                .open_api_v3_schema
                .as_ref()?
                .description
                .clone()
        })
        .unwrap_or_else(|| kind.to_string());
    let spec: Vec<Value> = description
        .map(|d| d.spec)
        .unwrap_or_default()
        .iter()
        .map(|(path, name, desc, x)| {
            json!({"path": path, "displayName": name, "description": desc, "x-descriptors": x})
        })
        .collect();
    crd.spec
        .versions
        .iter()
        .filter(|v| v.served)
        .map(|v| {
            json!({
                "name": crd.metadata.name,
                "version": v.name,
                "kind": kind,
                "displayName": description.map_or(kind, |d| d.display_name),
                "description": text,
                "specDescriptors": spec,
                "statusDescriptors": status_descriptors(kind),
            })
        })
        .collect()
}
