use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus_client::registry::Registry;

use super::*;

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn peer(workload: &str, app: &str, version: &str, principal: &str) -> PeerInfo {
    PeerInfo {
        workload: workload.into(),
        namespace: "bookinfo".into(),
        principal: principal.into(),
        app: app.into(),
        version: version.into(),
        canonical_service: app.into(),
        canonical_revision: version.into(),
        cluster: "Kubernetes".into(),
    }
}

fn traffic() -> Arc<TrafficLabels> {
    Arc::new(TrafficLabels {
        reporter: Reporter::Destination,
        source: peer(
            "productpage-v1",
            "productpage",
            "v1",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage",
        ),
        destination: peer(
            "reviews-v2",
            "reviews",
            "v2",
            "spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews",
        ),
        destination_service: ServiceInfo {
            host: "reviews.bookinfo.svc.cluster.local".into(),
            name: "reviews".into(),
            namespace: "bookinfo".into(),
        },
        connection_security_policy: SecurityPolicy::MutualTls,
    })
}

const LABELS_PREFIX: &str = "reporter=\"destination\",source_workload=\"productpage-v1\",source_canonical_service=\"productpage\",source_canonical_revision=\"v1\",source_workload_namespace=\"bookinfo\",source_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage\",source_app=\"productpage\",source_version=\"v1\",source_cluster=\"Kubernetes\",destination_workload=\"reviews-v2\",destination_workload_namespace=\"bookinfo\",destination_principal=\"spiffe://cluster.local/ns/bookinfo/sa/bookinfo-reviews\",destination_app=\"reviews\",destination_version=\"v2\",destination_service=\"reviews.bookinfo.svc.cluster.local\",destination_canonical_service=\"reviews\",destination_canonical_revision=\"v2\",destination_service_name=\"reviews\",destination_service_namespace=\"bookinfo\",destination_cluster=\"Kubernetes\"";

fn request(code: u16, duration_ms: u64) -> RequestRecord {
    RequestRecord {
        labels: traffic(),
        request_protocol: RequestProtocol::Http,
        version: http::Version::HTTP_11,
        method: http::Method::GET,
        path: "/reviews/0?x=1".into(),
        authority: Some("reviews:9080".into()),
        response_code: code,
        grpc_status: None,
        response_flags: NO_FLAGS.into(),
        start_time: UNIX_EPOCH + Duration::from_millis(1_709_251_147_123),
        duration: Duration::from_millis(duration_ms),
        request_bytes: 512,
        response_bytes: 2048,
        upstream_host: Some("198.18.0.7:9080".into()),
        upstream_cluster: Some("inbound|9080||".into()),
        request_id: Some("5c9a1f9e-0f3b-4c1e-9d7a-1c2b3d4e5f60".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
        audit_policy: None,
    }
}

fn lines_for<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")) || l.starts_with(&format!("{metric} ")))
        .collect()
}

#[test]
fn request_metrics_have_istio_names_labels_and_values() {
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::off());
    telemetry.record_request(&request(200, 20));
    telemetry.record_request(&request(200, 70));
    telemetry.record_request(&request(503, 3));
    let text = encode(&registry).unwrap();

    assert!(text.contains("# TYPE istio_requests counter\n"), "{text}");
    assert!(text.contains("# TYPE istio_request_duration_milliseconds histogram\n"));
    let request_labels = |code: u16| {
        format!(
            "{LABELS_PREFIX},request_protocol=\"http\",response_code=\"{code}\",grpc_response_status=\"\",response_flags=\"-\",connection_security_policy=\"mutual_tls\""
        )
    };
    let totals = lines_for(&text, "istio_requests_total");
    assert_eq!(totals.len(), 2, "{totals:?}");
    assert!(
        totals.contains(&format!("istio_requests_total{{{}}} 2", request_labels(200)).as_str())
    );
    assert!(
        totals.contains(&format!("istio_requests_total{{{}}} 1", request_labels(503)).as_str())
    );

    let ok = request_labels(200);
    // prometheus-client writes the bucket bound first: `{le="25.0",reporter=...}`.
    let expect = |metric: &str, le: Option<&str>, value: &str| {
        let labels = match le {
            Some(le) => format!("le=\"{le}\",{ok}"),
            None => ok.clone(),
        };
        let line = format!("{metric}{{{labels}}} {value}");
        assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
    };
    expect("istio_request_duration_milliseconds_sum", None, "90.0");
    expect("istio_request_duration_milliseconds_count", None, "2");
    expect(
        "istio_request_duration_milliseconds_bucket",
        Some("10.0"),
        "0",
    );
    expect(
        "istio_request_duration_milliseconds_bucket",
        Some("25.0"),
        "1",
    );
    expect(
        "istio_request_duration_milliseconds_bucket",
        Some("100.0"),
        "2",
    );
    expect(
        "istio_request_duration_milliseconds_bucket",
        Some("+Inf"),
        "2",
    );
    expect("istio_request_bytes_sum", None, "1024.0");
    expect("istio_request_bytes_bucket", Some("500.0"), "0");
    expect("istio_request_bytes_bucket", Some("1000.0"), "2");
    expect("istio_response_bytes_sum", None, "4096.0");
    expect("istio_response_bytes_bucket", Some("2500.0"), "2");
}

#[test]
fn histograms_use_istio_buckets() {
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::off());
    telemetry.record_request(&request(200, 1));
    let text = encode(&registry).unwrap();
    for metric in [
        "istio_request_duration_milliseconds_bucket",
        "istio_request_bytes_bucket",
        "istio_response_bytes_bucket",
    ] {
        let bounds: Vec<&str> = lines_for(&text, metric)
            .iter()
            .filter_map(|l| l.split("le=\"").nth(1)?.split('"').next())
            .collect();
        let mut want: Vec<String> = ISTIO_BUCKETS.iter().map(|b| format!("{b:?}")).collect();
        want.push("+Inf".into());
        assert_eq!(bounds, want, "{metric}");
    }
}

