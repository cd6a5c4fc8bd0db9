//! `weftctl validate -f FILE|DIR ...`: offline, exactly the verdict the validating webhook
//! gives (like `istioctl validate`): the same parser, the same rules, the same messages and
//! field paths.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// Arguments of `weftctl validate`.
#[derive(clap::Args, Debug)]
pub struct ValidateArgs {
    /// Files or directories of YAML/JSON (directories: their `*.yaml`, `*.yml`, `*.json`).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
}

/// API groups whose objects are validated; other documents (Deployments, Services, ...) are
/// reported as skipped, as `istioctl validate` leaves non-Istio kinds to Kubernetes.
const MESH_GROUPS: &[&str] = &[
    "networking.istio.io/",
    "security.istio.io/",
    "mesh.weft.dev/",
];

/// The files of `paths`: files as given, directories' `*.yaml`, `*.yml` and `*.json` sorted
/// (shared by `validate` and `analyze`). Errors when a directory cannot be read.
pub(crate) fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries = Vec::new();
            for entry in
                std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
            {
                let entry = entry.with_context(|| format!("reading {}", path.display()))?;
                let file = entry.path();
                let yaml = matches!(
                    file.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                );
                if yaml && file.is_file() {
                    entries.push(file);
                }
            }
            entries.sort();
            out.extend(entries);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Validates every document; prints one line per finding (`FILE[doc N] Kind ns/name:
/// path: rule`) and a summary. Returns whether every mesh document was accepted. Errors when a
/// file cannot be read or is not YAML.
pub fn run(args: ValidateArgs) -> anyhow::Result<bool> {
    let (mut accepted, mut rejected, mut skipped) = (0, 0, 0);
    for file in expand(&args.files)? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        for (index, document) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = serde_json::Value::deserialize(document)
                .with_context(|| format!("{}: document {index} is not YAML", file.display()))?;
            if value.is_null() {
                continue;
            }
            let api_version = value["apiVersion"].as_str().unwrap_or_default();
            let kind = value["kind"].as_str().unwrap_or("?").to_string();
            let name = object_name(&value);
            if !MESH_GROUPS.iter().any(|g| api_version.starts_with(g)) {
                skipped += 1;
                continue;
            }
            let result = weft_webhook::validation::validate_value(value);
            let at = location(&file, index, &kind, &name);
            for warning in &result.warnings {
                println!("Warning: {at}: {warning}");
            }
            if result.is_valid() {
                accepted += 1;
            } else {
                rejected += 1;
                for error in &result.errors {
                    println!("Error: {at}: {error}");
                }
            }
        }
    }
    println!("{accepted} accepted, {rejected} rejected, {skipped} skipped (not a mesh kind)");
    Ok(rejected == 0)
}

fn object_name(value: &serde_json::Value) -> String {
    let name = value["metadata"]["name"].as_str().unwrap_or("?");
    match value["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    }
}

fn location(file: &Path, index: usize, kind: &str, name: &str) -> String {
    format!("{}[doc {index}] {kind} {name}", file.display())
}
