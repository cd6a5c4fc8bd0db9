//! Protocol tests of the outbound HTTP path with real sockets on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may unwrap

#[path = "common/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_proxy::request_log::ResponseFlags;

const V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
const V2: &str = "outbound|9080|v2|reviews.default.svc.cluster.local";
const V3: &str = "outbound|9080|v3|reviews.default.svc.cluster.local";

fn forward_to(cluster_name: &str) -> String {
    format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{cluster_name}\"}}]\n"
    )
}

#[tokio::test]
async fn routes_by_header_first_match_wins() {
    let (v1, v3) = (named_upstream("v1").await, named_upstream("v3").await);
    let routes = format!(
        r#"            - name: jason
              match:
                - headers: {{end-user: {{exact: jason}}}}
              action:
                route:
                  clusters: [{{cluster: "{V3}"}}]
{}"#,
        forward_to(V1)
    );
    let clusters = cluster(V1, &[v1.address]) + &cluster(V3, &[v3.address]);
    let proxy = outbound_proxy(http_config(&routes, &clusters), VIP).await;

    let (status, _, body) = get(
        &proxy,
        "reviews:9080",
        "/reviews/1",
        &[("end-user", "jason")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "v3"));
    assert_eq!(&*proxy.recorder.last().route_name, "jason");
    assert_eq!(&*proxy.recorder.last().upstream_cluster, V3);
    let (status, _, body) = get(&proxy, "reviews:9080", "/reviews/1", &[("end-user", "bob")]).await;
    assert_eq!((status, body.as_str()), (200, "v1"));
    let (_, _, body) = get(&proxy, "reviews:9080", "/reviews/1", &[]).await;
    assert_eq!(body, "v1");
}

#[tokio::test]
async fn weighted_split_stays_within_statistical_bounds() {
    let (v1, v2) = (named_upstream("v1").await, named_upstream("v2").await);
    let routes = format!(
        "            - action:\n                route:\n                  clusters:\n                    - {{cluster: \"{V1}\", weight: 80}}\n                    - {{cluster: \"{V2}\", weight: 20}}\n"
    );
    let clusters = cluster(V1, &[v1.address]) + &cluster(V2, &[v2.address]);
    let proxy = outbound_proxy(http_config(&routes, &clusters), VIP).await;
    let total = 1000;
    let mut to_v1 = 0;
    for _ in 0..total {
        let (_, _, body) = get(&proxy, "reviews", "/", &[]).await;
        if body == "v1" {
            to_v1 += 1;
        }
    }
    // Binomial(1000, 0.8): sd ~12.6; +-6 sd.
    assert!((725..=875).contains(&to_v1), "v1 got {to_v1}/{total}");
}

fn retry_route(cluster_name: &str, retry: &str) -> String {
    format!(
        "            - action:\n                route:\n                  clusters: [{{cluster: \"{cluster_name}\"}}]\n{retry}"
    )
}

#[tokio::test]
async fn retries_on_503_until_success() {
    let flaky = upstream(|number, _| async move {
        if number < 2 {
            status(503, "busy")
        } else {
            status(200, "ok")
        }
    })
    .await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 3, retry_on: [5xx], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[flaky.address])), VIP).await;
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(flaky.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(proxy.recorder.last().attempts, 3);
}

#[tokio::test]
async fn exhausted_retries_return_the_last_response_with_urx() {
    let down = upstream(|_, _| async { status(503, "busy") }).await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, retry_on: [gateway-error], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[down.address])), VIP).await;
    let (status, _, _) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!(status, 503);
    assert_eq!(down.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED)
    );
}

#[tokio::test]
async fn status_not_in_retry_on_is_not_retried() {
    let down = upstream(|_, _| async { status(500, "broken") }).await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 3, retry_on: [retriable-status-codes], retriable_status_codes: [503], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[down.address])), VIP).await;
    let (status, _, _) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!(status, 500);
    assert_eq!(down.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn per_try_timeout_retries_a_slow_try() {
    let slow_first = upstream(|number, _| async move {
        if number == 0 {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        status(200, "fast")
    })
    .await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, per_try_timeout_ms: 200, retry_on: [5xx], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(
        http_config(&routes, &cluster(V1, &[slow_first.address])),
        VIP,
    )
    .await;
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "fast"));
    assert_eq!(proxy.recorder.last().attempts, 2);
}

