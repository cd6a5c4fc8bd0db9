//! The simulated proxies, run in a child process so that the parent's memory and CPU numbers
//! are the server's: one mTLS HTTP/2 discovery stream per WorkloadEntry, exactly as the real
//! client opens it (`weft_discovery::client`), but a push is checked, not decoded into a
//! `ProxyConfig`: the frame must be a `config` message whose `config` is well-formed JSON
//! (parsed and discarded with `serde::de::IgnoredAny`), then its version is reported and
//! ACKed. A real proxy decodes the config on its own CPU; this keeps 1,000 typed decodes
//! (≈ 6 ms each) off the two cores the server runs on.
//!
//! Each applied push is written to stdout as `applied <proxy index> <version> <unix ns> <frame
//! bytes>`; the parent matches it against Pilot's versions.

use std::convert::Infallible;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::sync::mpsc;
use weft_discovery::{ClientMessage, FrameDecoder, Hello, STREAM_PATH, encode_frame};
use weft_identity::Identity;
use weft_proxy::tls::{CertPaths, CertStore, client_config};

use super::{NAMESPACES, OPERATOR_SA, SERVICE_ACCOUNT, TRUST_DOMAIN, citadel, targets};

/// A server frame, checked but with the config left undecoded.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Push {
    Config {
        version: String,
        nonce: u64,
        #[allow(dead_code)] // parsed to check it, then dropped
        config: IgnoredAny,
    },
    Error {
        message: String,
    },
}

/// Whether `frame` (without its newline) passes the check each client makes of a push: a
/// `config` message whose config is well-formed JSON.
pub fn check(frame: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<Push>(frame),
        Ok(Push::Config { .. })
    )
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos()
}

/// Runs every simulated proxy against `address` with the certificates under `state` until
/// the parent kills the process.
pub fn run(address: &str, state: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let citadel = citadel(state);
        let expected = [format!(
            "spiffe://{TRUST_DOMAIN}/ns/istio-system/sa/{OPERATOR_SA}"
        )];
        let mut tls = Vec::new();
        for ns in 0..NAMESPACES {
            let identity =
                Identity::spiffe(TRUST_DOMAIN, format!("ns{ns}"), SERVICE_ACCOUNT).unwrap();
            let store = CertStore::load(CertPaths::istio(citadel.workload_dir(&identity))).unwrap();
            tls.push(Arc::new(
                client_config(&store, &expected, &[b"h2"]).unwrap(),
            ));
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<String>();
        for (index, (namespace, workload)) in targets().into_iter().enumerate() {
            let ns: usize = namespace.trim_start_matches("ns").parse().unwrap();
            let hello = Hello {
                namespace,
                workload,
                proxy_version: "bench".into(),
                current_version: String::new(),
                incremental: false,
                proxy_type: Default::default(),
            };
            let (address, tls, tx) = (address.to_owned(), tls[ns].clone(), tx.clone());
            tokio::spawn(async move {
                if let Err(error) = proxy(index, &address, tls, hello, tx).await {
                    eprintln!("proxy {index}: stream ended: {error}");
                }
            });
        }
        drop(tx);
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        while let Some(line) = rx.recv().await {
            writeln!(out, "{line}").unwrap();
            if rx.is_empty() {
                out.flush().unwrap();
            }
        }
    });
}

/// One proxy's stream: hello, then check, report and ACK every push.
async fn proxy(
    index: usize,
    address: &str,
    tls: Arc<rustls::ClientConfig>,
    hello: Hello,
    report: mpsc::UnboundedSender<String>,
) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let tls = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(hyper_util::rt::TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let body = StreamBody::new(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        let bytes = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(bytes)), rx))
    })));
    let hello = encode_frame(&ClientMessage::Hello(hello)).map_err(|e| e.to_string())?;
    tx.send(Bytes::from(hello))
        .await
        .map_err(|e| e.to_string())?;
    let request = http::Request::post(format!("https://127.0.0.1{STREAM_PATH}"))
        .body(body)
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut body = response.into_body();
    let mut decoder = FrameDecoder::new();
    loop {
        let mut before = decoder.pending();
        while let Some(push) = decoder.next_message::<Push>().map_err(|e| e.to_string())? {
            match push {
                Push::Config { version, nonce, .. } => {
                    let bytes = before - decoder.pending();
                    before = decoder.pending();
                    let line = format!("applied {index} {version} {} {bytes}", unix_nanos());
                    report.send(line).map_err(|e| e.to_string())?;
                    let ack = encode_frame(&ClientMessage::Ack { version, nonce })
                        .map_err(|e| e.to_string())?;
                    tx.send(Bytes::from(ack)).await.map_err(|e| e.to_string())?;
                }
                Push::Error { message } => return Err(message),
            }
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    decoder.push(data);
                }
            }
            Some(Err(e)) => return Err(e.to_string()),
            None => return Err("closed".into()),
        }
    }
}
