//! Emitting each request's [`RequestLog`] exactly once, when the response body has been sent
//! (Envoy logs at stream end): the duration then covers the whole exchange and the byte counts
//! are complete. A request whose downstream goes away first is logged with flag `DC`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::Response;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};

use crate::request_log::{RequestLog, RequestObserver, ResponseFlags};
use crate::upstream::{BoxError, ProxyBody};

/// Holds a request's log until it is handed to the response body ([`LogGuard::attach`]);
/// dropped earlier (the handler future was cancelled because the downstream left) it logs `DC`.
///
/// The log is boxed: it is ~370 bytes, and the request's futures and hyper's response are
/// moved (copied) several times per request; a pointer is cheaper to move than the record
/// (docs/benchmarks.md, "Session 8").
pub struct LogGuard {
    log: Option<Box<RequestLog>>,
    started: Instant,
    observer: Arc<dyn RequestObserver>,
    request_bytes: Option<Arc<AtomicU64>>,
}

impl LogGuard {
    /// Starts timing `log` now; `request_bytes` is the counter of the request body (`None`
    /// for a request without a body: 0 bytes).
    pub fn new(
        log: RequestLog,
        observer: Arc<dyn RequestObserver>,
        request_bytes: Option<Arc<AtomicU64>>,
    ) -> Self {
        Self {
            log: Some(Box::new(log)),
            started: Instant::now(),
            observer,
            request_bytes,
        }
    }

    /// The log being filled. Returns a placeholder only after [`LogGuard::attach`], which
    /// consumes the guard, so in practice always the request's log.
    pub fn log(&mut self) -> &mut RequestLog {
        self.log.get_or_insert_with(|| {
            Box::new(super::empty_log(crate::request_log::Direction::Outbound))
        })
    }

    /// Records the response status and moves the log into the response body, which emits it
    /// once the body is finished (or dropped). The body is not boxed again: hyper takes the
    /// [`LoggedBody`] as it is.
    pub fn attach(mut self, response: Response<ProxyBody>) -> Response<LoggedBody> {
        let mut log = self.log.take();
        if let Some(log) = log.as_mut() {
            log.status = response.status().as_u16();
        }
        let observer = Arc::clone(&self.observer);
        let request_bytes = self.request_bytes.take();
        let started = self.started;
        response.map(|inner| LoggedBody {
            inner,
            log,
            started,
            observer,
            request_bytes,
        })
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        if let Some(mut log) = self.log.take() {
            log.duration = self.started.elapsed();
            log.request_bytes = bytes_read(self.request_bytes.as_deref());
            log.flags
                .insert(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
            self.observer.on_request(&log);
        }
    }
}

/// A response body that counts the bytes sent and emits the log at its end.
pub struct LoggedBody {
    inner: ProxyBody,
    log: Option<Box<RequestLog>>,
    started: Instant,
    observer: Arc<dyn RequestObserver>,
    request_bytes: Option<Arc<AtomicU64>>,
}

impl LoggedBody {
    fn emit(&mut self, complete: bool) {
        if let Some(mut log) = self.log.take() {
            log.duration = self.started.elapsed();
            log.request_bytes = bytes_read(self.request_bytes.as_deref());
            if !complete {
                log.flags
                    .insert(ResponseFlags::DOWNSTREAM_CONNECTION_TERMINATION);
            }
            self.observer.on_request(&log);
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(log)) = (frame.data_ref(), this.log.as_mut()) {
                    log.response_bytes += data.len() as u64;
                }
                if this.inner.is_end_stream() {
                    this.emit(true);
                }
            }
            Poll::Ready(None) => this.emit(true),
            Poll::Ready(Some(Err(_))) => {
                if let Some(log) = this.log.as_mut() {
                    log.flags
                        .insert(ResponseFlags::UPSTREAM_CONNECTION_TERMINATION);
                }
                this.emit(true);
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        let complete = self.inner.is_end_stream();
        self.emit(complete);
    }
}

/// The bytes counted so far, 0 without a counter.
fn bytes_read(counter: Option<&AtomicU64>) -> u64 {
    counter.map_or(0, |counter| counter.load(Ordering::Relaxed))
}

/// The body of a request that has none (its stream ended with the headers): boxing it does
/// not allocate.
pub fn empty_request_body() -> ProxyBody {
    http_body_util::Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Wraps a request body so its data bytes are added to `counter`.
pub fn count_request_body<B>(body: B, counter: Arc<AtomicU64>) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_frame(move |frame| {
        if let Some(data) = frame.data_ref() {
            counter.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        frame
    })
    .map_err(into_box_error::<B::Error>)
    .boxed()
}

fn into_box_error<E: Into<BoxError>>(error: E) -> BoxError {
    error.into()
}
