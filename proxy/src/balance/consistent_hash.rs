//! Consistent hashing (Istio `LoadBalancerSettings.consistentHash`; Envoy's `RING_HASH` and
//! `MAGLEV` load balancers fed by a route's hash policy): soft session affinity, where requests
//! with the same key (a header, a cookie, a query parameter or the source IP) go to the same
//! endpoint, and removing one of N endpoints moves only about 1/N of the keys.
//!
//! Keys and endpoints are hashed with std's SipHash-1-3 under its fixed all-zero keys
//! ([`std::hash::DefaultHasher::new`]): the same within one build of the proxy, so every
//! replica of a client agrees. Envoy uses xxHash64 instead; only the spread matters here.

use std::hash::Hasher;
use std::net::IpAddr;

use http::request::Parts;
pub use weft_proxy_config::{DEFAULT_MAGLEV_TABLE_SIZE, DEFAULT_MINIMUM_RING_SIZE, HashAlgorithm};

/// Envoy's default `maximum_ring_size`: a ring never holds more entries.
pub const MAXIMUM_RING_SIZE: u64 = 8 * 1024 * 1024;
/// The largest Maglev table built (Envoy's limit, 5 000 011, a prime).
pub const MAXIMUM_MAGLEV_TABLE_SIZE: u64 = 5_000_011;

/// The hash of `bytes` (SipHash-1-3 with fixed keys; see the module doc).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

fn seeded_hash(seed: u8, bytes: &[u8]) -> u64 {
    let mut hasher = std::hash::DefaultHasher::new();
    hasher.write_u8(seed);
    hasher.write(bytes);
    hasher.finish()
}

/// What a request is hashed on (Istio `ConsistentHashLB`'s hash key oneOf).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// `httpHeaderName`: the values of this header (sorted, then hashed in turn, as Envoy).
    Header(http::HeaderName),
    /// `httpCookie`: the value of this cookie in the `Cookie` headers, and how to generate it
    /// for a request without it.
    Cookie(CookieKey),
    /// `useSourceIp`: the downstream peer's address.
    SourceIp,
    /// `httpQueryParameterName`: the first value of this query parameter (as sent, not
    /// percent-decoded).
    QueryParameter(String),
}

impl HashKey {
    /// The hash of this key in the request `parts` arriving from `source`; `None` when the
    /// request does not carry it (no such header, cookie or parameter; no source address),
    /// in which case the cluster balances the request as without consistent hashing (Envoy
    /// does the same for a missing key).
    pub fn hash(&self, parts: &Parts, source: Option<IpAddr>) -> Option<u64> {
        match self {
            Self::Header(name) => {
                let mut values: Vec<&[u8]> = parts
                    .headers
                    .get_all(name)
                    .iter()
                    .map(|value| value.as_bytes())
                    .collect();
                if values.is_empty() {
                    return None;
                }
                values.sort_unstable();
                let mut hasher = std::hash::DefaultHasher::new();
                for value in values {
                    hasher.write(value);
                }
                Some(hasher.finish())
            }
            Self::Cookie(key) => request_cookie(parts, &key.name).map(hash_bytes),
            Self::SourceIp => source.map(|ip| hash_bytes(ip.to_string().as_bytes())),
            Self::QueryParameter(wanted) => parts
                .uri
                .query()?
                .split('&')
                .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
                .find(|(name, _)| name == wanted)
                .map(|(_, value)| hash_bytes(value.as_bytes())),
        }
    }
}

/// `httpCookie` (Istio `ConsistentHashLB.HTTPCookie`, Envoy `RouteAction.HashPolicy.Cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieKey {
    /// The cookie name (compared exactly).
    pub name: String,
    /// `Path` of a generated cookie; `None`: no `Path` attribute.
    pub path: Option<String>,
    /// The `ttl` in whole seconds. `None`: a request without the cookie gets no hash (and no
    /// cookie); `Some(0)`: a session cookie is generated (no `Max-Age`); `Some(n)`: a cookie
    /// with `Max-Age=n` is generated.
    pub max_age_secs: Option<u64>,
}

/// A cookie the proxy made for a request that lacked it (Envoy: a hash policy cookie with a
/// `ttl`): the request is hashed on its value, and the response carries `set_cookie`, so the
/// client's next requests stick to the same endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedCookie {
    /// The hash of the cookie's value, what the request is balanced on.
    pub hash: u64,
    /// The `Set-Cookie` value: `<name>="<value>"`, then `; Max-Age=<secs>` unless a session
    /// cookie, `; Path=<path>` when set, and `; HttpOnly` (Envoy's `makeSetCookieValue`).
    pub set_cookie: http::HeaderValue,
}