#[tokio::test]
async fn route_timeout_gives_504_ut() {
    let slow = upstream(|_, _| async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        status(200, "late")
    })
    .await;
    let routes = retry_route(V1, "                  timeout_ms: 200\n");
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[slow.address])), VIP).await;
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (504, "upstream request timeout"));
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_REQUEST_TIMEOUT)
    );
}

#[tokio::test]
async fn fault_abort_answers_without_calling_upstream() {
    let backend = named_upstream("v1").await;
    let routes = retry_route(
        V1,
        "                  fault: {abort: {http_status: 418, percentage: 100}}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend.address])), VIP).await;
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (418, "fault filter abort"));
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::FAULT_INJECTED)
    );
}

#[tokio::test]
async fn fault_delay_delays_then_forwards() {
    let backend = named_upstream("v1").await;
    let routes = retry_route(
        V1,
        "                  fault: {delay: {fixed_delay_ms: 300, percentage: 100}}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend.address])), VIP).await;
    let started = std::time::Instant::now();
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "v1"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::DELAY_INJECTED)
    );
}

#[tokio::test]
async fn redirect_and_direct_response_are_local() {
    let routes = r#"            - match: [{uri: {exact: /old}}]
              action:
                redirect: {uri: /new, authority: example.com, redirect_code: 308}
            - action:
                direct_response: {status: 404, body: "gone fishing"}
"#;
    let proxy = outbound_proxy(http_config(routes, "  []\n"), VIP).await;
    let (status, headers, _) = get(&proxy, "reviews:9080", "/old", &[]).await;
    assert_eq!(status, 308);
    assert_eq!(headers["location"], "http://example.com:9080/new");
    let (status, _, body) = get(&proxy, "reviews", "/other", &[]).await;
    assert_eq!((status, body.as_str()), (404, "gone fishing"));
}

#[tokio::test]
async fn registry_only_refuses_unknown_destinations_with_502_nr() {
    let mut config = http_config(&forward_to(V1), &cluster(V1, &[]));
    config.outbound_traffic_policy = weft_proxy_config::OutboundTrafficPolicy::RegistryOnly;
    let proxy = outbound_proxy(config, "203.0.113.9:80").await;
    let (status, _, _) = get(&proxy, "example.com", "/", &[]).await;
    assert_eq!(status, 502);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::NO_ROUTE_FOUND)
    );
}

#[tokio::test]
async fn empty_cluster_gives_503_uh_and_dead_endpoint_gives_503_uf() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let routes = r#"            - match: [{uri: {prefix: /empty}}]
              action:
                route:
                  clusters: [{cluster: "empty"}]
            - action:
                route:
                  clusters: [{cluster: "dead"}]
"#;
    let clusters = cluster("empty", &[]) + &cluster("dead", &[closed]);
    let proxy = outbound_proxy(http_config(routes, &clusters), VIP).await;
    let (status, _, body) = get(&proxy, "reviews", "/empty", &[]).await;
    assert_eq!((status, body.as_str()), (503, "no healthy upstream"));
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::NO_HEALTHY_UPSTREAM)
    );
    let (status, _, _) = get(&proxy, "reviews", "/dead", &[]).await;
    assert_eq!(status, 503);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_CONNECTION_FAILURE)
    );
}

