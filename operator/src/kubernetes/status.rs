//! Status conditions of the mesh config objects (issue 7): the pure reconcile of one object
//! and, in [`controller`], the thin loop that writes it.
//!
//! Every VirtualService, DestinationRule, Gateway, ServiceEntry, Sidecar, WorkloadEntry,
//! PeerAuthentication, AuthorizationPolicy and RequestAuthentication gets, in its status
//! subresource ([`IstioStatus`]):
//!
//! - `Accepted`: the object passes the validating webhook's rules
//!   ([`weft_webhook::validate`], reason [`REASON_INVALID`] otherwise) and no field of it was
//!   reported by Pilot as one the proxy model cannot express ([`weft_pilot::Unsupported`],
//!   reason [`REASON_UNSUPPORTED`]). The message names the field paths.
//! - `Resolved`: the analyzers ([`weft_analyze`]) found every reference: hosts, subsets,
//!   gateways, and selectors that select something (Istio codes `IST0101`, `IST0127`, Weft's
//!   `WEFT0001`). The reason is the analyzer message's name.
//! - `Reconciled`: every connected proxy acknowledged a config built from a view that held
//!   this generation (the discovery server's builder sequence numbers; reason
//!   [`REASON_PENDING`] with "N of M proxies acknowledged" otherwise).
//! - `Ready`: the summary read by the `Ready` printer column.
//!
//! Each condition carries `observedGeneration`, and `lastTransitionTime` changes only when the
//! condition's status does. `validationMessages` holds every analyzer message about the
//! object, with Istio's codes. [`desired_status`] is a pure function of the object, its current
//! status and the [`Facts`] gathered from one cluster view; it also returns the Kubernetes
//! Events (warnings) to publish when a condition turns `False` or its message changes.

pub mod controller;
pub mod facts;
pub mod metrics;
pub mod tracker;

#[cfg(test)]
mod tests;

use std::fmt;

use weft_analyze::{Level, Message};
use weft_crds::MeshObject;
use weft_crds::status::{
    AnalysisLevel, AnalysisMessage, AnalysisMessageType, CONDITION_ACCEPTED, CONDITION_READY,
    CONDITION_RECONCILED, CONDITION_RESOLVED, Condition, IstioStatus,
};
use weft_pilot::Unsupported;
use weft_webhook::Validation;

/// Condition status `True` (Kubernetes `metav1.ConditionTrue`).
pub const TRUE: &str = "True";
/// Condition status `False` (Kubernetes `metav1.ConditionFalse`).
pub const FALSE: &str = "False";
/// Condition status `Unknown` (Kubernetes `metav1.ConditionUnknown`).
pub const UNKNOWN: &str = "Unknown";

/// `Accepted=True`: valid, and every field is supported.
pub const REASON_ACCEPTED: &str = "Accepted";
/// `Accepted=False`: the object breaks a validation rule (the webhook would refuse it).
pub const REASON_INVALID: &str = "Invalid";
/// `Accepted=False`: a field reaches a proxy but Weft's proxy model cannot express it.
pub const REASON_UNSUPPORTED: &str = "Unsupported";
/// `Resolved=True`: every reference was found.
pub const REASON_RESOLVED: &str = "Resolved";
/// `Reconciled=True`: every connected proxy acknowledged this generation.
pub const REASON_RECONCILED: &str = "Reconciled";
/// `Reconciled=True` with no proxy connected: nothing to wait for.
pub const REASON_NO_PROXIES: &str = "NoProxies";
/// `Reconciled=False` (some proxies have not acknowledged yet) or `Unknown` (no config was
/// built from this generation yet).
pub const REASON_PENDING: &str = "Pending";
/// `Ready=True`: accepted, resolved and reconciled.
pub const REASON_READY: &str = "Ready";

/// The analyzer codes that make `Resolved=False`: Istio's `IST0101`
/// (ReferencedResourceNotFound) and `IST0127` (NoMatchingWorkloadsFound), Weft's `WEFT0001`
/// (DestinationRuleHostNotFound).
pub const RESOLUTION_CODES: &[&str] = &["IST0101", "IST0127", "WEFT0001"];

/// The most bytes of a condition message or event note (Kubernetes Events allow 1 KiB notes);
/// longer texts are cut at a character boundary and end with `…`.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// One mesh object: kind (`VirtualService`), namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// The kind, as in `kind:` and in [`Unsupported::kind`].
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// The name.
    pub name: String,
}

impl ObjectKey {
    /// The key of an object of `kind` with `meta` (`metadata.namespace` or `""`,
    /// `metadata.name` or `""`).
    pub fn new(kind: &str, meta: &kube::core::ObjectMeta) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// The key of `object` (its `kind()` and metadata, see [`ObjectKey::new`]).
    pub fn of(object: &MeshObject) -> Self {
        Self::new(object.kind(), object.meta())
    }
}

