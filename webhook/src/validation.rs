//! Semantic validation of mesh objects: the rules Istio's validating webhook (Galley,
//! `pkg/config/validation`) applies after a document has parsed.
//!
//! Parsing (`weft_crds::object::MeshObject::from_value`) already refuses wrong types, unknown
//! fields and unknown enum values. [`validate`] is what comes after: host names and wildcards,
//! port ranges, route weights, durations, regular expressions, TLS settings, policy shapes.
//! It is a pure function from one object to its [`Validation`] — errors (the object must be
//! refused) and warnings (legal but probably not what was meant) — each a [`Finding`] naming
//! the field path in the notation the parser uses (`spec.http[0].route[1].weight`).
//!
//! One module per kind; shared field rules live in `fields`. The same function backs the
//! webhook ([`crate::admission::handle_validate_body`]), and is meant for the operator's
//! status conditions and `weftctl analyze`, so all three agree.

mod authorization_policy;
mod destination_rule;
mod fields;
mod gateway;
pub(crate) mod parse;
mod path;
mod peer_authentication;
mod request_authentication;
mod service_entry;
mod sidecar;
mod virtual_service;
mod workload_entry;

use std::fmt;

use weft_crds::MeshObject;

/// One problem found in an object: the field path and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The field path, e.g. `spec.http[0].route[1].weight`; `spec` for whole-object rules.
    pub path: String,
    /// The rule, e.g. `must be between 0 and 100`.
    pub message: String,
}

impl Finding {
    /// The finding of an error whose text reads `path: message` (the parser's and
    /// `MeshSpec::validate`'s errors, which carry their path): `message` is the text without
    /// that prefix, or the whole text when it does not start with it.
    pub fn from_error_text(path: String, text: String) -> Self {
        let message = text
            .strip_prefix(&format!("{path}: "))
            .map(str::to_string)
            .unwrap_or(text);
        Self { path, message }
    }
}

impl fmt::Display for Finding {
    /// Writes `path: message`, e.g. `spec.http[0].route[1].weight: must be between 0 and 100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// The outcome of [`validate`]: errors refuse the object, warnings are shown to the user
/// (Kubernetes admission `warnings`) but let it through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Rules the object breaks; non-empty means the object must be refused.
    pub errors: Vec<Finding>,
    /// Legal but questionable settings.
    pub warnings: Vec<Finding>,
}

impl Validation {
    /// True when there are no errors (warnings allowed).
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Validates one parsed mesh object against Istio's semantic rules for its kind.
///
/// Takes the object; returns every error and warning found (never stops at the first). Pure:
/// no I/O, no look-ups of other objects. `Mesh` objects are checked by
/// `weft_crds::mesh::MeshSpec::validate`.
pub fn validate(object: &MeshObject) -> Validation {
    let mut report = Report::default();
    match object {
        MeshObject::VirtualService(o) => virtual_service::check(&o.spec, &mut report),
        MeshObject::DestinationRule(o) => destination_rule::check(&o.spec, &mut report),
        MeshObject::Gateway(o) => gateway::check(&o.spec, &mut report),
        MeshObject::ServiceEntry(o) => service_entry::check(&o.spec, &mut report),
        MeshObject::Sidecar(o) => sidecar::check(&o.spec, &mut report),
        MeshObject::WorkloadEntry(o) => workload_entry::check(&o.spec, "spec", &mut report),
        MeshObject::PeerAuthentication(o) => peer_authentication::check(&o.spec, &mut report),
        MeshObject::AuthorizationPolicy(o) => {
            authorization_policy::check(&o.spec, o.metadata.namespace.as_deref(), &mut report)
        }
        MeshObject::RequestAuthentication(o) => {
            request_authentication::check(&o.spec, o.metadata.namespace.as_deref(), &mut report)
        }
        MeshObject::Mesh(o) => {
            for error in o.spec.validate() {
                let finding = Finding::from_error_text(error.path().to_string(), error.to_string());
                report.0.errors.push(finding);
            }
        }
    }
    report.0
}

/// Reads and validates one object given as JSON (as an admission request carries it).
///
/// Takes the object's JSON value. Returns its [`Validation`]; when the value does not parse as
/// a mesh object (`weft_crds::object::MeshObject::from_value`: missing `apiVersion`/`kind`,
/// an unserved kind or version, a wrong type, an unknown field or enum value) the parse error
/// is the one error, with its field path (`apiVersion` for kind and version problems,
/// `(document)` when there is no path).
pub fn validate_value(value: serde_json::Value) -> Validation {
    // Plain serde first; the path-tracking parser only to explain a failure.
    if let Some(object) = parse::read_fast(&value) {
        return validate(&object);
    }
    match MeshObject::from_value(value) {
        Ok(object) => validate(&object),
        Err(error) => Validation {
            errors: vec![Finding::from_error_text(
                error.path().unwrap_or("(document)").to_string(),
                error.to_string(),
            )],
            warnings: Vec::new(),
        },
    }
}

/// Collects findings while a kind's rules run.
#[derive(Default)]
pub(crate) struct Report(Validation);

impl Report {
    /// Records an error at `path`.
    pub(crate) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.errors.push(Finding {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Records a warning at `path`.
    pub(crate) fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.warnings.push(Finding {
            path: path.into(),
            message: message.into(),
        });
    }
}
