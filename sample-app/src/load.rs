//! The load client: N requests, C at a time, and a JSON report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, HeaderName, HeaderValue, Request};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::parse_pair;

/// Arguments of `load`.
#[derive(Args, Debug, Clone)]
pub struct LoadArgs {
    /// The URL to request (its host is sent as `Host`).
    #[arg(long)]
    url: String,
    /// Resolve a host name to an address: `HOST=IP`.
    #[arg(long, value_parser = parse_pair)]
    resolve: Vec<(String, String)>,
    /// Extra request header `NAME=VALUE` (repeatable).
    #[arg(long, value_parser = parse_pair)]
    header: Vec<(String, String)>,
    /// Number of requests.
    #[arg(long, default_value_t = 100)]
    requests: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Per-request timeout in ms.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

/// The report printed by `load`.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// Requests sent.
    pub requests: usize,
    /// Answers by HTTP status (`0` = connection error or timeout).
    pub status: BTreeMap<u16, usize>,
    /// Answers by the `version` field of the JSON body (`-` when absent).
    pub versions: BTreeMap<String, usize>,
    /// Upstream answers seen by the service, keyed `<upstream>/<version>` (or
    /// `<upstream>/status-<code>` when the upstream call failed).
    pub upstream_versions: BTreeMap<String, usize>,
    /// Latency percentiles, ms.
    pub p50_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// The first connection errors seen (at most 5).
    pub errors: Vec<String>,
    /// Headers the service echoed (asked for with `x-weft-echo`), keyed `<name>=<value>`
    /// (`<name>` alone when the service did not receive it).
    pub echoed: BTreeMap<String, usize>,
    /// `Set-Cookie` values of the responses, as sent.
    pub set_cookies: BTreeMap<String, usize>,
}

/// One GET of `url`, connecting to the address `resolve` gives for its host (or the host
/// itself). Returns status, response headers and body. Errors on connection or protocol
/// failure.
pub async fn get(
    url: &str,
    resolve: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> anyhow::Result<(u16, HeaderMap, Bytes)> {
    let uri: http::Uri = url.parse()?;
    let host = uri
        .host()
        .ok_or_else(|| anyhow::anyhow!("no host in {url}"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let ip = resolve.get(&host).cloned().unwrap_or_else(|| host.clone());
    let tcp = tokio::net::TcpStream::connect((ip.as_str(), port)).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let mut req = Request::get(path).body(Empty::<Bytes>::new())?;
    let host_header = if port == 80 {
        host
    } else {
        format!("{host}:{port}")
    };
    req.headers_mut()
        .insert(http::header::HOST, HeaderValue::from_str(&host_header)?);
    for (k, v) in headers {
        req.headers_mut().insert(k.clone(), v.clone());
    }
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = crate::serve::collect(body).await;
    Ok((status, parts.headers, body))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Sends the load and returns the report. Errors on a bad header.
pub async fn run(args: LoadArgs) -> anyhow::Result<Report> {
    let resolve: BTreeMap<String, String> = args.resolve.iter().cloned().collect();
    let mut headers = HeaderMap::new();
    for (k, v) in &args.header {
        headers.insert(
            HeaderName::from_bytes(k.as_bytes())?,
            HeaderValue::from_str(v)?,
        );
    }
    let next = Arc::new(Mutex::new(0usize));
    let results = Arc::new(Mutex::new((Report::default(), Vec::<f64>::new())));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (next, results, headers, resolve, args) = (
            next.clone(),
            results.clone(),
            headers.clone(),
            resolve.clone(),
            args.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                {
                    let mut n = next.lock().await;
                    if *n >= args.requests {
                        return;
                    }
                    *n += 1;
                }
                let started = Instant::now();
                let outcome = tokio::time::timeout(
                    Duration::from_millis(args.timeout_ms),
                    get(&args.url, &resolve, &headers),
                )
                .await;
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                let mut guard = results.lock().await;
                let (report, latencies) = &mut *guard;
                report.requests += 1;
                latencies.push(ms);
                match outcome {
                    Ok(Ok((status, response_headers, body))) => {
                        *report.status.entry(status).or_default() += 1;
                        for cookie in response_headers.get_all(http::header::SET_COOKIE) {
                            let cookie = String::from_utf8_lossy(cookie.as_bytes()).into_owned();
                            *report.set_cookies.entry(cookie).or_default() += 1;
                        }
                        let json: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let version = json["version"].as_str().unwrap_or("-").to_string();
                        *report.versions.entry(version).or_default() += 1;
                        if let Some(echoed) = json["headers"].as_object() {
                            for (name, value) in echoed {
                                let key = match value.as_str() {
                                    Some(value) => format!("{name}={value}"),
                                    None => name.clone(),
                                };
                                *report.echoed.entry(key).or_default() += 1;
                            }
                        }
                        if let Some(upstreams) = json["upstreams"].as_object() {
                            for (name, up) in upstreams {
                                let v = up["version"].as_str().unwrap_or("-");
                                let status = up["status"].as_u64().unwrap_or(0);
                                let key = if status == 200 {
                                    format!("{name}/{v}")
                                } else {
                                    format!("{name}/status-{status}")
                                };
                                *report.upstream_versions.entry(key).or_default() += 1;
                            }
                        }
                    }
                    Ok(Err(e)) => {
                        *report.status.entry(0).or_default() += 1;
                        if report.errors.len() < 5 {
                            report.errors.push(e.to_string());
                        }
                    }
                    Err(_) => {
                        *report.status.entry(0).or_default() += 1;
                        if report.errors.len() < 5 {
                            report.errors.push("timeout".into());
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut guard = results.lock().await;
    let (report, latencies) = &mut *guard;
    latencies.sort_by(|a, b| a.total_cmp(b));
    report.p50_ms = percentile(latencies, 50.0);
    report.p90_ms = percentile(latencies, 90.0);
    report.p99_ms = percentile(latencies, 99.0);
    report.max_ms = latencies.last().copied().unwrap_or(0.0);
    Ok(std::mem::take(report))
}