impl fmt::Display for ObjectKey {
    /// Writes `Kind namespace/name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// How far the object's generation has reached the proxies.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rollout<'a> {
    /// The sequence number of the first discovery builder whose view held this generation
    /// ([`tracker::FirstSeen`]); `None` when no builder held it yet.
    pub built_in: Option<u64>,
    /// Per connected proxy, the newest builder sequence it acknowledged
    /// (`DiscoveryServer::acked_seqs`), `None` before its first ACK.
    pub acked: &'a [Option<u64>],
}

/// What [`desired_status`] knows besides the object and its current status, gathered from
/// one cluster view ([`facts::ViewFacts`]).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The validating webhook's findings for this object ([`weft_webhook::validate`]),
    /// computed once per view.
    pub validation: &'a Validation,
    /// Pilot's unsupported-field warnings about this object.
    pub unsupported: &'a [Unsupported],
    /// The analyzer messages about this object, in the analyzer's order.
    pub analysis: &'a [Message],
    /// The rollout of this generation to the proxies.
    pub rollout: Rollout<'a>,
    /// Now, RFC 3339 (`2026-01-02T03:04:05Z`): the `lastTransitionTime` of changed conditions.
    pub now: &'a str,
}

/// A Warning Event to publish about the object (kube-runtime `events::Event`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusEvent {
    /// CamelCase reason: the failing condition's reason (`Invalid`, `Unsupported`,
    /// `ReferencedResourceNotFound`…).
    pub reason: String,
    /// The action (Kubernetes Events `action`): `Validate` for `Accepted`, `Resolve` for
    /// `Resolved`.
    pub action: String,
    /// The human-readable note (at most [`MAX_MESSAGE_BYTES`]), naming the field paths.
    pub note: String,
}

/// The outcome of [`desired_status`].
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The status the object should have.
    pub status: IstioStatus,
    /// The Warning Events to publish along with it (empty when nothing turned bad or changed).
    pub events: Vec<StatusEvent>,
}

/// Computes the status `object` should have, and the events to publish.
///
/// Takes the object (its `metadata.generation`), its current status (for
/// `lastTransitionTime` and for deciding which events are new) and the [`Facts`]. Returns the
/// four conditions (`Accepted`, `Resolved`, `Reconciled`, `Ready`, in that order) each with
/// `observedGeneration`, the top-level `observedGeneration` and `validationMessages`. Pure:
/// no I/O, deterministic for equal inputs; never fails.
pub fn desired_status(
    object: &MeshObject,
    current: Option<&IstioStatus>,
    facts: &Facts<'_>,
) -> Desired {
    let generation = object.meta().generation;
    let accepted = accepted(facts);
    let resolved = resolved(facts.analysis);
    let reconciled = reconciled(generation, facts.rollout);
    let ready = ready(&[&accepted, &resolved, &reconciled]);
    let conditions: Vec<Condition> = [accepted, resolved, reconciled, ready]
        .into_iter()
        .map(|draft| draft.into_condition(generation, current, facts.now))
        .collect();
    let events = [
        (CONDITION_ACCEPTED, "Validate"),
        (CONDITION_RESOLVED, "Resolve"),
    ]
    .into_iter()
    .filter_map(|(type_, action)| {
        let new = conditions.iter().find(|c| c.type_ == type_)?;
        let old = current.and_then(|status| status.condition(type_));
        let changed = old.is_none_or(|old| {
            old.status != new.status
                || old.message != new.message
                || old.observed_generation != new.observed_generation
        });
        (new.status == FALSE && changed).then(|| StatusEvent {
            reason: new.reason.clone().unwrap_or_default(),
            action: action.to_owned(),
            note: new.message.clone().unwrap_or_default(),
        })
    })
    .collect();
    Desired {
        status: IstioStatus {
            conditions,
            validation_messages: facts.analysis.iter().map(analysis_message).collect(),
            observed_generation: generation,
        },
        events,
    }
}

/// Whether `status` waits for proxies: its `Reconciled` condition is present and not `True`.
/// The controller polls the acknowledgements while any object does.
pub fn is_pending(status: &IstioStatus) -> bool {
    status
        .condition(CONDITION_RECONCILED)
        .is_some_and(|c| c.status != TRUE)
}

/// A condition before its timestamps and generation are set.
#[derive(Debug, Clone)]
struct Draft {
    type_: &'static str,
    status: &'static str,
    reason: String,
    message: String,
}

impl Draft {
    fn new(
        type_: &'static str,
        status: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// The condition, keeping the current `lastTransitionTime` when the status did not change.
    fn into_condition(
        self,
        generation: Option<i64>,
        current: Option<&IstioStatus>,
        now: &str,
    ) -> Condition {
        Condition::observed(
            self.type_,
            self.status,
            self.reason,
            truncate(self.message),
            generation,
            current.and_then(|status| status.condition(self.type_)),
            now,
        )
    }
}

/// Whether the analyzer reports a resolution problem at `path` or inside it (or the other
/// way round): Pilot reports an unknown destination host or subset as unsupported too (it
/// routes to `BlackHoleCluster`), and that is a `Resolved` problem, not an `Accepted` one.
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    };
    inside(a, b) || inside(b, a)
}

