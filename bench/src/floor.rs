//! `weft-bench floor`: a reference one-hop HTTP/1.1 proxy on the stack `weft-proxy` is built
//! on (hyper's server and client, one current-thread tokio runtime per worker accepting on a
//! shared socket, a keep-alive pool of upstream connections per worker) and nothing else: no
//! routing, policy, header changes, retries or telemetry. Run side by side with HAProxy and
//! `weft-proxy` on the same path, it tells how much of a proxy's cost per request is the
//! stack's and how much is Weft's own work. It allocates with the system allocator (glibc),
//! not the sidecar's mimalloc.

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// Arguments of `weft-bench floor`.
#[derive(clap::Args, Debug)]
pub struct FloorArgs {
    /// Listen address.
    #[arg(long)]
    listen: SocketAddr,
    /// The server every request goes to.
    #[arg(long)]
    upstream: SocketAddr,
    /// Worker threads, each with its own event loop (as `weft-proxy --concurrency`).
    #[arg(long, default_value_t = 2)]
    workers: usize,
}

type Body = BoxBody<Bytes, hyper::Error>;

/// One worker's idle and busy upstream connections (HTTP/1.1: one exchange at a time).
type Pool = Rc<RefCell<Vec<SendRequest<Body>>>>;

/// Serves until killed. Errors when the address cannot be bound or a worker cannot start.
pub fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "floor: {} -> {} with {} worker(s)",
        args.listen, args.upstream, args.workers
    );
    serve_on(listener, args.upstream, args.workers)
}

/// Proxies what `listener` accepts to `upstream` on `workers` event loops; returns when every
/// worker stopped (an accept error). Errors when a worker cannot start or stopped on an error.
fn serve_on(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    workers: usize,
) -> anyhow::Result<()> {
    listener.set_nonblocking(true)?;
    let mut threads = Vec::new();
    for _ in 0..workers.max(1) {
        let listener = listener.try_clone()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        threads.push(std::thread::spawn(move || {
            tokio::task::LocalSet::new().block_on(&runtime, serve(listener, upstream))
        }));
    }
    for worker in threads {
        worker
            .join()
            .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
    }
    Ok(())
}

/// One worker's accept loop. Errors when the listener cannot join this worker's event loop
/// or accepting fails.
async fn serve(listener: std::net::TcpListener, upstream: SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let pool = Pool::default();
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let pool = Rc::clone(&pool);
        tokio::task::spawn_local(async move {
            let service = hyper::service::service_fn(move |request| {
                let pool = Rc::clone(&pool);
                async move { Ok::<_, Infallible>(forward(&pool, upstream, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// Sends `request` as it is on a ready pooled connection, or a new one; 502 when the upstream
/// cannot be reached or fails before the response head.
async fn forward(pool: &Pool, upstream: SocketAddr, request: Request<Incoming>) -> Response<Body> {
    let ready = {
        let mut idle = pool.borrow_mut();
        let index = idle.iter().rposition(SendRequest::is_ready);
        index.map(|index| idle.swap_remove(index))
    };
    let mut sender = match ready {
        Some(sender) => sender,
        None => match connect(upstream).await {
            Ok(sender) => sender,
            Err(_) => return bad_gateway(),
        },
    };
    let response = sender.send_request(request.map(BodyExt::boxed));
    pool.borrow_mut().push(sender);
    match response.await {
        Ok(response) => response.map(BodyExt::boxed),
        Err(_) => bad_gateway(),
    }
}

/// Opens an upstream connection and starts its task.
async fn connect(upstream: SocketAddr) -> anyhow::Result<SendRequest<Body>> {
    let tcp = tokio::net::TcpStream::connect(upstream).await?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::task::spawn_local(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn bad_gateway() -> Response<Body> {
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = StatusCode::BAD_GATEWAY;
    response
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// An upstream answering every request with `hello`: the comparison's responder.
    fn upstream() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                crate::responder::accept_loop(listener, Bytes::from_static(b"hello")).await
            })
        });
        address
    }

    /// Starts the floor proxy to `upstream` on an ephemeral port.
    fn floor(upstream: SocketAddr) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || serve_on(listener, upstream, 2));
        address
    }

    /// Sends `GET /` twice on one connection and returns each answer's status line and body.
    fn two_gets(proxy: SocketAddr) -> Vec<String> {
        let mut stream = std::net::TcpStream::connect(proxy).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut answers = Vec::new();
        for _ in 0..2 {
            stream
                .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
                .unwrap();
            answers.push(read_answer(&mut stream));
        }
        answers
    }

    /// Reads one answer with a `content-length` body: "<status line> <body>".
    fn read_answer(stream: &mut std::net::TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length: "))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                if body.len() >= length {
                    let status = head.lines().next().unwrap_or_default();
                    return format!("{status} {}", &body[..length]);
                }
            }
            let read = stream.read(&mut buf).unwrap();
            assert!(read > 0, "connection closed after {text:?}");
            data.extend_from_slice(&buf[..read]);
        }
    }

    #[test]
    fn requests_on_one_connection_reach_the_upstream() {
        let proxy = floor(upstream());
        assert_eq!(
            two_gets(proxy),
            vec!["HTTP/1.1 200 OK hello", "HTTP/1.1 200 OK hello"]
        );
    }

    #[test]
    fn an_unreachable_upstream_gives_502() {
        // Bound, then closed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let answers = two_gets(floor(closed));
        assert!(answers[0].starts_with("HTTP/1.1 502"), "{answers:?}");
    }
}
