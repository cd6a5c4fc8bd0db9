//! A push's frame, written from a built config that can write its own JSON: the side of a
//! Pilot build that the proxy shares with its scope is neither serialised nor copied again
//! for every proxy, but sent as one shared buffer (a chunk of the frame). The bytes are
//! exactly those of `encode_frame(&ServerMessage::Config { .. })` for a full push and of
//! `encode_frame(&ServerMessage::Delta { .. })` for an incremental one.

use std::any::Any;
use std::borrow::Cow;
use std::io::Write;

use bytes::Bytes;

use weft_discovery::{ConfigDelta, ProxyConfig};

/// A proxy's configuration as built for a push: its content version and its JSON.
/// Implemented by [`ProxyConfig`] (serialised whole) and by Pilot's
/// [`weft_pilot::ProxyParts`] (see `crate::snapshot`).
pub trait BuiltConfig: Send + Sync + Any {
    /// The content version the push carries: the config's `version`, or its
    /// [`ProxyConfig::content_hash`] when the builder left it empty (empty if even that
    /// fails, which it cannot for this model).
    fn version(&self) -> Cow<'_, str>;

    /// Writes the config's compact JSON to `out`: the bytes `serde_json::to_writer` writes
    /// for the `ProxyConfig` the proxy decodes.
    ///
    /// Errors: a `serde_json::Error` when `out` fails or serialisation fails.
    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error>;

    /// The bytes of [`BuiltConfig::write_json`] as chunks to send one after the other: the
    /// first is written to `head`, the rest returned (buffers a builder may share between
    /// proxies). The default writes everything to `head`.
    ///
    /// Errors: as [`BuiltConfig::write_json`].
    fn write_json_chunks(&self, head: &mut Vec<u8>) -> Result<Vec<Bytes>, serde_json::Error> {
        self.write_json(head)?;
        Ok(Vec::new())
    }

    /// The JSON of the `ConfigDelta` (weft-discovery's incremental push) that turns `base` —
    /// a config the same builder type built earlier for this proxy, which the proxy
    /// acknowledged — into this config, as chunks like [`BuiltConfig::write_json_chunks`]:
    /// the bytes `serde_json::to_writer` writes for `ConfigDelta::between(base, self)`.
    /// `None` when this config cannot be sent as a delta from `base` (a `base` of another
    /// type, different model versions): the server sends the full config. The default says
    /// `None`.
    ///
    /// Errors (inside the `Some`): a `serde_json::Error` when writing fails.
    fn write_delta_chunks(
        &self,
        base: &dyn BuiltConfig,
        head: &mut Vec<u8>,
    ) -> Option<Result<Vec<Bytes>, serde_json::Error>> {
        let _ = (base, head);
        None
    }
}

impl BuiltConfig for ProxyConfig {
    fn version(&self) -> Cow<'_, str> {
        if self.version.is_empty() {
            Cow::Owned(self.content_hash().unwrap_or_default())
        } else {
            Cow::Borrowed(&self.version)
        }
    }

    fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
        serde_json::to_writer(out, self)
    }

    /// [`ConfigDelta::between`] `base` (a [`ProxyConfig`]) and this config, serialised.
    fn write_delta_chunks(
        &self,
        base: &dyn BuiltConfig,
        head: &mut Vec<u8>,
    ) -> Option<Result<Vec<Bytes>, serde_json::Error>> {
        let base = (base as &dyn Any).downcast_ref::<ProxyConfig>()?;
        let delta = ConfigDelta::between(base, self)?;
        Some(serde_json::to_writer(head, &delta).map(|()| Vec::new()))
    }
}