impl CookieKey {
    /// The cookie to generate for the request `parts` that arrived on the downstream
    /// connection from `peer` to `local`; `None` when the request carries the cookie (a
    /// non-empty value) or the key has no ttl, or the name or path cannot be written in a
    /// header. As Envoy, the value is the 16-hex-digit hash of the connection's remote and local
    /// addresses, so requests racing on one connection get the same cookie.
    pub fn generate(
        &self,
        parts: &Parts,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
    ) -> Option<GeneratedCookie> {
        let max_age = self.max_age_secs?;
        if request_cookie(parts, &self.name).is_some() {
            return None;
        }
        let value = format!("{:016x}", hash_bytes(format!("{peer}{local}").as_bytes()));
        let mut text = format!("{}=\"{value}\"", self.name);
        if max_age > 0 {
            text.push_str(&format!("; Max-Age={max_age}"));
        }
        if let Some(path) = &self.path {
            text.push_str("; Path=");
            text.push_str(path);
        }
        text.push_str("; HttpOnly");
        Some(GeneratedCookie {
            hash: hash_bytes(value.as_bytes()),
            set_cookie: http::HeaderValue::from_str(&text).ok()?,
        })
    }
}

impl super::Endpoints {
    /// The cookie to generate for the request `parts` on the connection from `peer` to
    /// `local`, when this cluster hashes on a cookie with a ttl and the request lacks it (see
    /// [`CookieKey::generate`]); `None` otherwise.
    pub fn generated_cookie(
        &self,
        parts: &Parts,
        peer: std::net::SocketAddr,
        local: std::net::SocketAddr,
    ) -> Option<GeneratedCookie> {
        match &self.hash.as_ref()?.0 {
            HashKey::Cookie(key) => key.generate(parts, peer, local),
            _ => None,
        }
    }
}

/// The value of the first cookie named `wanted` in the request's `Cookie` headers, without
/// the double quotes around it if any (RFC 6265 `cookie-value`, as Envoy's
/// `parseCookieValue`); `None` when absent or empty.
fn request_cookie<'p>(parts: &'p Parts, wanted: &str) -> Option<&'p [u8]> {
    parts
        .headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == wanted)
        .map(|(_, value)| {
            value
                .strip_prefix('"')
                .and_then(|inner| inner.strip_suffix('"'))
                .unwrap_or(value)
        })
        .filter(|value| !value.is_empty())
        .map(str::as_bytes)
}

/// A cluster's consistent-hash policy: what to hash and how (the compiled form of Istio's
/// `ConsistentHashLB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistentHashPolicy {
    /// What the request is hashed on.
    pub key: HashKey,
    /// How hashes map to endpoints.
    pub algorithm: HashAlgorithm,
}

impl ConsistentHashPolicy {
    /// The compiled policy of a cluster's `consistent_hash`; `None` when the header name is
    /// not a valid HTTP header name (no request can carry it). A cookie's `ttl_ms` is kept in
    /// whole seconds, as Envoy reads the `ttl` Duration's seconds.
    pub fn from_model(model: &weft_proxy_config::ConsistentHash) -> Option<Self> {
        use weft_proxy_config::HashKey as Key;
        let key = match &model.key {
            Key::HttpHeaderName { name } => {
                HashKey::Header(http::HeaderName::from_bytes(name.as_bytes()).ok()?)
            }
            Key::HttpCookie { name, path, ttl_ms } => HashKey::Cookie(CookieKey {
                name: name.clone(),
                path: path.clone().filter(|path| !path.is_empty()),
                max_age_secs: ttl_ms.map(|ms| ms / 1000),
            }),
            Key::UseSourceIp => HashKey::SourceIp,
            Key::HttpQueryParameterName { name } => HashKey::QueryParameter(name.clone()),
        };
        Some(Self {
            key,
            algorithm: model.algorithm,
        })
    }
}

/// A built lookup structure mapping a hash to an endpoint index.
#[derive(Debug, Clone)]
pub enum HashTable {
    /// A sorted ring of `(point, endpoint index)`.
    Ring(Vec<(u64, usize)>),
    /// A Maglev table of endpoint indexes.
    Maglev(Vec<usize>),
}

