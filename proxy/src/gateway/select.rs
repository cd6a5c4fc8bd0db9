//! Picking a gateway server for a connection or a request: by SNI for TLS servers, by the
//! request's authority for plaintext HTTP servers (Istio's filter-chain match on
//! `server_names`, and virtual-host selection across the servers of one port).
//!
//! Order, as the model documents it ([`weft_proxy_config::host_matches`]): an exact host wins
//! over a `*.suffix` wildcard, a longer suffix over a shorter one, and `*` comes last; among
//! equally specific servers the first (Istio's merge order) wins. A missing name (no SNI)
//! matches only a server with host `*`.

use weft_proxy_config::host_matches;

/// How specifically `pattern` (a server host: exact, `*.suffix` or `*`) matches `name`:
/// `None` when it does not match; otherwise a rank where greater is more specific (exact
/// hosts above every wildcard, longer wildcard suffixes above shorter ones, `*` lowest).
pub fn specificity(pattern: &str, name: &str) -> Option<(u8, usize)> {
    if !host_matches(pattern, name) {
        return None;
    }
    Some(match pattern {
        "*" => (0, 0),
        wildcard if wildcard.starts_with('*') => (1, wildcard.len()),
        exact => (2, exact.len()),
    })
}

/// The index of the server that serves `name` among `candidates` (each an index and the
/// server's hosts), or `None`. `name` is an SNI or an authority without port; `None` (a
/// ClientHello without SNI) matches only a server listing `*`.
pub fn pick<'a, I>(candidates: I, name: Option<&str>) -> Option<usize>
where
    I: IntoIterator<Item = (usize, &'a [String])>,
{
    let mut best: Option<((u8, usize), usize)> = None;
    for (index, hosts) in candidates {
        let rank = hosts
            .iter()
            .filter_map(|pattern| match name {
                Some(name) => specificity(pattern, name),
                None => (pattern == "*").then_some((0, 0)),
            })
            .max();
        if let Some(rank) = rank
            && best.is_none_or(|(current, _)| rank > current)
        {
            best = Some((rank, index));
        }
    }
    best.map(|(_, index)| index)
}

/// The host part of an HTTP authority: without the port, and without the brackets of an
/// IPv6 literal (`[::1]:80` → `::1`).
pub fn authority_host(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> Vec<String> {
        list.iter().map(|h| (*h).to_owned()).collect()
    }

    fn pick_in(servers: &[Vec<String>], name: Option<&str>) -> Option<usize> {
        pick(
            servers
                .iter()
                .enumerate()
                .map(|(index, hosts)| (index, hosts.as_slice())),
            name,
        )
    }

    #[test]
    fn exact_beats_wildcard_beats_star_whatever_the_order() {
        let servers = [
            hosts(&["*"]),
            hosts(&["*.example.com"]),
            hosts(&["api.example.com"]),
        ];
        assert_eq!(pick_in(&servers, Some("api.example.com")), Some(2));
        assert_eq!(pick_in(&servers, Some("www.example.com")), Some(1));
        assert_eq!(pick_in(&servers, Some("other.org")), Some(0));
    }

    #[test]
    fn longer_wildcard_suffix_wins_and_ties_go_to_the_first_server() {
        let servers = [
            hosts(&["*.example.com"]),
            hosts(&["*.api.example.com"]),
            hosts(&["*.api.example.com"]),
        ];
        assert_eq!(pick_in(&servers, Some("v1.api.example.com")), Some(1));
        assert_eq!(pick_in(&servers, Some("web.example.com")), Some(0));
    }

    #[test]
    fn matching_is_case_insensitive_and_wildcards_need_a_label() {
        let servers = [hosts(&["*.example.com"]), hosts(&["Shop.Example.com"])];
        assert_eq!(pick_in(&servers, Some("shop.example.COM")), Some(1));
        assert_eq!(pick_in(&servers, Some("example.com")), None);
    }

    #[test]
    fn no_sni_matches_only_a_star_server() {
        let without_star = [hosts(&["a.example.com"]), hosts(&["*.example.com"])];
        assert_eq!(pick_in(&without_star, None), None);
        let with_star = [hosts(&["a.example.com"]), hosts(&["b.example.com", "*"])];
        assert_eq!(pick_in(&with_star, None), Some(1));
    }

    #[test]
    fn authority_host_strips_ports_and_ipv6_brackets() {
        assert_eq!(authority_host("example.com:8080"), "example.com");
        assert_eq!(authority_host("example.com"), "example.com");
        assert_eq!(authority_host("[::1]:80"), "::1");
        assert_eq!(authority_host("198.18.0.1:80"), "198.18.0.1");
    }
}
