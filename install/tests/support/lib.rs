//! Shared by the integration tests: the repository root and the generated files.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::Value;

/// The repository root (the parent of this crate).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file `weft-bundle` generates from the repository's `config/`.
pub fn generated() -> BTreeMap<String, String> {
    static FILES: OnceLock<BTreeMap<String, String>> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let inputs = weft_install::generate::read_inputs(&root()).unwrap();
            weft_install::generate::outputs(&inputs).unwrap()
        })
        .clone()
}

/// The CSV's path among the generated files.
pub fn csv_path() -> String {
    format!(
        "{}/{}",
        weft_install::bundle::MANIFESTS_DIR,
        weft_install::bundle::CSV_FILE
    )
}

/// The generated CSV as JSON.
pub fn csv(files: &BTreeMap<String, String>) -> Value {
    serde_yaml::from_str(&files[&csv_path()]).unwrap()
}

/// `files` with the CSV changed by `edit`.
pub fn with_csv(
    mut files: BTreeMap<String, String>,
    edit: impl FnOnce(&mut Value),
) -> BTreeMap<String, String> {
    let mut value = csv(&files);
    edit(&mut value);
    files.insert(csv_path(), serde_yaml::to_string(&value).unwrap());
    files
}