impl HashTable {
    /// Builds the table for `hosts`, each `(key, weight)` where the key names the endpoint
    /// (its `address:port`, as Envoy hashes hosts) and the weight is at least 1 (0 counts as 1).
    /// Empty `hosts` give an empty table, whose lookups are `None`.
    pub fn build(algorithm: HashAlgorithm, hosts: &[(String, u32)]) -> Self {
        match algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => {
                Self::Ring(ring(hosts, minimum_ring_size))
            }
            HashAlgorithm::Maglev { table_size } => Self::Maglev(maglev(hosts, table_size)),
        }
    }

    /// The endpoint indexes in the order a request with `hash` tries them: its own endpoint
    /// first, then (ring) the owners of the following points, or (Maglev) the following slots.
    /// Each index may repeat; callers stop at the first usable one.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let (start, len) = match self {
            Self::Ring(points) => (
                points.partition_point(|(point, _)| *point < hash),
                points.len(),
            ),
            Self::Maglev(table) => (
                usize::try_from(hash % (table.len().max(1) as u64)).unwrap_or(0),
                table.len(),
            ),
        };
        (0..len).map(move |step| {
            let at = (start + step) % len;
            match self {
                Self::Ring(points) => points[at].1,
                Self::Maglev(table) => table[at],
            }
        })
    }

    /// The endpoint index for `hash`; `None` when the table is empty.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        self.candidates(hash).next()
    }
}

