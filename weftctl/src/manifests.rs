//! `weftctl manifests`: the same CRDs `crdgen` writes, for users without a source checkout.

use std::path::{Path, PathBuf};

/// Writes every CRD into `dir` as `<group>_<plural>.yaml`, creating the directory. Returns the
/// paths written. Errors when a file cannot be written or a CRD cannot be rendered.
pub fn write_crds(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for crd in weft_crds::crd::all()? {
        let path = dir.join(weft_crds::crd::file_name(&crd));
        std::fs::write(&path, weft_crds::crd::to_yaml(&crd)?)?;
        written.push(path);
    }
    Ok(written)
}