#[test]
fn grpc_requests_carry_protocol_and_status() {
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::off());
    let mut record = request(200, 5);
    record.request_protocol = RequestProtocol::Grpc;
    record.grpc_status = Some(14);
    record.response_flags = "UF,URX".into();
    telemetry.record_request(&record);
    let text = encode(&registry).unwrap();
    let line = lines_for(&text, "istio_requests_total").join("\n");
    assert!(line.contains("request_protocol=\"grpc\",response_code=\"200\",grpc_response_status=\"14\",response_flags=\"UF,URX\""), "{line}");
}

#[test]
fn tcp_metrics_count_connections_and_bytes() {
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::off());
    let mut labels = (*traffic()).clone();
    labels.reporter = Reporter::Source;
    labels.connection_security_policy = SecurityPolicy::Unknown;
    let labels = Arc::new(labels);
    telemetry.connection_opened(&labels);
    telemetry.connection_opened(&labels);
    for (sent, received) in [(100, 7), (50, 3)] {
        telemetry.record_connection(&ConnectionRecord {
            labels: labels.clone(),
            response_flags: NO_FLAGS.into(),
            start_time: UNIX_EPOCH,
            duration: Duration::from_secs(3),
            bytes_received: received,
            bytes_sent: sent,
            upstream_host: None,
            upstream_cluster: None,
        });
    }
    let text = encode(&registry).unwrap();
    let tcp_labels = format!(
        "{},request_protocol=\"tcp\",response_flags=\"-\",connection_security_policy=\"unknown\"",
        LABELS_PREFIX.replacen("reporter=\"destination\"", "reporter=\"source\"", 1)
    );
    for (metric, value) in [
        ("istio_tcp_connections_opened_total", "2"),
        ("istio_tcp_connections_closed_total", "2"),
        ("istio_tcp_sent_bytes_total", "150"),
        ("istio_tcp_received_bytes_total", "10"),
    ] {
        assert_eq!(
            lines_for(&text, metric),
            vec![format!("{metric}{{{tcp_labels}}} {value}")],
            "{metric}"
        );
    }
    assert!(
        !text.contains("response_code=\"0\",grpc"),
        "TCP series must not carry response_code"
    );
}

fn access_log_lines(records: impl FnOnce(&Telemetry)) -> Vec<serde_json::Value> {
    let buf = SharedBuf::default();
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::to_writer(buf.clone()));
    records(&telemetry);
    let bytes = buf.0.lock().clone();
    String::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn access_log_json_has_every_field() {
    let lines = access_log_lines(|t| t.record_request(&request(201, 42)));
    assert_eq!(lines.len(), 1);
    let want = serde_json::json!({
        "start_time": "2024-02-29T23:59:07.123Z",
        "method": "GET",
        "path": "/reviews/0?x=1",
        "authority": "reviews:9080",
        "protocol": "HTTP/1.1",
        "response_code": 201,
        "response_flags": "-",
        "bytes_received": 512,
        "bytes_sent": 2048,
        "duration": 42,
        "upstream_host": "198.18.0.7:9080",
        "upstream_cluster": "inbound|9080||",
        "request_id": "5c9a1f9e-0f3b-4c1e-9d7a-1c2b3d4e5f60",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    });
    assert_eq!(lines[0], want);
}

#[test]
fn access_log_names_the_audit_policy_a_request_matched() {
    let mut audited = request(200, 1);
    audited.audit_policy = Some("demo/audit-reviews".into());
    let lines = access_log_lines(|t| {
        t.record_request(&audited);
        t.record_request(&request(200, 1));
    });
    assert_eq!(lines[0]["audit_policy"], "demo/audit-reviews");
    assert!(
        lines[1].get("audit_policy").is_none(),
        "no key without an AUDIT match: {}",
        lines[1]
    );
}

#[test]
fn access_log_for_tcp_uses_nulls_for_http_fields() {
    let lines = access_log_lines(|t| {
        t.record_connection(&ConnectionRecord {
            labels: traffic(),
            response_flags: "UF".into(),
            start_time: UNIX_EPOCH,
            duration: Duration::from_millis(1500),
            bytes_received: 10,
            bytes_sent: 20,
            upstream_host: Some("198.18.0.9:5432".into()),
            upstream_cluster: Some("outbound|5432||db.default.svc.cluster.local".into()),
        })
    });
    let line = &lines[0];
    assert_eq!(line["protocol"], "TCP");
    assert_eq!(line["method"], serde_json::Value::Null);
    assert_eq!(line["response_code"], serde_json::Value::Null);
    assert_eq!(line["response_flags"], "UF");
    assert_eq!(line["duration"], 1500);
    assert_eq!(line["bytes_sent"], 20);
    assert_eq!(line.as_object().unwrap().len(), 14);
}

#[test]
fn access_log_off_writes_nothing_but_metrics_still_count() {
    let mut registry = Registry::default();
    let telemetry = Telemetry::new(&mut registry, AccessLog::off());
    telemetry.record_request(&request(200, 1));
    assert!(!lines_for(&encode(&registry).unwrap(), "istio_requests_total").is_empty());
    let lines = access_log_lines(|_| {});
    assert!(lines.is_empty());
}

#[test]
fn telemetry_is_shareable_across_tasks() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<Telemetry>();
    assert_send_sync::<crate::tls::CertStore>();
}
