//! Shared helpers of the crds integration tests: the expected shape of every kind, the
//! generated CRDs as JSON, and the test corpus on disk.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};

use serde_json::Value;

/// What a kind's CRD must look like: group, served versions (storage last), scope and the
/// printer column names in order.
pub struct Expected {
    pub kind: &'static str,
    pub group: &'static str,
    pub versions: &'static [&'static str],
    pub storage: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub columns: &'static [&'static str],
}

const NET: &[&str] = &["v1alpha3", "v1beta1", "v1"];
const SEC: &[&str] = &["v1beta1", "v1"];

/// The ten kinds Weft serves, with Istio's short names and printer columns plus `Ready`.
pub const KINDS: &[Expected] = &[
    net(
        "VirtualService",
        &["vs"],
        &["Gateways", "Hosts", "Ready", "Age"],
    ),
    net("DestinationRule", &["dr"], &["Host", "Ready", "Age"]),
    net("Gateway", &["gw"], &["Ready", "Age"]),
    net(
        "ServiceEntry",
        &["se"],
        &["Hosts", "Location", "Resolution", "Ready", "Age"],
    ),
    net("Sidecar", &[], &["Ready", "Age"]),
    net("WorkloadEntry", &["we"], &["Age", "Address", "Ready"]),
    sec("PeerAuthentication", &["pa"], &["Mode", "Ready", "Age"]),
    sec("AuthorizationPolicy", &["ap"], &["Action", "Ready", "Age"]),
    sec("RequestAuthentication", &["ra"], &["Ready", "Age"]),
    Expected {
        kind: "Mesh",
        group: "mesh.weft.dev",
        versions: &["v1alpha1"],
        storage: "v1alpha1",
        namespaced: false,
        short_names: &[],
        columns: &["Trust Domain", "Ready", "Age"],
    },
];

const fn net(
    kind: &'static str,
    short_names: &'static [&'static str],
    columns: &'static [&'static str],
) -> Expected {
    Expected {
        kind,
        group: "networking.istio.io",
        versions: NET,
        storage: "v1",
        namespaced: true,
        short_names,
        columns,
    }
}

const fn sec(
    kind: &'static str,
    short_names: &'static [&'static str],
    columns: &'static [&'static str],
) -> Expected {
    Expected {
        kind,
        group: "security.istio.io",
        versions: SEC,
        storage: "v1",
        namespaced: true,
        short_names,
        columns,
    }
}

/// Every generated CRD as a JSON value.
pub fn crds() -> Vec<Value> {
    weft_crds::crd::all()
        .unwrap()
        .iter()
        .map(|c| serde_json::to_value(c).unwrap())
        .collect()
}

/// The generated CRD of `kind`.
pub fn crd_of(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .unwrap_or_else(|| panic!("no CRD generated for {kind}"))
}

/// The `openAPIV3Schema` of the storage version of `crd`.
pub fn storage_schema(crd: &Value) -> &Value {
    let versions = crd["spec"]["versions"].as_array().unwrap();
    let storage = versions.iter().find(|v| v["storage"] == true).unwrap();
    &storage["schema"]["openAPIV3Schema"]
}

/// The crate directory (`crds/`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `*.yaml`/`*.yml` file under `dir`, recursively, sorted; empty when `dir` is absent.
pub fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The valid corpus: `testdata/valid/**` and `testdata/seeds/`.
pub fn valid_files() -> Vec<PathBuf> {
    let data = crate_dir().join("testdata");
    let mut files = yaml_files(&data.join("valid"));
    files.extend(yaml_files(&data.join("seeds")));
    files
}

/// The non-empty YAML documents of `path`, as JSON values.
pub fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(de)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        if !value.is_null() {
            out.push(value);
        }
    }
    out
}

/// `path` relative to the crate directory, for messages.
pub fn shown(path: &Path) -> String {
    path.strip_prefix(crate_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}
