//! The content hash of a config's JSON, streamed: the bytes go into SHA-256 as they are
//! written, with no buffer of the (up to ~1 MiB) JSON.

use std::io::{self, Write};

use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of the bytes `write` writes to the writer it is given (buffered
/// in 64 KiB chunks). [`crate::ProxyConfig::content_hash`] is this over the config's compact
/// JSON with `version` empty; Pilot writes the same bytes from a config's parts.
///
/// Errors: the `serde_json::Error` `write` returns.
pub fn hash_json(
    write: impl FnOnce(&mut dyn Write) -> Result<(), serde_json::Error>,
) -> Result<String, serde_json::Error> {
    let mut out = io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    write(&mut out)?;
    let HashWriter(state) = out
        .into_inner()
        .map_err(|error| serde_json::Error::io(error.into_error()))?;
    Ok(hex::encode(state.finalize()))
}

/// An [`io::Write`] that feeds every byte into a SHA-256 state.
struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
