//! Standalone mode's configuration source: every `*.yaml`/`*.yml`/`*.json` file in a directory,
//! each holding one or more mesh documents (Istio YAML, and Weft's `Mesh`).
//!
//! A file that fails to parse is reported with the file, the document index and the field path,
//! and the last good version of that file stays in force; the other files still update. This is
//! the "a rejected config leaves the last good one in force" rule applied per file.
//!
//! Kubernetes `Secret` documents (type `kubernetes.io/tls` or `Opaque`) are accepted too, as the
//! source of gateway certificates named by Istio's `credentialName`; their data is never
//! logged (problems name the file, document and field only) and [`ConfigDir::secrets`] hands
//! them to the view (`ClusterView::with_secrets`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use weft_crds::MeshObject;

/// One problem found in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    /// The file.
    pub file: PathBuf,
    /// The 0-based document index within the file, when the problem is in one document.
    pub document: Option<usize>,
    /// What is wrong, starting with the field path when there is one.
    pub message: String,
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.document {
            Some(d) => write!(
                f,
                "{} (document {}): {}",
                self.file.display(),
                d,
                self.message
            ),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

#[derive(Debug, Clone)]
struct FileState {
    modified: Option<SystemTime>,
    len: u64,
    /// The objects of the last version of this file that parsed completely.
    good: Vec<MeshObject>,
    /// The Secrets of that version.
    good_secrets: Vec<Secret>,
}

/// The documents of one file: mesh objects and Secrets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileObjects {
    /// Mesh documents (Istio kinds and Weft's `Mesh`), in document order.
    pub mesh: Vec<MeshObject>,
    /// Kubernetes Secrets, in document order. Their `Debug` shows their data: never log them.
    pub secrets: Vec<Secret>,
}

/// The result of a scan.
#[derive(Debug, Default)]
pub struct ScanOutcome {
    /// Whether the set of objects in force changed.
    pub changed: bool,
    /// Problems found in files that changed during this scan (each reported once per change).
    pub problems: Vec<FileProblem>,
}

/// Watches one directory of mesh YAML by polling modification times.
#[derive(Debug)]
pub struct ConfigDir {
    dir: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
}

/// Reads one file's mesh documents (Secret documents are accepted and left out; see
/// [`read_file_objects`]). A file is all-or-nothing: when any document is bad, the whole file
/// is refused (its previous good version stays), so that a half-applied file never mixes old
/// and new objects.
pub fn read_file(path: &Path) -> Result<Vec<MeshObject>, Vec<FileProblem>> {
    read_file_objects(path).map(|objects| objects.mesh)
}

