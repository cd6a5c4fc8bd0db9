//! Fuzzes `handle_validate_body` (`POST /validate`) with arbitrary request bodies: it must
//! never panic, and every reply must be an AdmissionReview with status 200 or 400.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use weft_webhook::admission::handle_validate_body;

fuzz_target!(|body: &[u8]| {
    let (status, reply) = handle_validate_body(body);
    let reply: Value = serde_json::from_slice(&reply).expect("every reply is JSON");
    assert_eq!(reply["kind"], "AdmissionReview", "{reply}");
    assert!(
        status == 200 || status == 400,
        "unexpected status {status}: {reply}"
    );
});
