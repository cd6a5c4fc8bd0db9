//! `kubectl` for the operator cluster e2e: the one client every conformant cluster's users
//! have, driven with `std::process::Command` so that the test needs no Kubernetes client
//! crate. Every call is bounded by `--request-timeout`; output is parsed as JSON.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long one API request may take.
const REQUEST_TIMEOUT: &str = "--request-timeout=30s";

/// The result of one `kubectl` run.
#[derive(Debug)]
pub struct Output {
    /// Exit status was 0.
    pub ok: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `kubectl ARGS` with `stdin` as standard input. `None` when kubectl cannot be started.
pub fn run(args: &[&str], stdin: Option<&str>) -> Option<Output> {
    let mut child = Command::new("kubectl")
        .arg(REQUEST_TIMEOUT)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).ok()?;
    }
    let out = child.wait_with_output().ok()?;
    Some(Output {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs `kubectl ARGS` and panics with its stderr unless it succeeds; returns stdout.
pub fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin).unwrap_or_else(|| panic!("kubectl {args:?}: cannot start kubectl"));
    assert!(out.ok, "kubectl {args:?} failed: {}", out.stderr);
    out.stdout
}

/// `kubectl apply --server-side` of `yaml`; panics on failure.
pub fn apply(yaml: &str) {
    ok(
        &[
            "apply",
            "--server-side",
            "--field-manager=weft-e2e",
            "--force-conflicts",
            "-f",
            "-",
        ],
        Some(yaml),
    );
}

/// `kubectl get ARGS -o json`, `None` when the object does not exist (or the call fails).
pub fn get(args: &[&str]) -> Option<Value> {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = run(&all, None)?;
    if !out.ok {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// Polls `check` every second until it returns `Some` or `timeout` passes (then panics
/// naming `what`).
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The condition `type_` of an object's `status.conditions`.
pub fn condition<'a>(object: &'a Value, type_: &str) -> Option<&'a Value> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}