/// A ketama ring: each host gets `weight × per_unit` points hashed from `<key>_<n>`, where
/// `per_unit` is `ceil(minimum / total weight)` rounded up to a power of two, so the ring holds
/// between `minimum` and twice as many points (at most [`MAXIMUM_RING_SIZE`]). Envoy uses
/// `per_unit` unrounded; rounding keeps each host's points the same when a host joins or
/// leaves (unless the total crosses a power of two), so only the keys of that host move.
fn ring(hosts: &[(String, u32)], minimum_ring_size: u64) -> Vec<(u64, usize)> {
    let total: u64 = hosts.iter().map(|(_, w)| u64::from((*w).max(1))).sum();
    if total == 0 {
        return Vec::new();
    }
    let minimum = minimum_ring_size.clamp(1, MAXIMUM_RING_SIZE);
    let per_unit = minimum.div_ceil(total).next_power_of_two();
    let mut points = Vec::new();
    for (index, (key, weight)) in hosts.iter().enumerate() {
        let count = u64::from((*weight).max(1)).saturating_mul(per_unit);
        for n in 0..count.min(MAXIMUM_RING_SIZE) {
            points.push((hash_bytes(format!("{key}_{n}").as_bytes()), index));
        }
    }
    points.sort_unstable();
    points.truncate(usize::try_from(MAXIMUM_RING_SIZE).unwrap_or(usize::MAX));
    points
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// Maglev (Eisenbud et al., NSDI 2016) with Envoy's weighting: in each round, a host fills its
/// next preferred empty slot only while its share so far is below `round × weight / max
/// weight`, so slots end up in proportion to weight.
fn maglev(hosts: &[(String, u32)], table_size: u64) -> Vec<usize> {
    if hosts.is_empty() {
        return Vec::new();
    }
    let mut size = table_size.clamp(hosts.len() as u64, MAXIMUM_MAGLEV_TABLE_SIZE);
    while !is_prime(size) {
        size += 1;
    }
    let max_weight = hosts
        .iter()
        .map(|(_, w)| u64::from((*w).max(1)))
        .max()
        .unwrap_or(1);
    let permutations: Vec<(u64, u64)> = hosts
        .iter()
        .map(|(key, _)| {
            let offset = seeded_hash(0, key.as_bytes()) % size;
            let skip = seeded_hash(1, key.as_bytes()) % (size - 1).max(1) + 1;
            (offset, skip)
        })
        .collect();
    let slots = usize::try_from(size).unwrap_or(usize::MAX);
    let mut table = vec![usize::MAX; slots];
    let mut next = vec![0u64; hosts.len()];
    let mut owned = vec![0u64; hosts.len()];
    let mut filled = 0usize;
    let mut round = 0u64;
    while filled < slots {
        round += 1;
        for (index, (_, weight)) in hosts.iter().enumerate() {
            let weight = u64::from((*weight).max(1));
            if u128::from(round) * u128::from(weight)
                < u128::from(owned[index] + 1) * u128::from(max_weight)
            {
                continue;
            }
            let (offset, skip) = permutations[index];
            loop {
                let slot = (offset + next[index] * skip) % size;
                next[index] += 1;
                let slot = usize::try_from(slot).unwrap_or(0);
                if table[slot] == usize::MAX {
                    table[slot] = index;
                    owned[index] += 1;
                    filled += 1;
                    break;
                }
            }
            if filled == slots {
                break;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn cookie_key(path: Option<&str>, max_age_secs: Option<u64>) -> CookieKey {
        CookieKey {
            name: "session".into(),
            path: path.map(str::to_owned),
            max_age_secs,
        }
    }

    fn cookie_request(cookie: Option<&str>) -> Parts {
        let mut builder = http::Request::get("/");
        if let Some(cookie) = cookie {
            builder = builder.header(http::header::COOKIE, cookie);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const PEER: &str = "198.18.0.10:40000";
    const LOCAL: &str = "198.18.1.3:9080";

    fn generate(key: &CookieKey, parts: &Parts, peer: &str) -> Option<GeneratedCookie> {
        key.generate(parts, peer.parse().unwrap(), LOCAL.parse().unwrap())
    }

    #[test]
    fn a_generated_cookie_has_envoys_attributes_and_hashes_as_its_replay() {
        let key = cookie_key(Some("/"), Some(60));
        let generated = generate(&key, &cookie_request(None), PEER).unwrap();
        let text = generated.set_cookie.to_str().unwrap();
        let value = text
            .strip_prefix("session=\"")
            .and_then(|rest| rest.split_once('"'))
            .map(|(value, attributes)| {
                assert_eq!(attributes, "; Max-Age=60; Path=/; HttpOnly");
                value
            })
            .unwrap();
        assert_eq!(value.len(), 16);
        assert!(value.bytes().all(|b| b.is_ascii_hexdigit()));
        // The client sends the cookie back as set (quoted) or unquoted: the same hash, and
        // no new cookie.
        for replay in [
            format!("session=\"{value}\""),
            format!("a=1; session={value}"),
        ] {
            let parts = cookie_request(Some(&replay));
            assert_eq!(
                HashKey::Cookie(key.clone()).hash(&parts, None),
                Some(generated.hash),
                "{replay}"
            );
            assert_eq!(generate(&key, &parts, PEER), None, "{replay}");
        }
        // Another connection gets another cookie (Envoy hashes both addresses).
        let other = generate(&key, &cookie_request(None), "198.18.0.10:40001").unwrap();
        assert_ne!(other.hash, generated.hash);
    }

    #[test]
    fn ttl_decides_whether_and_how_the_cookie_is_generated() {
        let no_ttl = cookie_key(Some("/"), None);
        assert_eq!(generate(&no_ttl, &cookie_request(None), PEER), None);
        let session = cookie_key(None, Some(0));
        let generated = generate(&session, &cookie_request(None), PEER).unwrap();
        let text = generated.set_cookie.to_str().unwrap();
        assert!(text.ends_with("\"; HttpOnly"), "{text}");
        assert!(
            !text.contains("Max-Age") && !text.contains("Path"),
            "{text}"
        );
        // An empty cookie counts as absent, as in Envoy.
        assert!(generate(&session, &cookie_request(Some("session=")), PEER).is_some());
        assert_eq!(
            HashKey::Cookie(session).hash(&cookie_request(Some("session=")), None),
            None
        );
    }

    fn hosts(n: usize) -> Vec<(String, u32)> {
        (0..n).map(|i| (format!("10.0.0.{i}:9080"), 1)).collect()
    }

    /// 20 000 keys, hashed as request keys are.
    fn keys() -> Vec<u64> {
        (0..20_000u32)
            .map(|i| hash_bytes(format!("user-{i}").as_bytes()))
            .collect()
    }

    fn shares(table: &HashTable, n: usize) -> Vec<f64> {
        let keys = keys();
        let mut counts = vec![0usize; n];
        for key in &keys {
            counts[table.lookup(*key).unwrap()] += 1;
        }
        counts
            .iter()
            .map(|c| *c as f64 / keys.len() as f64)
            .collect()
    }

    const RING: HashAlgorithm = HashAlgorithm::RingHash {
        minimum_ring_size: DEFAULT_MINIMUM_RING_SIZE,
    };
    const MAGLEV: HashAlgorithm = HashAlgorithm::Maglev {
        table_size: DEFAULT_MAGLEV_TABLE_SIZE,
    };

    #[test]
    fn both_algorithms_spread_keys_evenly() {
        for (algorithm, tolerance) in [(RING, 0.06), (MAGLEV, 0.01)] {
            let table = HashTable::build(algorithm, &hosts(4));
            for share in shares(&table, 4) {
                assert!(
                    (share - 0.25).abs() < tolerance,
                    "{algorithm:?}: share {share:.3} is not 25 % ± {tolerance}"
                );
            }
        }
    }

    #[test]
    fn weights_set_the_shares() {
        let weighted = vec![("a:1".to_string(), 1), ("b:1".to_string(), 3)];
        for (algorithm, tolerance) in [(RING, 0.06), (MAGLEV, 0.01)] {
            let share = shares(&HashTable::build(algorithm, &weighted), 2);
            assert!(
                (share[1] - 0.75).abs() < tolerance,
                "{algorithm:?}: weight 3 of 4 got {:.3}",
                share[1]
            );
        }
    }

    /// Where each key goes, by host name.
    fn placement(table: &HashTable, hosts: &[(String, u32)]) -> HashMap<u64, String> {
        keys()
            .into_iter()
            .map(|key| (key, hosts[table.lookup(key).unwrap()].0.clone()))
            .collect()
    }

    #[test]
    fn removing_one_of_five_endpoints_moves_about_a_fifth_of_the_keys() {
        for (algorithm, ceiling) in [(RING, 0.25), (MAGLEV, 0.27)] {
            let all = hosts(5);
            let before = placement(&HashTable::build(algorithm, &all), &all);
            let fewer: Vec<(String, u32)> = all[..4].to_vec();
            let after = placement(&HashTable::build(algorithm, &fewer), &fewer);
            let removed = &all[4].0;
            let moved = keys()
                .iter()
                .filter(|key| before[*key] != after[*key])
                .count() as f64
                / keys().len() as f64;
            let was_on_removed = before.values().filter(|host| *host == removed).count() as f64
                / before.len() as f64;
            assert!(
                moved >= was_on_removed && moved < ceiling,
                "{algorithm:?}: {moved:.3} of the keys moved ({was_on_removed:.3} were on the \
                 removed endpoint)"
            );
            if algorithm == RING {
                // On a ring, only the removed endpoint's keys move.
                assert!(
                    (moved - was_on_removed).abs() < 1e-9,
                    "ring moved {moved:.3}"
                );
            }
        }
    }

    #[test]
    fn the_same_key_always_finds_the_same_endpoint() {
        for algorithm in [RING, MAGLEV] {
            let a = HashTable::build(algorithm, &hosts(3));
            let b = HashTable::build(algorithm, &hosts(3));
            for key in keys().into_iter().take(500) {
                assert_eq!(a.lookup(key), b.lookup(key));
            }
        }
    }

    #[test]
    fn candidates_visit_every_endpoint_and_empty_tables_have_none() {
        for algorithm in [RING, MAGLEV] {
            let table = HashTable::build(algorithm, &hosts(3));
            let mut seen: Vec<usize> = table.candidates(42).collect();
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen, [0, 1, 2]);
            assert_eq!(HashTable::build(algorithm, &[]).lookup(42), None);
        }
    }

    #[test]
    fn maglev_sizes_that_are_not_prime_are_raised_to_a_prime() {
        let HashTable::Maglev(table) =
            HashTable::build(HashAlgorithm::Maglev { table_size: 100 }, &hosts(3))
        else {
            panic!("not a Maglev table");
        };
        assert_eq!(table.len(), 101);
        assert!(table.iter().all(|index| *index < 3));
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> Parts {
        let mut builder = http::Request::get(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn keys_are_read_from_header_cookie_query_and_source() {
        let parts = request(
            "/p?a=1&user=bob&z",
            &[("x-user", "bob"), ("cookie", "theme=dark; session=bob")],
        );
        let bob = hash_bytes(b"bob");
        let header = HashKey::Header(http::HeaderName::from_static("x-user"));
        assert_eq!(header.hash(&parts, None), Some(bob));
        assert_eq!(
            HashKey::Cookie(cookie_key(None, None)).hash(&parts, None),
            Some(bob)
        );
        assert_eq!(
            HashKey::QueryParameter("user".into()).hash(&parts, None),
            Some(bob)
        );
        let ip: IpAddr = "198.18.0.7".parse().unwrap();
        assert_eq!(
            HashKey::SourceIp.hash(&parts, Some(ip)),
            Some(hash_bytes(b"198.18.0.7"))
        );
        // Absent keys: the request is balanced as without consistent hashing.
        let bare = request("/p", &[]);
        assert_eq!(header.hash(&bare, None), None);
        assert_eq!(
            HashKey::Cookie(cookie_key(None, None)).hash(&bare, None),
            None
        );
        assert_eq!(
            HashKey::QueryParameter("user".into()).hash(&bare, None),
            None
        );
        assert_eq!(HashKey::SourceIp.hash(&bare, None), None);
        // Different values hash differently.
        let alice = request("/p", &[("x-user", "alice")]);
        assert_ne!(header.hash(&alice, None), Some(bob));
    }
}