#[tokio::test]
async fn headers_are_mutated_and_uri_rewritten_and_tracing_headers_kept() {
    let backend = upstream(|_, _| async {
        let mut response = status(200, "ok");
        response
            .headers_mut()
            .insert("x-powered-by", "test".parse().unwrap());
        response
    })
    .await;
    let routes = format!(
        r#"            - match: [{{uri: {{prefix: /api/}}}}]
              action:
                route:
                  clusters: [{{cluster: "{V1}"}}]
                  rewrite: {{uri: /v2/, authority: reviews.internal}}
                  request_headers: {{set: {{x-set: one}}, add: {{x-add: two}}, remove: [x-drop]}}
                  response_headers: {{remove: [x-powered-by], set: {{x-served-by: weft}}}}
"#
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend.address])), VIP).await;
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let (status, headers, _) = get(
        &proxy,
        "reviews",
        "/api/items?page=2",
        &[
            ("x-drop", "1"),
            ("traceparent", traceparent),
            ("x-b3-traceid", "abc"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("x-powered-by"));
    assert_eq!(headers["x-served-by"], "weft");
    let seen = backend.seen.lock();
    let request = &seen[0];
    assert_eq!(request.path, "/v2/items?page=2");
    assert_eq!(request.headers["host"], "reviews.internal");
    assert_eq!(request.headers["x-set"], "one");
    assert_eq!(request.headers["x-add"], "two");
    assert!(!request.headers.contains_key("x-drop"));
    assert_eq!(request.headers["traceparent"], traceparent);
    assert_eq!(request.headers["x-b3-traceid"], "abc");
    let id = request.headers["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "generated x-request-id {id}");
    assert_eq!(proxy.recorder.last().request_id, id);
}

#[tokio::test]
async fn existing_request_id_is_kept() {
    let backend = named_upstream("v1").await;
    let proxy = outbound_proxy(
        http_config(&forward_to(V1), &cluster(V1, &[backend.address])),
        VIP,
    )
    .await;
    get(&proxy, "reviews", "/", &[("x-request-id", "given-id")]).await;
    assert_eq!(backend.seen.lock()[0].headers["x-request-id"], "given-id");
}

#[tokio::test]
async fn malformed_request_gets_400_and_the_proxy_keeps_serving() {
    let backend = named_upstream("v1").await;
    let proxy = outbound_proxy(
        http_config(&forward_to(V1), &cluster(V1, &[backend.address])),
        VIP,
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    stream
        .write_all(b"GET /\x01bad HTTP/1.1\r\nHost: reviews\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "reply: {reply:?}");
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!((status, body.as_str()), (200, "v1"));
}

#[tokio::test]
async fn unknown_authority_gets_404_nr() {
    let backend = named_upstream("v1").await;
    let mut config = http_config(&forward_to(V1), &cluster(V1, &[backend.address]));
    config.outbound[0].http.as_mut().unwrap().virtual_hosts[0].domains = vec!["reviews".into()];
    let proxy = outbound_proxy(config, VIP).await;
    let (status, _, _) = get(&proxy, "ratings", "/", &[]).await;
    assert_eq!(status, 404);
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::NO_ROUTE_FOUND)
    );
    let (status, _, _) = get(&proxy, "Reviews", "/", &[]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn log_counts_body_bytes_and_is_emitted_after_the_body() {
    let backend = upstream(|_, _| async { status(200, "0123456789") }).await;
    let proxy = outbound_proxy(
        http_config(&forward_to(V1), &cluster(V1, &[backend.address])),
        VIP,
    )
    .await;
    let request = http::Request::post(format!("http://{}/upload", proxy.address))
        .header("host", "reviews")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"hello",
        )))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes().len(), 10);
    for _ in 0..200 {
        if !proxy.recorder.logs.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let log = proxy.recorder.last();
    assert_eq!((log.request_bytes, log.response_bytes), (5, 10));
    assert_eq!(log.status, 200);
    assert!(log.flags.is_empty(), "{}", log.flags);
}

#[tokio::test]
async fn grpc_unavailable_is_retried_by_grpc_condition() {
    let flaky = upstream(|number, _| async move {
        let mut response = status(200, "");
        if number == 0 {
            response
                .headers_mut()
                .insert("grpc-status", "14".parse().unwrap());
        } else {
            response
                .headers_mut()
                .insert("grpc-status", "0".parse().unwrap());
        }
        response
    })
    .await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, retry_on: [unavailable], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[flaky.address])), VIP).await;
    let (status, headers, _) = get(&proxy, "reviews", "/pkg.Svc/Call", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(headers["grpc-status"], "0");
    assert_eq!(flaky.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
}

#[tokio::test]
async fn cors_preflight_is_answered_and_actual_requests_decorated() {
    let backend = named_upstream("v1").await;
    let routes = format!(
        r#"            - action:
                route:
                  clusters: [{{cluster: "{V1}"}}]
                  cors:
                    allow_origins: [{{exact: "https://shop.example"}}]
                    allow_methods: [GET, POST]
                    allow_headers: [x-token]
                    expose_headers: [x-trace]
                    max_age_ms: 86400000
                    allow_credentials: true
"#
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend.address])), VIP).await;
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("http://{}/", proxy.address))
        .header("host", "reviews")
        .header("origin", "https://shop.example")
        .header("access-control-request-method", "POST")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(headers["access-control-allow-methods"], "GET,POST");
    assert_eq!(headers["access-control-allow-headers"], "x-token");
    assert_eq!(headers["access-control-max-age"], "86400");
    assert_eq!(headers["access-control-allow-credentials"], "true");
    assert_eq!(backend.hits.load(std::sync::atomic::Ordering::SeqCst), 0);

    let (status, headers, body) = get(
        &proxy,
        "reviews",
        "/",
        &[("origin", "https://shop.example")],
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "v1"));
    assert_eq!(
        headers["access-control-allow-origin"],
        "https://shop.example"
    );
    assert_eq!(headers["access-control-expose-headers"], "x-trace");

    let (_, headers, _) = get(
        &proxy,
        "reviews",
        "/",
        &[("origin", "https://evil.example")],
    )
    .await;
    assert!(!headers.contains_key("access-control-allow-origin"));
}

