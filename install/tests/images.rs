//! The Dockerfiles cannot be built here (no Docker engine); this checks what can be checked
//! without one: each builds a package of the workspace and copies a binary that package has,
//! from the agreed base images, with --locked, and runs as a non-root user.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test harness

#[path = "support/lib.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};

/// Package name -> its binaries, for every workspace member (from the Cargo.toml files).
fn workspace_binaries() -> BTreeMap<String, BTreeSet<String>> {
    let root = support::root();
    let read = |path: std::path::PathBuf| -> toml_edit::DocumentMut {
        std::fs::read_to_string(&path).unwrap().parse().unwrap()
    };
    let manifest = read(root.join("Cargo.toml"));
    let mut out = BTreeMap::new();
    for member in manifest["workspace"]["members"].as_array().unwrap() {
        let dir = root.join(member.as_str().unwrap());
        let doc = read(dir.join("Cargo.toml"));
        let package = doc["package"]["name"].as_str().unwrap().to_string();
        let mut bins: BTreeSet<String> = doc
            .get("bin")
            .and_then(|b| b.as_array_of_tables())
            .into_iter()
            .flatten()
            .filter_map(|t| t.get("name")?.as_str().map(str::to_string))
            .collect();
        if dir.join("src/main.rs").exists() {
            bins.insert(package.clone());
        }
        out.insert(package, bins);
    }
    out
}

/// What a Dockerfile builds and ships.
#[derive(Debug)]
struct Image {
    from: Vec<String>,
    package: String,
    bin: String,
    user: String,
    locked: bool,
}

fn read_image(name: &str) -> Image {
    let text = std::fs::read_to_string(support::root().join("images").join(name)).unwrap();
    // Join continuation lines.
    let text = text.replace("\\\n", " ");
    let word_after = |line: &str, flag: &str| {
        line.split_whitespace()
            .skip_while(|w| *w != flag)
            .nth(1)
            .map(str::to_string)
    };
    let mut image = Image {
        from: Vec::new(),
        package: String::new(),
        bin: String::new(),
        user: String::new(),
        locked: false,
    };
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("FROM ") {
            image
                .from
                .push(rest.split_whitespace().next().unwrap().to_string());
        } else if line.starts_with("RUN") && line.contains("cargo build") {
            image.package = word_after(line, "-p").unwrap();
            image.bin = word_after(line, "--bin").unwrap();
            image.locked = line.contains("--locked") && line.contains("--release");
            let built = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix("target/release/"))
                .unwrap();
            assert_eq!(built, image.bin, "{name}: copies target/release/{built}");
        } else if let Some(rest) = line.strip_prefix("USER ") {
            image.user = rest.trim().to_string();
        }
    }
    image
}

#[test]
fn images_build_workspace_binaries_from_the_agreed_bases_as_non_root() {
    let binaries = workspace_binaries();
    for (file, package, runtime, user) in [
        (
            "operator.Dockerfile",
            "weft-operator",
            "gcr.io/distroless/cc-debian12:nonroot",
            "65532:65532",
        ),
        (
            "proxy.Dockerfile",
            "weft-proxy",
            "debian:bookworm-slim",
            "1337:1337",
        ),
    ] {
        let image = read_image(file);
        assert_eq!(
            image.from,
            vec!["rust:1.95-bookworm".to_string(), runtime.to_string()],
            "{file}"
        );
        assert_eq!(image.package, package, "{file}");
        assert!(image.locked, "{file}: cargo build --release --locked");
        let bins = binaries
            .get(&image.package)
            .unwrap_or_else(|| panic!("{file}: no workspace package {package}"));
        assert!(
            bins.contains(&image.bin),
            "{file}: {package} has no binary {} ({bins:?})",
            image.bin
        );
        assert_eq!(image.user, user, "{file}");
    }
}

#[test]
fn the_proxy_binary_is_the_one_the_injector_runs() {
    let image = read_image("proxy.Dockerfile");
    assert_eq!(image.bin, weft_webhook::inject::PROXY_BINARY);
    let text = std::fs::read_to_string(support::root().join("images/proxy.Dockerfile")).unwrap();
    // The injected containers run `weft-proxy` from PATH; init needs iptables.
    assert!(text.contains("/usr/local/bin/weft-proxy"));
    assert!(text.contains("iptables"));
}

#[test]
fn the_build_context_leaves_out_target_and_git() {
    let ignore = std::fs::read_to_string(support::root().join(".dockerignore")).unwrap();
    let lines: BTreeSet<&str> = ignore.lines().map(str::trim).collect();
    assert!(
        lines.contains("target/") && lines.contains(".git/"),
        "{ignore}"
    );
}
