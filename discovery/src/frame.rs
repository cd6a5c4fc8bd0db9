//! Newline-delimited JSON framing with a size bound.

use bytes::{Buf, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The largest frame accepted, in bytes (16 MiB): a proxy config for thousands of services fits;
/// a peer that sends more is cut off rather than allowed to grow our memory.
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A frame grew past [`MAX_FRAME_BYTES`] without a newline.
    #[error("discovery frame exceeds {MAX_FRAME_BYTES} bytes")]
    TooLarge,
    /// A frame is not the JSON message expected.
    #[error("malformed discovery frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Encodes `message` as one frame: compact JSON plus `\n`. Errors only when the message cannot
/// be serialized (never for this crate's message types).
pub fn encode_frame<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let mut out = serde_json::to_vec(message)?;
    out.push(b'\n');
    Ok(out)
}

/// Splits a byte stream into frames. Feed it chunks as they arrive with [`FrameDecoder::push`],
/// then take complete messages with [`FrameDecoder::next_message`].
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    scanned: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// The next complete message, `Ok(None)` when more bytes are needed. Errors when a frame is
    /// larger than [`MAX_FRAME_BYTES`] or is not a `T`; after an error the stream should be
    /// closed.
    pub fn next_message<T: DeserializeOwned>(&mut self) -> Result<Option<T>, FrameError> {
        loop {
            let Some(offset) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                if self.buf.len() > MAX_FRAME_BYTES {
                    return Err(FrameError::TooLarge);
                }
                return Ok(None);
            };
            let end = self.scanned + offset;
            if end > MAX_FRAME_BYTES {
                return Err(FrameError::TooLarge);
            }
            let frame = self.buf.split_to(end + 1);
            self.scanned = 0;
            let body = &frame[..end];
            if body.iter().all(u8::is_ascii_whitespace) {
                continue; // keep-alive blank line
            }
            return Ok(Some(serde_json::from_slice(body)?));
        }
    }

    /// Bytes received but not yet part of a complete frame.
    pub fn pending(&self) -> usize {
        self.buf.remaining()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMessage, Hello};

    fn hello() -> ClientMessage {
        ClientMessage::Hello(Hello {
            namespace: "default".into(),
            workload: "reviews-v1-abc".into(),
            proxy_version: "0.1.0".into(),
            current_version: String::new(),
            proxy_type: Default::default(),
            incremental: true,
        })
    }

    #[test]
    fn frames_split_across_chunks_are_reassembled() {
        let mut bytes = encode_frame(&hello()).unwrap();
        bytes.extend(
            encode_frame(&ClientMessage::Ack {
                version: "v1".into(),
                nonce: 7,
            })
            .unwrap(),
        );
        let mut dec = FrameDecoder::new();
        let (a, b) = bytes.split_at(5);
        dec.push(a);
        assert!(dec.next_message::<ClientMessage>().unwrap().is_none());
        dec.push(b);
        assert_eq!(dec.next_message::<ClientMessage>().unwrap(), Some(hello()));
        assert_eq!(
            dec.next_message::<ClientMessage>().unwrap(),
            Some(ClientMessage::Ack {
                version: "v1".into(),
                nonce: 7
            })
        );
        assert!(dec.next_message::<ClientMessage>().unwrap().is_none());
        assert_eq!(dec.pending(), 0);
    }

    #[test]
    fn blank_lines_are_keepalives() {
        let mut dec = FrameDecoder::new();
        dec.push(b"\n\n");
        dec.push(&encode_frame(&hello()).unwrap());
        assert_eq!(dec.next_message::<ClientMessage>().unwrap(), Some(hello()));
    }

    #[test]
    fn malformed_and_oversized_frames_are_errors() {
        let mut dec = FrameDecoder::new();
        dec.push(b"{\"type\":\"bogus\"}\n");
        assert!(matches!(
            dec.next_message::<ClientMessage>(),
            Err(FrameError::Json(_))
        ));
        let mut dec = FrameDecoder::new();
        dec.push(&vec![b'x'; MAX_FRAME_BYTES + 1]);
        assert!(matches!(
            dec.next_message::<ClientMessage>(),
            Err(FrameError::TooLarge)
        ));
    }
}
