//! Every proxy of every golden input (each pod and WorkloadEntry, as a sidecar and as a
//! router), built from one shared view, gets the config and warnings a fresh view gives it:
//! the scope cache (`build_proxy_parts`) changes nothing a proxy receives, and the JSON it
//! writes is the assembled config's JSON.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

use std::fs;
use std::path::Path;

use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config, build_proxy_parts};
use weft_proxy_config::ProxyType;

fn targets(view: &ClusterView) -> Vec<ProxyTarget> {
    let objects = view.objects();
    let pods = objects.pods.iter().filter_map(|pod| {
        let meta = &pod.metadata;
        ProxyTarget::for_pod(view, meta.namespace.as_deref()?, meta.name.as_deref()?).ok()
    });
    let entries = objects.workload_entries.iter().filter_map(|entry| {
        let meta = &entry.metadata;
        ProxyTarget::for_workload_entry(view, meta.namespace.as_deref()?, meta.name.as_deref()?)
            .ok()
    });
    let mut all = Vec::new();
    for target in pods.chain(entries) {
        for proxy_type in [ProxyType::Sidecar, ProxyType::Router] {
            all.push(ProxyTarget {
                proxy_type,
                ..target.clone()
            });
        }
    }
    all
}

#[test]
fn shared_scopes_give_every_proxy_of_the_golden_inputs_its_own_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut checked = 0;
    for entry in fs::read_dir(&root).unwrap() {
        let input = entry.unwrap().path().join("input.yaml");
        if !input.exists() {
            continue;
        }
        let text = fs::read_to_string(&input).unwrap();
        let shared = ClusterView::from_yaml(&text).unwrap();
        let all = targets(&shared);
        assert!(!all.is_empty(), "{}: no proxies", input.display());
        // Forward then backward, so that each scope is filled by a different proxy.
        for target in all.iter().chain(all.iter().rev()) {
            let name = format!(
                "{}: {}/{} {:?}",
                input.display(),
                target.namespace,
                target.instance_name,
                target.proxy_type
            );
            let fresh = ClusterView::from_yaml(&text).unwrap();
            let expected = build_proxy_config(&fresh, target);
            let parts = build_proxy_parts(&shared, target);
            let mut json = Vec::new();
            parts.write_json(&mut json).unwrap();
            let mut pieces = Vec::new();
            let tail = parts.write_json_head(&mut pieces).unwrap();
            pieces.extend_from_slice(&tail);
            assert_eq!(pieces, json, "{name}: head and shared tail");
            assert_eq!(
                String::from_utf8(json).unwrap(),
                serde_json::to_string(&expected.config).unwrap(),
                "{name}: JSON"
            );
            assert_eq!(
                parts.version(),
                expected.config.content_hash().unwrap(),
                "{name}"
            );
            pretty_assertions::assert_eq!(parts.into_output(), expected, "{name}");
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} proxies checked");
}
