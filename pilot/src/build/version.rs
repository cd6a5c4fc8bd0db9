//! The content version of a built config, computed without copying it.

use std::io;

use sha2::{Digest, Sha256};
use weft_proxy_config::ProxyConfig;

/// An [`io::Write`] that feeds every byte into a SHA-256 state instead of a buffer.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// [`ProxyConfig::content_hash`] of `config`, whose `version` must be empty: the hex SHA-256 of
/// its compact JSON, streamed into the hash rather than cloned and buffered (the config of a
/// proxy seeing 500 services is hundreds of KiB). `None` when serialisation fails, which it
/// cannot for this model (every map has string keys).
pub(super) fn content_version(config: &ProxyConfig) -> Option<String> {
    debug_assert!(
        config.version.is_empty(),
        "the version is not part of the hash"
    );
    let mut writer = io::BufWriter::with_capacity(64 * 1024, HashWriter(Sha256::new()));
    serde_json::to_writer(&mut writer, config).ok()?;
    let HashWriter(state) = writer.into_inner().ok()?;
    Some(hex::encode(state.finalize()))
}
