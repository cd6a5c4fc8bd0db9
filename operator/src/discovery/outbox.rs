//! One stream's outgoing frame: the latest encoded push not yet handed to HTTP/2, and nothing
//! else. Once the stream's body takes the frame, the server holds no copy of it: per proxy
//! it keeps only the versions sent and acknowledged ([`super::sessions`]), not the config.
//! A frame is a list of chunks sent in order (the shared ones are the same buffer for every
//! proxy of a scope); the body takes a frame whole, so chunks of two frames never mix.

use std::collections::VecDeque;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// The sending half, kept by the server for a connected stream. Dropping it ends the
/// stream's body (see [`OutboxReceiver::next`]).
#[derive(Debug)]
pub(crate) struct Outbox {
    slot: std::sync::Arc<Slot>,
    wake: mpsc::Sender<()>,
}

/// The receiving half, owned by the stream's HTTP/2 body.
#[derive(Debug)]
pub(crate) struct OutboxReceiver {
    slot: std::sync::Arc<Slot>,
    wake: mpsc::Receiver<()>,
    /// The chunks of the frame being sent.
    sending: VecDeque<Bytes>,
}

#[derive(Debug, Default)]
struct Slot {
    /// The highest nonce put so far and its frame, if not yet taken.
    state: Mutex<(u64, Option<Vec<Bytes>>)>,
}

/// A connected pair: the server's [`Outbox`] and the body's [`OutboxReceiver`].
pub(crate) fn outbox() -> (Outbox, OutboxReceiver) {
    let slot = std::sync::Arc::new(Slot::default());
    // One pending wake-up is enough: the body always takes the latest frame.
    let (tx, rx) = mpsc::channel(1);
    (
        Outbox {
            slot: slot.clone(),
            wake: tx,
        },
        OutboxReceiver {
            slot,
            wake: rx,
            sending: VecDeque::new(),
        },
    )
}

impl Outbox {
    /// Offers the encoded frame of the push with `nonce`, as chunks to send in order. A frame replaces an untaken older
    /// one (the proxy needs only the latest state of the world, as a watch); a frame older
    /// than one already put (a smaller nonce, built concurrently) is dropped. Returns whether
    /// the frame was kept.
    pub fn put(&self, nonce: u64, frame: Vec<Bytes>) -> bool {
        {
            let mut state = self.slot.state.lock();
            if nonce <= state.0 {
                return false;
            }
            *state = (nonce, Some(frame));
        }
        // Full means a wake-up is already pending; closed means the body is gone.
        let _ = self.wake.try_send(());
        true
    }
}

impl OutboxReceiver {
    /// The next chunk to write: the rest of the frame being sent, else the first chunk of
    /// the latest frame put, waiting for one; `None` once the [`Outbox`] is dropped and the
    /// frame being sent is done.
    pub async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.sending.pop_front() {
                return Some(chunk);
            }
            if let Some(frame) = self.slot.state.lock().1.take() {
                self.sending.extend(frame);
                continue;
            }
            self.wake.recv().await?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_latest_frame_wins_and_older_nonces_are_dropped() {
        let (tx, mut rx) = outbox();
        let frame = |text: &'static str| vec![Bytes::from_static(text.as_bytes())];
        assert!(tx.put(1, frame("one")));
        assert!(tx.put(3, frame("three")));
        assert!(!tx.put(2, frame("two")), "older than 3");
        assert_eq!(rx.next().await.as_deref(), Some(&b"three"[..]));
        assert!(tx.put(4, frame("four")));
        assert_eq!(rx.next().await.as_deref(), Some(&b"four"[..]));
        drop(tx);
        assert_eq!(rx.next().await, None, "the body ends with the outbox");
    }

    #[tokio::test]
    async fn a_frame_started_is_finished_before_the_next() {
        let (tx, mut rx) = outbox();
        let chunks = |texts: &[&'static str]| {
            texts
                .iter()
                .map(|text| Bytes::from_static(text.as_bytes()))
                .collect()
        };
        assert!(tx.put(1, chunks(&["a1", "a2", "a3"])));
        assert_eq!(rx.next().await.as_deref(), Some(&b"a1"[..]));
        assert!(tx.put(2, chunks(&["b1", "b2"])));
        assert!(
            tx.put(3, chunks(&["c1", "c2"])),
            "replaces b, not yet taken"
        );
        assert_eq!(rx.next().await.as_deref(), Some(&b"a2"[..]));
        assert_eq!(rx.next().await.as_deref(), Some(&b"a3"[..]));
        assert_eq!(rx.next().await.as_deref(), Some(&b"c1"[..]));
        drop(tx);
        assert_eq!(
            rx.next().await.as_deref(),
            Some(&b"c2"[..]),
            "the frame ends"
        );
        assert_eq!(rx.next().await, None);
    }
}
