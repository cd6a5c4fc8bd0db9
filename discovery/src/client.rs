//! The proxy side of the discovery stream: connect over mTLS, say hello, hand every pushed
//! config to the proxy, ACK or NACK it, and reconnect with jittered exponential back-off when
//! the control plane goes away — the proxy keeps serving its last config meanwhile.
//!
//! A client whose Hello sets `incremental` keeps the config it applied ([`AppliedConfig`]) and
//! turns each [`ServerMessage::Delta`] back into a whole config, checked against the pushed
//! version, so `apply` always receives whole configs.

mod applied;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use weft_proxy_config::ProxyConfig;

use crate::{ClientMessage, FrameDecoder, Hello, STREAM_PATH, ServerMessage, encode_frame};

pub use applied::{AppliedConfig, Resolved};

/// Where and how to reach the discovery service.
#[derive(Clone)]
pub struct ClientSettings {
    /// `host:port` of the discovery service (e.g. `198.18.20.2:15012`, `istiod.istio-system.svc:15012`).
    pub address: String,
    /// The TLS client configuration: presents the workload certificate and verifies the control
    /// plane's SPIFFE ID. Its ALPN must offer `h2`.
    pub tls: Arc<rustls::ClientConfig>,
    /// What this proxy is.
    pub hello: Hello,
    /// First reconnect delay; doubles up to `max_backoff`, with ±50 % jitter.
    pub initial_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSettings")
            .field("address", &self.address)
            .field("hello", &self.hello)
            .finish_non_exhaustive()
    }
}

