//! Fuzzes `handle_validate_body` (`POST /validate`) with arbitrary request bodies: it must
//! never panic, every reply must be an AdmissionReview with status 200 or 400, and it must
//! give byte for byte the reply of `handle_validate_body_reference` (the path that reads
//! every body through a `serde_json::Value`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use weft_webhook::admission::{handle_validate_body, handle_validate_body_reference};

fuzz_target!(|body: &[u8]| {
    let (status, reply) = handle_validate_body(body);
    let (reference_status, reference_reply) = handle_validate_body_reference(body);
    assert_eq!(status, reference_status);
    assert!(
        reply == reference_reply,
        "replies differ:\n{}\n{}",
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&reference_reply)
    );
    let reply: Value = serde_json::from_slice(&reply).expect("every reply is JSON");
    assert_eq!(reply["kind"], "AdmissionReview", "{reply}");
    assert!(
        status == 200 || status == 400,
        "unexpected status {status}: {reply}"
    );
});
