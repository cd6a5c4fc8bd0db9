//! Fuzzes `validate_value` with arbitrary JSON documents (mesh objects): it must never panic,
//! and its findings must equal those of the reference path (`MeshObject::from_value`, the
//! path-tracking parser, then `validate`), so the fast parse changes nothing but speed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use weft_crds::MeshObject;
use weft_webhook::{Finding, Validation, validate, validate_value};

/// `validate_value` as it was before the fast parse: always through the path-tracking parser.
fn reference(value: Value) -> Validation {
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

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    assert_eq!(validate_value(value.clone()), reference(value));
});
