//! Validation rules, file by file: every `testdata/validation/<kind>/valid-*.yaml` must have
//! no errors, every `invalid-*.yaml` exactly the errors its `# expect: <path>: <substring>`
//! header lines name; `# warn: <path>: <substring>` lines name the expected warnings of either
//! kind of file (none when absent). Then Istio's own examples (`crds/testdata/valid`) must all
//! pass, except the one document using fields Istio's validation refuses.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::path::{Path, PathBuf};

use weft_crds::parse_documents;
use weft_webhook::validation::{Finding, Validation, validate, validate_value};

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Validates the single document of `text`, parse errors included (as the webhook does).
fn validate_text(text: &str) -> Validation {
    let value: serde_json::Value = serde_yaml::from_str(text).unwrap();
    validate_value(value)
}

/// `# <tag> path: substring` header lines.
fn expectations(text: &str, tag: &str) -> Vec<(String, String)> {
    text.lines()
        .take_while(|l| l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(&format!("# {tag}: ")))
        .map(|rest| {
            let (path, message) = rest.split_once(": ").unwrap_or((rest, ""));
            (path.trim().to_string(), message.trim().to_string())
        })
        .collect()
}

/// Checks `found` is exactly `expected` (same count, each expectation met by its own
/// finding); returns what differs.
fn differences(
    file: &Path,
    what: &str,
    found: &[Finding],
    expected: &[(String, String)],
) -> Vec<String> {
    let mut out = Vec::new();
    let mut unmatched: Vec<&Finding> = found.iter().collect();
    for (path, substring) in expected {
        let position = unmatched
            .iter()
            .position(|f| f.path == *path && f.message.contains(substring.as_str()));
        match position {
            Some(i) => {
                unmatched.remove(i);
            }
            None => out.push(format!(
                "{}: expected {what} `{path}: {substring}` not found",
                file.display()
            )),
        }
    }
    for finding in unmatched {
        out.push(format!("{}: unexpected {what} `{finding}`", file.display()));
    }
    out
}

#[test]
fn testdata_pairs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/validation");
    let files = yaml_files(&root);
    let count = files.len();
    let (mut valid, mut invalid) = (0, 0);
    let mut failures = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let outcome = validate_text(&text);
        let warnings = expectations(&text, "warn");
        if name.starts_with("valid-") {
            valid += 1;
            failures.extend(differences(&file, "error", &outcome.errors, &[]));
        } else if name.starts_with("invalid-") {
            invalid += 1;
            let expected = expectations(&text, "expect");
            assert!(
                !expected.is_empty(),
                "{}: no `# expect:` lines",
                file.display()
            );
            failures.extend(differences(&file, "error", &outcome.errors, &expected));
        } else {
            panic!(
                "{}: name must start with valid- or invalid-",
                file.display()
            );
        }
        failures.extend(differences(&file, "warning", &outcome.warnings, &warnings));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(count >= 100, "only {count} validation cases found");
    assert!(valid > 0 && invalid > 0);
}

/// The crds corpus document with `exponentialDelay` and `http2Error`.
const SCHEMA_ONLY: &str = "virtualservice-schema-only-fault-fields.yaml";

#[test]
fn istio_examples_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds/testdata/valid");
    let files = yaml_files(&root);
    assert!(files.len() > 30, "corpus not found at {}", root.display());
    let mut refused = false;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in parse_documents(&text).unwrap() {
            let object = document.result.unwrap();
            let outcome = validate(&object);
            if file.ends_with(SCHEMA_ONLY) {
                refused = true;
                let paths: Vec<&str> = outcome.errors.iter().map(|f| f.path.as_str()).collect();
                assert_eq!(
                    paths,
                    [
                        "spec.http[0].fault.delay.exponentialDelay",
                        "spec.http[0].fault.abort.http2Error"
                    ],
                    "{outcome:#?}"
                );
                assert!(
                    outcome
                        .errors
                        .iter()
                        .all(|f| f.message.contains("not supported"))
                );
            } else {
                assert!(
                    outcome.errors.is_empty(),
                    "{} document {}: {:#?}",
                    file.display(),
                    document.index,
                    outcome.errors
                );
            }
        }
    }
    assert!(refused, "{SCHEMA_ONLY} not found in the corpus");
}

#[test]
fn finding_display() {
    let finding = Finding {
        path: "spec.http[0].route[1].weight".into(),
        message: "must be between 0 and 100".into(),
    };
    assert_eq!(
        finding.to_string(),
        "spec.http[0].route[1].weight: must be between 0 and 100"
    );
}