#[tokio::test]
async fn mirror_sends_a_shadow_copy() {
    let primary = named_upstream("primary").await;
    let shadow = named_upstream("shadow").await;
    let routes = format!(
        r#"            - action:
                route:
                  clusters: [{{cluster: "{V1}"}}]
                  mirrors: [{{cluster: "{V2}", percentage: 100}}]
"#
    );
    let clusters = cluster(V1, &[primary.address]) + &cluster(V2, &[shadow.address]);
    let proxy = outbound_proxy(http_config(&routes, &clusters), VIP).await;
    let (_, _, body) = get(&proxy, "reviews:9080", "/m", &[]).await;
    assert_eq!(body, "primary");
    for _ in 0..200 {
        if shadow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = shadow.seen.lock();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers["host"], "reviews-shadow:9080");
    assert_eq!(seen[0].path, "/m");
}

/// Reads from `stream` until the end of an HTTP head (`\r\n\r\n`); returns the head.
async fn read_head(stream: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

#[tokio::test]
async fn upgrade_requests_are_spliced_after_101() {
    // An upstream that switches to an echo protocol.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_address = listener.local_addr().unwrap();
    let seen_head = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
    let seen = std::sync::Arc::clone(&seen_head);
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        *seen.lock() = read_head(&mut stream).await;
        stream
            .write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
            )
            .await
            .unwrap();
        let (mut read, mut write) = stream.split();
        let _ = tokio::io::copy(&mut read, &mut write).await;
    });
    let proxy = outbound_proxy(
        http_config(&forward_to(V1), &cluster(V1, &[upstream_address])),
        VIP,
    )
    .await;
    let mut client = tokio::net::TcpStream::connect(proxy.address).await.unwrap();
    client
        .write_all(
            b"GET /chat HTTP/1.1\r\nHost: reviews\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
    let head = read_head(&mut client).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: echo"),
        "{head}"
    );
    client.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut echoed))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echoed, b"ping");
    let upstream_head = seen_head.lock().to_ascii_lowercase();
    assert!(upstream_head.contains("upgrade: echo"), "{upstream_head}");
    assert!(
        upstream_head.contains("connection: upgrade"),
        "{upstream_head}"
    );
}

