//! The whole proxy in-process (`run::run`): file config source with reload and rejection,
//! health and admin endpoints, and the drain on shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

#[path = "common/harness.rs"]
mod harness;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use harness::*;
use http_body_util::{BodyExt, Full};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use weft_proxy::app_health::AppProbers;
use weft_proxy::config::{ConfigStore, FileSource};
use weft_proxy::listener::DestinationMode;
use weft_proxy::run::{Listeners, RunSettings, run};
use weft_proxy::telemetry::{AccessLog, Telemetry};
use weft_proxy::telemetry_observer::TelemetryObserver;

struct Running {
    outbound: SocketAddr,
    prometheus: SocketAddr,
    status: SocketAddr,
    health: SocketAddr,
    admin: SocketAddr,
    shutdown: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

async fn start(config_path: &Path, drain: Duration) -> Running {
    start_with_probers(config_path, drain, None).await
}

async fn start_with_probers(
    config_path: &Path,
    drain: Duration,
    app_probers: Option<AppProbers>,
) -> Running {
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let listeners = Listeners::bind(local, local, local, local, Some(local))
        .await
        .unwrap()
        .with_status(local)
        .await
        .unwrap();
    let status = listeners.status.as_ref().unwrap().local_addr().unwrap();
    let outbound = listeners.outbound.local_addr().unwrap();
    let health = listeners.health.local_addr().unwrap();
    let admin = listeners.admin.local_addr().unwrap();
    let prometheus = listeners.prometheus.as_ref().unwrap().local_addr().unwrap();
    let store = ConfigStore::new(None);
    let mut registry = Registry::default();
    let telemetry = Arc::new(Telemetry::new(&mut registry, AccessLog::off()));
    let registry = Arc::new(registry);
    let settings = RunSettings {
        store: Arc::clone(&store),
        source: Box::new(FileSource::new(
            config_path.to_owned(),
            Duration::from_millis(20),
        )),
        observer: Arc::new(TelemetryObserver::new(telemetry, store)),
        prometheus: Some(Arc::new(move || {
            weft_proxy::telemetry::encode(&registry).unwrap()
        })),
        destination_mode: DestinationMode::Fixed(VIP.parse().unwrap()),
        drain_time: drain,
        app_probers: app_probers.map(Arc::new),
    };
    let shutdown = CancellationToken::new();
    let done = tokio::spawn(run(listeners, settings, shutdown.clone()));
    Running {
        outbound,
        prometheus,
        status,
        health,
        admin,
        shutdown,
        done,
    }
}

async fn fetch(method: &str, address: SocketAddr, path: &str) -> (u16, String) {
    let request = http::Request::builder()
        .method(method)
        .uri(format!("http://{address}{path}"))
        .header("host", "reviews")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Polls until `check` holds (the file source polls every 20 ms).
async fn eventually<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..250 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("condition not reached in 5 s");
}

fn direct(body: &str) -> String {
    format!(
        "            - action:\n                direct_response: {{status: 200, body: \"{body}\"}}\n"
    )
}

fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config_yaml(body: &str) -> String {
    http_config(&direct(body), "  []\n").to_yaml().unwrap()
}

#[tokio::test]
async fn config_file_is_applied_reloaded_and_bad_versions_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write(&path, "not: [a, config");
    let proxy = start(&path, Duration::from_secs(1)).await;

    // Invalid initial file: not ready.
    assert_eq!(fetch("GET", proxy.health, "/healthz/ready").await.0, 503);
    assert_eq!(fetch("GET", proxy.admin, "/ready").await.0, 503);

    write(&path, &config_yaml("first"));
    eventually(|| async { fetch("GET", proxy.health, "/healthz/ready").await.0 == 200 }).await;
    assert_eq!(
        fetch("GET", proxy.outbound, "/").await,
        (200, "first".to_owned())
    );

    // A config that parses but fails validation is rejected; the old one keeps serving.
    let mut invalid = http_config(&direct("second"), "  []\n");
    invalid.outbound[0].http.as_mut().unwrap().virtual_hosts[0]
        .domains
        .clear();
    write(&path, &invalid.to_yaml().unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        fetch("GET", proxy.outbound, "/").await,
        (200, "first".to_owned())
    );

    write(&path, &config_yaml("third"));
    eventually(|| async { fetch("GET", proxy.outbound, "/").await.1 == "third" }).await;

