//! Validation: every object through the validating webhook's rules
//! (`weft_webhook::validation::validate`), as Istio's `schema.ValidationAnalyzer` runs its
//! webhook validation. Errors (and documents that do not parse) become `IST0106`
//! SchemaValidationError, warnings `IST0133` SchemaWarning, each with the finding's field path
//! and message.

use crate::message::{Message, SCHEMA_VALIDATION_ERROR, SCHEMA_WARNING};

use super::Context;

/// Reports every validation error and warning, and every unreadable document.
pub(crate) fn analyze(context: &Context<'_>, out: &mut Vec<Message>) {
    for unreadable in &context.input.unreadable {
        out.push(schema_error(
            &unreadable.resource,
            &unreadable.finding.path,
            &unreadable.finding.message,
        ));
    }
    for entry in &context.input.mesh_objects {
        let validation = weft_webhook::validate(&entry.object);
        for finding in &validation.errors {
            out.push(schema_error(
                &entry.resource,
                &finding.path,
                &finding.message,
            ));
        }
        for finding in &validation.warnings {
            out.push(Message::new(
                SCHEMA_WARNING,
                Some(&entry.resource),
                finding.path.clone(),
                format!("Schema validation warning: {}", finding.message),
            ));
        }
    }
}

fn schema_error(resource: &crate::message::ResourceRef, path: &str, message: &str) -> Message {
    Message::new(
        SCHEMA_VALIDATION_ERROR,
        Some(resource),
        path,
        format!("Schema validation error: {message}"),
    )
}

#[cfg(test)]
mod tests {
    use super::super::test_support::run;
    use super::*;

    #[test]
    fn a_bad_weight_is_a_schema_error_with_the_webhooks_path() {
        let out = run(
            analyze,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: d}\n\
             spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 150\n",
        );
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].code, "IST0106");
        assert_eq!(out[0].path, "spec.http[0].route[0].weight");
        let expected = weft_webhook::validate_value(
            serde_yaml::from_str(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: d}\n\
                 spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 150\n",
            )
            .unwrap(),
        );
        assert_eq!(
            out[0].message,
            format!("Schema validation error: {}", expected.errors[0].message)
        );
    }

    #[test]
    fn an_unknown_enum_value_is_a_schema_error() {
        let out = run(
            analyze,
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\n\
             spec: {mtls: {mode: SOMETIMES}}\n",
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].path, "spec.mtls.mode");
        assert_eq!(
            out[0].resource.as_ref().unwrap().to_string(),
            "PeerAuthentication default/p"
        );
    }

    #[test]
    fn a_valid_object_gives_nothing() {
        let out = run(
            analyze,
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: d}\n\
             spec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n",
        );
        assert!(out.is_empty(), "{out:?}");
    }
}
