//! HTTP/1.1 upgrades (WebSocket and other `Upgrade:` protocols), which Istio allows on every
//! HTTP route: the upgrade request goes upstream with its `Connection`/`Upgrade` headers, and
//! after a `101 Switching Protocols` both sides are spliced as raw byte streams.

use http::header::{self, HeaderMap, HeaderName};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

/// Hop-by-hop headers (RFC 9110 §7.6.1) removed before forwarding; `connection` and `upgrade`
/// are kept on upgrade requests and `101` responses. Typed names: removing by `&str` would
/// parse each name again on every request.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::TE,
];

/// Whether the request asks for a protocol upgrade (`Connection: upgrade` and an `Upgrade`
/// header).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

/// Removes hop-by-hop headers, keeping `connection` and `upgrade` when `upgrade` is true.
///
/// The names are looked at once before anything is removed: most messages carry none of
/// these headers, and each removal hashes its name (12 removals per proxied request were
/// ≈ 3.5 % of the sidecar's instructions, docs/benchmarks.md "Session 8").
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        for name in &HOP_BY_HOP {
            if upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
                continue;
            }
            headers.remove(name);
        }
    }
    if upgrade {
        headers.insert(
            header::CONNECTION,
            header::HeaderValue::from_static("upgrade"),
        );
    }
}

/// Once both sides have switched protocols, copies bytes between them until either closes.
pub fn splice(downstream: OnUpgrade, upstream: OnUpgrade) {
    tokio::spawn(async move {
        let (downstream, upstream) = tokio::join!(downstream, upstream);
        match (downstream, upstream) {
            (Ok(downstream), Ok(upstream)) => {
                let mut downstream = TokioIo::new(downstream);
                let mut upstream = TokioIo::new(upstream);
                if let Err(error) =
                    tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await
                {
                    tracing::debug!(%error, "upgraded connection ended with an error");
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                tracing::debug!(%error, "protocol upgrade failed");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_needs_both_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        assert!(!is_upgrade_request(&headers));
        headers.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        assert!(is_upgrade_request(&headers));
        headers.remove(header::UPGRADE);
        assert!(!is_upgrade_request(&headers));
    }

    fn message_headers(names: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for name in names {
            headers.append(*name, "x".parse().unwrap());
        }
        headers
    }

    #[test]
    fn every_hop_by_hop_header_is_removed_and_the_others_kept() {
        let all = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "te",
        ];
        // Each one alone (the scan must notice any of them), then all together.
        for name in all {
            let mut headers = message_headers(&[name, "x-request-id", "content-length"]);
            strip_hop_by_hop(&mut headers, false);
            assert!(!headers.contains_key(name), "{name} was kept");
            assert_eq!(headers.len(), 2, "{name}: {headers:?}");
        }
        let mut headers = message_headers(&all);
        headers.append("keep-alive", "timeout=5".parse().unwrap());
        strip_hop_by_hop(&mut headers, false);
        assert!(headers.is_empty(), "{headers:?}");
    }

    #[test]
    fn an_upgrade_keeps_connection_and_upgrade() {
        let mut headers = message_headers(&["upgrade", "connection", "te", "host"]);
        strip_hop_by_hop(&mut headers, true);
        assert_eq!(headers.get(header::CONNECTION).unwrap(), "upgrade");
        assert!(headers.contains_key(header::UPGRADE));
        assert!(!headers.contains_key(header::TE));
        assert!(headers.contains_key(header::HOST));
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_unchanged() {
        let mut headers = message_headers(&["host", "x-request-id", "content-length"]);
        let before = headers.clone();
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers, before);
    }
}
