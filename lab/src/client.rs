//! Clients outside the mesh: `curl` run in a lab host's namespace (a plain host without
//! sidecar, see [`crate::mesh::LocalMesh::add_plain_host`]), as a user would call a gateway.

use crate::lab::{Host, Lab, LabError};

/// An HTTP response as `curl` saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code of the last response.
    pub status: u16,
    /// The response headers, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

impl HttpReply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Runs `curl -sS --max-time 5 -D - <args>` in `host`'s namespace (no redirects followed) and
/// parses its output. `args` carry the URL and options such as `--resolve HOST:PORT:IP`,
/// `--cacert FILE`, `-H 'Host: x'`.
///
/// Errors: [`LabError::Command`] when curl fails (connection refused, TLS handshake or
/// certificate verification failed: curl's message is in the error), or
/// [`LabError::Inject`] when its output is not an HTTP response.
pub fn curl(lab: &Lab, host: &Host, args: &[&str]) -> Result<HttpReply, LabError> {
    let mut full = vec!["-sS", "--max-time", "5", "-D", "-"];
    full.extend_from_slice(args);
    let output = lab.exec(host, "curl", &full)?;
    parse(&String::from_utf8_lossy(&output.stdout))
        .ok_or_else(|| LabError::Inject(format!("curl {args:?}: not an HTTP response")))
}

/// Splits curl's `-D -` output into the last response's head and the body.
fn parse(text: &str) -> Option<HttpReply> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.lines();
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    Some(HttpReply {
        status,
        headers,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn curl_output_splits_into_status_headers_and_body() {
        let reply = parse(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://a.example/x\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(reply.status, 301);
        assert_eq!(reply.header("location"), Some("https://a.example/x"));
        assert_eq!(reply.body, "");
        let reply = parse("HTTP/2 200 \r\nserver: weft\r\n\r\nhello").unwrap();
        assert_eq!((reply.status, reply.body.as_str()), (200, "hello"));
        assert_eq!(parse("garbage"), None);
    }
}