#[tokio::test]
async fn outlier_detection_ejects_a_failing_endpoint() {
    let bad = upstream(|_, _| async { status(503, "bad") }).await;
    let good = named_upstream("good").await;
    let clusters = format!(
        r#"  - name: "{V1}"
    lb_policy: ROUND_ROBIN
    outlier_detection: {{consecutive_5xx_errors: 1, base_ejection_time_ms: 60000, max_ejection_percent: 50}}
    endpoints:
      - {{address: 127.0.0.1, port: {}}}
      - {{address: 127.0.0.1, port: {}}}
"#,
        bad.address.port(),
        good.address.port()
    );
    let proxy = outbound_proxy(http_config(&forward_to(V1), &clusters), VIP).await;
    let mut failures = 0;
    for _ in 0..20 {
        let (status, _, _) = get(&proxy, "reviews", "/", &[]).await;
        if status == 503 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 1,
        "only the request that tripped the detector fails"
    );
    assert_eq!(bad.hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn circuit_breaker_overflow_gives_503_uo() {
    let slow = upstream(|_, _| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        status(200, "slow")
    })
    .await;
    let clusters = format!(
        r#"  - name: "{V1}"
    connection_pool: {{tcp: {{max_connections: 1}}, http: {{http1_max_pending_requests: 0}}}}
    endpoints: [{{address: 127.0.0.1, port: {}}}]
"#,
        slow.address.port()
    );
    let proxy =
        std::sync::Arc::new(outbound_proxy(http_config(&forward_to(V1), &clusters), VIP).await);
    let first = {
        let proxy = std::sync::Arc::clone(&proxy);
        tokio::spawn(async move { get(&proxy, "reviews", "/", &[]).await.0 })
    };
    for _ in 0..200 {
        if slow.hits.load(std::sync::atomic::Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (status, _, body) = get(&proxy, "reviews", "/", &[]).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        proxy
            .recorder
            .last()
            .flags
            .contains(ResponseFlags::UPSTREAM_OVERFLOW)
    );
    assert_eq!(first.await.unwrap(), 200);
    // The slot is free again.
    assert_eq!(get(&proxy, "reviews", "/", &[]).await.0, 200);
}

#[tokio::test]
async fn http2_prior_knowledge_to_a_grpc_cluster_stays_http2() {
    let backend = upstream(|_, _| async { status(200, "h2") }).await;
    let clusters = format!(
        "  - name: \"{V1}\"\n    protocol: GRPC\n    endpoints: [{{address: 127.0.0.1, port: {}}}]\n",
        backend.address.port()
    );
    let mut config = http_config(&forward_to(V1), &clusters);
    config.outbound[0].protocol = weft_proxy_config::Protocol::Grpc;
    let proxy = outbound_proxy(config, VIP).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(format!("http://{}/pkg.Svc/Call", proxy.address))
        .header("content-type", "application/grpc")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\0",
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    for _ in 0..200 {
        if !proxy.recorder.logs.lock().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(proxy.recorder.last().protocol, "HTTP/2");
    let seen = backend.seen.lock();
    assert_eq!(seen[0].headers["content-type"], "application/grpc");
}

/// An upstream answering with the number of request body bytes it received.
async fn length_upstream() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    |request: http::Request<hyper::body::Incoming>| async move {
                        let body = http_body_util::BodyExt::collect(request.into_body())
                            .await
                            .unwrap()
                            .to_bytes();
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body.len().to_string())),
                        ))
                    },
                );
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn bodies_too_large_to_replay_are_streamed_once_instead_of_refused() {
    let backend = length_upstream().await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, retry_on: [5xx]}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend])), VIP).await;
    let big = bytes::Bytes::from(vec![7u8; 3 * 1024 * 1024]);
    // Declared length over the limit.
    let request = http::Request::post(format!("http://{}/upload", proxy.address))
        .header("host", "reviews")
        .body(http_body_util::Full::new(big.clone()))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), big.len().to_string());
    // Chunked (no length): discovered while buffering.
    let chunks = futures::stream::iter((0..48).map(|_| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes::Bytes::from(
            vec![1u8; 64 * 1024],
        )))
    }));
    let request = http::Request::post(format!("http://{}/upload", proxy.address))
        .header("host", "reviews")
        .body(http_body_util::StreamBody::new(chunks))
        .unwrap();
    let chunked_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let response = chunked_client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), (48 * 64 * 1024).to_string());
}

#[tokio::test]
async fn post_body_is_replayed_after_a_connect_failure() {
    let live = length_upstream().await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let clusters = format!(
        "  - name: \"{V1}\"\n    lb_policy: ROUND_ROBIN\n    endpoints:\n      - {{address: 127.0.0.1, port: {}}}\n      - {{address: 127.0.0.1, port: {}}}\n",
        dead.port(),
        live.port()
    );
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, retry_on: [connect-failure], backoff_base_ms: 1}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &clusters), VIP).await;
    let request = http::Request::post(format!("http://{}/upload", proxy.address))
        .header("host", "reviews")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"0123456789",
        )))
        .unwrap();
    let response = client().request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap();
    assert_eq!(body.to_bytes(), "10");
    assert_eq!(proxy.recorder.last().attempts, 2);
}

#[tokio::test]
async fn streaming_request_is_not_held_back_by_the_retry_policy() {
    // The upstream answers as soon as the headers arrive, without reading the body.
    let backend = upstream(|_, _| async { status(200, "early") }).await;
    let routes = retry_route(
        V1,
        "                  retry: {attempts: 2, retry_on: [5xx]}\n",
    );
    let proxy = outbound_proxy(http_config(&routes, &cluster(V1, &[backend.address])), VIP).await;
    let (sender, receiver) = tokio::sync::mpsc::channel::<bytes::Bytes>(4);
    let frames = futures::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|bytes| {
            (
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(bytes)),
                receiver,
            )
        })
    });
    let body = http_body_util::StreamBody::new(Box::pin(frames));
    sender
        .send(bytes::Bytes::from_static(b"first message"))
        .await
        .unwrap();
    let request = http::Request::post(format!("http://{}/stream", proxy.address))
        .header("host", "reviews")
        .body(body)
        .unwrap();
    let streaming_client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    // The body is still open: the response must come anyway.
    let response = tokio::time::timeout(Duration::from_secs(5), streaming_client.request(request))
        .await
        .expect("response while the request body is still streaming")
        .unwrap();
    assert_eq!(response.status(), 200);
    drop(sender);
}
