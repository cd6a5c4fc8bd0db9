//! The `status` of every mesh kind: Kubernetes conditions plus Istio's `validationMessages`.
//!
//! Mirrors Istio's `meta.v1alpha1.IstioStatus` (fields `conditions`, `validationMessages`,
//! `observedGeneration`), with conditions in the standard Kubernetes shape
//! (`metav1.Condition`: type, status, reason, message, lastTransitionTime, observedGeneration).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition type: the object is valid and every field it uses is supported by Weft.
pub const CONDITION_ACCEPTED: &str = "Accepted";
/// Condition type: every reference (hosts, subsets, gateways, selectors) resolves.
pub const CONDITION_RESOLVED: &str = "Resolved";
/// Condition type: every affected proxy acknowledged a config built from this generation.
pub const CONDITION_RECONCILED: &str = "Reconciled";
/// Condition type: the summary read by the `Ready` printer column.
pub const CONDITION_READY: &str = "Ready";

/// The JSONPath of the `Ready` printer column, shared by every kind.
pub const READY_COLUMN_JSON_PATH: &str = r#".status.conditions[?(@.type=="Ready")].status"#;

/// The status subresource of every Istio kind served by Weft.
///
/// Written only by the operator (status subresource); users never set it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IstioStatus {
    /// Current service state of the resource: `Accepted`, `Resolved`, `Reconciled` and the
    /// summary `Ready`, one entry per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Includes any errors or warnings detected by Istio-style analyzers (`weftctl analyze`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_messages: Vec<AnalysisMessage>,
    /// The generation of the resource the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One observation of the object's state (Kubernetes `metav1.Condition`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of the condition, e.g. `Accepted`, `Resolved`, `Reconciled`, `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Status of the condition: `True`, `False` or `Unknown`.
    pub status: String,
    /// A machine-readable CamelCase reason for the last transition, e.g. `Unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details of the last transition (for `Unsupported`, the field path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Last time the condition's status changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: Option<String>,
    /// Last time the condition was probed (RFC 3339); kept for Istio compatibility.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub last_probe_time: Option<String>,
    /// The `.metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A finding of an analyzer, as Istio's `analysis.v1alpha1.AnalysisMessageBase`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMessage {
    /// The stable code and name of the finding (e.g. `IST0101`, `ReferencedResourceNotFound`).
    #[serde(rename = "type")]
    pub type_: AnalysisMessageType,
    /// Severity: `ERROR`, `WARNING` or `INFO`.
    pub level: AnalysisLevel,
    /// A URL that points to the documentation of this finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
    /// The human-readable message, naming the field path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The identity of an analyzer finding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisMessageType {
    /// A human-readable CamelCase name, e.g. `ReferencedResourceNotFound`.
    pub name: String,
    /// A stable code, e.g. `IST0101` (Istio's codes where Istio has one, `WFT####` otherwise).
    pub code: String,
}

/// The severity of an analyzer finding (Istio `AnalysisMessageBase.Level`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnalysisLevel {
    /// Level not set.
    #[default]
    Unknown,
    /// A problem that breaks the configuration.
    Error,
    /// A problem that may break the configuration.
    Warning,
    /// Information only.
    Info,
}

impl Condition {
    /// A condition of `type_` with `status` (`True`, `False`, `Unknown`), `reason`, `message`
    /// and `observed_generation`, as a controller writes it: `lastTransitionTime` is kept from
    /// `previous` (the object's current condition of that type) when its status is the same,
    /// else it is `now` (RFC 3339) — Kubernetes' `meta.SetStatusCondition` rule.
    pub fn observed(
        type_: &str,
        status: &str,
        reason: String,
        message: String,
        observed_generation: Option<i64>,
        previous: Option<&Condition>,
        now: &str,
    ) -> Self {
        let last_transition_time = previous
            .filter(|old| old.status == status)
            .and_then(|old| old.last_transition_time.clone())
            .unwrap_or_else(|| now.to_owned());
        Self {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: Some(reason),
            message: Some(message),
            last_transition_time: Some(last_transition_time),
            last_probe_time: None,
            observed_generation,
        }
    }
}

impl IstioStatus {
    /// The condition of the given type, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