    let (status, dump) = fetch("GET", proxy.admin, "/config_dump").await;
    assert_eq!(status, 200);
    let dumped: serde_json::Value = serde_json::from_str(&dump).unwrap();
    assert_eq!(dumped["node"]["id"], "test");
    assert_eq!(dumped["version"].as_str().unwrap().len(), 64);
    let (_, stats) = fetch("GET", proxy.admin, "/stats").await;
    let counter = |name: &str| -> u64 {
        let line = stats.lines().find(|line| line.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    // At least the three successful fetches above (polling adds more), all 2xx.
    assert!(counter("outbound.downstream_rq_2xx:") >= 3, "{stats}");
    assert_eq!(
        counter("outbound.downstream_rq_2xx:"),
        counter("outbound.downstream_rq_total:")
    );

    assert_eq!(fetch("GET", proxy.admin, "/quitquitquit").await.0, 405);
    assert_eq!(fetch("POST", proxy.admin, "/quitquitquit").await.0, 200);
    tokio::time::timeout(Duration::from_secs(5), proxy.done)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    let slow = upstream(|_, _| async {
        tokio::time::sleep(Duration::from_millis(400)).await;
        status(200, "slow but done")
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let name = "outbound|9080||reviews";
    let routes = format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{name}\"}}]\n"
    );
    write(
        &path,
        &http_config(&routes, &cluster(name, &[slow.address]))
            .to_yaml()
            .unwrap(),
    );
    let proxy = start(&path, Duration::from_secs(5)).await;
    eventually(|| async { fetch("GET", proxy.health, "/healthz/ready").await.0 == 200 }).await;

    let in_flight = tokio::spawn(fetch("GET", proxy.outbound, "/"));
    eventually(|| async { slow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1 }).await;
    proxy.shutdown.cancel();
    assert_eq!(in_flight.await.unwrap(), (200, "slow but done".to_owned()));
    tokio::time::timeout(Duration::from_secs(5), proxy.done)
        .await
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(proxy.outbound)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn prometheus_endpoint_reports_istio_metrics_for_proxied_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    let mut config = http_config(&direct("hello"), "  []\n");
    config.node.workload_name = "productpage-v1".into();
    write(&path, &config.to_yaml().unwrap());
    let proxy = start(&path, Duration::from_secs(1)).await;
    eventually(|| async { fetch("GET", proxy.health, "/healthz/ready").await.0 == 200 }).await;
    assert_eq!(fetch("GET", proxy.outbound, "/").await.0, 200);
    let (status, metrics) = fetch("GET", proxy.prometheus, "/stats/prometheus").await;
    assert_eq!(status, 200);
    let line = metrics
        .lines()
        .find(|line| line.starts_with("istio_requests_total{"))
        .unwrap_or_else(|| panic!("no istio_requests_total in {metrics}"));
    assert!(line.contains(r#"reporter="source""#), "{line}");
    assert!(
        line.contains(r#"source_workload="productpage-v1""#),
        "{line}"
    );
    assert!(
        line.contains(r#"destination_service="reviews.default.svc.cluster.local""#),
        "{line}"
    );
    assert!(line.contains(r#"response_code="200""#), "{line}");
    assert!(line.ends_with(" 1"), "{line}");
    assert_eq!(fetch("GET", proxy.prometheus, "/config_dump").await.0, 404);
}

#[tokio::test]
async fn status_port_runs_the_rewritten_application_probes() {
    let app = upstream(|_, seen| async move {
        match seen.path.as_str() {
            "/health" if seen.headers.get("x-probe").is_some() => status(200, "ok"),
            _ => status(500, "sick"),
        }
    })
    .await;
    let probers = AppProbers::from_json(
        &format!(
            r#"{{"/app-health/web/readyz":{{"httpGet":{{"path":"/health","port":{port},"httpHeaders":[{{"name":"x-probe","value":"1"}}]}}}},
               "/app-health/web/livez":{{"httpGet":{{"path":"/other","port":{port}}}}}}}"#,
            port = app.address.port()
        ),
        "127.0.0.1".parse().unwrap(),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    write(&path, &config_yaml("x"));
    let proxy = start_with_probers(&path, Duration::from_secs(1), Some(probers)).await;
    assert_eq!(
        fetch("GET", proxy.status, "/app-health/web/readyz").await.0,
        200
    );
    assert_eq!(
        fetch("GET", proxy.status, "/app-health/web/livez").await.0,
        500
    );
    assert_eq!(
        fetch("GET", proxy.status, "/app-health/web/startupz")
            .await
            .0,
        404
    );
    eventually(|| async { fetch("GET", proxy.status, "/healthz/ready").await.0 == 200 }).await;
}
