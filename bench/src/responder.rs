//! The server every path of the comparison ends at: HTTP/1.1 with keep-alive, answering every
//! request with `200` and the same 1 KiB body, on one or more ports.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Response, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;

/// Response body size, bytes (Istio's benchmark uses 1 KiB payloads).
pub const BODY_BYTES: usize = 1024;

/// Arguments of `weft-bench responder`.
#[derive(clap::Args, Debug)]
pub struct ResponderArgs {
    /// Listen address (repeatable: the same server on several ports).
    #[arg(long, required = true)]
    listen: Vec<SocketAddr>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// Serves until killed. Errors when a port cannot be bound or the runtime cannot start.
pub fn run(args: &ResponderArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let body = Bytes::from(vec![b'w'; BODY_BYTES]);
        let mut tasks = Vec::new();
        for addr in &args.listen {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            eprintln!("responder: {BODY_BYTES}-byte answers on {addr}");
            let body = body.clone();
            tasks.push(tokio::spawn(accept_loop(listener, body)));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    })
}

/// Serves `listener` until accepting fails: every request on every connection gets `200` with
/// `body` (HTTP/1.1, keep-alive). Errors: the accept error.
pub(crate) async fn accept_loop(
    listener: tokio::net::TcpListener,
    body: Bytes,
) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let body = body.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |_request| {
                let body = body.clone();
                async move {
                    let mut response = Response::new(Full::new(body));
                    response.headers_mut().insert(
                        header::CONTENT_TYPE,
                        header::HeaderValue::from_static("text/plain"),
                    );
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}
