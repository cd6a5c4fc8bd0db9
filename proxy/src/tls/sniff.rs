//! Protocol sniffing for PERMISSIVE listeners: look at the first bytes of a connection and
//! tell mTLS from plaintext, and HTTP/1 from HTTP/2 (Envoy's `tls_inspector` and
//! `http_inspector` listener filters do the same job in Istio).
//!
//! The ClientHello parser is hand-written, bounded and total: every length is checked against
//! the bytes actually present, nothing allocates more than the SNI, and no input panics.

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How many bytes a listener should be ready to peek before giving up: one full TLS record
/// (5-byte header + 2^14 bytes, RFC 8446 §5.1). Past this, treat the connection as
/// [`Detected::Unknown`].
pub const MAX_SNIFF_BYTES: usize = 5 + (1 << 14);

/// HTTP/1.x request methods recognised at the start of a connection (RFC 9110 §9 plus PATCH).
const HTTP1_METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// What the first bytes of a connection are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    /// A TLS ClientHello; `sni` is its `server_name` (RFC 6066 §3) when present and valid.
    Tls {
        /// The requested host name, as sent.
        sni: Option<String>,
    },
    /// A plaintext HTTP/1.x request line.
    Http1,
    /// The HTTP/2 prior-knowledge preface.
    Http2Preface,
    /// None of the above: opaque TCP (PERMISSIVE passes it through as plaintext).
    Unknown,
    /// Too few bytes to decide: read more (up to [`MAX_SNIFF_BYTES`]) and call again.
    Incomplete,
}

/// Classifies the first bytes of a connection. Pure and total: any input gives an answer.
///
/// [`Detected::Incomplete`] means the bytes are a strict prefix of something recognisable
/// (a TLS record not yet complete, `PRI * HT`, `GE`); the caller reads more and retries, and
/// treats a connection still incomplete at [`MAX_SNIFF_BYTES`] or at its peek timeout as
/// [`Detected::Unknown`].
pub fn detect(buf: &[u8]) -> Detected {
    match buf.first() {
        None => Detected::Incomplete,
        Some(0x16) => detect_tls(buf),
        Some(_) => detect_plaintext(buf),
    }
}

fn detect_plaintext(buf: &[u8]) -> Detected {
    if buf.starts_with(HTTP2_PREFACE) {
        return Detected::Http2Preface;
    }
    if HTTP2_PREFACE.starts_with(buf) {
        return Detected::Incomplete;
    }
    let mut maybe = false;
    for method in HTTP1_METHODS {
        if buf.starts_with(method) {
            return Detected::Http1;
        }
        maybe |= method.starts_with(buf);
    }
    if maybe {
        Detected::Incomplete
    } else {
        Detected::Unknown
    }
}

/// A cursor that never reads past its slice.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.rest.len() {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?])))
    }

    fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some(
            usize::from(*b.first()?) << 16 | usize::from(*b.get(1)?) << 8 | usize::from(*b.get(2)?),
        )
    }

    /// A vector with a `width`-byte length prefix (RFC 8446 §3.4).
    fn vector(&mut self, width: usize) -> Option<Reader<'a>> {
        let len = match width {
            1 => usize::from(self.u8()?),
            _ => self.u16()?,
        };
        Some(Reader {
            rest: self.take(len)?,
        })
    }
}

fn detect_tls(buf: &[u8]) -> Detected {
    // Record header: type 22 (handshake), legacy version 3.x, length <= 2^14.
    let mut header = Reader { rest: buf };
    let (Some(_), Some(major)) = (header.u8(), header.u8()) else {
        return Detected::Incomplete;
    };
    if major != 3 {
        return Detected::Unknown;
    }
    let Some(minor) = header.u8() else {
        return Detected::Incomplete;
    };
    if minor > 4 {
        return Detected::Unknown;
    }
    let Some(record_len) = header.u16() else {
        return Detected::Incomplete;
    };
    if record_len == 0 || record_len > 1 << 14 {
        return Detected::Unknown;
    }
    let Some(record) = header.take(record_len) else {
        return Detected::Incomplete;
    };
    let mut record = Reader { rest: record };
    // Handshake header: type 1 (ClientHello), 24-bit length.
    if record.u8() != Some(1) {
        return Detected::Unknown;
    }
    // A ClientHello split over several records is still TLS; the SNI may just be out of reach.
    Detected::Tls {
        sni: client_hello_sni(&mut record),
    }
}

/// The SNI of a ClientHello body (after the handshake type byte); `None` if absent, truncated
/// or not a valid host name.
fn client_hello_sni(record: &mut Reader<'_>) -> Option<String> {
    let hello_len = record.u24()?;
    let mut hello = Reader {
        rest: record.take(hello_len.min(record.rest.len()))?,
    };
    hello.take(2)?; // legacy_version
    hello.take(32)?; // random
    hello.vector(1)?; // legacy_session_id
    hello.vector(2)?; // cipher_suites
    hello.vector(1)?; // legacy_compression_methods
    let mut extensions = hello.vector(2)?;
    while !extensions.rest.is_empty() {
        let kind = extensions.u16()?;
        let mut data = extensions.vector(2)?;
        if kind != 0 {
            continue;
        }
        let mut names = data.vector(2)?;
        while !names.rest.is_empty() {
            let name_type = names.u8()?;
            let name = names.vector(2)?.rest;
            if name_type == 0 {
                return valid_host_name(name);
            }
        }
        return None;
    }
    None
}

/// A DNS host name as RFC 6066 allows in `HostName`: 1-255 bytes of letters, digits, `-`, `_`
/// and `.` (no trailing-dot or IP checks: the listener only uses it for filter-chain matching).
fn valid_host_name(name: &[u8]) -> Option<String> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if ok {
        std::str::from_utf8(name).ok().map(str::to_owned)
    } else {
        None
    }
}

#[cfg(test)]
#[path = "sniff_tests.rs"]
mod tests;
