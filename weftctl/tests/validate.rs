//! `weftctl validate`: exit codes and messages of the offline validator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::Command;

fn weftctl(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn the_demo_rules_are_accepted() {
    let (code, out) = weftctl(&["validate", "-f", "demo"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 rejected"), "{out}");
}

#[test]
fn a_bad_weight_is_rejected_with_its_path_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vs.yaml");
    std::fs::write(
        &file,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: d}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n      weight: 150\n---\napiVersion: v1\nkind: Service\nmetadata: {name: r}\n",
    )
    .unwrap();
    let (code, out) = weftctl(&["validate", "-f", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("spec.http[0].route[0].weight"), "{out}");
    assert!(
        out.contains("1 rejected") && out.contains("1 skipped"),
        "{out}"
    );
}
