//! `crdgen`: writes every CRD Weft serves into a directory (default `config/crd/bases`).
//!
//! Usage: `crdgen [DIR]`. Run by `make manifests`; CI re-runs it and fails on drift.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("config/crd/bases"));
    std::fs::create_dir_all(&dir)?;
    for crd in weft_crds::crd::all()? {
        let path = dir.join(weft_crds::crd::file_name(&crd));
        std::fs::write(&path, weft_crds::crd::to_yaml(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
