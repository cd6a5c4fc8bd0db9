//! Golden tests: `testdata/<case>/input.yaml` (mesh and Kubernetes objects) and
//! `testdata/<case>/proxy.yaml` (which workload) → `golden.yaml` (the ProxyConfig, as
//! `ProxyConfig::to_yaml` writes it) and `warnings.yaml` (the Unsupported warnings).
//!
//! Cases are discovered automatically. `WEFT_UPDATE_GOLDEN=1 cargo test -p weft-pilot --test
//! golden` rewrites the golden files; a directory with golden files but no input is an error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::fs;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config};
use weft_proxy_config::ProxyType;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ProxySpec {
    namespace: String,
    #[serde(default)]
    pod: Option<String>,
    #[serde(default)]
    workload_entry: Option<String>,
    /// `sidecar` (default) or `router` (a gateway proxy), as the proxy's Hello says.
    #[serde(default)]
    proxy_type: ProxyType,
}

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut cases: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

fn run_case(dir: &Path, update: bool) -> Result<(), String> {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let input = dir.join("input.yaml");
    let proxy = dir.join("proxy.yaml");
    let golden = dir.join("golden.yaml");
    let warnings_path = dir.join("warnings.yaml");
    if !input.exists() || !proxy.exists() {
        return Err(format!(
            "{name}: orphaned case (golden files without input.yaml and proxy.yaml)"
        ));
    }
    let view = ClusterView::from_yaml(&fs::read_to_string(&input).unwrap())
        .map_err(|error| format!("{name}: input.yaml: {error}"))?;
    let spec: ProxySpec = serde_yaml::from_str(&fs::read_to_string(&proxy).unwrap())
        .map_err(|error| format!("{name}: proxy.yaml: {error}"))?;
    let target = match (&spec.pod, &spec.workload_entry) {
        (Some(pod), None) => ProxyTarget::for_pod(&view, &spec.namespace, pod),
        (None, Some(entry)) => ProxyTarget::for_workload_entry(&view, &spec.namespace, entry),
        _ => {
            return Err(format!(
                "{name}: proxy.yaml needs exactly one of pod, workloadEntry"
            ));
        }
    }
    .map_err(|error| format!("{name}: {error}"))
    .map(|mut target| {
        target.proxy_type = spec.proxy_type;
        target
    })?;
    let output = build_proxy_config(&view, &target);
    if let Err(errors) = output.config.validate() {
        return Err(format!("{name}: the built config is invalid: {errors:#?}"));
    }
    assert_eq!(
        output.config.version,
        output.config.content_hash().unwrap(),
        "{name}: version is the content hash"
    );
    let config_yaml = output.config.to_yaml().unwrap();
    let warnings_yaml = serde_yaml::to_string(&output.warnings).unwrap();
    if update {
        fs::write(&golden, &config_yaml).unwrap();
        fs::write(&warnings_path, &warnings_yaml).unwrap();
        return Ok(());
    }
    for (path, actual) in [(&golden, &config_yaml), (&warnings_path, &warnings_yaml)] {
        let expected = fs::read_to_string(path).map_err(|error| {
            format!(
                "{name}: {}: {error} (run with WEFT_UPDATE_GOLDEN=1)",
                path.display()
            )
        })?;
        if expected != *actual {
            pretty_assertions::assert_eq!(expected, *actual, "{name}: {}", path.display());
        }
    }
    // The golden file reads back into the same config.
    let reparsed = weft_proxy_config::ProxyConfig::from_yaml(&config_yaml).unwrap();
    assert_eq!(reparsed, output.config, "{name}: golden round trip");
    Ok(())
}

#[test]
fn golden_cases() {
    let update = std::env::var("WEFT_UPDATE_GOLDEN").is_ok_and(|value| value == "1");
    let cases = cases();
    assert!(!cases.is_empty(), "no cases under testdata/");
    let errors: Vec<String> = cases
        .iter()
        .filter_map(|dir| run_case(dir, update).err())
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn builds_are_deterministic() {
    for dir in cases() {
        let text = fs::read_to_string(dir.join("input.yaml")).unwrap();
        // The view sorts its inputs: reversing the documents must not change the output.
        let reversed: Vec<&str> = text.split("\n---\n").collect();
        let reversed = reversed
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n---\n");
        let spec: ProxySpec =
            serde_yaml::from_str(&fs::read_to_string(dir.join("proxy.yaml")).unwrap()).unwrap();
        let build = |text: &str| {
            let view = ClusterView::from_yaml(text).unwrap();
            let target = match &spec.pod {
                Some(pod) => ProxyTarget::for_pod(&view, &spec.namespace, pod).unwrap(),
                None => ProxyTarget::for_workload_entry(
                    &view,
                    &spec.namespace,
                    spec.workload_entry.as_deref().unwrap(),
                )
                .unwrap(),
            };
            let target = ProxyTarget {
                proxy_type: spec.proxy_type,
                ..target
            };
            build_proxy_config(&view, &target)
        };
        assert_eq!(build(&text), build(&reversed), "{}", dir.display());
    }
}

#[test]
fn cached_parts_do_not_leak_between_proxies() {
    // The view caches clusters on first use; every proxy of a case built from one shared view
    // (cache warmed by the others) must equal its build from a fresh view (a clone starts with
    // an empty cache), warnings included.
    for dir in cases() {
        let view =
            ClusterView::from_yaml(&fs::read_to_string(dir.join("input.yaml")).unwrap()).unwrap();
        let targets = ProxyTarget::all(&view);
        let shared: Vec<_> = targets
            .iter()
            .map(|target| build_proxy_config(&view, target))
            .collect();
        for (target, shared) in targets.iter().zip(&shared).rev() {
            let fresh = build_proxy_config(&view.clone(), target);
            assert_eq!(
                *shared,
                fresh,
                "{}: {}/{}",
                dir.display(),
                target.namespace,
                target.instance_name
            );
        }
    }
}