/// Why one stream ended.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// TCP connect failed.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (wrong CA, wrong control-plane identity, expired certificate).
    #[error("TLS handshake with {address}: {source}")]
    Tls {
        /// The address.
        address: String,
        /// The error.
        source: std::io::Error,
    },
    /// HTTP/2 failed.
    #[error("HTTP/2: {0}")]
    Http(#[from] hyper::Error),
    /// The server answered with an error status (e.g. 403 when the identity does not match).
    #[error("discovery service answered {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A frame could not be read.
    #[error(transparent)]
    Frame(#[from] crate::FrameError),
    /// The server closed the stream.
    #[error("the discovery service closed the stream")]
    Closed,
}

/// Connects, streams configs into `apply` until the stream ends, then reconnects forever with
/// back-off. `apply` returns `Ok(())` when the proxy applied the config (ACK) or `Err(reason)`
/// when it refused it and keeps the previous one (NACK). Runs until the task is dropped.
pub async fn run<F>(settings: ClientSettings, mut apply: F)
where
    F: FnMut(ProxyConfig) -> Result<(), String> + Send,
{
    let mut backoff = settings.initial_backoff;
    let mut current_version = settings.hello.current_version.clone();
    loop {
        let mut hello = settings.hello.clone();
        hello.current_version = current_version.clone();
        let mut applied_any = false;
        let result = stream_once(&settings, hello, &mut |config| {
            let version = config.version.clone();
            let outcome = apply(config);
            if outcome.is_ok() {
                current_version = version;
                applied_any = true;
            }
            outcome
        })
        .await;
        if applied_any {
            backoff = settings.initial_backoff;
        }
        let delay = jitter(backoff);
        match result {
            Ok(()) | Err(StreamError::Closed) => {
                tracing::warn!(address = %settings.address, retry_in_ms = delay.as_millis() as u64, "discovery stream closed; keeping the last config");
            }
            Err(e) => {
                tracing::warn!(address = %settings.address, error = %e, retry_in_ms = delay.as_millis() as u64, "discovery stream failed; keeping the last config");
            }
        }
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(settings.max_backoff);
    }
}

fn jitter(base: Duration) -> Duration {
    let factor: f64 = 0.5 + rand::random::<f64>();
    base.mul_f64(factor)
}

/// One stream: connect, hello, then apply pushes until the stream ends. Errors say why it ended.
pub async fn stream_once(
    settings: &ClientSettings,
    hello: Hello,
    apply: &mut (dyn FnMut(ProxyConfig) -> Result<(), String> + Send),
) -> Result<(), StreamError> {
    let address = settings.address.clone();
    let tcp = TcpStream::connect(&address)
        .await
        .map_err(|source| StreamError::Connect {
            address: address.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let host = address
        .rsplit_once(':')
        .map_or(address.as_str(), |(h, _)| h);
    let server_name = ServerName::try_from(host.to_string()).unwrap_or_else(|_| {
        ServerName::try_from("discovery.weft")
            .unwrap_or(ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()))
    });
    let tls = tokio_rustls::TlsConnector::from(settings.tls.clone())
        .connect(server_name, tcp)
        .await
        .map_err(|source| StreamError::Tls {
            address: address.clone(),
            source,
        })?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .handshake(TokioIo::new(tls))
        .await?;
    let conn_task = tokio::spawn(conn);

    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let body = StreamBody::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), rx))
    })));
    let hello_incremental = hello.incremental;
    let hello_frame = encode_frame(&ClientMessage::Hello(hello))?;
    let _ = tx.send(Bytes::from(hello_frame)).await;
    let request = http::Request::post(format!("https://{host}{STREAM_PATH}"))
        .body(body)
        .map_err(|e| StreamError::Rejected {
            status: 0,
            message: e.to_string(),
        })?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let mut body = response.into_body();
    let mut decoder = FrameDecoder::new();
    if !status.is_success() {
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        decoder.push(&bytes);
        decoder.push(b"\n");
        let message = match decoder.next_message::<ServerMessage>() {
            Ok(Some(ServerMessage::Error { message })) => message,
            _ => String::from_utf8_lossy(&bytes).trim().to_string(),
        };
        conn_task.abort();
        return Err(StreamError::Rejected {
            status: status.as_u16(),
            message,
        });
    }
    let incremental = hello_incremental;
    let mut applied = AppliedConfig::new();
    let result = loop {
        match decoder.next_message::<ServerMessage>() {
            Ok(Some(ServerMessage::Config {
                version,
                nonce,
                config,
            })) => {
                let config = AppliedConfig::resolve_config(&version, *config);
                let reply = offer(
                    &mut applied,
                    incremental,
                    Ok(config.into()),
                    apply,
                    version,
                    nonce,
                );
                if send_reply(&tx, &reply).await.is_err() {
                    break Err(StreamError::Closed);
                }
                continue;
            }
            Ok(Some(ServerMessage::Delta {
                version,
                base_version,
                nonce,
                delta,
            })) => {
                let resolved = applied
                    .resolve_delta(&version, &base_version, *delta)
                    .map_err(|e| e.to_string());
                if let Err(reason) = &resolved {
                    tracing::warn!(%version, %base_version, %reason, "refusing a delta push");
                }
                let reply = offer(&mut applied, incremental, resolved, apply, version, nonce);
                if send_reply(&tx, &reply).await.is_err() {
                    break Err(StreamError::Closed);
                }
                continue;
            }
            Ok(Some(ServerMessage::Error { message })) => {
                break Err(StreamError::Rejected {
                    status: status.as_u16(),
                    message,
                });
            }
            Ok(None) => {}
            Err(e) => break Err(e.into()),
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    decoder.push(data);
                }
            }
            Some(Err(e)) => break Err(e.into()),
            None => break Err(StreamError::Closed),
        }
    };
    conn_task.abort();
    result
}

/// Hands a pushed config (or the reason it could not be resolved) to `apply` and returns the
/// ACK or NACK to send. An incremental client keeps a copy of what the proxy applied, the
/// base of the next delta.
fn offer(
    applied: &mut AppliedConfig,
    incremental: bool,
    resolved: Result<Resolved, String>,
    apply: &mut (dyn FnMut(ProxyConfig) -> Result<(), String> + Send),
    version: String,
    nonce: u64,
) -> ClientMessage {
    let outcome = resolved.and_then(|resolved| {
        if incremental {
            apply(resolved.config().clone())?;
            applied.commit(resolved);
            Ok(())
        } else {
            apply(resolved.into_config())
        }
    });
    match outcome {
        Ok(()) => ClientMessage::Ack { version, nonce },
        Err(reason) => ClientMessage::Nack {
            version,
            nonce,
            reason,
        },
    }
}

/// Sends an ACK or NACK frame on the request body. Errors when the body is gone.
async fn send_reply(tx: &mpsc::Sender<Bytes>, reply: &ClientMessage) -> Result<(), StreamError> {
    let frame = encode_frame(reply)?;
    tx.send(Bytes::from(frame))
        .await
        .map_err(|_| StreamError::Closed)
}