fn is_resolution(message: &Message) -> bool {
    RESOLUTION_CODES.contains(&message.code)
}

fn accepted(facts: &Facts<'_>) -> Draft {
    let validation = facts.validation;
    if !validation.is_valid() {
        let findings: Vec<String> = validation.errors.iter().map(|f| f.to_string()).collect();
        return Draft::new(
            CONDITION_ACCEPTED,
            FALSE,
            REASON_INVALID,
            findings.join("; "),
        );
    }
    let mut unsupported: Vec<&Unsupported> = facts
        .unsupported
        .iter()
        .filter(|u| {
            !facts
                .analysis
                .iter()
                .any(|m| is_resolution(m) && overlaps(&m.path, &u.field_path))
        })
        .collect();
    unsupported.sort();
    unsupported.dedup();
    if !unsupported.is_empty() {
        let fields: Vec<String> = unsupported
            .iter()
            .map(|u| format!("{}: {}", u.field_path, u.reason))
            .collect();
        return Draft::new(
            CONDITION_ACCEPTED,
            FALSE,
            REASON_UNSUPPORTED,
            fields.join("; "),
        );
    }
    Draft::new(
        CONDITION_ACCEPTED,
        TRUE,
        REASON_ACCEPTED,
        "the object is valid and every field it uses is supported",
    )
}

fn resolved(analysis: &[Message]) -> Draft {
    let problems: Vec<&Message> = analysis.iter().filter(|m| is_resolution(m)).collect();
    match problems.first() {
        None => Draft::new(
            CONDITION_RESOLVED,
            TRUE,
            REASON_RESOLVED,
            "every reference resolves",
        ),
        Some(first) => {
            let texts: Vec<String> = problems.iter().map(|m| located(m)).collect();
            Draft::new(CONDITION_RESOLVED, FALSE, first.name, texts.join("; "))
        }
    }
}

fn reconciled(generation: Option<i64>, rollout: Rollout<'_>) -> Draft {
    let generation = generation.map_or_else(|| "?".to_owned(), |g| g.to_string());
    let Some(seq) = rollout.built_in else {
        return Draft::new(
            CONDITION_RECONCILED,
            UNKNOWN,
            REASON_PENDING,
            format!("no proxy config has been built from generation {generation} yet"),
        );
    };
    let total = rollout.acked.len();
    if total == 0 {
        return Draft::new(
            CONDITION_RECONCILED,
            TRUE,
            REASON_NO_PROXIES,
            "no proxy is connected; nothing to wait for",
        );
    }
    let acked = rollout
        .acked
        .iter()
        .filter(|acked| acked.is_some_and(|acked| acked >= seq))
        .count();
    if acked == total {
        // No count in the message: it would change (and be written) with every proxy that
        // connects.
        Draft::new(
            CONDITION_RECONCILED,
            TRUE,
            REASON_RECONCILED,
            format!(
                "every connected proxy acknowledged a config built from generation {generation}"
            ),
        )
    } else {
        Draft::new(
            CONDITION_RECONCILED,
            FALSE,
            REASON_PENDING,
            format!(
                "{acked} of {total} proxies acknowledged a config built from generation {generation}"
            ),
        )
    }
}

fn ready(parts: &[&Draft]) -> Draft {
    let first = |status: &str| parts.iter().find(|d| d.status == status);
    match first(FALSE).or_else(|| first(UNKNOWN)) {
        Some(part) => Draft::new(
            CONDITION_READY,
            part.status,
            part.reason.clone(),
            format!("{}: {}", part.type_, part.message),
        ),
        None => Draft::new(
            CONDITION_READY,
            TRUE,
            REASON_READY,
            "accepted, every reference resolved, and acknowledged by every connected proxy",
        ),
    }
}

/// `path: message`, or the message alone when the path is empty.
fn located(message: &Message) -> String {
    if message.path.is_empty() {
        message.message.clone()
    } else {
        format!("{}: {}", message.path, message.message)
    }
}

/// An analyzer message as Istio's `AnalysisMessageBase` (plus the text, naming the path).
fn analysis_message(message: &Message) -> AnalysisMessage {
    AnalysisMessage {
        type_: AnalysisMessageType {
            name: message.name.to_owned(),
            code: message.code.to_owned(),
        },
        level: match message.level {
            Level::Error => AnalysisLevel::Error,
            Level::Warning => AnalysisLevel::Warning,
            Level::Info => AnalysisLevel::Info,
        },
        documentation_url: message.documentation_url.clone(),
        message: Some(truncate(located(message))),
    }
}

/// `text` cut to at most [`MAX_MESSAGE_BYTES`] bytes at a character boundary, ending with `…`
/// when cut.
fn truncate(mut text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let mut end = MAX_MESSAGE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}
