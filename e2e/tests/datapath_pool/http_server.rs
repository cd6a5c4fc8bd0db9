//! A small HTTP server outside the mesh for `datapath_pool.rs`: it answers HTTP/1.1 and
//! prior-knowledge HTTP/2 (h2c) with an empty 200, optionally after a delay, and records the
//! protocol of each request, so a test sees what the client's sidecar sent upstream.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What an HTTP server outside the mesh saw: the protocol of each request it answered
/// (`h2` on a connection that began with the HTTP/2 preface, else `http/1.1`).
pub type Seen = Arc<Mutex<Vec<&'static str>>>;

/// The HTTP/2 client connection preface (RFC 9113, section 3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Serves on `ip` (an ephemeral port) from a thread that lives as long as the test process:
/// HTTP/1.1 requests and prior-knowledge HTTP/2 (h2c) connections each get an empty 200,
/// `delay` after the request arrived. Records each request's protocol in the returned list.
pub fn serve_any_http(ip: Ipv4Addr, delay: Duration) -> (u16, Seen) {
    let listener = TcpListener::bind((ip, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Seen::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || serve_connection(stream, &record, delay));
        }
    });
    (port, seen)
}

fn serve_connection(mut stream: TcpStream, seen: &Mutex<Vec<&'static str>>, delay: Duration) {
    let answered = |protocol| {
        std::thread::sleep(delay);
        seen.lock().unwrap().push(protocol);
    };
    let mut start = [0u8; 24];
    if stream.read_exact(&mut start).is_err() {
        return;
    }
    if &start == PREFACE {
        let _ = serve_h2(stream, || answered("h2"));
    } else {
        let _ = serve_http1(stream, start.to_vec(), || answered("http/1.1"));
    }
}

/// HTTP/1.1 keep-alive: every request head gets `200` with an empty body; `answered` is
/// called for each.
fn serve_http1(
    mut stream: TcpStream,
    mut buffer: Vec<u8>,
    answered: impl Fn(),
) -> std::io::Result<()> {
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            buffer.drain(..end + 4);
            answered();
            stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

/// A minimal HTTP/2 server after the preface: acknowledges SETTINGS and PING, and answers
/// every stream that ends (HEADERS or DATA with END_STREAM) with HEADERS `:status: 200`
/// (HPACK static index 8) and END_STREAM; `answered` is called for each.
fn serve_h2(mut stream: TcpStream, answered: impl Fn()) -> std::io::Result<()> {
    const DATA: u8 = 0x0;
    const HEADERS: u8 = 0x1;
    const SETTINGS: u8 = 0x4;
    const PING: u8 = 0x6;
    const GOAWAY: u8 = 0x7;
    const END_STREAM: u8 = 0x1;
    const ACK: u8 = 0x1;
    let frame = |kind: u8, flags: u8, stream_id: u32, payload: &[u8]| {
        let len = payload.len() as u32;
        let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
        out.extend_from_slice(&stream_id.to_be_bytes());
        out.extend_from_slice(payload);
        out
    };
    stream.write_all(&frame(SETTINGS, 0, 0, &[]))?;
    loop {
        let mut head = [0u8; 9];
        stream.read_exact(&mut head)?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream_id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload)?;
        match kind {
            SETTINGS if flags & ACK == 0 => stream.write_all(&frame(SETTINGS, ACK, 0, &[]))?,
            PING if flags & ACK == 0 => stream.write_all(&frame(PING, ACK, 0, &payload))?,
            HEADERS | DATA if flags & END_STREAM != 0 => {
                // END_HEADERS | END_STREAM, `:status: 200`.
                answered();
                stream.write_all(&frame(HEADERS, 0x4 | END_STREAM, stream_id, &[0x88]))?;
            }
            GOAWAY => return Ok(()),
            _ => {}
        }
    }
}
