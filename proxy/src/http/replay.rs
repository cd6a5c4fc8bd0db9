//! Keeping a copy of a request body for retries and mirrors while it streams upstream
//! (Envoy's request buffering for retries). The first try is never delayed, so long-lived
//! streams (gRPC client streaming under Istio's default retry policy) flow at once. After a try,
//! the body is available again for the next one:
//!
//! - it streamed to its end within the limit: the whole copy ([`Replay::Complete`]);
//! - the try ended before consuming it (connect failure, early response, per-try timeout): the
//!   part already read followed by the unread rest ([`Replay::Resume`]), still within the limit;
//! - otherwise (over the limit, trailers, a failed body): [`Replay::Lost`], no retry.
//!
//! Mirrors get the body only when it completes within the limit.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::oneshot;

use crate::upstream::{BoxError, ProxyBody};

/// The body for the next try.
pub enum Replay {
    /// The whole body.
    Complete(Bytes),
    /// What was read, then the unread rest.
    Resume(ProxyBody),
    /// Not available.
    Lost,
}

/// A body that forwards `inner` unchanged and keeps it replayable.
pub struct TeeBody {
    inner: Option<ProxyBody>,
    copy: Option<BytesMut>,
    limit: usize,
    retry: Option<oneshot::Sender<Replay>>,
    mirrors: Vec<oneshot::Sender<Bytes>>,
}

impl TeeBody {
    /// Tees `inner`, copying at most `limit` bytes. Returns the body, the receiver of the next
    /// try's body, and `mirrors` receivers of the complete body.
    pub fn new(
        inner: ProxyBody,
        limit: usize,
        mirrors: usize,
    ) -> (
        Self,
        oneshot::Receiver<Replay>,
        Vec<oneshot::Receiver<Bytes>>,
    ) {
        let (retry, replay) = oneshot::channel();
        let (senders, receivers): (Vec<_>, Vec<_>) =
            (0..mirrors).map(|_| oneshot::channel()).unzip();
        let mut body = Self {
            inner: Some(inner),
            copy: Some(BytesMut::new()),
            limit,
            retry: Some(retry),
            mirrors: senders,
        };
        if body.inner.as_ref().is_some_and(Body::is_end_stream) {
            // An empty body may never be polled.
            body.finish();
        }
        (body, replay, receivers)
    }

    /// The body reached its end: hand out the copy (or `Lost`).
    fn finish(&mut self) {
        let copy = self.copy.take().map(BytesMut::freeze);
        if let Some(retry) = self.retry.take() {
            let _ = retry.send(copy.clone().map_or(Replay::Lost, Replay::Complete));
        }
        for mirror in self.mirrors.drain(..) {
            if let Some(copy) = &copy {
                let _ = mirror.send(copy.clone());
            }
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled = Pin::new(inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                match (frame.data_ref(), this.copy.as_mut()) {
                    (Some(data), Some(copy)) if copy.len() + data.len() <= this.limit => {
                        copy.extend_from_slice(data);
                    }
                    // Over the limit, or trailers (not replayed): no copy.
                    _ => this.copy = None,
                }
                if this.inner.as_ref().is_some_and(Body::is_end_stream) {
                    this.finish();
                }
            }
            Poll::Ready(None) => this.finish(),
            Poll::Ready(Some(Err(_))) => {
                this.copy = None;
                this.finish();
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        let Some(retry) = self.retry.take() else {
            return; // Finished: everything was handed out.
        };
        self.mirrors.clear();
        let replay = match (self.copy.take(), self.inner.take()) {
            (Some(read), Some(rest)) => Replay::Resume(
                PrefixedBody {
                    prefix: Some(read.freeze()),
                    rest,
                }
                .boxed(),
            ),
            _ => Replay::Lost,
        };
        let _ = retry.send(replay);
    }
}

/// Bytes already read, then the rest of the original body.
struct PrefixedBody {
    prefix: Option<Bytes>,
    rest: ProxyBody,
}

impl Body for PrefixedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(prefix) = this.prefix.take().filter(|prefix| !prefix.is_empty()) {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.as_ref().is_none_or(Bytes::is_empty) && self.rest.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::{BodyExt, Full, StreamBody};

    use super::*;

    fn full(bytes: &'static [u8]) -> ProxyBody {
        Full::new(Bytes::from_static(bytes))
            .map_err(|never| match never {})
            .boxed()
    }

    fn chunks(parts: &'static [&'static [u8]]) -> ProxyBody {
        let frames = parts
            .iter()
            .map(|part| Ok::<_, BoxError>(Frame::data(Bytes::from_static(part))));
        StreamBody::new(futures::stream::iter(frames)).boxed()
    }

    async fn replay_bytes(replay: Replay) -> Option<Bytes> {
        match replay {
            Replay::Complete(bytes) => Some(bytes),
            Replay::Resume(body) => Some(body.collect().await.unwrap().to_bytes()),
            Replay::Lost => None,
        }
    }

    #[tokio::test]
    async fn complete_body_is_replayed_and_mirrored() {
        let (body, mut replay, mut mirrors) = TeeBody::new(chunks(&[b"hel", b"lo"]), 16, 1);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello");
        assert!(matches!(replay.try_recv().unwrap(), Replay::Complete(b) if b == "hello"));
        assert_eq!(mirrors[0].try_recv().unwrap(), "hello");
    }

    #[tokio::test]
    async fn unread_body_resumes_for_the_next_try() {
        let (body, mut replay, mut mirrors) = TeeBody::new(chunks(&[b"hel", b"lo"]), 16, 1);
        drop(body); // e.g. the connection failed before sending anything
        let next = replay_bytes(replay.try_recv().unwrap()).await;
        assert_eq!(next.unwrap(), "hello");
        assert!(
            mirrors[0].try_recv().is_err(),
            "mirrors only get complete bodies"
        );
    }

    #[tokio::test]
    async fn partly_read_body_resumes_with_what_was_read() {
        let (mut body, mut replay, _) = TeeBody::new(chunks(&[b"hel", b"lo"]), 16, 0);
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(first, "hel");
        drop(body);
        let next = replay_bytes(replay.try_recv().unwrap()).await;
        assert_eq!(next.unwrap(), "hello");
    }

    #[tokio::test]
    async fn body_over_the_limit_streams_but_is_lost_for_retries() {
        let (body, mut replay, _) = TeeBody::new(full(b"hello world"), 4, 0);
        assert_eq!(body.collect().await.unwrap().to_bytes(), "hello world");
        assert!(matches!(replay.try_recv().unwrap(), Replay::Lost));
    }

    #[tokio::test]
    async fn empty_body_is_complete_without_being_polled() {
        let (_body, mut replay, _) = TeeBody::new(full(b""), 4, 0);
        assert!(matches!(replay.try_recv().unwrap(), Replay::Complete(b) if b.is_empty()));
    }
}
