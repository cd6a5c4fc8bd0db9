//! Istio's value syntax for authorization fields: exact, `prefix*`, `*suffix` and `*`
//! (presence), plus path templates and IP blocks. These mirror how istiod turns policy values
//! into Envoy `StringMatcher`s and `HeaderMatcher`s.

use std::net::IpAddr;

use weft_proxy_config::Cidr;

/// Istio's `StringMatcher` rule for a pattern: `*` matches any non-empty value (Envoy regex
/// `.+`), `*suffix` a suffix, `prefix*` a prefix, anything else exactly. An absent value
/// never matches.
pub(crate) fn string_matches(pattern: &str, value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    if pattern == "*" {
        !value.is_empty()
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        value.ends_with(suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value.starts_with(prefix)
    } else {
        value == pattern
    }
}

/// Istio's `HeaderMatcher` rule (methods, `request.headers[...]`): as [`string_matches`], but
/// `*` means "the header is present", even with an empty value.
pub(crate) fn header_matches(pattern: &str, value: Option<&str>) -> bool {
    match value {
        Some(_) if pattern == "*" => true,
        _ => string_matches(pattern, value),
    }
}

/// Istio's host matcher (`Operation.hosts`): [`header_matches`] without regard to ASCII case.
pub(crate) fn host_matches(pattern: &str, value: Option<&str>) -> bool {
    let Some(value) = value else {
        return false;
    };
    if pattern == "*" {
        true
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        ends_with_ignore_case(value, suffix)
    } else if let Some(prefix) = pattern.strip_suffix('*') {
        value
            .get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    } else {
        value.eq_ignore_ascii_case(pattern)
    }
}

fn ends_with_ignore_case(value: &str, suffix: &str) -> bool {
    value
        .len()
        .checked_sub(suffix.len())
        .and_then(|start| value.get(start..))
        .is_some_and(|end| end.eq_ignore_ascii_case(suffix))
}

/// Istio's path matcher (`Operation.paths`) against a path without its query: a value with a
/// `{*}` or `{**}` segment is a path template (Istio 1.22+: `{*}` is exactly one non-empty
/// segment, `{**}` the rest of the path, at least one character); anything else is a
/// [`string_matches`] pattern.
pub(crate) fn path_matches(pattern: &str, path: Option<&str>) -> bool {
    let Some(path) = path else {
        return false;
    };
    // The `{` test first: most patterns have none, and it is a single byte scan.
    if pattern.as_bytes().contains(&b'{') && (pattern.contains("{*}") || pattern.contains("{**}")) {
        template_matches(pattern, path)
    } else {
        string_matches(pattern, Some(path))
    }
}

fn template_matches(template: &str, path: &str) -> bool {
    let mut wanted = template.split('/');
    let mut given = path.split('/');
    loop {
        match (wanted.next(), given.next()) {
            (None, None) => return true,
            (Some("{**}"), Some(segment)) => {
                // `{**}` takes the rest; it must be last and match something.
                return wanted.next().is_none() && (!segment.is_empty() || given.next().is_some());
            }
            (Some("{*}"), Some(segment)) if !segment.is_empty() => {}
            (Some(literal), Some(segment)) if literal == segment && literal != "{*}" => {}
            _ => return false,
        }
    }
}

/// An Istio IP value (`source.ip`, `destination.ip`, `remote.ip` conditions): a bare address
/// or a CIDR. `None` when the text is neither (istiod reports such a value as an error).
pub(crate) fn parse_ip_block(text: &str) -> Option<Cidr> {
    text.parse().ok()
}

/// Whether `ip` is present and inside `block`.
pub(crate) fn ip_in(block: &Cidr, ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| block.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_patterns() {
        let cases = [
            ("abc", Some("abc"), true),
            ("abc", Some("abcd"), false),
            ("abc*", Some("abcd"), true),
            ("abc*", Some("xabc"), false),
            ("*bcd", Some("abcd"), true),
            ("*bcd", Some("abcx"), false),
            ("*", Some("x"), true),
            ("*", Some(""), false),
            ("*", None, false),
            ("abc", None, false),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(
                string_matches(pattern, value),
                want,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn header_presence_accepts_empty_values() {
        assert!(header_matches("*", Some("")));
        assert!(!header_matches("*", None));
        assert!(header_matches("Mozilla/*", Some("Mozilla/5.0")));
    }

    #[test]
    fn hosts_ignore_case() {
        let cases = [
            ("Example.COM", Some("example.com"), true),
            ("*.Example.com", Some("api.EXAMPLE.com"), true),
            ("api.*", Some("API.example.com"), true),
            ("api.*", Some("web.example.com"), false),
            ("*", Some(""), true),
            ("*", None, false),
            ("é*", Some("x"), false),
        ];
        for (pattern, value, want) in cases {
            assert_eq!(
                host_matches(pattern, value),
                want,
                "{pattern:?} vs {value:?}"
            );
        }
    }

    #[test]
    fn path_templates() {
        let cases = [
            ("/foo/{*}", "/foo/bar", true),
            ("/foo/{*}", "/foo/bar/baz", false),
            ("/foo/{*}", "/foo/", false),
            ("/foo/{*}/baz", "/foo/bar/baz", true),
            ("/foo/{**}", "/foo/bar/baz", true),
            ("/foo/{**}", "/foo/", false),
            ("/foo/{**}", "/foo", false),
            ("/foo/{**}/x", "/foo/a/x", false),
            ("/foo/*", "/foo/bar/baz", true),
            ("*.html", "/a/b.html", true),
        ];
        for (pattern, path, want) in cases {
            assert_eq!(
                path_matches(pattern, Some(path)),
                want,
                "{pattern:?} vs {path:?}"
            );
        }
    }
}
