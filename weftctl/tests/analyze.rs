//! `weftctl analyze`: text, JSON and YAML output and exit codes, on files (testdata/analyze,
//! the demo's rules) and on a cluster (a fake API server on 127.0.0.1 answering list calls).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn weftctl(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_weftctl"))
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

const BROKEN: &str = "weftctl/testdata/analyze/broken";
const CLEAN: &str = "weftctl/testdata/analyze/clean";
const WARNINGS: &str = "weftctl/testdata/analyze/warnings-only.yaml";

/// (level, code, resource, path) of each message of a JSON output.
fn summary(json: &str) -> Vec<(String, String, String, String)> {
    let messages: Vec<serde_json::Value> = serde_json::from_str(json).unwrap();
    messages
        .iter()
        .map(|m| {
            let r = &m["resource"];
            let name = match r["namespace"].as_str() {
                Some(ns) => format!(
                    "{} {ns}/{}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
                None => format!(
                    "{} {}",
                    r["kind"].as_str().unwrap(),
                    r["name"].as_str().unwrap()
                ),
            };
            (
                m["level"].as_str().unwrap().to_owned(),
                m["code"].as_str().unwrap().to_owned(),
                name,
                m["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn row(level: &str, code: &str, resource: &str, path: &str) -> (String, String, String, String) {
    (level.into(), code.into(), resource.into(), path.into())
}

#[test]
fn the_demo_rules_analyze_without_errors() {
    // demo/ holds only mesh objects (the demo builds its registry at run time), so the
    // Kubernetes-dependent checks are skipped with one WEFT0002 Info; warnings of the webhook's
    // rules (IST0133) are allowed, errors are not.
    let run = weftctl(&["analyze", "-f", "demo"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stdout.lines().all(|l| !l.starts_with("Error")),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("Info [WEFT0002]")),
        "{}",
        run.stdout
    );
}

#[test]
fn clean_files_give_no_message_and_exit_0() {
    let run = weftctl(&["analyze", "-f", CLEAN]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");
    assert!(
        run.stderr
            .contains("No validation issues found when analyzing 2 file(s)"),
        "{}",
        run.stderr
    );
}

#[test]
fn broken_files_print_istioctl_lines_and_exit_1() {
    let run = weftctl(&["analyze", "-f", BROKEN]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    let file = "weftctl/testdata/analyze/broken/objects.yaml";
    for line in [
        format!(
            "Error [IST0101] (VirtualService default/reviews spec.http[0].route[0].destination.host) \
             Referenced host not found: \"reviewz\" ({file}, document 4)"
        ),
        format!(
            "Error [IST0101] (VirtualService default/reviews spec.http[0].route[1].destination.subset) \
             Referenced host+subset in destinationrule not found: \"reviews+v4\" ({file}, document 4)"
        ),
        format!(
            "Error [IST0101] (VirtualService default/reviews spec.gateways[1]) Referenced gateway \
             not found: \"httpbin-gateway-bogus\" ({file}, document 4)"
        ),
        format!(
            "Error [IST0101] (Gateway default/public spec.selector) Referenced selector not found: \
             \"istio=ingressgateway\" ({file}, document 8)"
        ),
    ] {
        assert!(
            run.stdout.lines().any(|l| l == line),
            "missing line:\n{line}\nin:\n{}",
            run.stdout
        );
    }
}

#[test]
fn broken_files_as_json_name_every_analyzer_once() {
    let run = weftctl(&["analyze", "-f", BROKEN, "-o", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(
        summary(&run.stdout),
        [
            row(
                "Warning",
                "IST0127",
                "AuthorizationPolicy default/details",
                "spec.selector"
            ),
            row(
                "Warning",
                "WEFT0001",
                "DestinationRule default/ratings",
                "spec.host"
            ),
            row(
                "Error",
                "IST0113",
                "DestinationRule default/reviews",
                "spec.trafficPolicy.tls.mode"
            ),
            row(
                "Warning",
                "IST0133",
                "DestinationRule default/reviews",
                "spec.trafficPolicy.tls.mode"
            ),
            row(
                "Error",
                "IST0101",
                "Gateway default/public",
                "spec.selector"
            ),
            row("Info", "IST0102", "Namespace shop", "metadata.labels"),
            row(
                "Error",
                "IST0106",
                "PeerAuthentication default/bad-mode",
                "spec.mtls.mode"
            ),
            row(
                "Warning",
                "IST0103",
                "Pod default/reviews-1",
                "spec.containers"
            ),
            row(
                "Error",
                "IST0101",
                "VirtualService default/reviews",
                "spec.gateways[1]"
            ),
            row(
                "Error",
                "IST0109",
                "VirtualService default/reviews",
                "spec.hosts[0]"
            ),
            row(
                "Error",
                "IST0101",
                "VirtualService default/reviews",
                "spec.http[0].route[0].destination.host"
            ),
            row(
                "Error",
                "IST0101",
                "VirtualService default/reviews",
                "spec.http[0].route[1].destination.subset"
            ),
            row(
                "Error",
                "IST0109",
                "VirtualService default/reviews-canary",
                "spec.hosts[0]"
            ),
        ]
    );
}

#[test]
fn yaml_output_holds_the_same_messages() {
    let json = weftctl(&["analyze", "-f", BROKEN, "-o", "json"]);
    let yaml = weftctl(&["analyze", "-f", BROKEN, "-o", "yaml"]);
    assert_eq!(yaml.code, 1);
    let from_yaml: serde_json::Value = serde_yaml::from_str(&yaml.stdout).unwrap();
    let from_json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(from_yaml, from_json);
}

#[test]
fn warnings_exit_0_unless_the_failure_threshold_is_lowered() {
    let run = weftctl(&["analyze", "-f", WARNINGS]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(run.stdout.contains("Warning [WEFT0001]"), "{}", run.stdout);
    let run = weftctl(&["analyze", "-f", WARNINGS, "--failure-threshold", "warning"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    let run = weftctl(&["analyze", "-f", WARNINGS, "--output-threshold", "warning"]);
    assert!(!run.stdout.contains("IST0102"), "{}", run.stdout);
}

#[test]
fn suppressed_messages_are_not_printed() {
    let run = weftctl(&[
        "analyze",
        "-f",
        WARNINGS,
        "--suppress",
        "IST0102=Namespace shop",
        "--suppress",
        "WEFT0001=DestinationRule *.shop",
    ]);
    assert_eq!(run.code, 0);
    assert_eq!(run.stdout, "", "{}", run.stdout);
    let run = weftctl(&["analyze", "-f", WARNINGS, "--suppress", "IST9999=Pod x"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("unknown code"), "{}", run.stderr);
}

#[test]
fn unreadable_input_exits_2() {
    let run = weftctl(&[
        "analyze",
        "-f",
        "weftctl/testdata/analyze/no-such-file.yaml",
    ]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("no-such-file.yaml"), "{}", run.stderr);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(&file, "kind: [unclosed\n").unwrap();
    let run = weftctl(&["analyze", "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("is not YAML"), "{}", run.stderr);
    let run = weftctl(&["analyze"]);
    assert_eq!(run.code, 2, "no -f and no -k is a usage error");
}

fn kubeconfig(dir: &std::path::Path, server: &str) -> String {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\"}}\n\
             users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: x\n  context: {{cluster: c, user: u}}\n\
             current-context: x\n"
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn no_reachable_cluster_exits_2_and_says_so() {
    // A port nothing listens on: bind, read the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));
    let run = weftctl(&["analyze", "-k", &config]);
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains("no cluster reachable"),
        "{}",
        run.stderr
    );
}

/// The body a fake API server answers for `path`: lists of one Namespace, Service, Pod and
/// VirtualService; 404 for the other kinds (their CRDs "not installed").
fn fake_api_answer(path: &str) -> (u16, String, Vec<String>) {
    let list = |api_version: &str, kind: &str, items: &str| {
        format!(
            r#"{{"apiVersion":"{api_version}","kind":"{kind}","metadata":{{"resourceVersion":"1"}},"items":[{items}]}}"#
        )
    };
    let path = path.split('?').next().unwrap_or_default();
    let body = match path {
        "/api/v1/namespaces" => list(
            "v1",
            "NamespaceList",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"default","labels":{"istio-injection":"enabled"}}}"#,
        ),
        "/api/v1/services" => list(
            "v1",
            "ServiceList",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"reviews","namespace":"default"},"spec":{"selector":{"app":"reviews"},"ports":[{"port":9080}]}}"#,
        ),
        "/api/v1/pods" => list(
            "v1",
            "PodList",
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"reviews-1","namespace":"default","labels":{"app":"reviews"}},"spec":{"containers":[{"name":"reviews","image":"r"},{"name":"istio-proxy","image":"p"}]}}"#,
        ),
        "/apis/networking.istio.io/v1/virtualservices" => list(
            "networking.istio.io/v1",
            "VirtualServiceList",
            r#"{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"reviews","namespace":"default","resourceVersion":"7"},"spec":{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviewz"}}]}]}}"#,
        ),
        _ => {
            let status = r#"{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"not found"}"#;
            return (404, status.to_owned(), Vec::new());
        }
    };
    (200, body, Vec::new())
}

/// Serves HTTP/1.1 on `listener`: every request gets [`fake_api_answer`]; records the
/// request lines.
fn serve_fake_api(listener: TcpListener, seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    for stream in listener.incoming() {
        let Ok(stream) = stream else { return };
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            loop {
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                    return;
                }
                loop {
                    let mut header = String::new();
                    if reader.read_line(&mut header).unwrap_or(0) == 0 {
                        return;
                    }
                    if header == "\r\n" {
                        break;
                    }
                }
                seen.lock().unwrap().push(request_line.trim().to_owned());
                let path = request_line.split_whitespace().nth(1).unwrap_or("/");
                let (status, body, _) = fake_api_answer(path);
                let reason = if status == 200 { "OK" } else { "Not Found" };
                let response = format!(
                    "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if writer.write_all(response.as_bytes()).is_err() {
                    return;
                }
            }
        });
    }
}

#[test]
fn a_cluster_is_listed_read_only_and_analyzed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server_seen = seen.clone();
    std::thread::spawn(move || serve_fake_api(listener, server_seen));
    let dir = tempfile::tempdir().unwrap();
    let config = kubeconfig(dir.path(), &format!("http://127.0.0.1:{port}"));

    let run = weftctl(&["analyze", "-k", &config, "-o", "json"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        summary(&run.stdout),
        [row(
            "Error",
            "IST0101",
            "VirtualService default/reviews",
            "spec.http[0].route[0].destination.host"
        )]
    );
    let messages: Vec<serde_json::Value> = serde_json::from_str(&run.stdout).unwrap();
    assert!(
        messages[0]["resource"].get("origin").is_none(),
        "cluster objects have no file"
    );
    assert!(
        run.stderr
            .contains("gateways.networking.istio.io is not served"),
        "{}",
        run.stderr
    );
    // Files given with -k are analyzed together with the cluster's objects.
    let file = dir.path().join("reviewz.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviewz, namespace: default}\n",
    )
    .unwrap();
    let run = weftctl(&["analyze", "-k", &config, "-f", file.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, "");

    let requests = seen.lock().unwrap().clone();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|r| r.starts_with("GET ")),
        "only list calls: {requests:?}"
    );
}
