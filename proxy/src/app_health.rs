//! Application probes through the proxy (Istio's pilot-agent "probe rewrite"): the injector
//! rewrites each container's HTTP `livenessProbe`/`readinessProbe`/`startupProbe` to
//! `GET :15020/app-health/<container>/<kind>z` and records the originals as JSON in
//! `ISTIO_KUBE_APP_PROBERS`; the proxy's status port answers those paths by running the
//! original probe against the application, so probes work under STRICT mTLS.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// The environment variable holding the original probes (Istio's name).
pub const KUBE_APP_PROBERS_ENV: &str = "ISTIO_KUBE_APP_PROBERS";

/// Kubernetes' default probe timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// One original probe (Istio `status.Prober`; Kubernetes `HTTPGetAction` in camelCase JSON).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prober {
    /// The original HTTP GET.
    pub http_get: HttpGet,
    /// The probe's timeout in seconds (Kubernetes default 1).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Kubernetes `HTTPGetAction` with a numeric port.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGet {
    /// Request path, `/` when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// The container port.
    pub port: u16,
    /// Host to connect to; the pod's IP (or 127.0.0.1) when absent.
    #[serde(default)]
    pub host: Option<String>,
    /// `HTTP` or `HTTPS`.
    #[serde(default)]
    pub scheme: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub http_headers: Vec<ProbeHeader>,
}

/// A probe request header.
#[derive(Debug, Clone, Deserialize)]
pub struct ProbeHeader {
    /// Header name.
    pub name: String,
    /// Header value.
    pub value: String,
}

/// The probes the status port serves, keyed by their rewritten path.
pub struct AppProbers {
    probers: HashMap<String, Prober>,
    default_host: IpAddr,
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl AppProbers {
    /// Parses `ISTIO_KUBE_APP_PROBERS` JSON (`{"/app-health/web/livez": {"httpGet": ...}}`);
    /// probes without a `host` go to `default_host` (the pod IP, as Istio since 1.10).
    ///
    /// Errors: the JSON error, naming the line and field.
    pub fn from_json(text: &str, default_host: IpAddr) -> Result<Self, serde_json::Error> {
        let probers = if text.trim().is_empty() {
            HashMap::new()
        } else {
            serde_json::from_str(text)?
        };
        Ok(Self {
            probers,
            default_host,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    /// Runs the probe registered for `path`: the application's status (so 2xx/3xx pass, as the
    /// kubelet judges), 503 when it cannot be reached in time, 501 for HTTPS probes (not
    /// supported yet). `None` when no probe has this path.
    pub async fn probe(&self, path: &str) -> Option<StatusCode> {
        let prober = self.probers.get(path)?;
        let get = &prober.http_get;
        if get
            .scheme
            .as_deref()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("HTTPS"))
        {
            return Some(StatusCode::NOT_IMPLEMENTED);
        }
        let host = match &get.host {
            Some(host) if !host.is_empty() => host.clone(),
            _ => match self.default_host {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            },
        };
        let target = get.path.as_deref().unwrap_or("/");
        let target = if target.starts_with('/') {
            target.to_owned()
        } else {
            format!("/{target}")
        };
        let mut request = Request::get(format!("http://{host}:{}{target}", get.port));
        for header in &get.http_headers {
            request = request.header(header.name.as_str(), header.value.as_str());
        }
        let Ok(request) = request
            .header(http::header::USER_AGENT, "kube-probe/weft")
            .body(Empty::new())
        else {
            return Some(StatusCode::SERVICE_UNAVAILABLE);
        };
        let timeout = prober
            .timeout_seconds
            .filter(|seconds| *seconds > 0)
            .map_or(DEFAULT_TIMEOUT, Duration::from_secs);
        match tokio::time::timeout(timeout, self.client.request(request)).await {
            Ok(Ok(response)) => Some(response.status()),
            Ok(Err(error)) => {
                tracing::debug!(%error, path, "application probe failed");
                Some(StatusCode::SERVICE_UNAVAILABLE)
            }
            Err(_) => Some(StatusCode::SERVICE_UNAVAILABLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_injectors_json() {
        let probers = AppProbers::from_json(
            r#"{"/app-health/web/livez":{"httpGet":{"path":"/health","port":8080,"httpHeaders":[{"name":"x","value":"y"}]},"timeoutSeconds":4}}"#,
            IpAddr::from([127, 0, 0, 1]),
        )
        .unwrap();
        let prober = &probers.probers["/app-health/web/livez"];
        assert_eq!(prober.http_get.port, 8080);
        assert_eq!(prober.timeout_seconds, Some(4));
        assert_eq!(prober.http_get.http_headers[0].name, "x");
        assert!(AppProbers::from_json("", IpAddr::from([127, 0, 0, 1])).is_ok());
        assert!(AppProbers::from_json("{not json", IpAddr::from([127, 0, 0, 1])).is_err());
    }
}