/// Reads one file's documents: mesh objects and Kubernetes `Secret`s (any `type`; Istio reads
/// `kubernetes.io/tls` and `Opaque` ones). All-or-nothing as [`read_file`]. A Secret that does
/// not decode is reported without the decoder's message, which could quote its data.
pub fn read_file_objects(path: &Path) -> Result<FileObjects, Vec<FileProblem>> {
    let problem = |document, message: String| FileProblem {
        file: path.to_path_buf(),
        document,
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| vec![problem(None, e.to_string())])?;
    let mut objects = FileObjects::default();
    let mut problems = Vec::new();
    let documents =
        weft_pilot::yaml_documents(&text).map_err(|e| vec![problem(None, e.to_string())])?;
    for (index, value) in documents {
        let is_secret = value.get("kind").and_then(serde_json::Value::as_str) == Some("Secret")
            && value.get("apiVersion").and_then(serde_json::Value::as_str) == Some("v1");
        if is_secret {
            match serde_json::from_value::<Secret>(value) {
                Ok(secret) => objects.secrets.push(secret),
                Err(_) => problems.push(problem(
                    Some(index),
                    "Secret: a field does not decode (the decoder's message is withheld because \
                     it may quote secret data; `data` values must be base64, `stringData` \
                     values strings)"
                        .to_owned(),
                )),
            }
            continue;
        }
        match MeshObject::from_value(value) {
            Ok(object) => objects.mesh.push(object),
            Err(e) => problems.push(problem(Some(index), e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(objects)
    } else {
        Err(problems)
    }
}

fn is_config_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

impl ConfigDir {
    /// A watcher of `dir`; nothing is read until [`ConfigDir::scan`].
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            files: BTreeMap::new(),
        }
    }

    /// The directory watched.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Re-reads files whose size or modification time changed, drops files that were removed,
    /// and reports whether the objects in force changed. A directory that cannot be listed is
    /// one problem and changes nothing.
    pub fn scan(&mut self) -> ScanOutcome {
        let mut outcome = ScanOutcome::default();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) => {
                outcome.problems.push(FileProblem {
                    file: self.dir.clone(),
                    document: None,
                    message: format!("cannot list directory: {e}"),
                });
                return outcome;
            }
        };
        let mut seen = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !is_config_file(&path) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            seen.push(path.clone());
            let modified = meta.modified().ok();
            let len = meta.len();
            if let Some(state) = self.files.get(&path)
                && state.modified == modified
                && state.len == len
            {
                continue;
            }
            match read_file_objects(&path) {
                Ok(objects) => {
                    let previous = self.files.insert(
                        path,
                        FileState {
                            modified,
                            len,
                            good: objects.mesh.clone(),
                            good_secrets: objects.secrets.clone(),
                        },
                    );
                    let unchanged = previous.is_some_and(|p| {
                        p.good == objects.mesh && p.good_secrets == objects.secrets
                    });
                    if !unchanged {
                        outcome.changed = true;
                    }
                }
                Err(problems) => {
                    outcome.problems.extend(problems);
                    // Remember the new mtime so the same bad version is reported once, but
                    // keep the last good objects in force.
                    let (good, good_secrets) = self
                        .files
                        .get(&path)
                        .map(|s| (s.good.clone(), s.good_secrets.clone()))
                        .unwrap_or_default();
                    self.files.insert(
                        path,
                        FileState {
                            modified,
                            len,
                            good,
                            good_secrets,
                        },
                    );
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|path, _| seen.contains(path));
        if self.files.len() != before {
            outcome.changed = true;
        }
        outcome
    }

    /// Every object in force, in file-name order then document order.
    pub fn objects(&self) -> Vec<MeshObject> {
        self.files
            .values()
            .flat_map(|s| s.good.iter().cloned())
            .collect()
    }

    /// Every Secret in force, in file-name order then document order; pass them to
    /// `ClusterView::with_secrets`. Never log them: their `Debug` shows their data.
    pub fn secrets(&self) -> Vec<Secret> {
        self.files
            .values()
            .flat_map(|s| s.good_secrets.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PA: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: demo}\nspec:\n  mtls: {mode: STRICT}\n";
    const PA_BAD: &str = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: demo}\nspec:\n  mtls: {mode: SOMETIMES}\n";

    fn write(dir: &Path, name: &str, text: &str) {
        // Different lengths make the change visible even within one mtime tick.
        std::fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn reads_documents_and_reports_changes() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "pa.yaml", PA);
        write(tmp.path(), "notes.txt", "not config");
        let mut dir = ConfigDir::new(tmp.path());
        let out = dir.scan();
        assert!(out.changed);
        assert!(out.problems.is_empty());
        assert_eq!(dir.objects().len(), 1);
        assert!(
            !dir.scan().changed,
            "an unchanged directory is not a change"
        );
    }

    #[test]
    fn a_bad_file_keeps_its_last_good_version_and_names_the_field() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "pa.yaml", PA);
        let mut dir = ConfigDir::new(tmp.path());
        dir.scan();
        write(tmp.path(), "pa.yaml", PA_BAD);
        let out = dir.scan();
        assert!(!out.changed);
        assert_eq!(out.problems.len(), 1);
        let p = &out.problems[0];
        assert_eq!(p.document, Some(0));
        assert!(p.message.starts_with("spec.mtls.mode:"), "{}", p.message);
        assert!(p.to_string().contains("pa.yaml (document 0)"), "{p}");
        let objects = dir.objects();
        assert_eq!(objects.len(), 1, "the last good version stays in force");
        match &objects[0] {
            MeshObject::PeerAuthentication(pa) => assert_eq!(
                pa.spec.mtls.as_ref().and_then(|m| m.mode),
                Some(weft_crds::security::MtlsMode::Strict)
            ),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            dir.scan().problems.is_empty(),
            "the same bad version is reported once"
        );
    }

    #[test]
    fn removing_a_file_removes_its_objects() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "pa.yaml", PA);
        let mut dir = ConfigDir::new(tmp.path());
        dir.scan();
        std::fs::remove_file(tmp.path().join("pa.yaml")).unwrap();
        assert!(dir.scan().changed);
        assert!(dir.objects().is_empty());
    }

    const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: web-cert, namespace: istio-system}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Q0VSVA==\n  tls.key: S0VZLVNFQ1JFVA==\n";

    #[test]
    fn secret_documents_are_read_beside_mesh_objects() {
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), "gateway.yaml", &format!("{PA}---\n{SECRET}"));
        let mut dir = ConfigDir::new(tmp.path());
        let out = dir.scan();
        assert!(out.changed && out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(dir.objects().len(), 1);
        let secrets = dir.secrets();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].metadata.name.as_deref(), Some("web-cert"));
        let key = &secrets[0].data.as_ref().unwrap()["tls.key"];
        assert_eq!(key.0, b"KEY-SECRET");
        // A change to the Secret alone is a change.
        write(
            tmp.path(),
            "gateway.yaml",
            &format!(
                "{PA}---\n{}",
                SECRET.replace("S0VZLVNFQ1JFVA==", "S0VZLU5FVw==")
            ),
        );
        assert!(dir.scan().changed);
        assert_eq!(
            dir.secrets()[0].data.as_ref().unwrap()["tls.key"].0,
            b"KEY-NEW"
        );
        assert_eq!(
            read_file(&tmp.path().join("gateway.yaml")).unwrap().len(),
            1
        );
    }

    #[test]
    fn a_bad_secret_is_reported_without_its_data() {
        let tmp = tempfile::tempdir().unwrap();
        let bad = SECRET.replace("S0VZLVNFQ1JFVA==", "[KEY-SECRET-TEXT]");
        write(tmp.path(), "gateway.yaml", &bad);
        let mut dir = ConfigDir::new(tmp.path());
        let out = dir.scan();
        assert_eq!(out.problems.len(), 1);
        let message = out.problems[0].to_string();
        assert!(message.contains("(document 0): Secret:"), "{message}");
        assert!(!message.contains("KEY-SECRET-TEXT"), "{message}");
        assert!(dir.secrets().is_empty());
    }
}
