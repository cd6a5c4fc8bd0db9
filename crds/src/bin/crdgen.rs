//! `crdgen`: writes every CRD Weft serves into a directory (default `config/crd/bases`), and
//! the `kustomization.yaml` listing them into that directory's parent.
//!
//! Usage: `crdgen [DIR]`. Run by `make manifests`; CI re-runs it and fails on drift. Generated
//! files in DIR that no kind produces any more (they start with the generated header) are
//! removed, so a renamed kind leaves no stale CRD behind.

use std::path::{Path, PathBuf};

use weft_crds::crd;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Adds the file being worked on to an I/O error.
fn at<T>(r: std::io::Result<T>, what: &str, path: &Path) -> Result<T> {
    r.map_err(|e| format!("{what} {}: {e}", path.display()).into())
}

fn main() -> Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config/crd/bases"));
    at(std::fs::create_dir_all(&dir), "creating", &dir)?;
    let crds = crd::all()?;
    let mut written = Vec::new();
    for c in &crds {
        let name = crd::file_name(c);
        let path = dir.join(&name);
        at(std::fs::write(&path, crd::to_yaml(c)?), "writing", &path)?;
        println!("wrote {}", path.display());
        written.push(name);
    }
    remove_stale(&dir, &written)?;

    let bases_name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or("the CRD directory must have a UTF-8 name")?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let kustomization = parent.join("kustomization.yaml");
    at(
        std::fs::write(&kustomization, crd::kustomization(&crds, bases_name)),
        "writing",
        &kustomization,
    )?;
    println!("wrote {}", kustomization.display());
    Ok(())
}

/// Removes generated YAML files in `dir` that are not in `keep`.
fn remove_stale(dir: &Path, keep: &[String]) -> Result<()> {
    for entry in at(std::fs::read_dir(dir), "reading", dir)? {
        let path = at(entry, "reading", dir)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !name.ends_with(".yaml") || keep.iter().any(|k| k == name) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.starts_with(crd::GENERATED_HEADER) {
            at(std::fs::remove_file(&path), "removing", &path)?;
            println!("removed stale {}", path.display());
        }
    }
    Ok(())
}
