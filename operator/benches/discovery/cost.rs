//! What one push costs, measured outside the stream: a full push (build, encode, the clients'
//! check, a typed decode) and an incremental one (the delta's encoding and size, and what an
//! incremental client does with it: decode, apply, check the content hash).

use std::time::{Duration, Instant};

use weft_discovery::client::AppliedConfig;
use weft_discovery::{FrameDecoder, ServerMessage, encode_frame};
use weft_pilot::{ClusterView, ProxyTarget, build_proxy_config, build_proxy_parts};

/// The cost of one push to the proxy `target` of `view` (built once before, so that its scope
/// is cached, as for every proxy of a scope but the first): the median of a few runs of
/// (frame bytes, build in parts, encode from parts, typed build, typed encode, the clients'
/// check, typed decode).
pub struct PushCost {
    pub bytes: usize,
    pub build_parts: Duration,
    pub encode_parts: Duration,
    pub build_typed: Duration,
    pub encode_typed: Duration,
    pub check: Duration,
    pub decode: Duration,
}

pub fn push_cost(view: &ClusterView, target: &ProxyTarget) -> PushCost {
    let _warm = build_proxy_parts(view, target);
    let mut runs: [Vec<Duration>; 6] = Default::default();
    let mut bytes = 0;
    let mut time = |index: usize, started: Instant| runs[index].push(started.elapsed());
    for _ in 0..9 {
        let started = Instant::now();
        let parts = build_proxy_parts(view, target);
        time(0, started);
        let started = Instant::now();
        let mut frame = br#"{"type":"config","version":""#.to_vec();
        frame.extend_from_slice(parts.version().as_bytes());
        frame.extend_from_slice(br#"","nonce":1,"config":"#);
        parts.write_json(&mut frame).unwrap();
        frame.extend_from_slice(b"}\n");
        time(1, started);
        let started = Instant::now();
        let config = build_proxy_config(view, target).config;
        time(2, started);
        let message = ServerMessage::Config {
            version: config.version.clone(),
            nonce: 1,
            config: Box::new(config),
        };
        let started = Instant::now();
        let typed = encode_frame(&message).unwrap();
        time(3, started);
        assert_eq!(typed, frame, "the frame from parts is the typed frame");
        bytes = frame.len();
        let started = Instant::now();
        assert!(super::clients::check(&frame[..frame.len() - 1]));
        time(4, started);
        let started = Instant::now();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        let decoded: Option<ServerMessage> = decoder.next_message().unwrap();
        time(5, started);
        assert!(decoded.is_some());
    }
    let [
        build_parts,
        encode_parts,
        build_typed,
        encode_typed,
        check,
        decode,
    ] = runs.map(|mut runs| {
        runs.sort();
        runs[runs.len() / 2]
    });
    PushCost {
        bytes,
        build_parts,
        encode_parts,
        build_typed,
        encode_typed,
        check,
        decode,
    }
}

/// The cost of one incremental push to `target` from `before` to `after` (both scopes built
/// once before): the median of a few runs of (frame bytes, the server's writing of the delta
/// from parts with the scope's delta cached, the client's decode, its apply and hash check).
pub struct DeltaCost {
    pub bytes: usize,
    pub encode: Duration,
    pub decode: Duration,
    pub apply: Duration,
}

pub fn delta_cost(before: &ClusterView, after: &ClusterView, target: &ProxyTarget) -> DeltaCost {
    let old_parts = build_proxy_parts(before, target);
    let new_parts = build_proxy_parts(after, target);
    let old = build_proxy_config(before, target).config;
    let mut runs: [Vec<Duration>; 3] = Default::default();
    let mut bytes = 0;
    for _ in 0..9 {
        let started = Instant::now();
        let mut frame = br#"{"type":"delta","version":""#.to_vec();
        frame.extend_from_slice(new_parts.version().as_bytes());
        frame.extend_from_slice(br#"","base_version":""#);
        frame.extend_from_slice(old_parts.version().as_bytes());
        frame.extend_from_slice(br#"","nonce":2,"delta":"#);
        let shared = new_parts
            .write_delta_json_head(&old_parts, &mut frame)
            .unwrap()
            .unwrap();
        frame.extend_from_slice(&shared);
        frame.extend_from_slice(b"}\n");
        runs[0].push(started.elapsed());
        bytes = frame.len();
        let mut applied = AppliedConfig::new();
        applied.commit(old.clone());
        let started = Instant::now();
        let mut decoder = FrameDecoder::new();
        decoder.push(&frame);
        let Some(ServerMessage::Delta {
            version,
            base_version,
            delta,
            ..
        }) = decoder.next_message().unwrap()
        else {
            panic!("a delta frame");
        };
        runs[1].push(started.elapsed());
        let started = Instant::now();
        let config = applied
            .resolve_delta(&version, &base_version, *delta)
            .unwrap();
        runs[2].push(started.elapsed());
        assert_eq!(config.config().version, new_parts.version());
    }
    let [encode, decode, apply] = runs.map(|mut runs| {
        runs.sort();
        runs[runs.len() / 2]
    });
    DeltaCost {
        bytes,
        encode,
        decode,
        apply,
    }
}
