//! The simulated proxies, run in a child process so that the parent's memory and CPU numbers
//! are the server's: one mTLS HTTP/2 discovery stream per WorkloadEntry, exactly as the real
//! client opens it (`weft_discovery::client`).
//!
//! Incremental clients (the default; the Hello sets `incremental`) handle pushes as the real
//! client does, with `weft_discovery::client::AppliedConfig`: a full config is decoded and
//! kept, a delta is decoded, applied to the kept config, and the result's content hash checked
//! against the pushed version; then it is ACKed (or NACKed with the reason). Only the proxy's
//! runtime (compiling the config into routing tables) is left out.
//!
//! Full-config clients (`--full`) check each push instead of decoding it: the frame must be a
//! `config` message whose `config` is well-formed JSON (parsed and discarded with
//! `serde::de::IgnoredAny`), as the bench did before incremental pushes, so that its numbers
//! stay comparable.
//!
//! Each push is written to stdout as `applied <proxy index> <version> <unix ns> <frame bytes>
//! <full|delta|nack>`; the parent matches it against Pilot's versions.

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
use weft_discovery::client::AppliedConfig;
use weft_discovery::{
    ClientMessage, FrameDecoder, Hello, STREAM_PATH, ServerMessage, encode_frame,
};
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
/// the parent kills the process; incremental clients unless `full`.
pub fn run(address: &str, state: &Path, full: bool) {
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
                incremental: !full,
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

/// One proxy's stream: hello, then handle, report and ACK every push.
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
    let hello_incremental = hello.incremental;
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
    let incremental = hello_incremental;
    let mut body = response.into_body();
    let mut decoder = FrameDecoder::new();
    let mut applied = AppliedConfig::new();
    loop {
        loop {
            let before = decoder.pending();
            let handled = if incremental {
                let Some(push) = decoder
                    .next_message::<ServerMessage>()
                    .map_err(|e| e.to_string())?
                else {
                    break;
                };
                handle(&mut applied, push)?
            } else {
                let Some(push) = decoder.next_message::<Push>().map_err(|e| e.to_string())? else {
                    break;
                };
                match push {
                    Push::Config { version, nonce, .. } => (version, nonce, "full", None),
                    Push::Error { message } => return Err(message),
                }
            };
            let (version, nonce, kind, refused) = handled;
            let bytes = before - decoder.pending();
            let line = format!("applied {index} {version} {} {bytes} {kind}", unix_nanos());
            report.send(line).map_err(|e| e.to_string())?;
            let reply = match refused {
                None => ClientMessage::Ack { version, nonce },
                Some(reason) => ClientMessage::Nack {
                    version,
                    nonce,
                    reason,
                },
            };
            let reply = encode_frame(&reply).map_err(|e| e.to_string())?;
            tx.send(Bytes::from(reply))
                .await
                .map_err(|e| e.to_string())?;
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

/// An incremental client's handling of one push, as `weft_discovery::client` does it minus
/// the proxy runtime: (version, nonce, `full`/`delta`/`nack`, the NACK reason).
fn handle(
    applied: &mut AppliedConfig,
    push: ServerMessage,
) -> Result<(String, u64, &'static str, Option<String>), String> {
    match push {
        ServerMessage::Config {
            version,
            nonce,
            config,
        } => {
            applied.commit(AppliedConfig::resolve_config(&version, *config));
            Ok((version, nonce, "full", None))
        }
        ServerMessage::Delta {
            version,
            base_version,
            nonce,
            delta,
        } => match applied.resolve_delta(&version, &base_version, *delta) {
            Ok(config) => {
                applied.commit(config);
                Ok((version, nonce, "delta", None))
            }
            Err(e) => Ok((version, nonce, "nack", Some(e.to_string()))),
        },
        ServerMessage::Error { message } => Err(message),
    }
}