/// The frame of a push (newline-delimited JSON, see `weft_discovery::encode_frame`):
/// `{"type":"config","version":<version>,"nonce":<nonce>,"config":<config JSON>}` and `\n`,
/// the field order serde gives `ServerMessage::Config`, as chunks to send in order (see
/// [`BuiltConfig::write_json_chunks`]).
///
/// Errors: a `serde_json::Error` when the config's JSON cannot be written.
pub(super) fn config_frame(
    version: &str,
    nonce: u64,
    config: &dyn BuiltConfig,
) -> Result<Vec<Bytes>, serde_json::Error> {
    let mut head = Vec::with_capacity(4096);
    head.extend_from_slice(br#"{"type":"config","version":"#);
    serde_json::to_writer(&mut head, version)?;
    head.extend_from_slice(br#","nonce":"#);
    serde_json::to_writer(&mut head, &nonce)?;
    head.extend_from_slice(br#","config":"#);
    let rest = config.write_json_chunks(&mut head)?;
    let mut frame = Vec::with_capacity(rest.len() + 2);
    frame.push(Bytes::from(head));
    frame.extend(rest);
    frame.push(Bytes::from_static(b"}\n"));
    Ok(frame)
}

/// The frame of an incremental push (see `weft_discovery::ServerMessage::Delta`):
/// `{"type":"delta","version":<version>,"base_version":<base>,"nonce":<nonce>,"delta":<delta
/// JSON>}` and `\n`, as chunks to send in order; `None` when `config` cannot be sent as a
/// delta from `base` (see [`BuiltConfig::write_delta_chunks`]).
///
/// Errors (inside the `Some`): a `serde_json::Error` when the delta's JSON cannot be written.
pub(super) fn delta_frame(
    version: &str,
    base_version: &str,
    nonce: u64,
    config: &dyn BuiltConfig,
    base: &dyn BuiltConfig,
) -> Option<Result<Vec<Bytes>, serde_json::Error>> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(br#"{"type":"delta","version":"#);
    let prefix = serde_json::to_writer(&mut head, version)
        .and_then(|()| {
            head.extend_from_slice(br#","base_version":"#);
            serde_json::to_writer(&mut head, base_version)
        })
        .and_then(|()| {
            head.extend_from_slice(br#","nonce":"#);
            serde_json::to_writer(&mut head, &nonce)
        });
    if let Err(e) = prefix {
        return Some(Err(e));
    }
    head.extend_from_slice(br#","delta":"#);
    let rest = match config.write_delta_chunks(base, &mut head)? {
        Ok(rest) => rest,
        Err(e) => return Some(Err(e)),
    };
    let mut frame = Vec::with_capacity(rest.len() + 2);
    frame.push(Bytes::from(head));
    frame.extend(rest);
    frame.push(Bytes::from_static(b"}\n"));
    Some(Ok(frame))
}

#[cfg(test)]
mod tests {
    use weft_discovery::{FrameDecoder, ServerMessage, encode_frame};
    use weft_proxy_config::Node;

    use super::*;

    fn config(version: &str) -> ProxyConfig {
        ProxyConfig {
            model_version: weft_proxy_config::MODEL_VERSION.to_owned(),
            version: version.to_owned(),
            node: Node {
                id: "sidecar~198.18.0.1~web.demo~demo.svc.cluster.local".into(),
                namespace: "demo".into(),
                ..Node::default()
            },
            outbound_traffic_policy: Default::default(),
            inbound: Default::default(),
            outbound: Vec::new(),
            clusters: Vec::new(),
            gateways: Vec::new(),
        }
    }

    #[test]
    fn the_frame_is_the_encoded_server_message() {
        let config = config("v1 \"quoted\"");
        let frame = config_frame(&config.version(), 7, &config)
            .unwrap()
            .concat();
        let message = ServerMessage::Config {
            version: config.version.clone(),
            nonce: 7,
            config: Box::new(config),
        };
        assert_eq!(
            String::from_utf8(frame.clone()).unwrap(),
            String::from_utf8(encode_frame(&message).unwrap()).unwrap()
        );
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        assert_eq!(
            decoder.next_message::<ServerMessage>().unwrap(),
            Some(message)
        );
    }

    /// A config whose JSON comes in three chunks, the last two shared.
    struct Chunked(ProxyConfig);

    impl BuiltConfig for Chunked {
        fn version(&self) -> Cow<'_, str> {
            self.0.version()
        }

        fn write_json(&self, out: &mut dyn Write) -> Result<(), serde_json::Error> {
            self.0.write_json(out)
        }

        fn write_json_chunks(&self, head: &mut Vec<u8>) -> Result<Vec<Bytes>, serde_json::Error> {
            let json = serde_json::to_vec(&self.0)?;
            let (first, rest) = json.split_at(10);
            let (second, third) = rest.split_at(20);
            head.extend_from_slice(first);
            Ok(vec![
                Bytes::copy_from_slice(second),
                Bytes::copy_from_slice(third),
            ])
        }
    }

    #[test]
    fn chunks_are_sent_in_order_after_the_head() {
        let config = config("v2");
        let frame = config_frame("v2", 3, &Chunked(config.clone())).unwrap();
        assert_eq!(frame.len(), 4, "head, two shared chunks, end");
        let message = ServerMessage::Config {
            version: "v2".into(),
            nonce: 3,
            config: Box::new(config),
        };
        assert_eq!(frame.concat(), encode_frame(&message).unwrap());
    }

    #[test]
    fn a_delta_frame_is_the_encoded_server_message_and_applies() {
        let old = config("").with_content_version().unwrap();
        let mut new = old.clone();
        new.node.labels.insert("version".into(), "v2".into());
        let new = new.with_content_version().unwrap();
        let frame = delta_frame(&new.version, &old.version, 9, &new, &old)
            .unwrap()
            .unwrap()
            .concat();
        let delta = ConfigDelta::between(&old, &new).unwrap();
        assert!(
            delta.node.is_some() && delta.outbound.is_none(),
            "{delta:?}"
        );
        let message = ServerMessage::Delta {
            version: new.version.clone(),
            base_version: old.version.clone(),
            nonce: 9,
            delta: Box::new(delta.clone()),
        };
        assert_eq!(frame, encode_frame(&message).unwrap());
        let mut applied = delta.apply(&old).unwrap();
        applied.version.clone_from(&new.version);
        assert_eq!(applied, new);
    }

    #[test]
    fn no_delta_frame_from_a_base_of_another_kind() {
        let new = config("v2");
        assert!(delta_frame("v2", "v1", 1, &new, &Chunked(config("v1"))).is_none());
    }

    #[test]
    fn an_unversioned_config_is_pushed_with_its_content_hash() {
        let unversioned = config("");
        assert_eq!(
            unversioned.version(),
            unversioned.content_hash().unwrap(),
            "content hash"
        );
        assert_eq!(config("abc").version(), "abc");
    }
}
