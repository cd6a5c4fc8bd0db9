//! What the outbound and inbound listeners share: the original destination of a captured
//! connection, protocol sniffing, and the accept loop with graceful drain.

use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use nix::sys::socket::{getsockopt, sockopt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::tls::sniff::{self, Detected};

/// How long to wait for the client's first bytes before treating the connection as opaque TCP
/// (Istio's `protocolDetectionTimeout` default is 0 = off for server-first protocols; Weft
/// sniffs briefly and falls back to TCP).
pub const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);

/// How a listener learns where a connection was going.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DestinationMode {
    /// `SO_ORIGINAL_DST` (iptables `REDIRECT`), falling back to the local address when the
    /// connection was not redirected.
    Original,
    /// A fixed destination for every connection (tests, and listeners bound per service).
    Fixed(SocketAddr),
}

/// The connection's destination and whether it was redirected (so passthrough to it does not
/// loop back into the proxy).
pub fn destination(stream: &TcpStream, mode: DestinationMode) -> io::Result<(SocketAddr, bool)> {
    match mode {
        DestinationMode::Fixed(address) => Ok((address, true)),
        DestinationMode::Original => {
            let local = stream.local_addr()?;
            match original_dst(stream, local.is_ipv6()) {
                Some(original) if original != local => Ok((original, true)),
                _ => Ok((local, false)),
            }
        }
    }
}

/// `SO_ORIGINAL_DST` / `IP6T_SO_ORIGINAL_DST`; `None` when the kernel has no NAT entry.
fn original_dst(stream: &TcpStream, ipv6: bool) -> Option<SocketAddr> {
    if ipv6 {
        let address = getsockopt(stream, sockopt::Ip6tOriginalDst).ok()?;
        let ip = Ipv6Addr::from(address.sin6_addr.s6_addr);
        Some(SocketAddr::new(ip.into(), u16::from_be(address.sin6_port)))
    } else {
        let address = getsockopt(stream, sockopt::OriginalDst).ok()?;
        let ip = Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr));
        Some(SocketAddr::new(ip.into(), u16::from_be(address.sin_port)))
    }
}

/// Peeks at the first bytes until [`sniff::detect`] decides or [`SNIFF_TIMEOUT`] passes
/// (then [`Detected::Unknown`]). Nothing is consumed.
pub async fn sniff(stream: &TcpStream) -> Detected {
    let deadline = tokio::time::Instant::now() + SNIFF_TIMEOUT;
    let mut buf = [0u8; sniff::MAX_SNIFF_BYTES];
    loop {
        let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await;
        let read = match peeked {
            Ok(Ok(read)) => read,
            Ok(Err(_)) | Err(_) => return Detected::Unknown,
        };
        if read == 0 {
            return Detected::Unknown;
        }
        match sniff::detect(&buf[..read]) {
            Detected::Incomplete if read < buf.len() => {
                // Peek returns what is buffered; wait a little for more.
                if tokio::time::timeout_at(deadline, tokio::time::sleep(Duration::from_millis(2)))
                    .await
                    .is_err()
                {
                    return Detected::Unknown;
                }
            }
            Detected::Incomplete => return Detected::Unknown,
            decided => return decided,
        }
    }
}

/// Accepts connections until `shutdown` is cancelled, running `handle` for each in a task
/// tracked by `tracker` (so shutdown can wait for them to drain).
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    handle: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tracker.spawn(handle(stream, peer));
            }
            Err(error) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
